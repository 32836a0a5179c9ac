"""The README's map of the reference code's flags composes, entry by entry, and its job.slurm
translation composes every job of the sweep (no weights needed)."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from gsi.config import validate
from gsi.methods import METHODS, MethodParams, StepScores

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()

# Every argument of the reference main.py (j-geuter/GSI), read from its argparse calls.
MAIN_FLAGS = [
    "--big_model_name", "--small_model_name", "--prm_model_path", "--beta", "--small_model_device",
    "--big_model_device", "--prm_model_device", "--datasets", "--max_samples", "--n_small", "--n_big",
    "--max_new_tokens", "--task_id", "--array_id", "--temperature", "--top_p", "--wandb_project",
    "--decoding-mode", "--not-check-and-resample-big-model", "--tilt-only-by-big-model",
    "--resample-reward-threshold", "--threshold-on-tilted", "--runs_per_dataset",
]


def _between(text: str, name: str) -> str:
    return text.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->")[0]


def flag_map() -> list[tuple[str, list[str]]]:
    """(reference cell, gsi overrides) per row of the README's flag map."""
    rows = []
    for line in _between(README, "flag-map").strip().splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows.append((cells[0], re.findall(r"`([^`]+)`", cells[1])))
    return rows


def jobs(overrides: list[str]) -> list[list[str]]:
    """The jobs of one entry: a `-m key=a,b` entry is one job per value."""
    out = [[]]
    for item in overrides:
        if item.startswith("-m "):
            key, values = item[3:].split("=", 1)
            out = [o + [f"{key}={v}"] for o in out for v in values.split(",")]
        else:
            out = [o + [item] for o in out]
    return out


def test_every_reference_flag_has_a_row():
    cells = " ".join(cell for cell, _ in flag_map())
    missing = [f for f in MAIN_FLAGS if f"`{f}" not in cells]
    assert not missing
    assert "--check-and-resample-big-model`" not in cells.replace("--not-check", "")


@pytest.mark.parametrize("cell,overrides", flag_map(), ids=[c[:48] for c, _ in flag_map()])
def test_every_flag_map_entry_composes(compose, cell, overrides):
    if not overrides:
        assert "—" in README.split(cell, 1)[1].split("\n", 1)[0]  # an explicit "nothing to set"
        return
    from omegaconf import OmegaConf

    for job in jobs(overrides):
        cfg = compose("+experiment=reference", *job)
        validate(cfg)
        for item in job:
            key, value = item.split("=", 1)
            if key in ("model", "reward", "hydra/launcher"):  # a group option: its layout
                node = {"model": lambda: cfg.model.small, "reward": lambda: cfg.reward}.get(key)
                assert node is None or node().visible_devices is not None
                continue
            got = cfg[key].name if key in ("dataset", "method") else OmegaConf.select(cfg, key)
            assert str(got) == value or float(got) == float(value), (item, got)


def test_threshold_mappings_agree_where_the_map_says_so():
    """reference --threshold-on-tilted T=10 is threshold_on=beta_tilted threshold=10 at every
    beta, and threshold=T/beta on the tilted reward at beta > 0 (same decisions)."""
    rng = np.random.default_rng(3)
    gsi = METHODS["gsi"]
    for beta in (0.0, 0.5, 20.0):
        for _ in range(300):
            n = 4
            scores = StepScores(rng.random(n), rng.normal(-5, 2, n), rng.normal(-5, 2, n))
            ref = MethodParams(beta, 10.0, threshold_on="beta_tilted", tie_rule="reference")
            c_ref = gsi.choose(scores, ref, np.random.default_rng(1))
            i = c_ref.index
            reference_says = beta * scores.rewards[i] + scores.logp_target[i] - scores.logp_proposal[i] > 10
            assert c_ref.accepted == reference_says
            if beta > 0:
                c = gsi.choose(scores, MethodParams(beta, 10.0 / beta), np.random.default_rng(1))
                assert (c.index, c.accepted) == (i, c_ref.accepted)


def test_beta_zero_is_valid_with_the_reference_threshold(compose):
    settings = validate(compose("+experiment=reference_slurm", "beta=0"))
    assert settings.params.threshold_on == "beta_tilted" and settings.params.beta == 0.0


@pytest.mark.e2e
def test_job_slurm_translation_composes_every_job(tmp_path):
    """The README command with the cluster names filled in, one `--cfg all` per array task."""
    command = _between(README, "job-slurm").split("```bash")[1].split("```")[0]
    args = shlex.split(command.replace("\\\n", " "))
    assert args[:3] == ["python", "run.py", "-m"]
    args = [a.replace("PARTITION", "gpu").replace("ACCOUNT", "lab") for a in args[3:]]
    (datasets,) = [a for a in args if a.startswith("dataset=")]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    values = datasets.split("=", 1)[1].split(",")
    assert values == ["math500", "olympiadbench", "minerva_math"]
    for value in values:
        job = [a if a != datasets else f"dataset={value}" for a in args]
        out = subprocess.run([sys.executable, "run.py", *job, "--cfg", "all", "--resolve"], cwd=ROOT,
                             capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr
        text = out.stdout
        for expected in ("partition: gpu", "account: lab", "timeout_min: 4320", "cpus_per_task: 72",
                         "mem_gb: 360", "constraint: h100", "gpus_per_node: 3", "threshold_on: beta_tilted",
                         "n_small: 16", "limit: 500", "stop_below: 0.1", "PYTORCH_CUDA_ALLOC_CONF"):
            assert expected in text, (value, expected)
        assert ("Do not include units" in text) == (value == "minerva_math")


def test_minerva_note_survives_a_data_set_sweep_under_the_paper_experiment(compose, tmp_path):
    """`-m +experiment=paper dataset=...,minerva_math`: the Minerva job's prompt asks for no units."""
    from gsi.config import toy_model_path
    from gsi.pipeline import load_problems
    from tests.dataset_fixtures import write_fixtures

    files = write_fixtures(tmp_path / "data")
    tok = tmp_path / "chat_tok"
    shutil.copytree(toy_model_path("small"), tok)
    cfg_file = tok / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_file.read_text())
    tok_cfg["chat_template"] = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}\n\n{% endfor %}"
    cfg_file.write_text(json.dumps(tok_cfg))
    for name in ("math500", "minerva_math"):
        cfg = compose("+experiment=paper", f"dataset={name}", f"dataset.local_path={files[name]}",
                      f"model.prompt.tokenizer={tok}")
        prompt = load_problems(cfg)[0].prompt
        assert prompt.startswith("<system>Please reason step by step, and put your final answer within \\boxed{}.")
        assert ("Do not include units in your final answer." in prompt) == (name == "minerva_math")
