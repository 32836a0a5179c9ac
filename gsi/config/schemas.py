"""Config schemas: one dataclass per config group option, registered in Hydra's ConfigStore
by :func:`gsi.config.register`. Each group option in ``conf/`` names its schema in its
defaults list, so a misspelt key fails at composition; each ``_target_`` class takes exactly
its schema's fields (``tests/test_schemas_match.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from omegaconf import MISSING

from gsi.data.hub import FieldsConfig
from gsi.rewards.prm_format import QWEN_MATH_SYSTEM, QWEN_STEP_TAG

ASSETS = Path(__file__).resolve().parents[1] / "toy" / "assets"


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
    load_format: str = "auto"  # dummy: config.json's architecture, random weights (cost benchmarks)


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

    ``temperature_in_logits``: the engine multiplies its logits by 1 / temperature (a vLLM
    worker extension), so scoring at top-p 1 reads one exact log-prob per position at any
    temperature. ``score_topk`` matters only without it or at top-p < 1: null scores exactly
    over the whole vocabulary; K keeps the top K tokens (large vocabularies).
    """

    _target_: str = "gsi.backends.vllm_backend.VLLMBackend"
    path: str = MISSING
    name: str = ""
    enable_prefix_caching: bool = True
    read_prefix_cache: bool = True  # scoring reuses cached prefix KV (exact: see vllm_backend)
    per_problem_seeds: bool = True
    score_topk: Optional[int] = None
    temperature_in_logits: bool = True


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
    load_format: str = "auto"  # dummy: config.json's architecture, random weights (cost benchmarks)


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
    prefix_cache: int = 512  # partial solutions whose KV is kept for the next step (0 = off)
    load_format: str = "auto"  # dummy: config.json's architecture, random weights (cost benchmarks)


@dataclass
class ToyDatasetConfig:
    """The synthetic arithmetic task; problems are drawn from ``seed``."""

    _target_: str = "gsi.data.ToyArithmetic"
    name: str = "toy_arith"
    num_problems: int = 500
    seed: int = 1234
    min_ops: int = 3
    max_ops: int = 4
    max_value: int = 999  # bound on every running value: 999 the default world, 99 the easy variant
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
    patience: Optional[int] = None  # RSD repo's batch cut-off: end the batch after this many idle steps
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

