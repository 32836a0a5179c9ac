"""Temperature 0 (greedy decoding): the point-mass law in the law code, the transformers
backend against ``generate(do_sample=False)``, the decisions on 0 / -inf log-probs, the
config checks, and runs of the real loop (in process and through run.py)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from gsi.backends.hf import HFBackend
from gsi.backends.law import greedy_logprobs, sampling_logprobs
from gsi.config import MIN_TEMPERATURE, toy_model_path, validate
from gsi.data import ToyArithmetic
from gsi.errors import ConfigError
from gsi.methods import METHODS, MethodParams, StepScores
from gsi.pipeline import run
from gsi.types import SamplingParams
from tests.helpers import ROOT

GREEDY = SamplingParams(0.0, 1.0, 16)
PROMPTS = [p.prompt for p in ToyArithmetic(num_problems=6, seed=3).load()]


# ---------------------------------------------------------------- the law
def test_point_mass_on_the_argmax_with_ties_to_the_lowest_id():
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.0], [5.0, 1.0, 1.0, 5.0], [-2.0, -1.0, -3.0, -1.5]])
    expected = torch.full((3, 4), -math.inf)
    expected[0, 1] = expected[1, 0] = expected[2, 1] = 0.0
    assert torch.equal(greedy_logprobs(logits), expected)
    for top_p in (1.0, 0.5, 1e-30):  # every nucleus keeps the top token
        assert torch.equal(sampling_logprobs(logits, 0.0, top_p), expected)
    assert torch.equal(greedy_logprobs(logits).argmax(-1), logits.argmax(-1))


# ---------------------------------------------------------------- transformers backend
@pytest.fixture(scope="module")
def small():
    return HFBackend(toy_model_path("small"), device="cpu", num_threads=1)


def _generate_step(backend: HFBackend, prompt: str, max_tokens: int) -> str:
    """transformers' own greedy decoding of ``prompt``, cut where a step ends."""
    ids = backend.tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = backend.model.generate(**ids, do_sample=False, max_new_tokens=max_tokens, pad_token_id=backend.pad_id)
    new = out[0, ids["input_ids"].shape[1]:].tolist()
    if backend.eos_id in new:
        new = new[: new.index(backend.eos_id)]
    text = backend.tokenizer.decode(new)
    cut = text.find("\n\n")
    return text if cut < 0 else text[: cut + 2]


def test_greedy_steps_are_generate_without_sampling(small):
    prefixes = [PROMPTS[0], PROMPTS[1] + "5+3=8\n\n", *PROMPTS[2:]]
    samples = small.sample(prefixes, 3, [11, 12, 13, 14, 15, 16], GREEDY)
    for prefix, group in zip(prefixes, samples):
        assert len(group) == 3 and len({(s.text, s.finish) for s in group}) == 1  # n identical copies
        assert all(s.logprob == 0.0 for s in group)
        assert group[0].text == _generate_step(small, prefix, GREEDY.max_tokens)
    # other seeds, another batch: the same steps
    again = small.sample(prefixes[3:], 1, [0, 0, 0], GREEDY)
    assert [g[0].text for g in again] == [g[0].text for g in samples[3:]]


def test_greedy_scores_are_zero_for_the_greedy_step_and_minus_inf_otherwise(small):
    greedy = small.sample(PROMPTS, 1, range(6), GREEDY)
    hot = small.sample(PROMPTS, 6, range(6), SamplingParams(1.5, 1.0, 16))
    scored = small.score(PROMPTS, hot, GREEDY)
    others = 0
    for g, group, values in zip(greedy, hot, scored):
        for step, value in zip(group, values):
            same = (step.text, step.finish) == (g[0].text, g[0].finish)
            assert value == (0.0 if same else -math.inf), (step.text, g[0].text)
            others += not same
    assert others > 0  # the check saw both cases
    assert [float(v[0]) for v in small.score(PROMPTS, greedy, GREEDY)] == [0.0] * 6


# ---------------------------------------------------------------- decisions on a point-mass law
PARAMS = MethodParams(beta=20.0, threshold=0.5)


def _scores(target: float, small_of_big: float = 0.0, n: int = 3, reward: float = 0.8) -> StepScores:
    """n copies of pi_S's greedy step: log pi_S = 0, log pi_B = ``target`` (0 or -inf)."""
    full = np.full(n, 1.0)
    return StepScores(reward * full, 0.0 * full, target * full, small_of_big * full)


@pytest.mark.parametrize(
    "beta,threshold_on",
    [(b, on) for on in ("tilted", "beta_tilted", "reward") for b in (0.0, 1.0, 20.0, math.inf)
     if not (on == "beta_tilted" and math.isinf(b))],  # validation refuses beta_tilted at beta = inf
)
def test_gsi_rejects_a_small_step_the_big_model_would_not_take(beta, threshold_on):
    params = MethodParams(beta=beta, threshold=0.5, threshold_on=threshold_on)
    rng = np.random.default_rng(0)
    for name in ("gsi", "gsi_consistent"):
        method = METHODS[name]
        differs = method.choose(_scores(-math.inf), params, rng)
        assert differs.index is None and not differs.accepted  # weight 0: the fallback takes pi_B's step
        for reward in (0.2, 0.8):  # the steps agree: log pi_B - log pi_S = 0, the score is the reward's
            agrees = method.choose(_scores(0.0, reward=reward), params, rng)
            np.testing.assert_array_equal(agrees.probabilities, np.full(3, 1 / 3))
            score = beta * reward if threshold_on == "beta_tilted" else reward
            assert agrees.score == pytest.approx(score) and agrees.accepted == (score >= 0.5)


def test_gsi_consistent_fallback_takes_the_big_greedy_step():
    fallback = METHODS["gsi_consistent"].fallback
    rng = np.random.default_rng(0)
    for small_of_big in (0.0, -math.inf):  # pi_S's greedy step is, or is not, pi_B's
        for reward in (0.2, 0.9):
            scores = StepScores(np.full(2, reward), np.zeros(2), None, np.full(2, small_of_big))
            choice = fallback.choose(scores, PARAMS, rng)
            assert choice.index is not None and choice.accepted
            np.testing.assert_array_equal(choice.probabilities, [0.5, 0.5])


def test_rsd_and_soft_bon_on_identical_copies():
    rng = np.random.default_rng(0)
    for name in ("rsd", "soft_bon_small", "soft_bon_big", "bon_small"):
        choice = METHODS[name].choose(_scores(-math.inf), PARAMS, rng)
        assert choice.accepted == (True if name != "rsd" else 0.8 >= 0.5)
        np.testing.assert_array_equal(choice.probabilities, np.full(3, 1 / 3))
    assert not METHODS["rsd"].choose(_scores(0.0, reward=0.3), PARAMS, rng).accepted


# ---------------------------------------------------------------- config
@pytest.mark.parametrize("method", sorted(set(METHODS) - {"gsi_no_reject"}))
def test_temperature_zero_validates_for_every_method_with_a_meaning(compose, method):
    settings = validate(compose(f"method={method}", "temperature=0"))
    assert settings.sampling.temperature == 0.0


def test_temperature_zero_refuses_gsi_no_reject(compose):
    with pytest.raises(ConfigError, match=r"^temperature=0 is not allowed with method.name='gsi_no_reject': .*method=gsi"):
        validate(compose("method=gsi_no_reject", "temperature=0"))


@pytest.mark.parametrize("value", ["-0.5", "-0.001", f"{MIN_TEMPERATURE / 10}", "inf", "nan"])
def test_negative_tiny_and_infinite_temperatures_stay_refused(compose, value):
    with pytest.raises(ConfigError, match=f"^temperature={value} is not allowed: temperature must be 0 \\(greedy\\) or"):
        validate(compose(f"temperature={value}"))


# ---------------------------------------------------------------- the loop
def _rows(path) -> list[dict]:
    return [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]


def _texts(path) -> dict[str, list[str]]:
    return {r["problem_id"]: [d["text"] for d in r["steps_detail"]] for r in _rows(path)}


def test_greedy_runs_mean_what_the_readme_says(compose, tmp_path, caplog):
    """At T = 0 GSI (and gsi_consistent) write pi_B's greedy solution, soft-BoN pi_S
    writes pi_S's; one warning line says that n > 1 candidates are copies."""
    run_args = ("temperature=0", "limit=5", "n_small=3", "n_big=2", "tracking=none")
    texts = {}
    for name in ("big", "small", "gsi", "gsi_consistent", "soft_bon_small", "rsd"):
        with caplog.at_level("WARNING", logger="gsi.pipeline"):
            metrics = run(compose(f"method={name}", *run_args), tmp_path / name)
        assert metrics["num_errors"] == 0 and metrics["num_problems"] == 5, name
        texts[name] = _texts(tmp_path / name)
        warned = [r.message for r in caplog.records if "identical copies" in r.message]
        assert len(warned) == (0 if name in ("big", "small") else 1), (name, warned)
        caplog.clear()
    assert texts["gsi"] == texts["big"] == texts["gsi_consistent"]
    assert texts["soft_bon_small"] == texts["small"]
    assert texts["big"] != texts["small"]  # the two models' greedy solutions differ somewhere
    # every step GSI took from pi_S is pi_B's greedy step there
    assert all(d["accepted"] for r in _rows(tmp_path / "gsi") for d in r["steps_detail"] if d["source"] == "small")


@pytest.mark.e2e
def test_run_py_finishes_a_greedy_run(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), "temperature=0", "method=rsd", "limit=3", "n_small=2",
         "tracking=none", "progress=false", f"hydra.run.dir={tmp_path}"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["num_problems"] == 3 and metrics["num_errors"] == 0
    assert "temperature=0: the n_small=2 and n_big=4 candidates" in (tmp_path / "run.log").read_text()
