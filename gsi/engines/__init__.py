"""Engine plumbing: the small pieces every user of an engine needs, written once.

``gsi.engines.hf`` holds torch/transformers plumbing (device, loading, padding,
length-sorted chunking); ``gsi.engines.hf_tree`` the prefix-sharing forward pass used by
the transformers backend and PRMs; ``gsi.engines.vllm`` vLLM engine start-up and options
for the vLLM backend and the vLLM PRM. Backends, rewards and the toy trainers import from
here, never from each other.
"""
