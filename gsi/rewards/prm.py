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
from functools import partial
from typing import Sequence

import numpy as np

from gsi.engines.hf import check_local_path
from gsi.errors import ConfigError
from gsi.rewards.prm_format import (
    QWEN_MATH_SYSTEM,
    QWEN_STEP_TAG,
    check_aggregation,
    encode_group,
    render_qwen_prm,
    score_candidates,
)

log = logging.getLogger(__name__)


PATH_HINT = "point it at a PRM directory (the toy PRM is rebuilt by `python -m gsi.toy.train_prm`)"


class _QwenPRMBase:
    """Rendering, tokenizing and aggregation shared by both engines."""

    def __init__(self, path: str, name: str, aggregation: str, system_prompt: str, step_tag: str,
                 max_length: int | None) -> None:
        from transformers import AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        check_local_path(path, "reward.path", PATH_HINT)
        self.name = name or path
        self.path = path
        self.aggregation = check_aggregation(aggregation)
        self.system_prompt = system_prompt
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        if self.tokenizer.chat_template is None:
            raise ConfigError(f"reward.path={path!r}: its tokenizer has no chat template; a Qwen PRM needs one")
        tag_ids = self.tokenizer.encode(step_tag, add_special_tokens=False)
        if len(tag_ids) != 1:
            raise ConfigError(
                f"reward.step_tag={step_tag!r} is {len(tag_ids)} tokens for the tokenizer of {path!r}: "
                "it must be a single token (Qwen2.5-Math-PRM uses <extra_0>)"
            )
        self.step_tag_id = tag_ids[0]
        self.max_length = max_length

    def encode(self, question: str, steps: Sequence[str]) -> list[int] | None:
        """Token ids of one partial solution, or None if it cannot be judged."""
        text = render_qwen_prm(self.tokenizer, question, steps, self.system_prompt)
        return self.checked(self.tokenizer.encode(text, add_special_tokens=False), len(steps))

    def checked(self, ids: list[int], steps: int) -> list[int] | None:
        """``ids`` if they can be judged: one tag per step, within ``max_length``."""
        if ids.count(self.step_tag_id) != steps:
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
        return score_candidates(self, questions, previous, candidates, partial(encode_group, self))


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
        prefix_cache: int = 512,
        load_format: str = "auto",
    ) -> None:
        from gsi.engines.hf import load
        from gsi.engines.prefix_cache import PrefixCache
        from gsi.rewards.qwen2_prm_model import Qwen2ForProcessRewardModel

        if batch_size < 1:
            raise ConfigError(f"reward.batch_size={batch_size} is not allowed: it must be >= 1")
        super().__init__(path, name, aggregation, system_prompt, step_tag, max_length)
        self.batch_size = batch_size
        self.model, _, self.device = load(path, Qwen2ForProcessRewardModel, dtype, device, num_threads, tokenizer=False,
                                            load_format=load_format)
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.prefix_cache = PrefixCache(prefix_cache)

    def score(
        self,
        questions: Sequence[str],
        previous: Sequence[Sequence[str]],
        candidates: Sequence[Sequence[str]],
    ) -> list[np.ndarray]:
        """Per problem, the partial solution shared by its candidates runs once (its KV
        reused from the previous step when cached) and the candidates' own tokens are
        packed after it (:func:`gsi.engines.hf_tree.tree_forward`); identical inputs are
        scored once. Equal to :meth:`step_probabilities` on the full inputs up to float
        rounding."""
        from gsi.rewards.prm_packed import packed_rewards

        return packed_rewards(self, questions, previous, candidates)

    def step_probabilities(self, token_ids: Sequence[Sequence[int]]) -> list[np.ndarray]:
        """Full recomputation of every input (the reference the packed path equals)."""
        import torch

        from gsi.engines.hf import batched

        def run(ids, mask):
            positive = torch.softmax(self.model(ids, mask).float(), dim=-1)[..., 1].cpu().numpy()
            return positive, ids.cpu().numpy()

        def read(outputs, row, k):
            positive, ids = outputs
            tags = ids[row, : len(token_ids[k])] == self.step_tag_id
            return positive[row, : len(token_ids[k])][tags].astype(np.float64)

        return batched(token_ids, self.batch_size, run, read, self.pad_id, self.device)

