"""Small frozen records passed between the loop, the backends and the outputs."""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Literal

if TYPE_CHECKING:  # gsi.methods imports this module
    from gsi.methods import Method, MethodParams

Finish = Literal["stop", "eos", "length"]
Source = Literal["small", "big"]


@dataclass(frozen=True)
class Problem:
    """One problem.

    ``prompt`` is the full text the language models continue (chat template and system
    prompt applied); ``question`` is the problem statement the process reward reads
    (empty: the reward reads ``prompt``).
    """

    id: str
    prompt: str
    answer: str
    question: str = ""


@dataclass(frozen=True)
class SamplingParams:
    """How a step is sampled; log-probs always refer to this (tempered, truncated) law."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 32


@dataclass(frozen=True)
class RunSettings:
    """Everything the decoding loop needs from the config, checked (``gsi.config.validate``)."""

    method: Method
    params: MethodParams
    sampling: SamplingParams
    n_small: int
    n_big: int
    max_steps: int
    batch_size: int
    seed: int
    patience: int | None = None  # RSD's batch-level cut-off (gsi.decoding.Decoder.run); None: off


@dataclass(frozen=True)
class StepSample:
    """One sampled step and its log-probability under the distribution it came from.

    ``finish`` is ``"stop"`` (ended with the step separator, which ``text`` includes),
    ``"eos"`` (the model ended the sequence; EOS is not in ``text`` but is in
    ``logprob``) or ``"length"`` (``max_tokens`` reached).
    """

    text: str
    num_tokens: int
    logprob: float
    finish: Finish


@dataclass(frozen=True)
class StepRecord:
    """A chosen step as written to ``results.jsonl``."""

    text: str
    reward: float
    source: Source
    accepted: bool
    num_candidates: int
    score: float | None = None  # the quantity compared with the threshold, if any
    ess: float | None = None  # effective sample size of the importance weights (gsi*)
    log_ratio: float | None = None  # mean log pi_B - log pi_S of the candidates (gsi*)


@dataclass(frozen=True)
class ProblemResult:
    """One finished problem: the per-problem fields of GSI.md."""

    problem_id: str
    correct: bool
    final_reward: float
    steps: int
    accepted_steps: int
    latency_s: float
    tokens_small: int
    tokens_big: int
    stop_reason: str
    answer: str | None
    reference: str
    steps_detail: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    answer_rule: str | None = None  # which extraction rule read ``answer`` (gsi.grading.extract)
    correct_by: dict[str, bool] = field(default_factory=dict)  # other graders' verdicts (grader=a+b)

    def to_json(self) -> dict[str, Any]:
        """Plain JSON: non-finite floats (a missing reward) become null."""
        return _finite(asdict(self))

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> "ProblemResult":
        return cls(**{k: row[k] for k in cls.__dataclass_fields__ if k in row})


@dataclass
class CallStats:
    """Wall time and call counts inside model and reward calls, per role."""

    time_small_s: float = 0.0
    time_big_s: float = 0.0
    time_reward_s: float = 0.0
    calls_small: int = 0
    calls_big: int = 0
    calls_reward: int = 0
    steps: int = 0

    def timed(self, role: str, fn: Callable, *args):
        start = time.perf_counter()
        try:
            return fn(*args)
        finally:
            setattr(self, f"time_{role}_s", getattr(self, f"time_{role}_s") + time.perf_counter() - start)
            setattr(self, f"calls_{role}", getattr(self, f"calls_{role}") + 1)


@dataclass(frozen=True)
class StepSummary:
    """What one iteration of the loop did, for per-step curves (e.g. W&B).

    ``chosen`` problems got a step; ``accepted`` of them kept a small-model proposal
    (the numerator of ``acceptance_rate``); ``mean_reward`` averages the chosen steps'
    finite rewards (None if there are none).
    """

    step: int
    active: int
    chosen: int
    accepted: int
    mean_reward: float | None

    @property
    def acceptance_rate(self) -> float | None:
        return self.accepted / self.chosen if self.chosen else None


def _finite(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_finite(v) for v in obj]
    return obj
