"""The toy world: task generation, the step verifier, the tokenizer and the training script."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gsi.config import ASSETS
from gsi.toy.verifier import ToyVerifier
from gsi.toy.task import (
    EASY_MAX_VALUE,
    MAX_VALUE,
    generate_problems,
    is_heldout,
    parse_prompt,
    training_problem,
    verify_step,
)
from gsi.toy.tokenizer import build_tokenizer


def test_problems_are_seeded_distinct_held_out_and_bounded():
    a = generate_problems(50, seed=5, heldout=True)
    assert a == generate_problems(50, seed=5, heldout=True)
    assert a != generate_problems(50, seed=6, heldout=True)
    assert len({p.expr for p in a}) == 50 and all(is_heldout(p) for p in a)
    assert not any(is_heldout(p) for p in generate_problems(50, seed=5, heldout=False))
    assert all(0 <= v <= MAX_VALUE for p in a for v in p.values())
    assert all(3 <= len(p.ops) <= 4 for p in a)  # the default world


def test_difficulty_knob_bounds_values_and_operands():
    hard = generate_problems(300, seed=2, heldout=True)
    easy = generate_problems(300, seed=2, heldout=True, min_ops=2, max_ops=3, max_value=EASY_MAX_VALUE)
    assert all(10 <= p.operands[0] <= 99 and all(1 <= b <= 9 for b in p.operands[1:]) for p in hard)
    assert all(all(1 <= b <= 9 for b in p.operands) and max(p.values()) <= 99 for p in easy)
    assert sum(max(p.values()) >= 100 for p in hard) > 150  # three-digit values are common
    products = [p.values()[i + 1] for p in hard for i, op in enumerate(p.ops) if op == "*"]
    assert sum(v >= 100 for v in products) > 0.4 * len(products)
    with pytest.raises(ValueError, match="max_value"):
        generate_problems(3, seed=0, heldout=True, max_value=5)
    rng = np.random.default_rng(0)
    mix = [training_problem(rng) for _ in range(400)]
    assert not any(is_heldout(p) for p in mix)
    assert 0.6 < np.mean([max(p.values()) > 99 or p.operands[0] > 9 for p in mix]) < 0.9


def test_the_easy_dataset_config_is_the_easy_variant(compose):
    from gsi.data import ToyArithmetic

    cfg = compose("dataset=toy_arith_easy")
    data = ToyArithmetic(**{k: v for k, v in cfg.dataset.items() if k != "_target_"})
    problems = data.load()
    assert cfg.dataset.max_value == EASY_MAX_VALUE and len(problems) == 500
    assert all(int(p.answer) <= 99 for p in problems)
    assert compose().dataset.max_value == MAX_VALUE


def test_reference_solution_format_and_prompt_round_trip():
    p = parse_prompt("Compute 7-5*9+3 from left to right.\n\n")
    assert p.solution_steps() == ["7-5=2\n\n", "2*9=18\n\n", "18+3=21\n\n", "\\boxed{21}"]
    assert parse_prompt(p.prompt) == p and p.answer == 21


def test_verifier_levels():
    p = parse_prompt("Compute 7-5*9 from left to right.\n\n")
    assert verify_step(p, [], "7-5=2\n\n") == 1.0
    assert verify_step(p, [], "7+5=12\n\n") == 0.25  # true, but not this problem's step
    assert verify_step(p, [], "7-5=3\n\n") == 0.0
    assert verify_step(p, [], "\\boxed{18}") == 0.0  # premature answer
    assert verify_step(p, ["7-5=2\n\n", "2*9=18\n\n"], "\\boxed{18}") == 1.0
    assert verify_step(p, ["7-5=3\n\n"], "3*9=27\n\n") == 0.125  # after an error: halved


def test_noisy_verifier_is_a_fixed_function_of_the_text():
    q = "Compute 7-5*9 from left to right.\n\n"
    v = ToyVerifier(noise=0.3)
    cands = [["7-5=2\n\n", "7-5=3\n\n", "7-5=2\n\n"]]
    a = v.score([q], [[]], cands)[0]
    assert np.array_equal(a, v.score([q], [[]], cands)[0]) and a[0] == a[2]
    assert np.all((a >= 0) & (a <= 1))
    exact = ToyVerifier().score([q], [[]], cands)[0]
    np.testing.assert_array_equal(exact, [1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="noise"):
        ToyVerifier(noise=-1)


def test_tokenizer_round_trips_and_keeps_separator_one_token():
    tok = build_tokenizer()
    text = "Compute 7-5*9 from left to right.\n\n7-5=2\n\n\\boxed{18}"
    ids = tok.encode(text)
    assert ids[0] == tok.bos_token_id and tok.decode(ids[1:]) == text
    assert len(tok.encode("\n\n", add_special_tokens=False)) == 1
    assert len(tok.encode("\\boxed{", add_special_tokens=False)) == 1


def test_committed_models_are_small_llamas_vllm_can_load():
    total, flops = 0, {}
    for name in ("small", "big"):
        cfg = json.loads((ASSETS / name / "config.json").read_text())
        assert cfg["model_type"] == "llama"
        assert cfg["hidden_size"] // cfg["num_attention_heads"] >= 32
        assert json.loads((ASSETS / name / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
        flops[name] = json.loads((ASSETS / name / "train_meta.json").read_text())["flops_per_token"]
    for name in ("small", "big", "prm"):
        total += sum(f.stat().st_size for f in (ASSETS / name).iterdir())
    assert total < 10 * 2**20  # all three toy models together
    assert 4 <= flops["big"] / flops["small"] <= 8  # near Qwen2.5-Math 7B / 1.5B (about 5x)


def test_flops_per_token_counts_the_projections_mlp_and_head():
    from transformers import LlamaConfig

    from gsi.toy.train import flops_per_token

    cfg = LlamaConfig(vocab_size=10, hidden_size=64, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1)
    # per layer: q, o (64x64 each), k, v (64x32 each), gate, up, down (64x256 each)
    assert flops_per_token(cfg) == 2 * (2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 256) + 64 * 10)


def test_early_stopping_is_a_prefix_of_the_schedule(tmp_path):
    """stop_at = k gives exactly the snapshot taken at step k of the full run, so a model
    chosen from snapshots is reproduced by training with ``stop_at``."""
    from dataclasses import replace

    from safetensors.torch import load_file

    import gsi.toy.train as train_mod

    train_mod.train("small", tmp_path / "full", seed=0, steps=4, snapshots=(2,))
    spec = train_mod.SPECS["small"]
    try:
        train_mod.SPECS["small"] = replace(spec, steps=4, stop_at=2)
        train_mod.train("small", tmp_path / "early", seed=0)
    finally:
        train_mod.SPECS["small"] = spec
    a = load_file(tmp_path / "full" / "small@2" / "model.safetensors")
    b = load_file(tmp_path / "early" / "small" / "model.safetensors")
    c = load_file(tmp_path / "full" / "small" / "model.safetensors")
    assert all((a[k] == b[k]).all() for k in a) and any((a[k] != c[k]).any() for k in a)


def test_training_is_deterministic(tmp_path):
    from safetensors.torch import load_file

    from gsi.toy.train import train

    for d in ("a", "b"):
        train("small", tmp_path / d, seed=0, steps=3)
    a, b = (load_file(tmp_path / d / "small" / "model.safetensors") for d in ("a", "b"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)


@pytest.mark.slow
@pytest.mark.parametrize("which", ["small", "big"])
def test_training_script_reproduces_the_committed_weights(which, retrained):
    """Bit for bit on the CPU kind and torch version the weights were trained on (recorded
    in train_meta.json); on another CPU the kernels round differently from the first step,
    so a retraining there is bit for bit the draw recorded for that kind where its MKL
    matches the emulation, and otherwise must reach the held-out likelihood band measured
    over seeds and emulated CPU kinds (``python -m gsi.toy.quality_band``, ``retrain_band``).
    The retraining (``gsi.toy.train.train`` with the recorded seed) and its verdict run in
    a background child process (``tests/retraining.py``)."""
    from safetensors.torch import load_file

    fresh, verdict = retrained
    assert load_file(fresh / "model.safetensors").keys() == load_file(ASSETS / which / "model.safetensors").keys()
    assert verdict["ok"], verdict["why"]


def test_a_child_process_computes_as_a_lower_cpu_kind_and_repeats_bit_for_bit(tmp_path):
    """The retraining bands' draws on other CPU kinds are child processes whose torch, MKL
    and oneDNN are capped at that kind's instructions: the child reports the kind, its
    training repeats bit for bit, and it rounds unlike this machine's own kernels (the
    emulation is what reproduced CI's AVX2 retraining of the small LM, NLL 0.21763)."""
    import os
    import subprocess
    import sys

    from gsi.toy.fit import machine
    from gsi.toy.quality_band import fingerprint, kind_env, kinds_here

    lowest = kinds_here()[0]
    env = {**os.environ, **kind_env(lowest)}
    for run in ("a", "b"):
        subprocess.run([sys.executable, "-m", "gsi.toy.train", "--which", "small", "--out", str(tmp_path / run),
                        "--steps", "3"], env=env, check=True, capture_output=True)
    meta = json.loads((tmp_path / "a" / "small" / "train_meta.json").read_text())
    assert meta["trained_on"]["cpu_capability"] == lowest
    assert fingerprint(tmp_path / "a" / "small") == fingerprint(tmp_path / "b" / "small")
    if machine()["cpu_capability"] != lowest:
        from gsi.toy.train import train

        train("small", tmp_path / "own", seed=0, steps=3)
        assert fingerprint(tmp_path / "own" / "small") != fingerprint(tmp_path / "a" / "small")


def test_every_listed_wrong_step_has_a_kind():
    """The breakdown of ``python -m gsi.toy.evaluate`` names each wrong step's kind."""
    from gsi.toy.evaluate import kind_of
    from gsi.toy.prm_data import wrong_steps

    seen = set()
    for p in generate_problems(40, seed=11, heldout=True):
        for index in range(len(p.solution_steps())):
            kinds = [kind_of(w, p, index) for w in wrong_steps(p, index)]
            assert "other" not in kinds
            seen.update(kinds)
    assert {"wrong operator", "wrong operand", "stale value", "off by +1", "off by -10", "swapped digits",
            "premature answer", "answer: wrong value", "answer: a step instead"} <= seen
