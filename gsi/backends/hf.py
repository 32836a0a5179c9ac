"""Transformers backend: batched step sampling with a KV cache, exact sampled log-probs.

Sampling and scoring share one function, :func:`sampling_logprobs`, so a step's
log-probability is the same whether it was just sampled or is scored later.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from gsi.backends.base import TokenizedPrompts, copies
from gsi.backends.law import STEP_SEPARATOR, sampling_logprobs, separator_tokens
from gsi.engines.hf_tree import (
    additive_mask,
    bucketed_tree_forward,
    prefix_items,
    store_prefixes,
    token_logprobs,
    tree_forward,
)
from gsi.engines.prefix_cache import PrefixCache
from gsi.groups import split_by_problem
from gsi.types import SamplingParams, StepSample

log = logging.getLogger(__name__)


class HFBackend(TokenizedPrompts):
    """A causal LM from a local directory or hub id, run with ``transformers``."""

    def __init__(
        self,
        path: str,
        name: str = "",
        dtype: str = "float32",
        device: str = "auto",
        num_threads: int | None = None,
        prefix_cache: int = 512,
        load_format: str = "auto",
    ) -> None:
        from gsi.engines.hf import load

        self.name = name or path
        self.model, self.tokenizer, self.device = load(path, None, dtype, device, num_threads, load_format=load_format)
        self.tokenizer.padding_side = "left"
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.eos_id = self.tokenizer.eos_token_id
        self.context_window = getattr(self.model.config, "max_position_embeddings", None)
        # A step ends when its text contains the separator, as vLLM's stop strings do.
        self.stop_ids, self.partial_ids = separator_tokens(self.tokenizer, STEP_SEPARATOR)
        self.step_separator = STEP_SEPARATOR
        self.prefix_cache = PrefixCache(prefix_cache)
        self.lm_head = self.model.get_output_embeddings()
        self.dtype = next(self.model.parameters()).dtype

    # ------------------------------------------------------------------ helpers
    def _head(self, hidden):
        """Logits from last hidden states (the LM head, with the soft cap of models that have one)."""
        logits = self.lm_head(hidden)
        cap = getattr(self.model.config, "final_logit_softcapping", None)
        if cap:
            import torch

            logits = torch.tanh(logits / cap) * cap
        return logits

    def _prefill(self, prompt_ids: Sequence[Sequence[int]], conts: Sequence[Sequence[Sequence[int]]] | None = None):
        """One row per prompt: its uncached tokens, then ``conts[i]`` packed after it
        (:func:`gsi.engines.hf_tree.tree_forward`); stores the prompts' KV for the next step."""
        groups = [(ids, conts[i] if conts else []) for i, ids in enumerate(prompt_ids)]
        batch = tree_forward(self.model.base_model, groups, self.prefix_cache, self.pad_id, self.device)
        store_prefixes(self.prefix_cache, prompt_ids, batch)
        return batch

    # ------------------------------------------------------------------ protocol
    def sample(
        self,
        prompts: Sequence[str],
        n: int,
        seeds: Sequence[int],
        params: SamplingParams,
    ) -> list[list[StepSample]]:
        """``n`` steps per prompt, drawn together in one row per prompt: the prompt's KV is
        computed (or reused) once and never copied; each draw sees the prompt and its own
        tokens only (a tree attention mask). At temperature 0 the draw is the greedy step
        (log-prob 0), computed once and copied ``n`` times."""
        import torch

        if not prompts:
            return []
        if params.temperature == 0 and n > 1:
            return copies(self.sample(prompts, 1, seeds, params), n)
        num, rows = len(prompts), len(prompts) * n
        # Per-problem uniforms: draw j of problem i uses row j of its own stream, so the
        # result does not depend on which other problems share the batch.
        uniforms = np.concatenate(
            [np.random.default_rng(s).random((n, params.max_tokens)) for s in seeds]
        )
        uniforms_t = torch.from_numpy(uniforms).to(self.device, torch.float64)
        steps = params.max_tokens
        tokens = torch.full((rows, steps), self.pad_id, dtype=torch.long)
        logprob = np.zeros(rows)
        length = np.zeros(rows, dtype=np.int64)
        finish = ["length"] * rows
        stop_ids = torch.tensor([self.eos_id, *self.stop_ids])
        with torch.inference_mode():
            prompt_ids = self._encode_prompts(prompts, steps)
            batch = self._prefill(prompt_ids)
            ends = torch.tensor([batch.prefix_end(b, len(ids)) for b, ids in enumerate(prompt_ids)], device=self.device)
            last = self._head(batch.hidden[torch.arange(num, device=self.device), ends])
            logits = last.repeat_interleave(n, dim=0)
            cache, prompt_keys = batch.cache, batch.key_valid
            starts = torch.tensor([len(ids) for ids in prompt_ids], device=self.device)[:, None]
            own = torch.eye(n, dtype=torch.bool, device=self.device)
            running = torch.arange(num)  # original problem of each row in the running batch
            alive = torch.ones(rows, dtype=torch.bool)  # per draw (original order)
            for t in range(steps):
                flat = (running[:, None] * n + torch.arange(n)).flatten()  # draws in running order
                logp = sampling_logprobs(logits, params.temperature, params.top_p)
                cdf = logp.double().exp().cumsum(-1)
                u = uniforms_t[flat.to(self.device), t : t + 1].clamp(min=1e-12) * cdf[:, -1:]
                next_tok = torch.searchsorted(cdf, u).clamp(max=cdf.shape[-1] - 1).squeeze(-1)
                tok_lp = logp.gather(-1, next_tok[:, None]).squeeze(-1)
                next_cpu, lp_cpu = next_tok.cpu(), tok_lp.double().cpu().numpy()
                live = alive[flat]
                orig = flat[live].numpy()
                tokens[orig, t] = next_cpu[live]
                logprob[orig] += lp_cpu[live.numpy()]
                length[orig] += 1
                stopped = torch.isin(next_cpu, stop_ids) & live
                for r in torch.nonzero(stopped).flatten().tolist():
                    finish[int(flat[r])] = "eos" if int(next_cpu[r]) == self.eos_id else "stop"
                alive[flat[stopped]] = False
                if self.partial_ids and t > 0:
                    self._stop_on_text(tokens, length, alive, finish)
                if not bool(alive.any()) or t == steps - 1:
                    break
                next_tok = next_tok.view(-1, n)
                done = ~alive.view(num, n)[running].any(-1)
                if int(done.sum()) * 4 >= len(running):
                    # A quarter of the running problems are done: drop them from the cache.
                    keep = torch.nonzero(~done).flatten()
                    keep_d = keep.to(self.device)
                    cache.batch_select_indices(keep_d)
                    running = running[keep]
                    prompt_keys, starts, next_tok = prompt_keys[keep_d], starts[keep_d], next_tok[keep_d]
                width = len(running)
                allowed = torch.cat(
                    [prompt_keys[:, None, :].expand(width, n, -1), own.repeat(1, t + 1)[None].expand(width, -1, -1)],
                    dim=2,
                )
                out = self.model.base_model(
                    input_ids=next_tok,
                    attention_mask=additive_mask(allowed[:, None], self.dtype),
                    position_ids=(starts + t).expand(width, n),
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = out.past_key_values
                logits = self._head(out.last_hidden_state).flatten(0, 1)
        return self._collect(tokens, length, logprob, finish, len(prompts), n)

    def _stop_on_text(self, tokens, length, alive, finish) -> None:
        """Stop draws whose last two tokens spell the separator across their boundary."""
        for r in torch_nonzero(alive):
            end = int(length[r])
            if int(tokens[r, end - 2]) in self.partial_ids:
                if self.step_separator in self.tokenizer.decode(tokens[r, :end].tolist()):
                    alive[r] = False
                    finish[r] = "stop"

    def _collect(self, tokens, length, logprob, finish, num_prompts, n) -> list[list[StepSample]]:
        out: list[list[StepSample]] = []
        for i in range(num_prompts):
            group = []
            for j in range(n):
                r = i * n + j
                ids = tokens[r, : int(length[r])].tolist()
                if finish[r] == "eos":
                    ids = ids[:-1]
                text = self.tokenizer.decode(ids, skip_special_tokens=False)
                group.append(StepSample(text, int(length[r]), float(logprob[r]), finish[r]))  # type: ignore[arg-type]
            out.append(group)
        return out

    def score(
        self,
        prompts: Sequence[str],
        steps: Sequence[Sequence[StepSample]],
        params: SamplingParams,
    ) -> list[np.ndarray]:
        """``log pi(step | prompt)`` for every given step.

        One row per prompt: its KV is computed (or reused) once, its steps are packed
        after it (:func:`gsi.engines.hf_tree.tree_forward`; rows of similar size run
        together), and logits are computed in chunks at the positions that predict a step
        token only.
        """
        import torch

        counts = [len(group) for group in steps]
        if sum(counts) == 0:
            return [np.zeros(0) for _ in prompts]
        keep = [i for i, c in enumerate(counts) if c]
        conts = [[self._encode_step(step) for step in steps[i]] for i in keep]
        width = max(len(c) for group in conts for c in group)
        prompt_ids = self._encode_prompts([prompts[i] for i in keep], width)
        first = np.cumsum([0] + [len(group) for group in conts])  # each prompt's first step
        hidden, targets, owner, items = [], [], [], [None] * len(conts)
        with torch.inference_mode():
            groups = [(ids, [c[:-1] for c in group]) for ids, group in zip(prompt_ids, conts)]
            for members, batch in bucketed_tree_forward(self.model.base_model, groups, self.prefix_cache,
                                                        self.pad_id, self.device):
                rows, cols = [], []
                for b, i in enumerate(members):
                    end = batch.prefix_end(b, len(prompt_ids[i]))
                    for j, c in enumerate(conts[i]):
                        if not c:
                            continue
                        # the prompt's last token predicts c[0], c[t] predicts c[t + 1]
                        cols += [end] + [batch.starts[b][j] + t for t in range(len(c) - 1)]
                        rows += [b] * len(c)
                        targets += c
                        owner += [first[i] + j] * len(c)
                hidden.append(batch.hidden[torch.tensor(rows, dtype=torch.long, device=self.device),
                                           torch.tensor(cols, dtype=torch.long, device=self.device)])
                if self.prefix_cache.max_entries > 0:
                    for i, item in zip(members, prefix_items([prompt_ids[i] for i in members], batch)):
                        items[i] = item
            if self.prefix_cache.max_entries > 0:
                self.prefix_cache.store_all(items)  # all rows together: the cache holds every live problem
            totals = torch.zeros(int(first[-1]), dtype=torch.float64, device=self.device)
            if targets:
                hidden = torch.cat(hidden)
                lp = token_logprobs(
                    self._head, hidden, torch.tensor(targets, device=self.device),
                    lambda logits: sampling_logprobs(logits, params.temperature, params.top_p),
                )
                totals.index_add_(0, torch.tensor(owner, device=self.device), lp)
        return split_by_problem(totals.cpu().numpy(), counts)


def torch_nonzero(mask) -> list[int]:
    import torch

    return torch.nonzero(mask).flatten().tolist()
