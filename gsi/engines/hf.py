"""torch/transformers plumbing shared by the HF backend, the HF PRMs and the toy trainers.

Imports torch and transformers lazily: importing this module is cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

from gsi.errors import ConfigError

LOCAL_PREFIXES = ("/", "./", "../", "~")


def resolve_device(device: str) -> str:
    """``"auto"``: CUDA when available, else CPU; anything else is used as given."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_local_path(path: str, key: str, hint: str) -> None:
    """A path written as a local one (``/``, ``./``, ``../``, ``~``) must exist; hub ids pass.

    ``key`` is the full config key (``reward.path``), ``hint`` says how to fix it.
    """
    if str(path).startswith(LOCAL_PREFIXES) and not Path(path).expanduser().exists():
        raise ConfigError(f"{key}={path!r} does not exist: {hint}")


def load(
    path: str,
    model_class: Any = None,
    dtype: str = "float32",
    device: str = "auto",
    num_threads: int | None = None,
    tokenizer: bool = True,
    load_format: str = "auto",
) -> tuple[Any, Any, str]:
    """(model in eval mode on its device, tokenizer or None, device) from a local folder or hub id.

    ``model_class`` defaults to ``AutoModelForCausalLM``. ``num_threads`` sets torch's
    process-wide intra-op threads: tiny models gain nothing from them, and on a busy CPU
    spinning OpenMP workers make every small op ~10x slower. ``load_format``: ``auto``
    reads the weights; ``dummy`` (as vLLM's) builds the architecture of ``config.json``
    on the device with random weights (seed 0) and reads nothing else, for measuring the
    cost of real shapes without their weights.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    if load_format not in ("auto", "dummy"):
        raise ConfigError(f"load_format={load_format!r} is not known: use auto (read the weights) or dummy (random)")
    hf_logging.disable_progress_bar()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    device = resolve_device(device)
    tok = AutoTokenizer.from_pretrained(path) if tokenizer else None
    cls = model_class or AutoModelForCausalLM
    if load_format == "dummy":
        config = AutoConfig.from_pretrained(path)
        torch.manual_seed(0)
        with torch.device(device):
            build = cls.from_config if cls is AutoModelForCausalLM else cls._from_config
            model = build(config, dtype=getattr(torch, dtype))
    else:
        model = cls.from_pretrained(path, dtype=getattr(torch, dtype))
    model.to(device).eval()
    return model, tok, device


def pad(seqs: Sequence[Sequence[int]], value: int, side: str = "right", width: int | None = None):
    """The sequences as one ``[len(seqs), width]`` long tensor, filled with ``value``
    on the ``side`` given (``width`` defaults to the longest)."""
    import torch

    width = max((len(s) for s in seqs), default=0) if width is None else width
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        if len(s):
            row = torch.as_tensor(list(s), dtype=torch.long)
            if side == "left":
                out[i, width - len(s):] = row
            else:
                out[i, : len(s)] = row
    return out


def pad_with_mask(seqs: Sequence[Sequence[int]], pad_id: int, side: str = "right", width: int | None = None):
    """(ids, attention mask): :func:`pad` and the 0/1 mask of the real tokens."""
    ids = pad(seqs, pad_id, side, width)
    mask = pad([[1] * len(s) for s in seqs], 0, side, ids.shape[1])
    return ids, mask


def length_sorted_chunks(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices ``0..len(lengths)-1`` sorted by length, in chunks of at most ``size``:
    batching sequences of similar length wastes the least padding."""
    order = sorted(range(len(lengths)), key=lambda k: lengths[k])
    return [order[i : i + size] for i in range(0, len(order), size)]


def batched(
    seqs: Sequence[Sequence[int]],
    batch_size: int,
    run: Callable[[Any, Any], Any],
    read: Callable[[Any, int, int], Any],
    pad_id: int,
    device: str,
) -> list:
    """``read(outputs, row, k)`` for every sequence ``k``, computing ``run(ids, mask)`` on
    length-sorted, right-padded chunks of ``batch_size`` sequences (real tokens keep
    positions ``0..len-1``)."""
    import torch

    out: list = [None] * len(seqs)
    for chunk in length_sorted_chunks([len(s) for s in seqs], batch_size):
        ids, mask = pad_with_mask([seqs[k] for k in chunk], pad_id)
        with torch.inference_mode():
            outputs = run(ids.to(device), mask.to(device))
        for row, k in enumerate(chunk):
            out[k] = read(outputs, row, k)
    return out
