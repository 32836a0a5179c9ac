"""THE decoding loop: step-synchronous over a batch of problems, for every method.

Each step makes at most one batched call of each kind for all active problems:
proposer sampling, reward of the candidates, big-model scoring of the candidates (only
where the method needs it), and for the rejected problems big-model sampling plus its
reward (and, for ``gsi_consistent``'s fallback, the small model's scores of those
samples). Problems leave the batch when they finish and waiting problems take their
places. All randomness of a problem comes from streams keyed by (seed, problem id,
step, purpose), so a problem's result does not depend on its batch or shard.

The one exception is ``patience`` (off by default), the RSD repo's batch-level cut-off
(BaohaoLiao/RSD, ``main_online.py``): after ``patience - 1`` consecutive steps of the
loop in which no problem finished, the next step is the last of every active problem
(``stop_reason: patience``), which makes a problem's length depend on its batch.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Callable, Iterable, Sequence

import numpy as np

from gsi.backends.base import ContextOverflow, LanguageModel
from gsi.grading import Grade, Grader
from gsi.grading.extract import contains_box
from gsi.grading.pool import GradingQueue
from gsi.methods import Choice, StepScores
from gsi.methods.diagnostics import importance_diagnostics
from gsi.rewards.base import ProcessReward
from gsi.types import (
    CallStats, Problem, ProblemResult, RunSettings, Source, StepRecord, StepSample, StepSummary,
)

log = logging.getLogger(__name__)

# Purposes of the per-problem random streams.
PROPOSE, CHOOSE, FALLBACK_SAMPLE, FALLBACK_CHOOSE = range(4)


def _summary(step: int, outcomes: Sequence["_Outcome | BaseException"]) -> StepSummary:
    done = [o for o in outcomes if isinstance(o, _Outcome) and o.sample is not None]
    rewards = [o.reward for o in done if np.isfinite(o.reward)]
    accepted = sum(1 for o in done if o.source == "small" and o.accepted)
    return StepSummary(step, len(outcomes), len(done), accepted, float(np.mean(rewards)) if rewards else None)


@dataclass
class _State:
    problem: Problem
    started: float
    steps: list[StepRecord] = field(default_factory=list)
    tokens: dict[str, int] = field(default_factory=lambda: {"small": 0, "big": 0})

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.steps]

    @property
    def prefix(self) -> str:
        return self.problem.prompt + "".join(self.texts)


@dataclass(frozen=True)
class _Outcome:
    """What one step decided for one problem, before any state changes."""

    sample: StepSample | None  # None: no valid candidate
    reward: float
    source: Source
    accepted: bool
    num_candidates: int
    score: float | None
    tokens: dict[str, int]
    ess: float | None = None  # importance diagnostics of the proposal (methods with both log-probs)
    log_ratio: float | None = None
    stop: bool = False  # every candidate's reward below stop_below: the solution ends


def _dedup(samples: list[list[StepSample]]) -> tuple[list[list[StepSample]], list[np.ndarray]]:
    """Per problem, the distinct candidates and the index of each candidate among them."""
    unique, inverse = [], []
    for group in samples:
        seen: dict[tuple[str, str], int] = {}
        firsts: list[StepSample] = []
        idx = []
        for c in group:
            key = (c.text, c.finish)
            if key not in seen:
                seen[key] = len(firsts)
                firsts.append(c)
            idx.append(seen[key])
        unique.append(firsts)
        inverse.append(np.array(idx, dtype=np.int64))
    return unique, inverse


def _device(engine) -> str | None:
    """Where an engine computes: its ``device_key`` (vLLM) or ``device`` (torch)."""
    key = getattr(engine, "device_key", None)
    if key is None and getattr(engine, "device", None) is not None:
        key = str(engine.device)
    return key


def _separate_devices(a, b) -> bool:
    """True when ``a`` and ``b`` compute on different accelerators, so their calls can overlap."""
    da, db = _device(a), _device(b)
    return da is not None and db is not None and da != db and "cpu" not in (da, db)


def _both(first: Callable, second: Callable, parallel: bool) -> tuple:
    """``(first(), second())``; with ``parallel`` the second runs in a thread meanwhile."""
    if not parallel:
        return first(), second()
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as pool:
        other = pool.submit(second)
        return first(), other.result()


def stream_seed(seed: int, problem_id: str, step: int, purpose: int) -> int:
    """A 63-bit seed for one (run, problem, step, purpose), stable across processes."""
    key = list(problem_id.encode())
    state = np.random.SeedSequence([seed, step, purpose, *key]).generate_state(2, np.uint32)
    return int(state[0]) << 31 | int(state[1]) >> 1


class Decoder:
    """Runs a method over problems with a small model, a big model and a reward."""

    def __init__(
        self,
        settings: RunSettings,
        small: LanguageModel | None,
        big: LanguageModel | None,
        reward: ProcessReward,
        grader: Grader,
    ) -> None:
        self.s = settings
        self.models = {"small": small, "big": big}
        self.reward = reward
        self.grader = grader
        self.stats = CallStats()

    # ------------------------------------------------------------------ public
    def run(
        self,
        problems: Iterable[Problem],
        on_result: Callable[[ProblemResult], None],
        on_step: Callable[[StepSummary], None] | None = None,
    ) -> CallStats:
        """Decode ``problems``; ``on_result`` gets each finished problem, ``on_step``
        (optional) a :class:`StepSummary` after each iteration of the loop."""
        waiting = deque(problems)
        active: list[_State] = []
        grading: GradingQueue[ProblemResult] = GradingQueue(self.grader)  # grades while decoding goes on
        idle = 0  # consecutive steps of the loop in which no problem finished (for patience)
        while waiting or active:
            while waiting and len(active) < self.s.batch_size:
                active.append(_State(waiting.popleft(), time.perf_counter()))
            outcomes = self._step_isolating_errors(active)
            if on_step is not None:
                on_step(_summary(self.stats.steps, outcomes))
            cut = self.s.patience is not None and idle >= self.s.patience - 1
            still: list[_State] = []
            for state, outcome in zip(active, outcomes):
                finished = self._apply(state, outcome)
                if finished is None and cut:
                    finished = ("patience", None)
                if finished is None:
                    still.append(state)
                else:
                    self._grade(grading, state, *finished)
            for result in grading.ready():
                on_result(result)
            idle = idle + 1 if len(still) == len(active) else 0
            active = still
            self.stats.steps += 1
        for result in grading.ready(wait=True):
            on_result(result)
        grading.close()  # (on an exception the pool's idle threads end when it is collected)
        return self.stats

    # ------------------------------------------------------------------ one step
    def _step_isolating_errors(self, batch: list[_State]) -> list[_Outcome | BaseException]:
        """Run the batched step; if it raises, retry problem by problem so one bad
        problem fails alone (its error is recorded, the others go on)."""
        try:
            return list(self._step(batch))
        except Exception as exc:  # noqa: BLE001 - isolate per problem below
            if len(batch) == 1:
                log.warning("problem %s failed: %s", batch[0].problem.id, exc)
                return [exc]
            log.warning("batched step failed (%s); retrying its %d problems one by one", exc, len(batch))
            return [self._step_isolating_errors([s])[0] for s in batch]

    def _sample(self, role: Source, batch: Sequence[_State], n: int, purpose: int) -> list[list[StepSample]]:
        model = self.models[role]
        assert model is not None, f"method needs the {role} model"
        seeds = [stream_seed(self.s.seed, st.problem.id, len(st.steps), purpose) for st in batch]
        return self.stats.timed(role, model.sample, [st.prefix for st in batch], n, seeds, self.s.sampling)

    def _rewards(self, batch: Sequence[_State], candidates: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """Reward of every candidate; identical candidates of a problem are scored once."""
        questions = [st.problem.question or st.problem.prompt for st in batch]
        previous = [st.texts for st in batch]
        unique = [list(dict.fromkeys(group)) for group in candidates]
        scored = self.stats.timed("reward", self.reward.score, questions, previous, unique)
        where = [{c: k for k, c in enumerate(u)} for u in unique]
        return [np.asarray(v)[[w[c] for c in group]] for v, w, group in zip(scored, where, candidates)]

    def _score_big(
        self, batch: Sequence[_State], samples: list[list[StepSample]], role: Source = "big"
    ) -> list[np.ndarray]:
        """log pi_B (or log pi_``role``) of every candidate, timed under that model;
        identical candidates of a problem are scored once."""
        model = self.models[role]
        assert model is not None, f"method needs the {role} model"
        unique, inverse = _dedup(samples)
        scored = self.stats.timed(role, model.score, [st.prefix for st in batch], unique, self.s.sampling)
        return [values[inv] for values, inv in zip(scored, inverse)]

    def _rng(self, state: _State, purpose: int) -> np.random.Generator:
        return np.random.default_rng(stream_seed(self.s.seed, state.problem.id, len(state.steps), purpose))

    def _step(self, batch: list[_State]) -> list[_Outcome]:
        method, s = self.s.method, self.s
        n = method.num_candidates(s.n_small, s.n_big)
        samples = self._sample(method.proposer, batch, n, PROPOSE)
        texts = [[c.text for c in group] for group in samples]
        none: list = [None] * len(batch)
        rewards, target = _both(
            (lambda: self._rewards(batch, texts)) if method.needs_reward else (lambda: none),
            (lambda: self._score_big(batch, samples)) if method.needs_target_logprobs else (lambda: none),
            parallel=method.needs_reward and method.needs_target_logprobs
            and _separate_devices(self.reward, self.models["big"]),
        )
        scores = [
            StepScores(r, np.array([c.logprob for c in group]), t)
            for group, r, t in zip(samples, rewards, target)
        ]
        choices = [method.choose(sc, s.params, self._rng(st, CHOOSE)) for st, sc in zip(batch, scores)]
        fallback = self._fallback(batch, choices) if method.rejects else {}
        outcomes: list[_Outcome] = []
        for k, (group, choice, r) in enumerate(zip(samples, choices, rewards)):
            tokens = {"small": 0, "big": 0}
            tokens[method.proposer] += sum(c.num_tokens for c in group)
            if k in fallback:
                fb_group, fb_choice, fb_rewards = fallback[k]
                tokens["big"] += sum(c.num_tokens for c in fb_group)
                outcomes.append(self._outcome(fb_group, fb_choice, fb_rewards, "big", False, choice.score, tokens))
            else:
                outcomes.append(self._outcome(group, choice, r, method.proposer, True, choice.score, tokens))
        outcomes = self._fill_missing_rewards(batch, outcomes)
        diagnostics = [importance_diagnostics(sc, c.probabilities) for sc, c in zip(scores, choices)]
        return [replace(o, ess=ess, log_ratio=lr) for o, (ess, lr) in zip(outcomes, diagnostics)]

    def _fallback(self, batch: list[_State], choices: list[Choice]) -> dict[int, tuple]:
        """The method's fallback (soft_bon(pi_B, n_B), or gsi_consistent's restricted one,
        which also needs pi_S's scores of the big candidates) for the rejected problems
        that did not stop at the reward floor."""
        rejected = [k for k, c in enumerate(choices) if not c.accepted and not c.stop]
        if not rejected:
            return {}
        sub = [batch[k] for k in rejected]
        samples = self._sample("big", sub, self.s.n_big, FALLBACK_SAMPLE)
        rewards = self._rewards(sub, [[c.text for c in g] for g in samples])
        fb = self.s.method.fallback
        small: list = self._score_big(sub, samples, "small") if fb.needs_small_logprobs else [None] * len(sub)
        out = {}
        for k, st, group, r, ls in zip(rejected, sub, samples, rewards, small):
            scores = StepScores(r, np.array([c.logprob for c in group]), None, ls)
            choice = fb.choose(scores, self.s.params, self._rng(st, FALLBACK_CHOOSE))
            out[k] = (group, choice, r)
        return out

    @staticmethod
    def _outcome(group, choice: Choice, rewards, source: Source, accepted: bool, score, tokens) -> _Outcome:
        if choice.index is None:
            return _Outcome(None, float("nan"), source, accepted, len(group), score, tokens, stop=choice.stop)
        reward = float(rewards[choice.index]) if rewards is not None else float("nan")
        return _Outcome(group[choice.index], reward, source, accepted, len(group), score, tokens)

    def _fill_missing_rewards(self, batch: list[_State], outcomes: list[_Outcome]) -> list[_Outcome]:
        """Methods that do not need rewards still report the chosen step's reward."""
        missing = [k for k, o in enumerate(outcomes) if o.sample is not None and np.isnan(o.reward)]
        if not missing:
            return outcomes
        scored = self._rewards([batch[k] for k in missing], [[outcomes[k].sample.text] for k in missing])
        out = list(outcomes)
        for k, r in zip(missing, scored):
            o = out[k]
            out[k] = _Outcome(o.sample, float(r[0]), o.source, o.accepted, o.num_candidates, o.score, o.tokens)
        return out

    # ------------------------------------------------------------------ bookkeeping
    def _apply(self, state: _State, outcome: _Outcome | BaseException) -> tuple[str, str | None] | None:
        """Add the chosen step; return (stop reason, error) if the problem has finished."""
        if isinstance(outcome, ContextOverflow):
            return "context_length", str(outcome)
        if isinstance(outcome, BaseException):
            return "error", f"{type(outcome).__name__}: {outcome}"
        for role, count in outcome.tokens.items():
            state.tokens[role] += count
        if outcome.sample is None:
            return ("low_reward" if outcome.stop else "no_valid_candidate"), None
        sample = outcome.sample
        state.steps.append(
            StepRecord(
                sample.text, outcome.reward, outcome.source, outcome.accepted, outcome.num_candidates, outcome.score,
                outcome.ess, outcome.log_ratio,
            )
        )
        if getattr(self.grader, "ends_solution", contains_box)(sample.text):  # the data set's stop rule
            return "answer", None
        if sample.finish == "eos":
            return "eos", None
        if len(state.steps) >= self.s.max_steps:
            return "max_steps", None
        return None

    def _grade(self, grading: GradingQueue, state: _State, stop_reason: str, error: str | None) -> None:
        latency = time.perf_counter() - state.started
        grading.submit("".join(state.texts), state.problem,
                       lambda grade: self._result(state, stop_reason, grade, latency, error))

    @staticmethod
    def _result(state: _State, stop_reason: str, grade: Grade, latency: float, error: str | None) -> ProblemResult:
        steps = state.steps
        return ProblemResult(
            problem_id=state.problem.id,
            correct=bool(grade.correct),
            final_reward=steps[-1].reward if steps else float("nan"),
            steps=len(steps),
            accepted_steps=sum(1 for st in steps if st.source == "small" and st.accepted),
            latency_s=latency,
            tokens_small=state.tokens["small"],
            tokens_big=state.tokens["big"],
            stop_reason=stop_reason,
            answer=grade.answer,
            reference=state.problem.answer,
            steps_detail=[asdict(st) for st in steps],
            error=error,
            answer_rule=getattr(grade, "rule", None),
            correct_by=dict(getattr(grade, "also", None) or {}),
        )
