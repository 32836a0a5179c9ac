"""``patience``: the RSD repo's batch-level cut-off (BaohaoLiao/RSD, main_online.py), off by
default. Runs of the real loop on the toy world are checked against a re-statement of the
RSD repo's counter (``num_unchanged``, ``pre_num_finished``) applied to the lengths the same
problems have without a cut-off."""

from __future__ import annotations

import json

import pytest

from gsi.config import validate
from gsi.errors import ConfigError
from gsi.pipeline import run
from tests.helpers import without_timing

RUN = ("method=rsd", "limit=8", "n_small=2", "n_big=2", "batch_size=8", "max_steps=6", "tracking=none")


def _rows(path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (path / "results.jsonl").read_text().splitlines()]
    return {r["problem_id"]: without_timing(r) for r in rows}


def rsd_cutoff(lengths: dict[str, int], patience: int) -> dict[str, int]:
    """The steps each problem gets under RSD's loop, given the steps it takes uncut: the
    repo's `num_unchanged >= patience - 1` ends every remaining prompt after its step."""
    out: dict[str, int] = {}
    remaining = dict(lengths)
    num_step, pre_num_finished, num_unchanged = 0, 0, 0
    while remaining:
        for pid, length in list(remaining.items()):
            if length == num_step + 1 or num_unchanged >= patience - 1:
                out[pid] = num_step + 1
                del remaining[pid]
        if len(out) > pre_num_finished:
            num_unchanged, pre_num_finished = 0, len(out)
        else:
            num_unchanged += 1
        num_step += 1
    return out


@pytest.fixture(scope="module")
def uncut(tmp_path_factory):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from tests.helpers import CONF

    out = tmp_path_factory.mktemp("uncut")  # one run shared by the tests (the compose fixture is per test)
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = hydra_compose("config", overrides=["progress=false", *RUN])
    run(cfg, out)
    return _rows(out)


@pytest.mark.parametrize("patience", [1, 2, 3])
def test_cut_off_follows_the_rsd_repo_counter(compose, tmp_path, uncut, patience):
    run(compose(*RUN, f"patience={patience}"), tmp_path)
    cut = _rows(tmp_path)
    lengths = {pid: r["steps"] for pid, r in uncut.items()}
    expected = rsd_cutoff(lengths, patience)
    assert {pid: r["steps"] for pid, r in cut.items()} == expected
    for pid, row in cut.items():
        if expected[pid] == lengths[pid]:  # not cut: the same row as without patience
            assert row == uncut[pid]
        else:  # cut: the uncut solution's first steps, marked
            assert row["stop_reason"] == "patience"
            assert row["steps_detail"] == uncut[pid]["steps_detail"][: row["steps"]]
    if patience == 1:
        assert all(r["steps"] == 1 for r in cut.values())
    assert any(r["stop_reason"] == "patience" for r in cut.values())


def test_patience_longer_than_any_wait_changes_nothing(compose, tmp_path, uncut):
    run(compose(*RUN, "patience=7"), tmp_path)
    assert _rows(tmp_path) == uncut


@pytest.mark.parametrize("value", ["0", "-3"])
def test_patience_below_one_is_refused(compose, value):
    with pytest.raises(ConfigError, match=f"^patience={value} is not allowed: patience must be null \\(off\\) or an integer >= 1"):
        validate(compose(f"patience={value}"))


def test_patience_is_off_by_default(compose):
    assert validate(compose()).patience is None
    assert validate(compose("patience=5")).patience == 5
