"""The background retraining of the slow tests (``tests/retraining.py``) reports a child
that fails instead of waiting for it."""

from __future__ import annotations

import pytest

from tests.retraining import CHAINS, Retraining


def test_the_chains_cover_every_committed_model_once():
    from gsi.config import ASSETS

    models = [m for chain in CHAINS for m in chain]
    assert sorted(models) == sorted(p.name for p in ASSETS.iterdir() if (p / "train_meta.json").exists())


def test_only_the_asked_models_are_retrained(tmp_path):
    assert Retraining(tmp_path, {"big"}).chains == [("big",)]
    assert Retraining(tmp_path, {"prm", "small"}).chains == [("prm",), ("small",)]


def test_a_child_that_fails_is_reported_with_its_log(tmp_path):
    runs = Retraining(tmp_path, set())
    runs.chains = [("no_such_model",)]
    runs.start()
    try:
        with pytest.raises(AssertionError, match=r"(?s)retraining no_such_model stopped \(exit code 1\).*no_such_model"):
            runs.wait("no_such_model")
    finally:
        runs.stop()
