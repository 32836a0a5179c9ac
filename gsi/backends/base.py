"""The language-model protocol every backend implements (transformers now, vLLM later)."""

from __future__ import annotations

from typing import Any, Protocol, Sequence, runtime_checkable

import numpy as np

from gsi.errors import ContextOverflow  # noqa: F401  (re-exported: backends raise it)
from gsi.types import SamplingParams, StepSample


class TokenizedPrompts:
    """Prompt and step encoding shared by the engine backends, so that every engine turns
    the same text into the same token ids. Needs ``tokenizer``, ``name``, ``eos_id`` and
    ``context_window`` (None: unlimited)."""

    tokenizer: Any
    name: str
    eos_id: int
    context_window: int | None

    def _encode_prompts(self, prompts: Sequence[str], budget: int = 0) -> list[list[int]]:
        """Token ids of the prompts (special tokens added); ContextOverflow if one plus
        ``budget`` new tokens does not fit the context window."""
        out = [self.tokenizer.encode(p, add_special_tokens=True) for p in prompts]
        limit = self.context_window
        for ids in out:
            if limit is not None and len(ids) + budget > limit:
                raise ContextOverflow(
                    f"{self.name}: prompt of {len(ids)} tokens + {budget} new tokens exceeds "
                    f"the context window of {limit}"
                )
        return out

    def _encode_step(self, step: StepSample) -> list[int]:
        """A step's ids as it was sampled: EOS appended when the model ended there."""
        ids = self.tokenizer.encode(step.text, add_special_tokens=False)
        return ids + [self.eos_id] if step.finish == "eos" else ids


def copies(samples: list[list[StepSample]], n: int) -> list[list[StepSample]]:
    """Each prompt's single (greedy) step repeated ``n`` times: at temperature 0 the law
    is a point mass, so ``n`` draws are ``n`` identical copies."""
    return [[group[0]] * n for group in samples]


@runtime_checkable
class LanguageModel(Protocol):
    """Samples steps and scores given steps under the same sampling law.

    ``sample`` draws ``n`` steps after each prompt, stopping at the step separator or
    EOS, and returns each step's log-probability under the tempered, top-p-truncated
    distribution it was drawn from. ``seeds`` holds one seed per prompt so each
    problem's draws do not depend on the rest of the batch. ``score`` returns
    ``log pi(step | prompt)`` for given steps under the same law (``-inf`` for a step
    the law cannot produce).
    """

    name: str

    def sample(
        self,
        prompts: Sequence[str],
        n: int,
        seeds: Sequence[int],
        params: SamplingParams,
    ) -> list[list[StepSample]]: ...

    def score(
        self,
        prompts: Sequence[str],
        steps: Sequence[Sequence[StepSample]],
        params: SamplingParams,
    ) -> list[np.ndarray]: ...
