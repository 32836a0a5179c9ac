"""Config schemas (registered in Hydra's ConfigStore) and start-up validation.

Each group option in ``conf/`` names its schema in its defaults list, so a misspelt key
fails at composition. Value checks that types cannot express (n >= 1, 0 < top_p <= 1,
...) live in :func:`validate`, which turns the composed config into the frozen
:class:`RunSettings` the loop uses, or raises :class:`ConfigError` with one line naming
the key, the value and what is allowed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf

from gsi.data.hub import FieldsConfig
from gsi.errors import ConfigError
from gsi.methods import METHODS, Method, MethodParams, get_method
from gsi.rewards.prm_format import AGGREGATIONS, QWEN_MATH_SYSTEM, QWEN_STEP_TAG
from gsi.types import RunSettings, SamplingParams

ASSETS = Path(__file__).resolve().parent / "toy" / "assets"


# ------------------------------------------------------------------ group schemas
@dataclass
class BackendConfig:
    """A language model; ``_target_`` picks the backend class."""

    _target_: str = "gsi.backends.hf.HFBackend"
    path: str = MISSING
    name: str = ""
    dtype: str = "float32"
    device: str = "auto"
    num_threads: Optional[int] = None  # torch CPU threads (process-wide); null = torch's default
    prefix_cache: int = 512  # prompts whose KV is kept for reuse by the next step (0 = off)


@dataclass
class VLLMEngineConfig:
    """Options of a vLLM engine, for language models and PRMs alike. Engines share one GPU
    through ``gpu_memory_utilization`` fractions, or sit on different GPUs of the node
    through ``visible_devices`` (e.g. "1"); ``env`` is set while the engine starts;
    ``engine_kwargs`` go to ``vllm.LLM`` unchanged."""

    dtype: str = "auto"
    seed: int = 0
    gpu_memory_utilization: float = 0.9
    max_model_len: Optional[int] = None
    tensor_parallel_size: int = 1
    enforce_eager: bool = False
    visible_devices: Optional[str] = None
    env: dict[str, Any] = field(default_factory=dict)
    engine_kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class VLLMBackendConfig(VLLMEngineConfig):
    """A language model on an in-process vLLM engine (``gsi.backends.vllm_backend``).

    ``score_topk``: null scores exactly over the whole vocabulary; K keeps the top K tokens
    (large vocabularies at temperature != 1).
    """

    _target_: str = "gsi.backends.vllm_backend.VLLMBackend"
    path: str = MISSING
    name: str = ""
    enable_prefix_caching: bool = True
    read_prefix_cache: bool = True  # scoring reuses cached prefix KV (exact: see vllm_backend)
    per_problem_seeds: bool = True
    score_topk: Optional[int] = None


@dataclass
class PromptConfig:
    """How a problem becomes the text the models continue (``gsi.prompting``):
    style ``none`` (the data set's prompt), ``plain`` (``template``) or ``chat``
    (``tokenizer``'s chat template, optional ``system`` message)."""

    _target_: str = "gsi.prompting.PromptFormatter"
    style: str = "none"
    template: str = "{question}"
    system: Optional[str] = None
    tokenizer: Optional[str] = None


@dataclass
class ModelPairConfig:
    """The small (proposal) model and the big (base) model, on transformers."""

    small: BackendConfig = field(default_factory=BackendConfig)
    big: Optional[BackendConfig] = None
    prompt: PromptConfig = field(default_factory=PromptConfig)


@dataclass
class VLLMModelPairConfig:
    """The small and big models, each on its own vLLM engine."""

    small: VLLMBackendConfig = field(default_factory=VLLMBackendConfig)
    big: Optional[VLLMBackendConfig] = None
    prompt: PromptConfig = field(default_factory=PromptConfig)


@dataclass
class RewardConfig:
    _target_: str = MISSING
    name: str = MISSING


@dataclass
class ToyVerifierConfig(RewardConfig):
    """The toy task's step verifier; ``noise`` is the std of its (text-keyed) error."""

    _target_: str = "gsi.toy.verifier.ToyVerifier"
    name: str = "toy_verifier"
    noise: float = 0.0


@dataclass
class QwenPRMConfig(RewardConfig):
    """A Qwen2.5-Math-PRM-style model through transformers (``gsi.rewards.prm.HFQwenPRM``).

    ``aggregation``: how the steps' probabilities make the candidate's reward: ``last``
    (the newest step's), ``min`` or ``product``. ``max_length``: longer inputs score NaN.
    """

    _target_: str = "gsi.rewards.prm.HFQwenPRM"
    name: str = ""  # empty: the model path
    path: str = MISSING
    aggregation: str = "last"
    system_prompt: str = QWEN_MATH_SYSTEM
    step_tag: str = QWEN_STEP_TAG
    dtype: str = "float32"
    device: str = "auto"
    batch_size: int = 64
    max_length: Optional[int] = None
    num_threads: Optional[int] = None
    prefix_cache: int = 512  # partial solutions whose KV is kept for the next step (0 = off)


@dataclass
class VLLMQwenPRMConfig(RewardConfig, VLLMEngineConfig):
    """The same PRM through vLLM's pooling runner (``gsi.rewards.prm_vllm.VLLMQwenPRM``)."""

    _target_: str = "gsi.rewards.prm_vllm.VLLMQwenPRM"
    name: str = ""  # empty: the model path
    path: str = MISSING
    aggregation: str = "last"
    system_prompt: str = QWEN_MATH_SYSTEM
    step_tag: str = QWEN_STEP_TAG
    prefix_caching: bool = True  # ALL pooling + prefix cache; false: STEP pooling, no cache


@dataclass
class StepTagLMPRMConfig(RewardConfig):
    """A causal LM judged at step tags by P(positive token) vs P(negative token)
    (``gsi.rewards.step_tag_lm.StepTagLMPRM``): Math-Shepherd, RLHFlow, ... formats."""

    _target_: str = "gsi.rewards.step_tag_lm.StepTagLMPRM"
    name: str = ""  # empty: the model path
    path: str = MISSING
    format: str = "step_tag"
    step_tag: str = " ки"
    positive: str = "+"
    negative: str = "-"
    step_prefix: str = ""
    step_sep: str = "\n"
    question_sep: str = " "
    chat_template: Optional[str] = None
    aggregation: str = "last"
    dtype: str = "float32"
    device: str = "auto"
    batch_size: int = 64
    max_length: Optional[int] = None
    num_threads: Optional[int] = None


@dataclass
class ToyDatasetConfig:
    """The synthetic arithmetic task; problems are drawn from ``seed``."""

    _target_: str = "gsi.data.ToyArithmetic"
    name: str = "toy_arith"
    num_problems: int = 500
    seed: int = 1234
    min_ops: int = 2
    max_ops: int = 3
    grader: str = "exact_number"


@dataclass
class HubDatasetConfig:
    """A benchmark loaded through ``datasets.load_dataset`` (:class:`gsi.data.hub.HubDataset`)."""

    _target_: str = "gsi.data.hub.HubDataset"
    name: str = MISSING
    path: str = MISSING  # hub id, e.g. HuggingFaceH4/MATH-500
    subset: Optional[str] = None  # config name on the hub, e.g. "main"
    split: str = "test"
    revision: Optional[str] = None
    local_path: Optional[str] = None  # a file or folder shaped like the hub data
    fields: FieldsConfig = field(default_factory=FieldsConfig)
    answer_format: str = "plain"  # see gsi.data.hub.ANSWER_FORMATS
    grader: str = "math_verify"
    system_note: Optional[str] = None  # appended to model.prompt.system (chat style), e.g. Minerva's "no units"
    on_bad_bytes: str = "error"  # error | replace
    cache_dir: Optional[str] = None  # datasets' cache; null: its default (HF_DATASETS_CACHE)


@dataclass
class MethodConfig:
    name: str = MISSING


@dataclass
class ShardConfig:
    index: int = 0
    count: int = 1


@dataclass
class TrackingConfig:
    """Experiment tracking (``conf/tracking/``); ``_target_`` picks the tracker.

    ``mode``: ``auto`` (online when logged in to W&B, else offline; ``WANDB_MODE`` wins),
    ``online``, ``offline`` or ``disabled``. ``group`` null: one group per Hydra sweep.
    ``dir`` null: the run directory. ``name``/``job_type`` null: derived from the run.
    """

    _target_: str = "gsi.tracking.WandbTracker"
    project: str = "gsi"
    entity: Optional[str] = None
    group: Optional[str] = None
    name: Optional[str] = None
    job_type: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    notes: Optional[str] = None
    mode: str = "auto"
    dir: Optional[str] = None
    log_steps: bool = True
    log_table: bool = True
    init_timeout: float = 60.0
    settings: dict[str, Any] = field(default_factory=dict)


TRACKING_MODES = ("auto", "online", "offline", "disabled")


@dataclass
class Config:
    """Top-level knobs a sweep can name directly (``python run.py -m beta=0.5,1,2``)."""

    model: Any = MISSING
    reward: Any = MISSING
    dataset: Any = MISSING
    method: Any = MISSING
    tracking: Any = None
    beta: float = 20.0
    threshold: float = 0.5
    threshold_on: str = "tilted"  # gsi's score: tilted | beta_tilted | reward (gsi.methods.rules)
    tie_rule: str = "ge"  # ge | gt | reference (gsi: >, rsd: >=)
    stop_below: Optional[float] = None  # reward floor: stop when every candidate is below it
    n_small: int = 4
    n_big: int = 4
    temperature: float = 0.7
    top_p: float = 1.0
    max_steps: int = 8
    max_step_tokens: int = 16
    batch_size: int = 64
    limit: Optional[int] = None
    seed: int = 0
    shard: ShardConfig = field(default_factory=ShardConfig)
    progress: bool = True
    retry_errors: bool = True  # rerun problems whose rows record an error (#15)


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


# ------------------------------------------------------------------ validation
MIN_TEMPERATURE = 1e-6  # logits (|l| < ~1e30) / temperature stay finite in float32 (max ~3.4e38)
MIN_TOP_P = 1.1754944e-38  # numpy.finfo(float32).tiny: smaller top_p underflows to 0 in float32


def _context_length(path: str) -> int | None:
    """max_position_embeddings from a local model directory's config.json (no weights read)."""
    import json

    config = Path(path).expanduser() / "config.json"
    try:
        value = json.loads(config.read_text()).get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None
    return int(value) if isinstance(value, int) else None


def _check_values(cfg: DictConfig, step_tokens: int) -> None:
    """Group values the schemas' types let through: prefix caches, the toy data set's
    sizes, the verifier's noise, and the step budget against the models' context."""
    for role in ("small", "big"):
        node = cfg.model.get(role)
        if node is None:
            continue
        if "prefix_cache" in node:
            _check(int(node.prefix_cache) >= 0, f"model.{role}.prefix_cache", node.prefix_cache, "an integer >= 0 (0 = off)")
        limit = node.get("max_model_len") or _context_length(str(node.get("path", "")))
        _check(limit is None or step_tokens < int(limit), "max_step_tokens", step_tokens,
               f"below model.{role}'s context length {limit}")
    if "prefix_cache" in cfg.reward:
        _check(int(cfg.reward.prefix_cache) >= 0, "reward.prefix_cache", cfg.reward.prefix_cache, "an integer >= 0 (0 = off)")
    if "noise" in cfg.reward:
        noise = float(cfg.reward.noise)
        _check(math.isfinite(noise) and noise >= 0, "reward.noise", cfg.reward.noise, "a finite number >= 0")
    data = cfg.dataset
    if "num_problems" in data:
        _check(int(data.num_problems) >= 1, "dataset.num_problems", data.num_problems, "an integer >= 1")
    if "min_ops" in data and "max_ops" in data:
        _check(int(data.min_ops) >= 1, "dataset.min_ops", data.min_ops, "an integer >= 1")
        _check(int(data.max_ops) >= int(data.min_ops), "dataset.max_ops", data.max_ops,
               f"an integer >= dataset.min_ops={data.min_ops}")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value!r} is not allowed: {key} must be {allowed}")


def _check_reference_rules(cfg: DictConfig, beta: float) -> None:
    """threshold_on, tie_rule, stop_below (gsi.methods.rules)."""
    from gsi.methods.rules import THRESHOLD_ON, TIE_RULES

    _check(cfg.threshold_on in THRESHOLD_ON, "threshold_on", cfg.threshold_on, f"one of {', '.join(THRESHOLD_ON)}")
    _check(cfg.tie_rule in TIE_RULES, "tie_rule", cfg.tie_rule, f"one of {', '.join(TIE_RULES)}")
    if cfg.threshold_on == "beta_tilted":
        _check(math.isfinite(beta), "beta", cfg.beta, "finite with threshold_on=beta_tilted (beta*s is undefined at inf)")
    floor = cfg.stop_below
    _check(floor is None or not math.isnan(float(floor)), "stop_below", floor, "null (no floor) or a number")


def validate(cfg: DictConfig) -> RunSettings:
    """Check the values types cannot; return the loop's settings."""
    name = cfg.method.name
    if name not in METHODS:
        raise ConfigError(f"method.name={name!r} is not allowed: choose one of {', '.join(METHODS)}")
    method = get_method(name)
    beta = float(cfg.beta)
    _check(not math.isnan(beta) and beta >= 0, "beta", cfg.beta, "a number >= 0 (inf allowed)")
    _check(not math.isnan(float(cfg.threshold)), "threshold", cfg.threshold, "a number (-inf allowed)")
    _check_reference_rules(cfg, beta)
    for key in ("n_small", "n_big", "max_steps", "max_step_tokens", "batch_size"):
        _check(int(cfg[key]) >= 1, key, cfg[key], "an integer >= 1")
    temperature = float(cfg.temperature)
    _check(temperature > 0 and math.isfinite(temperature), "temperature", cfg.temperature, "a number > 0")
    _check(temperature >= MIN_TEMPERATURE, "temperature", cfg.temperature,
           f">= {MIN_TEMPERATURE:g} (below it logits/temperature overflow float32)")
    top_p = float(cfg.top_p)
    _check(0 < top_p <= 1, "top_p", cfg.top_p, "in (0, 1]")
    _check(top_p >= MIN_TOP_P, "top_p", cfg.top_p, f">= {MIN_TOP_P:g} (the smallest float32 normal) and <= 1")
    _check(0 <= int(cfg.seed) < 2**63, "seed", cfg.seed, "an integer in [0, 2**63) (numpy's and torch's RNGs)")
    _check_values(cfg, int(cfg.max_step_tokens))
    _check(cfg.limit is None or int(cfg.limit) >= 0, "limit", cfg.limit, "null (all) or an integer >= 0")
    _check(int(cfg.shard.count) >= 1, "shard.count", cfg.shard.count, "an integer >= 1")
    _check(
        0 <= int(cfg.shard.index) < int(cfg.shard.count),
        "shard.index",
        cfg.shard.index,
        f"an integer in [0, shard.count={cfg.shard.count})",
    )
    aggregation = cfg.reward.get("aggregation", "last")
    _check(aggregation in AGGREGATIONS, "reward.aggregation", aggregation, f"one of {', '.join(AGGREGATIONS)}")
    reward_path = str(cfg.reward.get("path", "") or "")
    if reward_path.startswith(("/", "./", "../", "~")) and not Path(reward_path).expanduser().exists():
        raise ConfigError(
            f"reward.path={reward_path!r} does not exist: point it at a reward model directory "
            "(the toy PRM is rebuilt by `python -m gsi.toy.train_prm`)"
        )
    tracking_mode = cfg.tracking.get("mode", "auto") if cfg.get("tracking") is not None else "auto"
    allowed_modes = f"one of {', '.join(TRACKING_MODES)}"
    _check(tracking_mode in TRACKING_MODES, "tracking.mode", tracking_mode, allowed_modes)
    if method.uses_big and cfg.model.get("big") is None:
        raise ConfigError(
            f"method.name={name!r} needs a big model but model.big is null: "
            "pick a model pair with a big model (e.g. model=toy)"
        )
    roles = (["small"] if method.proposer == "small" else []) + (["big"] if method.uses_big else [])
    for role in roles:
        path = str(cfg.model[role].get("path", ""))
        if path.startswith(("/", "./", "../", "~")) and not Path(path).expanduser().exists():
            raise ConfigError(
                f"model.{role}.path={path!r} does not exist: point it at a model directory "
                "(the toy models are rebuilt by `python -m gsi.toy.train`)"
            )
    return RunSettings(
        method=method,
        params=MethodParams(
            beta=beta, threshold=float(cfg.threshold), threshold_on=str(cfg.threshold_on),
            tie_rule=str(cfg.tie_rule), stop_below=None if cfg.stop_below is None else float(cfg.stop_below),
        ),
        sampling=SamplingParams(temperature, top_p, int(cfg.max_step_tokens)),
        n_small=int(cfg.n_small),
        n_big=int(cfg.n_big),
        max_steps=int(cfg.max_steps),
        batch_size=int(cfg.batch_size),
        seed=int(cfg.seed),
    )
