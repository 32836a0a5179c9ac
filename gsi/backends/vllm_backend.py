"""vLLM backend: the same protocol as the transformers one, on a vLLM engine.

Sampling sends every active prompt in one ``generate`` call with ``n`` samples each,
stopping at the step separator (as text, so a separator inside a merged token such as
Qwen's ``".\\n\\n"`` counts) or EOS. The engine runs with
``logprobs_mode="processed_logprobs"``: the log-probability vLLM returns for a sampled
token is then taken after temperature and top-p (``raw_logprobs``, vLLM's default, is
the untempered law and would make every GSI ratio wrong). ``tests/test_vllm_backend.py``
checks this against the transformers backend to 1e-4.

Scoring goes through prompt log-probs of ``prompt + step``. vLLM computes those from the
logits without the request's temperature or top-p. With ``temperature_in_logits: true``
(default) the engine's logits are multiplied by ``1 / temperature`` inside vLLM (a worker
extension, :mod:`gsi.engines.vllm_worker`) and every request is sent at temperature 1, so:

* at top-p 1 the target token's prompt log-prob is its log-prob under the tempered law
  (one number per position, cheap, exact) at any temperature;
* with top-p < 1 (or ``temperature_in_logits: false`` at a temperature other than 1) the
  law is rebuilt from the prompt log-probs with the same
  :func:`~gsi.backends.law.sampling_logprobs` the transformers backend uses. With
  ``score_topk: null`` (default) vLLM returns the whole vocabulary per position, which is
  exact; ``score_topk: K`` keeps the K most likely tokens (plus the target) and ignores
  the rest of the vocabulary, an approximation for large vocabularies whose error is at
  most ``log(1 + tail mass)`` per token (tiny at temperature < 1; see the README).

Temperature 0 is greedy decoding (vLLM's argmax; ties: the lowest token id, as
``torch.argmax``): a sampled step's log-prob is 0, one draw is made and copied ``n``
times, and scoring rebuilds the point-mass law from the raw prompt log-probs (0 where
the step is the argmax at every position, -inf otherwise).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Mapping, Sequence

import numpy as np

from gsi.backends.base import TokenizedPrompts, copies
from gsi.backends.law import STEP_SEPARATOR
from gsi.backends.vllm_rows import RowMemo, position_logprobs
from gsi.engines.vllm import device_key, engine_options, start_engine, uses_v2_runner
from gsi.engines.vllm_worker import EXTENSION
from gsi.types import SamplingParams, StepSample

log = logging.getLogger(__name__)

class VLLMBackend(TokenizedPrompts):
    """A causal LM served by an in-process vLLM engine (``LLM``)."""

    def __init__(
        self,
        path: str,
        name: str = "",
        dtype: str = "auto",
        seed: int = 0,
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
        enable_prefix_caching: bool = True,
        read_prefix_cache: bool = True,
        per_problem_seeds: bool = True,
        score_topk: int | None = None,
        temperature_in_logits: bool = True,
        visible_devices: str | None = None,
        env: Mapping[str, Any] | None = None,
        engine_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        if score_topk is not None and score_topk < 1:
            raise ValueError(f"score_topk={score_topk} is not allowed: use null (whole vocabulary, exact) or K >= 1")
        self.name = name or path
        self.step_separator = STEP_SEPARATOR
        self.score_topk = score_topk
        self.per_problem_seeds = per_problem_seeds
        options = engine_options(
            path, dtype, seed, gpu_memory_utilization, max_model_len, tensor_parallel_size, enforce_eager,
            engine_kwargs,
            enable_prefix_caching=enable_prefix_caching,
            logprobs_mode="processed_logprobs",
            # prompt log-probs over the whole vocabulary when scoring exactly
            max_logprobs=-1 if score_topk is None else max(score_topk, 20),
        )
        # the temperature goes into the logits, and scoring rows start at the cache hit,
        # through a worker extension, unless the user brings their own (vLLM takes one per engine)
        extension = "worker_extension_cls" not in options
        self.temperature_in_logits = temperature_in_logits and extension
        if temperature_in_logits and not self.temperature_in_logits:
            log.warning("%s: engine_kwargs set worker_extension_cls, so the temperature stays out of the "
                        "logits and tempered scoring needs whole-vocabulary rows", self.name)
        if extension:
            options["worker_extension_cls"] = EXTENSION
        role = f"model ({self.name})"
        self.llm, self.releasable = start_engine(options, env, visible_devices, role)
        self.logit_scale = 1.0
        if self.temperature_in_logits:
            try:
                scalable = all(self.llm.collective_rpc("gsi_set_logit_scale", args=(1.0,)))
            except Exception as exc:  # a runner this extension does not know: score the old way
                log.warning("%s: could not reach the model's logits (%s)", self.name, exc)
                scalable = False
            if not scalable:
                log.warning("%s: the temperature stays out of the logits; tempered scoring needs "
                            "whole-vocabulary rows", self.name)
                self.temperature_in_logits = False
        self.device_key = device_key(visible_devices)
        self.read_prefix_cache = read_prefix_cache and enable_prefix_caching
        # V1 runners return a prompt log-prob row for every prompt position (rows a
        # cache hit skipped are left unfilled); the V2 GPU runner only the computed ones.
        # On V1 the worker extension trims them to the computed ones too (fewer rows to
        # turn into Python objects); each request's offset is read from its row count.
        self.computed_rows_only = uses_v2_runner(self.llm)
        self.trimmed_rows = False
        if extension and not self.computed_rows_only:
            try:
                self.trimmed_rows = all(self.llm.collective_rpc("gsi_computed_prompt_rows"))
            except Exception as exc:  # a runner this extension does not know: every row comes back
                log.warning("%s: prompt log-prob rows stay full length (%s)", self.name, exc)
        # scoring requests sent, of them those re-scored without the cache and those
        # completed from other requests' rows; prefix tokens read from the cache; prompt
        # log-prob rows returned (what the engine front end turns into Python objects)
        self.score_counts = {"requests": 0, "rescored": 0, "filled": 0, "cached_tokens": 0, "rows": 0}
        self._rows_before: tuple = (None, {})  # (law, per-position log-probs) of the last scoring call
        self.tokenizer = self.llm.get_tokenizer()
        self.eos_id = self.tokenizer.eos_token_id
        self.context_window = self.llm.llm_engine.model_config.max_model_len
        # Stop rule shared with the transformers backend: the step ends when its text
        # contains the separator. Tokens containing it are stop ids; only when a token
        # can end in part of it must vLLM detokenize and match the stop string.
        from gsi.backends.law import separator_tokens

        self.stop_ids, partial = separator_tokens(self.tokenizer, STEP_SEPARATOR)
        self.needs_stop_string = bool(partial)

    # ------------------------------------------------------------------ helpers
    def _engine_params(self, params: SamplingParams) -> SamplingParams:
        """The law as the engine applies it. With the temperature in the logits: scale
        them by ``1 / temperature`` (only when it changes: one RPC) and send temperature 1.
        Temperature 0 (greedy), or ``temperature_in_logits`` switched off, resets the scale
        to 1, so argmax ties and raw log-probs stay exactly vLLM's."""
        baked = self.temperature_in_logits and params.temperature > 0
        scale = 1.0 / params.temperature if baked else 1.0
        if scale != self.logit_scale:
            self.llm.collective_rpc("gsi_set_logit_scale", args=(scale,))
            self.logit_scale = scale
        return replace(params, temperature=1.0) if baked else params

    def _step(self, completion, greedy: bool = False) -> StepSample:
        """A completion as a step. ``greedy`` (temperature 0): vLLM took the argmax at
        every position, whose log-prob under the point-mass law is 0 (vLLM's own number
        is the untempered one, since greedy requests skip the temperature)."""
        ids = list(completion.token_ids)
        logprob = 0.0 if greedy else float(np.sum(np.asarray(completion.logprobs.logprobs, dtype=np.float64)))
        if ids and ids[-1] == self.eos_id:
            finish, ids = "eos", ids[:-1]
        else:
            finish = None
        text = self.tokenizer.decode(ids, skip_special_tokens=False)
        if finish is None:
            finish = "stop" if self.step_separator in text else "length"
        return StepSample(text, len(completion.token_ids), logprob, finish)  # type: ignore[arg-type]

    def reset_prefix_cache(self) -> None:
        """Empty the engine's prefix cache, and with it the row memo of the last scoring
        call (the numbers of rows that cache hits may skip)."""
        self.llm.reset_prefix_cache()
        self._rows_before = (None, {})

    # ------------------------------------------------------------------ protocol
    def sample(
        self,
        prompts: Sequence[str],
        n: int,
        seeds: Sequence[int],
        params: SamplingParams,
    ) -> list[list[StepSample]]:
        """``n`` steps per prompt, all prompts in one ``generate`` call; each prompt
        draws from its own seeded generator, so its steps do not depend on the batch."""
        from vllm import SamplingParams as VSamplingParams
        from vllm import TokensPrompt

        if not prompts:
            return []
        if params.temperature == 0 and n > 1:
            return copies(self.sample(prompts, 1, seeds, params), n)
        ids = self._encode_prompts(prompts, params.max_tokens)
        engine = self._engine_params(params)
        per_prompt = [
            VSamplingParams(
                n=n,
                temperature=engine.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                stop=[self.step_separator] if self.needs_stop_string else None,
                stop_token_ids=self.stop_ids,
                include_stop_str_in_output=True,
                detokenize=self.needs_stop_string,  # the text is decoded here, from the ids
                logprobs=0,
                flat_logprobs=True,
                seed=int(seed) % (2**63) if self.per_problem_seeds else None,
            )
            for seed in seeds
        ]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=i) for i in ids], per_prompt, use_tqdm=False)
        greedy = params.temperature == 0
        return [[self._step(c, greedy) for c in sorted(o.outputs, key=lambda c: c.index)] for o in outs]

    def score(
        self,
        prompts: Sequence[str],
        steps: Sequence[Sequence[StepSample]],
        params: SamplingParams,
    ) -> list[np.ndarray]:
        """``log pi(step | prompt)`` of given steps, from prompt log-probs of prompt + step."""
        from vllm import SamplingParams as VSamplingParams
        from vllm import TokensPrompt

        counts = [len(group) for group in steps]
        if sum(counts) == 0:
            return [np.zeros(0) for _ in prompts]
        conts = [[self._encode_step(s) for s in group] for group in steps]
        width = max(len(c) for group in conts for c in group)
        prompt_ids = self._encode_prompts(prompts, width)
        params = self._engine_params(params)
        raw = params.temperature == 1.0 and params.top_p >= 1.0
        k = 0 if raw else (-1 if self.score_topk is None else self.score_topk)
        requests, spans = [], []
        for ids, group in zip(prompt_ids, conts):
            for cont in group:
                requests.append(TokensPrompt(prompt_token_ids=ids + cont))
                spans.append((len(ids), cont))
        totals = self._score_requests(requests, spans, k, raw, params)
        out_list, at = [], 0
        for c in counts:
            out_list.append(totals[at : at + c])
            at += c
        return out_list

    def _score_requests(self, requests, spans, k: int, raw: bool, params: SamplingParams) -> np.ndarray:
        """Each request's continuation log-prob. With ``read_prefix_cache`` the engine
        reuses the KV of prefixes it has seen (the problem's prompt, shared by its
        candidates and by the sampling call before). A request whose cache hit reaches
        into its own continuation has no rows for that continuation's first tokens: they
        are taken from the request that computed them (:class:`~gsi.backends.vllm_rows.RowMemo`,
        same tokens up to that position, so the same number), or, where none did in this
        call, the request is scored again without reading the cache. Every number is
        computed from full-precision rows exactly as without the cache."""
        totals = np.zeros(len(requests))
        todo = [j for j, (_, cont) in enumerate(spans) if cont]
        redo = self._score_into(totals, todo, requests, spans, k, raw, params, self.read_prefix_cache)
        self.score_counts["requests"] += len(todo)
        self.score_counts["rescored"] += len(redo)
        if redo:
            log.debug("%d of %d scoring requests hit the cache inside the step: re-scored", len(redo), len(todo))
            left = self._score_into(totals, redo, requests, spans, k, raw, params, False)
            assert not left, "a request that does not read the prefix cache computes every row"
        return totals

    def _score_into(self, totals, todo, requests, spans, k, raw, params, read_cache: bool) -> list[int]:
        """Score requests ``todo`` into ``totals``; return those that must be re-scored."""
        from vllm import SamplingParams as VSamplingParams

        if not todo:
            return []
        if raw and self.computed_rows_only:
            # V2 runner: only the target token's log-prob at the continuation's rows
            per_request = [
                VSamplingParams(
                    max_tokens=1, detokenize=False, skip_reading_prefix_cache=not read_cache,
                    prompt_logprob_token_ids=[[t] for t in spans[j][1]], prompt_logprob_start=spans[j][0] - 1,
                )
                for j in todo
            ]
            outs = self.llm.generate([requests[j] for j in todo], per_request, use_tqdm=False)
            redo = []
            for j, o in zip(todo, outs):
                rows = getattr(o, "prompt_token_id_logprobs", None)
                if rows is None:  # the cache hit passed the first scored row: vLLM dropped it
                    redo.append(j)
                else:
                    totals[j] = float(np.asarray(rows, dtype=np.float64)[:, 0].sum())
            return redo
        sp = VSamplingParams(
            max_tokens=1, prompt_logprobs=k, flat_logprobs=True, detokenize=False,
            skip_reading_prefix_cache=not read_cache,
        )
        outs = self.llm.generate([requests[j] for j in todo], sp, use_tqdm=False)
        # the last call's rows are reused only under the same law (engine scale, temperature,
        # top-p) read the same way (raw numbers, or rebuilt from k tokens a row)
        law = (self.logit_scale, params.temperature, params.top_p, raw, k)
        memo, redo = RowMemo(self._rows_before[1] if self._rows_before[0] == law else None), []
        for j, o in zip(todo, outs):
            start, cont = spans[j]
            cached = o.num_cached_tokens if read_cache else 0
            self.score_counts["cached_tokens"] += cached or 0
            if cached is None or (self.computed_rows_only and cached >= start):
                redo.append(j)  # V2: no row predicts the continuation's first token
                continue
            ids = list(requests[j]["prompt_token_ids"])
            # every position's row (V1), or only those after the cache hit (V2, or V1 with
            # the worker extension): entry p - offset is token p's, entry 0 is None
            rows = len(o.prompt_logprobs or ())
            self.score_counts["rows"] += rows
            offset = cached if cached and rows == len(ids) - cached else 0
            if rows != len(ids) - offset:
                redo.append(j)  # an answer shaped neither way: score it again without the cache
                continue
            first = max(start, cached + 1)
            known = position_logprobs(o.prompt_logprobs, range(first - offset, len(ids) - offset),
                                      ids[first:], raw, params)
            total = memo.add(j, ids, start, cached, known)
            if total is not None:
                totals[j] = total
        done, left = memo.resolve()
        for j, total in done.items():
            totals[j] = total
        self.score_counts["filled"] += len(done)
        self._rows_before = (law, memo.values)
        return redo + left
