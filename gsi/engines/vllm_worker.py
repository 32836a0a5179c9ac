"""A vLLM worker extension for scoring: the sampling temperature in the logits, and
prompt log-prob rows only where the engine computed them.

**Temperature.** vLLM computes prompt log-probs from the raw logits: the temperature of a
request is applied only to the tokens it samples. Scoring a step under the tempered law
from raw prompt log-probs needs every position's whole distribution (a full-vocabulary row
per position, each turned into Python objects) to renormalise. With the logits multiplied
by ``1 / temperature`` inside the engine, the prompt log-prob of the target token *is* its
log-prob under the tempered law, one number per position, and sampling at temperature 1
draws from the same law as temperature ``T`` on the raw logits.

The product is taken in float32 (``logits.float() * scale``), never in the model's dtype:
a bf16 head's logits scaled in bf16 would gain a rounding error of up to 2^-9 relative,
about 0.1 in log-prob at logits of 30. vLLM's sampler and its prompt log-probs work in
float32 anyway. A model's own logit scale (``config.logit_scale``) is kept and applied
first. At scale 1 the logits processor is left exactly as vLLM built it.

**Computed rows.** vLLM's V1 model runner returns a prompt log-prob row for every prompt
position, also the positions a prefix-cache hit skipped (left unfilled), and the engine
front end turns each row into Python objects: at a 400-token prefix that is most of a
scoring call's growth with the prefix (issue #20), for rows nobody reads.
:meth:`ScoringExtension.gsi_computed_prompt_rows` wraps the runner's prompt log-prob step so
that a request's rows start at the first position it computed (its cache hit), as the V2
runner's do; the numbers are vLLM's own, only fewer. ``gsi.backends.vllm_backend`` reads
each request's row offset from how many rows came back (all of them, or those after the
cache hit), so an engine without the wrapper is read correctly too.

``gsi.backends.vllm_backend`` starts its engines with ``worker_extension_cls`` set to
:class:`ScoringExtension` and calls its methods through ``LLM.collective_rpc`` (a method
name and plain arguments: no pickled code travels to the workers, so it works with
multiprocessing and tensor parallelism on GPUs).
"""

from __future__ import annotations

EXTENSION = "gsi.engines.vllm_worker.ScoringExtension"


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


def computed_rows_only(runner) -> None:
    """Wrap ``runner._get_prompt_logprobs_dict`` (vLLM's V1 model runner) so that each
    request's prompt log-prob tensors start at the position its first scheduled chunk
    started from (``num_computed_tokens``: the prefix-cache hit): row ``i`` then predicts
    prompt token ``start + 1 + i``. Idempotent."""
    if getattr(runner, "_gsi_rows_wrapped", False):
        return
    original = runner._get_prompt_logprobs_dict
    starts: dict[str, int] = {}

    def prompt_logprobs_dict(hidden_states, num_scheduled_tokens):
        for req_id in list(starts):
            if req_id not in runner.requests:  # finished or preempted
                del starts[req_id]
        for req_id in runner.num_prompt_logprobs:
            request = runner.requests.get(req_id)
            if (request is not None and req_id in num_scheduled_tokens
                    and getattr(request, "in_progress_prompt_logprobs_cpu", None) is None):
                starts[req_id] = request.num_computed_tokens  # the first chunk of its prefill
        out = original(hidden_states, num_scheduled_tokens)
        for req_id, tensors in out.items():
            start = starts.pop(req_id, 0)
            if tensors is not None and start > 0:
                out[req_id] = tensors._replace(
                    logprob_token_ids=tensors.logprob_token_ids[start:],
                    logprobs=tensors.logprobs[start:],
                    selected_token_ranks=tensors.selected_token_ranks[start:],
                )
        return out

    runner._get_prompt_logprobs_dict = prompt_logprobs_dict
    runner._gsi_rows_wrapped = True


class ScoringExtension:
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

    def gsi_computed_prompt_rows(self) -> bool:
        """Return prompt log-prob rows only from each request's cache hit on (see the
        module docstring); False where the runner has no V1 prompt log-prob step (the V2
        runner returns computed rows only already)."""
        runner = self.model_runner
        if not all(hasattr(runner, a) for a in ("_get_prompt_logprobs_dict", "num_prompt_logprobs", "requests")):
            return False
        computed_rows_only(runner)
        return True
