"""A vLLM worker extension that puts the sampling temperature into the logits.

vLLM computes prompt log-probs from the raw logits: the temperature of a request is
applied only to the tokens it samples. Scoring a step under the tempered law from raw
prompt log-probs needs every position's whole distribution (a full-vocabulary row per
position, each turned into Python objects) to renormalise. With the logits multiplied by
``1 / temperature`` inside the engine, the prompt log-prob of the target token *is* its
log-prob under the tempered law, one number per position, and sampling at temperature 1
draws from the same law as temperature ``T`` on the raw logits.

``gsi.backends.vllm_backend`` starts its engines with ``worker_extension_cls`` set to
:class:`TemperatureInLogits` and calls :meth:`~TemperatureInLogits.gsi_set_logit_scale`
through ``LLM.collective_rpc`` (a method name and a float: no pickled code travels to the
workers, so it works with multiprocessing and tensor parallelism on GPUs).

The product is taken in float32 (``logits.float() * scale``), never in the model's dtype:
a bf16 head's logits scaled in bf16 would gain a rounding error of up to 2^-9 relative,
about 0.1 in log-prob at logits of 30. vLLM's sampler and its prompt log-probs work in
float32 anyway. A model's own logit scale (``config.logit_scale``) is kept and applied
first. At scale 1 the logits processor is left exactly as vLLM built it.
"""

from __future__ import annotations

EXTENSION = "gsi.engines.vllm_worker.TemperatureInLogits"


def _model_of(worker):
    """The ``nn.Module`` a worker runs (unwrapping a CUDA-graph wrapper)."""
    runner = worker.model_runner
    model = runner.get_model() if hasattr(runner, "get_model") else runner.model
    unwrap = getattr(model, "unwrap", None)
    return unwrap() if callable(unwrap) else model


def set_scale(module, scale: float) -> None:
    """Make a vLLM ``LogitsProcessor`` multiply its output by ``scale`` in float32."""
    cls_forward = type(module).forward
    if scale == 1.0:
        module.__dict__.pop("forward", None)  # vLLM's own forward again
        return

    def forward(*args, **kwargs):
        logits = cls_forward(module, *args, **kwargs)
        return None if logits is None else logits.float() * scale

    module.forward = forward


class TemperatureInLogits:
    """Mixed into vLLM's worker class (``worker_extension_cls``)."""

    def gsi_set_logit_scale(self, scale: float) -> int:
        """Scale every ``LogitsProcessor`` of the model by ``scale``; return how many."""
        from vllm.model_executor.layers.logits_processor import LogitsProcessor

        found = 0
        for module in _model_of(self).modules():
            if isinstance(module, LogitsProcessor):
                set_scale(module, float(scale))
                found += 1
        return found
