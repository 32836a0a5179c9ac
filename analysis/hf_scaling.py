"""How the transformers engine's step cost grows with the prefix (issue #20), in one run.

    python -m analysis.hf_scaling [--out FILE] [--problems 16] [--candidates 16]

For prefixes of about 30 and 400 tokens, ``problems`` x ``candidates``: the time of one
step's call (``role``: ``sample`` = the small model drawing the candidates, ``score`` =
the big model scoring them, ``prm`` = the toy PRM judging them), each made as in the
loop, right after the previous step's call at the same prefix minus its last step, so
the prefix caches hold what they would hold in a run. The candidates scored are the same
at both lengths (drawn at the short prefix). Also the peak memory of big-model
scoring at 64 problems x 16 candidates, each size in a fresh process. Records have the
shape of ``benchmark.json``'s ``scaling`` list (``analysis.benchmark`` can include them
with :func:`scaling_records`). Toy models: their position limit (256) is their training
length, not a limit of rotary positions, so it is lifted for the 400-token prefixes.
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from functools import partial

import numpy as np

log = logging.getLogger(__name__)


def _inputs(tokens: int, problems: int, tokenizer):
    """(questions, previous steps, prefixes) whose prefixes have about ``tokens`` tokens."""
    from gsi.toy.task import generate_problems

    pool = generate_problems(problems + 200, 11, heldout=False)
    steps = [s for p in pool[problems:] for s in p.solution_steps()[:-1]]
    questions, previous, prefixes = [], [], []
    for i, p in enumerate(pool[:problems]):
        prev = [steps[i % len(steps)]]
        while len(tokenizer.encode(p.prompt + "".join(prev))) < tokens:
            prev.append(steps[(i + 7 * len(prev)) % len(steps)])
        questions.append(p.prompt)
        previous.append(prev)
        prefixes.append(p.prompt + "".join(prev))
    return questions, previous, prefixes


def _models():
    from gsi.backends.hf import HFBackend
    from gsi.config import ASSETS, toy_model_path
    from gsi.rewards.prm import HFQwenPRM

    small = HFBackend(toy_model_path("small"), device="cpu", num_threads=1)
    big = HFBackend(toy_model_path("big"), device="cpu", num_threads=1)
    for lm in (small, big):
        lm.context_window = None
    return small, big, HFQwenPRM(str(ASSETS / "prm"), name="toy_prm", device="cpu", num_threads=1)


def _clear(*models) -> None:
    for m in models:
        cache = getattr(m, "prefix_cache", None)
        if cache is not None:
            cache.clear()


def scaling_records(prefix_tokens=(30, 400), problems: int = 16, candidates: int = 16, repeats: int = 5) -> list[dict]:
    """``{"backend", "role", "prefix_tokens", "candidates", "problems", "seconds"}`` per
    role and prefix length: the fastest of ``repeats`` rounds, the lengths interleaved."""
    from gsi.types import SamplingParams

    small, big, prm = _models()
    params = SamplingParams(0.7, 1.0, 16)
    cases, cands = [], None
    for target in prefix_tokens:
        questions, previous, prefixes = _inputs(target, problems, big.tokenizer)
        earlier = [q + "".join(prev[:-1]) for q, prev in zip(questions, previous)]
        seeds = list(range(problems))
        # the same candidate steps at every prefix length (drawn at the first), so the
        # times differ by the prefix alone, not by how many distinct or how long they are
        cands = cands or small.sample(prefixes, candidates, seeds, params)
        texts = [[c.text for c in g] for g in cands]
        lm_tokens = round(float(np.mean([len(big.tokenizer.encode(p)) for p in prefixes])))
        prm_tokens = round(float(np.mean([len(prm.encode(q, p) or []) for q, p in zip(questions, previous)])))
        cases += [
            ("sample", lm_tokens, small, partial(small.sample, earlier, candidates, seeds, params),
             partial(small.sample, prefixes, candidates, seeds, params)),
            ("score", lm_tokens, big, partial(big.score, earlier, cands, params), partial(big.score, prefixes, cands, params)),
            ("prm", prm_tokens, prm, partial(prm.score, questions, [p[:-1] for p in previous], texts),
             partial(prm.score, questions, previous, texts)),
        ]
    # the lengths' calls interleaved, round after round, each time the fastest: a burst of
    # load on this shared machine slows one round of both lengths, not one length
    best = [float("inf")] * len(cases)
    for _ in range(repeats):
        for i, (_, _, model, before, timed) in enumerate(cases):
            _clear(model)
            before()
            start = time.perf_counter()
            timed()
            best[i] = min(best[i], time.perf_counter() - start)
    out = []
    for (role, tokens, *_), seconds in zip(cases, best):
        out.append({"backend": "transformers", "role": role, "prefix_tokens": tokens,
                    "candidates": candidates, "problems": problems, "seconds": round(seconds, 4)})
        log.info("%s", out[-1])
    return out


def peak_memory_mb(prefix_tokens: int, problems: int = 64, candidates: int = 16) -> dict:
    """Peak resident memory added by one big-model scoring call (run it in a fresh process)."""
    from gsi.types import SamplingParams

    small, big, _ = _models()
    params = SamplingParams(0.7, 1.0, 16)
    questions, previous, prefixes = _inputs(prefix_tokens, problems, big.tokenizer)
    cands = small.sample(prefixes, candidates, list(range(problems)), params)
    big.score(prefixes[:1], cands[:1], params)
    _clear(big)
    from analysis.benchmark import PeakRSS

    with PeakRSS() as peak:
        before = peak.peak_kb
        big.score(prefixes, cands, params)
    added = peak.peak_kb - before
    width = max(len(big._encode_step(s)) for g in cands for s in g)
    config = big.model.config
    kv_token = 2 * config.num_hidden_layers * config.num_key_value_heads * (config.hidden_size // config.num_attention_heads) * 4
    return {"backend": "transformers", "role": "score", "problems": problems, "candidates": candidates,
            "prefix_tokens": round(float(np.mean([len(big.tokenizer.encode(p)) for p in prefixes]))),
            "step_tokens": width, "peak_added_mb": round(added / 1024, 1),
            "kv_bytes_per_token": kv_token}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="write the records here as JSON")
    parser.add_argument("--problems", type=int, default=16)
    parser.add_argument("--candidates", type=int, default=16)
    parser.add_argument("--memory-only", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    import torch

    torch.set_num_threads(1)
    if args.memory_only is not None:
        print(json.dumps(peak_memory_mb(args.memory_only)))
        return
    result = {"scaling": scaling_records(problems=args.problems, candidates=args.candidates), "memory": []}
    for tokens in (30, 400):
        line = subprocess.run([sys.executable, "-m", "analysis.hf_scaling", "--memory-only", str(tokens)],
                              check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        result["memory"].append(json.loads(line))
    for role in ("sample", "score", "prm"):
        short, long = (r for r in result["scaling"] if r["role"] == role)
        result[f"{role}_ratio"] = round(long["seconds"] / short["seconds"], 2)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        from pathlib import Path

        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
