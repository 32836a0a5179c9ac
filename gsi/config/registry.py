"""Registration: the schemas in Hydra's ConfigStore and the ``${gsi.*:}`` resolvers, by one
explicit call (:func:`register`) from each process that composes ``conf/``."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from gsi.config.schemas import (
    ASSETS, Config, HubDatasetConfig, MethodConfig, ModelPairConfig, QwenPRMConfig, RewardConfig,
    StepTagLMPRMConfig, ToyDatasetConfig, ToyVerifierConfig, TrackingConfig, VLLMModelPairConfig,
    VLLMQwenPRMConfig,
)


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(name="gsi_schema", node=Config)
    cs.store(group="model", name="model_schema", node=ModelPairConfig)
    cs.store(group="model", name="vllm_model_schema", node=VLLMModelPairConfig)
    cs.store(group="reward", name="reward_schema", node=RewardConfig)
    cs.store(group="reward", name="toy_verifier_schema", node=ToyVerifierConfig)
    cs.store(group="reward", name="qwen_prm_schema", node=QwenPRMConfig)
    cs.store(group="reward", name="vllm_qwen_prm_schema", node=VLLMQwenPRMConfig)
    cs.store(group="reward", name="step_tag_lm_prm_schema", node=StepTagLMPRMConfig)
    cs.store(group="dataset", name="toy_dataset_schema", node=ToyDatasetConfig)
    cs.store(group="dataset", name="hub_dataset_schema", node=HubDatasetConfig)
    cs.store(group="method", name="method_schema", node=MethodConfig)
    cs.store(group="tracking", name="tracking_schema", node=TrackingConfig)


def toy_model_path(name: str) -> str:
    """``${gsi.toy_model:small}`` -> the packaged toy model directory."""
    return str(ASSETS / name)


def _run_id(*, _root_: DictConfig) -> str:
    from gsi.launch.identity import run_id

    return run_id(_root_)


def _gpus_per_task(*, _root_: DictConfig) -> int | None:
    from gsi.launch.resources import gpus_per_task

    return gpus_per_task(_root_)


def register() -> None:
    """Register the schemas in Hydra's ConfigStore and the ``${gsi.*:}`` resolvers the
    configs use. Called once by each process that composes ``conf/`` (``run.py``, a
    submitted job, the tests); importing a module registers nothing. Idempotent."""
    register_configs()
    if not OmegaConf.has_resolver("gsi.toy_model"):
        OmegaConf.register_new_resolver("gsi.toy_model", toy_model_path)
    for name, fn in (("gsi.run_id", _run_id), ("gsi.gpus_per_task", _gpus_per_task)):
        if not OmegaConf.has_resolver(name):
            OmegaConf.register_new_resolver(name, fn, use_cache=False)

