"""The worker extension's logit scaling on a module shaped like vLLM's LogitsProcessor
(pure torch: the engine path is in tests/test_vllm_backend.py)."""

from __future__ import annotations

from typing import NamedTuple

import pytest

torch = pytest.importorskip("torch")

from gsi.engines.vllm_worker import set_scale  # noqa: E402


class Head(torch.nn.Module):
    def forward(self, hidden):
        return (hidden * 3).to(torch.bfloat16)


def test_the_scale_is_applied_in_float32_and_scale_one_restores_the_module():
    head, hidden = Head(), torch.tensor([[1.0, 2.5, -7.0]])
    native = head(hidden)
    set_scale(head, 1 / 0.7)
    scaled = head(hidden)
    assert scaled.dtype == torch.float32
    assert torch.equal(scaled, native.float() * (1 / 0.7))  # not rounded back to bf16
    set_scale(head, 2.0)  # a new scale replaces the old one, it does not compound
    assert torch.equal(head(hidden), native.float() * 2.0)
    set_scale(head, 1.0)
    assert "forward" not in head.__dict__ and torch.equal(head(hidden), native)


class _Tensors(NamedTuple):  # the fields of vLLM's LogprobsTensors the wrapper slices
    logprob_token_ids: torch.Tensor
    logprobs: torch.Tensor
    selected_token_ranks: torch.Tensor


class _Request:
    def __init__(self, prompt_len: int, cached: int) -> None:
        self.prompt_len, self.num_computed_tokens = prompt_len, cached
        self.in_progress_prompt_logprobs_cpu = None


class _Runner:
    """vLLM's V1 prompt log-prob step in miniature: full-length rows (row i predicts token
    i + 1), filled from each request's first computed position, over chunks."""

    def __init__(self) -> None:
        self.requests, self.num_prompt_logprobs = {}, {}

    def _get_prompt_logprobs_dict(self, hidden_states, num_scheduled_tokens):
        out = {}
        for req_id in list(self.num_prompt_logprobs):
            request, chunk = self.requests[req_id], num_scheduled_tokens[req_id]
            if request.in_progress_prompt_logprobs_cpu is None:
                rows = request.prompt_len - 1
                request.in_progress_prompt_logprobs_cpu = _Tensors(
                    torch.full((rows, 1), -1), torch.full((rows, 1), float("nan")), torch.full((rows,), -1))
            tensors, start = request.in_progress_prompt_logprobs_cpu, request.num_computed_tokens
            stop = min(start + chunk, request.prompt_len - 1)
            tensors.logprobs[start:stop, 0] = torch.arange(start + 1, stop + 1, dtype=torch.float32)
            request.num_computed_tokens += chunk
            if stop == request.prompt_len - 1:
                out[req_id] = tensors
                del self.num_prompt_logprobs[req_id]
        return out


def test_rows_start_at_each_requests_cache_hit_over_chunks():
    from gsi.engines.vllm_worker import computed_rows_only

    runner = _Runner()
    computed_rows_only(runner)
    computed_rows_only(runner)  # idempotent: wrapped once
    for req_id, (length, cached) in {"a": (10, 0), "b": (10, 4), "c": (12, 8)}.items():
        runner.requests[req_id], runner.num_prompt_logprobs[req_id] = _Request(length, cached), 0
    first = runner._get_prompt_logprobs_dict(None, {"a": 9, "b": 3, "c": 2})  # b and c: chunked
    assert set(first) == {"a"} and first["a"].logprobs[:, 0].tolist() == list(range(1, 10))
    second = runner._get_prompt_logprobs_dict(None, {"b": 3, "c": 2})
    # b's rows start at its hit (position 4 predicts token 5), every one of them filled
    assert set(second) == {"b", "c"}
    assert second["b"].logprobs[:, 0].tolist() == [5, 6, 7, 8, 9]
    assert second["c"].logprobs[:, 0].tolist() == [9, 10, 11]
    assert second["b"].selected_token_ranks.shape == (5,) and second["b"].logprob_token_ids.shape == (5, 1)
