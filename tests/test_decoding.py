"""The decoding loop on a deterministic table world (the toy task with known laws)."""

from __future__ import annotations

import numpy as np
import pytest

from gsi.backends.table import TableLM
from gsi.config import validate
from gsi.data import ToyArithmetic
from gsi.decoding import Decoder
from gsi.grading import get_grader
from gsi.toy.verifier import ToyVerifier
from tests.helpers import toy_table, without_timing

PROBLEMS = ToyArithmetic(num_problems=12, seed=7).load()


class Recording(TableLM):
    """A table LM that records how it was called."""

    def __init__(self, table, name):
        super().__init__(table, name)
        self.calls: list[tuple[str, int]] = []

    def sample(self, prompts, n, seeds, params):
        self.calls.append(("sample", len(prompts)))
        return super().sample(prompts, n, seeds, params)

    def score(self, prompts, steps, params):
        self.calls.append(("score", len(prompts)))
        return super().score(prompts, steps, params)


class FailingFor(ToyVerifier):
    """A reward whose call raises whenever one given problem is in the batch."""

    def __init__(self, bad_prompt: str):
        super().__init__()
        self.bad_prompt = bad_prompt

    def score(self, questions, previous, candidates):
        if self.bad_prompt in questions:
            raise RuntimeError("reward server crashed")
        return super().score(questions, previous, candidates)


def decode(compose, method, problems=PROBLEMS, reward=None, p_small=0.6, p_big=0.95, **overrides):
    cfg = compose(f"method={method}", *[f"{k}={v}" for k, v in overrides.items()])
    settings = validate(cfg)
    small = Recording(toy_table(p_small), "small")
    big = Recording(toy_table(p_big), "big")
    results = []
    decoder = Decoder(settings, small, big, reward or ToyVerifier(), get_grader("exact_number"))
    stats = decoder.run(problems, results.append)
    return results, stats, small, big


def strip_timing(results):
    rows = [without_timing(r.to_json()) for r in results]
    return sorted(rows, key=lambda r: r["problem_id"])


def test_perfect_big_model_solves_everything(compose):
    results, stats, small, big = decode(compose, "big", p_big=1.0)
    assert len(results) == len(PROBLEMS)
    assert all(r.correct and r.stop_reason == "answer" for r in results)
    assert all(r.accepted_steps == 0 and r.tokens_small == 0 and r.tokens_big > 0 for r in results)
    assert small.calls == []


@pytest.mark.parametrize("method", ["gsi", "rsd", "soft_bon_small", "small", "bon_big"])
def test_results_do_not_depend_on_batch_composition(compose, method):
    ref = strip_timing(decode(compose, method, batch_size=64)[0])
    for batch_size in (1, 5):
        assert strip_timing(decode(compose, method, batch_size=batch_size)[0]) == ref
    # nor on which other problems are decoded at all
    half = strip_timing(decode(compose, method, problems=PROBLEMS[::2], batch_size=3)[0])
    assert half == [r for r in ref if r["problem_id"] in {p.id for p in PROBLEMS[::2]}]


def test_one_batched_call_of_each_kind_per_step(compose):
    results, stats, small, big = decode(compose, "gsi", batch_size=64)
    # every sampling call of the small model covers all problems still active
    assert stats.calls_small == stats.steps
    assert [n for kind, n in small.calls] == sorted([n for kind, n in small.calls], reverse=True)
    big_scores = [n for kind, n in big.calls if kind == "score"]
    big_samples = [n for kind, n in big.calls if kind == "sample"]
    assert len(big_scores) == stats.steps  # one scoring call per step
    assert len(big_samples) <= stats.steps  # one fallback call per step at most
    assert stats.calls_reward <= 2 * stats.steps
    assert sum(big_samples) == sum(r.steps - r.accepted_steps for r in results)


def test_methods_skip_what_they_do_not_need(compose):
    _, stats, small, big = decode(compose, "soft_bon_small")
    assert big.calls == [] and stats.calls_big == 0
    _, _, small, big = decode(compose, "rsd")
    assert all(kind == "sample" for kind, _ in big.calls)  # rsd never scores with pi_B
    _, _, small, big = decode(compose, "soft_bon_big")
    assert small.calls == [] and all(kind == "sample" for kind, _ in big.calls)


def test_batch_refills_as_problems_finish(compose):
    _, stats, small, _ = decode(compose, "small", batch_size=4)
    sizes = [n for _, n in small.calls]
    assert max(sizes) == 4 and sum(sizes) == sum(r.steps for r in decode(compose, "small", batch_size=4)[0])


def test_counts_tokens_per_model(compose):
    results, *_ = decode(compose, "gsi", n_small=3, n_big=2)
    for r in results:
        rejected = r.steps - r.accepted_steps
        assert r.tokens_small >= 3 * r.steps  # every step drew 3 small candidates
        assert (r.tokens_big > 0) == (rejected > 0)


def test_gsi_accuracy_lies_between_the_models(compose):
    acc = {m: np.mean([r.correct for r in decode(compose, m, p_small=0.6, p_big=0.97)[0]]) for m in ["small", "big", "gsi"]}
    assert acc["small"] < acc["gsi"] <= acc["big"]


def test_one_failing_problem_fails_alone(compose):
    bad = PROBLEMS[3]
    results, *_ = decode(compose, "gsi", reward=FailingFor(bad.prompt))
    by_id = {r.problem_id: r for r in results}
    assert len(by_id) == len(PROBLEMS)
    assert by_id[bad.id].stop_reason == "error" and "reward server crashed" in by_id[bad.id].error
    assert all(r.stop_reason == "answer" for pid, r in by_id.items() if pid != bad.id)


class NaNReward(ToyVerifier):
    def score(self, questions, previous, candidates):
        return [np.full(len(c), np.nan) for c in candidates]


def test_all_nan_rewards_reject_then_stop_with_a_reason(compose):
    results, stats, small, big = decode(compose, "gsi", reward=NaNReward())
    assert all(r.stop_reason == "no_valid_candidate" and r.steps == 0 for r in results)
    assert any(kind == "sample" for kind, _ in big.calls)  # GSI rejected and fell back first
    results, *_ = decode(compose, "soft_bon_small", reward=NaNReward())
    assert all(r.stop_reason == "no_valid_candidate" for r in results)


def test_max_steps_stops_a_solution(compose):
    results, *_ = decode(compose, "small", max_steps=1)
    assert len(results) == len(PROBLEMS)
    assert all(r.steps == 1 and r.stop_reason == "max_steps" for r in results)


def test_prompt_over_the_context_window_stops_that_problem_only(compose):
    from gsi.backends.hf import HFBackend
    from gsi.config import toy_model_path
    from gsi.types import Problem

    cfg = compose("method=gsi", "n_small=2", "n_big=2")
    small = HFBackend(toy_model_path("small"), device="cpu")
    big = HFBackend(toy_model_path("big"), device="cpu")
    long = Problem("too-long", PROBLEMS[0].prompt.replace("Compute", "Compute " + "x" * 300), "0")
    results = []
    Decoder(validate(cfg), small, big, ToyVerifier(), get_grader("exact_number")).run([long, *PROBLEMS[:3]], results.append)
    by_id = {r.problem_id: r for r in results}
    assert by_id["too-long"].stop_reason == "context_length" and "context window of 256" in by_id["too-long"].error
    assert all(by_id[p.id].stop_reason == "answer" for p in PROBLEMS[:3])
