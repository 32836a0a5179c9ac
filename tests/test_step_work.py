"""Work a decoding step does not repeat or serialise: identical candidates reach the
reward once, and the reward and big-model scoring calls overlap when their engines
compute on different accelerators."""

from __future__ import annotations

import threading
from types import SimpleNamespace

from gsi.backends.table import TableLM
from gsi.config import validate
from gsi.data import ToyArithmetic
from gsi.decoding import Decoder, _both, _separate_devices
from gsi.grading import get_grader
from gsi.toy.verifier import ToyVerifier
from tests.helpers import toy_table

PROBLEMS = ToyArithmetic(num_problems=8, seed=3).load()


class CountingVerifier(ToyVerifier):
    def __init__(self):
        super().__init__()
        self.sent: list[list[str]] = []

    def score(self, questions, previous, candidates):
        self.sent += [list(c) for c in candidates]
        return super().score(questions, previous, candidates)


def test_identical_candidates_are_rewarded_once_and_keep_their_reward(compose):
    settings = validate(compose("method=gsi", "n_small=8", "n_big=8"))
    reward = CountingVerifier()
    results = []
    Decoder(settings, TableLM(toy_table(0.6), "small"), TableLM(toy_table(0.95), "big"), reward,
            get_grader("exact_number")).run(PROBLEMS, results.append)
    assert reward.sent and all(len(set(group)) == len(group) for group in reward.sent)
    proposals = [g for g in reward.sent if len(g) > 1]
    assert sum(len(g) for g in proposals) < 8 * len(proposals)  # duplicates were drawn and not sent
    judge = ToyVerifier()
    for r, p in zip(sorted(results, key=lambda r: r.problem_id), sorted(PROBLEMS, key=lambda p: p.id)):
        steps = [s["text"] for s in r.steps_detail]
        for k, s in enumerate(r.steps_detail):  # each kept reward is the verifier's own
            assert s["reward"] == judge.score([p.question or p.prompt], [steps[:k]], [[s["text"]]])[0][0]


def test_both_calls_run_at_once_when_asked():
    gate = threading.Barrier(2, timeout=10)  # each call waits for the other: only concurrent calls pass

    def call(x):
        return lambda: (gate.wait(), x)[1]

    assert _both(call("reward"), call("score"), parallel=True) == ("reward", "score")
    assert _both(lambda: 1, lambda: 2, parallel=False) == (1, 2)


def test_overlap_only_across_accelerators():
    on = lambda d: SimpleNamespace(device_key=d)  # noqa: E731
    assert _separate_devices(on("cuda:2"), on("cuda:1"))
    assert not _separate_devices(on("cuda"), on("cuda"))
    assert not _separate_devices(on("cpu"), on("cpu"))
    assert not _separate_devices(SimpleNamespace(), on("cuda:1"))
    assert _separate_devices(SimpleNamespace(device="cuda:0"), SimpleNamespace(device="cuda:1"))
