"""The language-model protocol every backend implements (transformers now, vLLM later)."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from gsi.types import SamplingParams, StepSample


class ContextOverflow(ValueError):
    """A prompt plus a step's token budget does not fit the model's context window.

    The loop stops that problem with ``stop_reason = "context_length"``; the rest of the
    batch goes on.
    """


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
