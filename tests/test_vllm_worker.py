"""The worker extension's logit scaling on a module shaped like vLLM's LogitsProcessor
(pure torch: the engine path is in tests/test_vllm_backend.py)."""

from __future__ import annotations

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
