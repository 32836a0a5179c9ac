"""Qwen2.5-Math-PRM-style process reward models, through transformers (here) or vLLM
(``gsi.rewards.prm_vllm``).

The partial solution ``previous + [candidate]`` is rendered as the conversation the
model was trained on (:func:`gsi.rewards.prm_format.render_qwen_prm`: steps joined by the
step tag ``<extra_0>``, one tag after each step); the model gives 2-class logits per
token and a step's probability of being right is ``softmax(logits)[1]`` at its tag. The
candidate's reward aggregates the steps' probabilities (``last``, ``min`` or ``product``).

Both engines tokenize with the same tokenizer here and see the same token ids, so their
rewards agree to float precision. A solution whose tags do not match its steps (a step
that itself contains the tag) or that does not fit ``max_length`` scores NaN.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from gsi.rewards.prm_format import (
    QWEN_MATH_SYSTEM,
    QWEN_STEP_TAG,
    check_aggregation,
    render_qwen_prm,
    score_candidates,
)

log = logging.getLogger(__name__)


def _check_model_dir(path: str, key: str = "reward.path") -> None:
    p = Path(path).expanduser()
    if str(path).startswith(("/", "./", "../", "~")) and not p.exists():
        raise ValueError(
            f"{key}={path!r} does not exist: point it at a PRM directory "
            "(the toy PRM is rebuilt by `python -m gsi.toy.train_prm`)"
        )


class _QwenPRMBase:
    """Rendering, tokenizing and aggregation shared by both engines."""

    def __init__(self, path: str, name: str, aggregation: str, system_prompt: str, step_tag: str,
                 max_length: int | None) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        _check_model_dir(path)
        self.name = name or path
        self.path = path
        self.aggregation = check_aggregation(aggregation)
        self.system_prompt = system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.chat_template is None:
            raise ValueError(f"reward.path={path!r}: its tokenizer has no chat template; a Qwen PRM needs one")
        tag_ids = self.tokenizer.encode(step_tag, add_special_tokens=False)
        if len(tag_ids) != 1:
            raise ValueError(
                f"reward.step_tag={step_tag!r} is {len(tag_ids)} tokens for the tokenizer of {path!r}: "
                "it must be a single token (Qwen2.5-Math-PRM uses <extra_0>)"
            )
        self.step_tag_id = tag_ids[0]
        self.max_length = max_length

    def encode(self, question: str, steps: Sequence[str]) -> list[int] | None:
        """Token ids of one partial solution, or None if it cannot be judged."""
        text = render_qwen_prm(self.tokenizer, question, steps, self.system_prompt)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if ids.count(self.step_tag_id) != len(steps):
            return None
        if self.max_length is not None and len(ids) > self.max_length:
            log.warning("PRM input of %d tokens exceeds max_length=%d: scored NaN", len(ids), self.max_length)
            return None
        return ids

    def step_probabilities(self, token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Per sequence, the positive-class probability at each step tag."""
        raise NotImplementedError

    def score(
        self,
        questions: Sequence[str],
        previous: Sequence[Sequence[str]],
        candidates: Sequence[Sequence[str]],
    ) -> list[np.ndarray]:
        return score_candidates(self, questions, previous, candidates)


class HFQwenPRM(_QwenPRMBase):
    """A ``Qwen2ForProcessRewardModel`` run with transformers (no remote code)."""

    def __init__(
        self,
        path: str,
        name: str = "",
        aggregation: str = "last",
        system_prompt: str = QWEN_MATH_SYSTEM,
        step_tag: str = QWEN_STEP_TAG,
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        import torch

        from gsi.backends.hf import _resolve_device
        from gsi.rewards.qwen2_prm_model import Qwen2ForProcessRewardModel

        if batch_size < 1:
            raise ValueError(f"reward.batch_size={batch_size} is not allowed: it must be >= 1")
        super().__init__(path, name, aggregation, system_prompt, step_tag, max_length)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.device = _resolve_device(device)
        self.batch_size = batch_size
        self.model = Qwen2ForProcessRewardModel.from_pretrained(path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def step_probabilities(self, token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        import torch

        out: list[np.ndarray | None] = [None] * len(token_ids)
        order = sorted(range(len(token_ids)), key=lambda k: len(token_ids[k]))  # less padding
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(token_ids[k]) for k in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for row, k in enumerate(chunk):  # right padding: real tokens keep positions 0..n-1
                ids[row, : len(token_ids[k])] = torch.tensor(token_ids[k])
                mask[row, : len(token_ids[k])] = 1
            with torch.inference_mode():
                logits = self.model(ids.to(self.device), mask.to(self.device))
                positive = torch.softmax(logits.float(), dim=-1)[..., 1].cpu().numpy()
            tags = (ids == self.step_tag_id).numpy() & mask.numpy().astype(bool)
            for row, k in enumerate(chunk):
                out[k] = positive[row][tags[row]].astype(np.float64)
        return out  # type: ignore[return-value]
