"""Transformers backend: batched step sampling with a KV cache, exact sampled log-probs.

Sampling and scoring share one function, :func:`sampling_logprobs`, so a step's
log-probability is the same whether it was just sampled or is scored later.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from gsi.backends.base import TokenizedPrompts
from gsi.backends.law import STEP_SEPARATOR, sampling_logprobs, separator_tokens
from gsi.backends.prefix_cache import PrefixCache
from gsi.types import SamplingParams, StepSample

log = logging.getLogger(__name__)

def _resolve_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


class HFBackend(TokenizedPrompts):
    """A causal LM from a local directory or hub id, run with ``transformers``."""

    def __init__(
        self,
        path: str,
        name: str = "",
        dtype: str = "float32",
        device: str = "auto",
        step_separator: str = STEP_SEPARATOR,
        num_threads: int | None = None,
        prefix_cache: int = 512,
    ) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        if num_threads is not None:
            # Process-wide. Tiny models gain nothing from intra-op threads, and on a
            # busy CPU spinning OpenMP workers make every small op ~10x slower.
            torch.set_num_threads(num_threads)
        self.name = name or path
        self.device = _resolve_device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        self.tokenizer.padding_side = "left"
        self.model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
        self.model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id
        if self.pad_id is None:
            self.pad_id = self.tokenizer.eos_token_id
        self.eos_id = self.tokenizer.eos_token_id
        self.context_window = getattr(self.model.config, "max_position_embeddings", None)
        # A step ends when its text contains the separator, as vLLM's stop strings do.
        self.stop_ids, self.partial_ids = separator_tokens(self.tokenizer, step_separator)
        self.step_separator = step_separator
        self.prefix_cache = PrefixCache(prefix_cache)

    # ------------------------------------------------------------------ helpers
    def _left_pad(self, seqs: Sequence[Sequence[int]]):
        import torch

        width = max(len(s) for s in seqs)
        ids = torch.full((len(seqs), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(seqs), width), dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                ids[i, width - len(s):] = torch.tensor(s, dtype=torch.long)
                mask[i, width - len(s):] = 1
        return ids.to(self.device), mask.to(self.device)

    @staticmethod
    def _positions(mask):
        return (mask.cumsum(-1) - 1).clamp(min=0)

    def _prefill(self, prompt_ids: Sequence[Sequence[int]]):
        """Run the prompts, reusing cached KV of their longest known prefixes.

        Returns (last-position logits [B, V], the KV cache, the attention mask). Rows
        are laid out as [cached part, left-padded | new part, left-padded]; the mask
        has holes where the padding is, and positions follow the mask.
        """
        import torch
        from transformers import DynamicCache

        hits = [self.prefix_cache.lookup(ids) for ids in prompt_ids]
        known = max(h[0] for h in hits)
        new = [list(ids[c:]) for ids, (c, _) in zip(prompt_ids, hits)]
        ids, new_mask = self._left_pad(new)
        if known == 0:
            mask = new_mask
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=self._positions(mask), use_cache=True)
        else:
            ref = next(kv for c, kv in hits if c)
            rows = len(prompt_ids)
            old_mask = torch.zeros((rows, known), dtype=torch.long, device=self.device)
            layers = []
            for k_ref, v_ref in ref:
                heads, _, dim = k_ref.shape
                layers.append([
                    torch.zeros((rows, heads, known, dim), dtype=k_ref.dtype, device=self.device)
                    for _ in range(2)
                ])
            for b, (c, kv) in enumerate(hits):
                if not c:
                    continue
                old_mask[b, known - c:] = 1
                for (keys, values), (k, v) in zip(layers, kv):
                    keys[b, :, known - c:] = k
                    values[b, :, known - c:] = v
            mask = torch.cat([old_mask, new_mask], dim=1)
            positions = self._positions(mask)[:, known:]
            cache = DynamicCache(ddp_cache_data=[(k, v) for k, v in layers])
            out = self.model(
                input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True
            )
        cache = out.past_key_values
        valid = mask.bool()
        for b, full in enumerate(prompt_ids):
            kv = [(layer.keys[b][:, valid[b]], layer.values[b][:, valid[b]]) for layer in cache.layers]
            self.prefix_cache.store(full, kv)
        return out.logits[:, -1, :], cache, mask

    # ------------------------------------------------------------------ protocol
    def sample(
        self,
        prompts: Sequence[str],
        n: int,
        seeds: Sequence[int],
        params: SamplingParams,
    ) -> list[list[StepSample]]:
        """``n`` steps per prompt; the prompt's KV cache is computed once and shared."""
        import torch

        if not prompts:
            return []
        rows = len(prompts) * n
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
            last, cache, mask = self._prefill(self._encode_prompts(prompts, steps))
            width = mask.shape[1]
            cache.batch_repeat_interleave(n)
            logits = last.repeat_interleave(n, dim=0)
            # Room for the whole step in the mask up front: no per-token concatenation.
            batch_mask = torch.ones((rows, width + steps), dtype=mask.dtype, device=self.device)
            batch_mask[:, :width] = mask.repeat_interleave(n, dim=0)
            positions = self._positions(batch_mask[:, :width])[:, -1:]
            cur = torch.arange(rows)  # original row of each row in the running batch
            alive = torch.ones(rows, dtype=torch.bool)
            for t in range(steps):
                logp = sampling_logprobs(logits, params.temperature, params.top_p)
                cdf = logp.double().exp().cumsum(-1)
                u = uniforms_t[cur.to(self.device), t : t + 1].clamp(min=1e-12) * cdf[:, -1:]
                next_tok = torch.searchsorted(cdf, u).clamp(max=cdf.shape[-1] - 1).squeeze(-1)
                tok_lp = logp.gather(-1, next_tok[:, None]).squeeze(-1)
                next_cpu, lp_cpu = next_tok.cpu(), tok_lp.double().cpu().numpy()
                orig = cur[alive].numpy()
                tokens[orig, t] = next_cpu[alive]
                logprob[orig] += lp_cpu[alive.numpy()]
                length[orig] += 1
                stopped = torch.isin(next_cpu, stop_ids) & alive
                for r in torch.nonzero(stopped).flatten().tolist():
                    finish[int(cur[r])] = "eos" if int(next_cpu[r]) == self.eos_id else "stop"
                alive &= ~stopped
                if self.partial_ids and t > 0:
                    self._stop_on_text(tokens, length, cur, alive, finish)
                if not bool(alive.any()) or t == steps - 1:
                    break
                if int((~alive).sum()) * 4 >= len(alive):
                    # A quarter of the running rows are done: drop them from the cache.
                    keep = torch.nonzero(alive).flatten()
                    keep_d = keep.to(self.device)
                    cache.batch_select_indices(keep_d)
                    cur, alive = cur[keep], alive[keep]
                    batch_mask, positions, next_tok = batch_mask[keep_d], positions[keep_d], next_tok[keep_d]
                positions = positions + 1
                out = self.model(
                    input_ids=next_tok[:, None],
                    attention_mask=batch_mask[:, : width + t + 1],
                    position_ids=positions,
                    past_key_values=cache,
                    use_cache=True,
                )
                cache = out.past_key_values
                logits = out.logits[:, -1, :]
        return self._collect(tokens, length, logprob, finish, len(prompts), n)

    def _stop_on_text(self, tokens, length, cur, alive, finish) -> None:
        """Stop rows whose last two tokens spell the separator across their boundary."""
        for k in torch_nonzero(alive):
            r = int(cur[k])
            end = int(length[r])
            if int(tokens[r, end - 2]) in self.partial_ids:
                if self.step_separator in self.tokenizer.decode(tokens[r, :end].tolist()):
                    alive[k] = False
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

        Each prompt is run once; its KV cache is shared by all of its steps, which are
        then run together in one forward pass (right-padded after the prompt).
        """
        import torch

        counts = [len(group) for group in steps]
        if sum(counts) == 0:
            return [np.zeros(0) for _ in prompts]
        keep = [i for i, c in enumerate(counts) if c]
        conts = [self._encode_step(step) for i in keep for step in steps[i]]
        width = max(len(c) for c in conts)
        prompt_ids = self._encode_prompts([prompts[i] for i in keep], width)
        rows = torch.repeat_interleave(torch.arange(len(keep)), torch.tensor([counts[i] for i in keep]))
        cont = torch.full((len(conts), width), self.pad_id, dtype=torch.long)
        cont_mask = torch.zeros((len(conts), width), dtype=torch.long)
        for r, c in enumerate(conts):
            cont[r, : len(c)] = torch.tensor(c, dtype=torch.long)
            cont_mask[r, : len(c)] = 1
        cont, cont_mask = cont.to(self.device), cont_mask.to(self.device)
        rows_d = rows.to(self.device)
        with torch.inference_mode():
            last, cache, mask = self._prefill(prompt_ids)
            first = last.index_select(0, rows_d)[:, None, :]
            if width > 1:
                cache.batch_select_indices(rows_d)
                prefix_mask = mask.index_select(0, rows_d)
                start = prefix_mask.sum(-1, keepdim=True)
                positions = start + torch.arange(width - 1, device=self.device)[None, :]
                rest = self.model(
                    input_ids=cont[:, :-1],
                    attention_mask=torch.cat([prefix_mask, cont_mask[:, :-1]], dim=1),
                    position_ids=positions,
                    past_key_values=cache,
                ).logits
                logits = torch.cat([first, rest], dim=1)
            else:
                logits = first
            logp = sampling_logprobs(logits, params.temperature, params.top_p)
            tok_lp = logp.gather(-1, cont[:, :, None]).squeeze(-1).double()
            # 0 * -inf would be NaN: zero the padding explicitly
            tok_lp = torch.where(cont_mask.bool(), tok_lp, torch.zeros_like(tok_lp))
            totals = tok_lp.sum(-1).cpu().numpy()
        out_list, k = [], 0
        for c in counts:
            out_list.append(totals[k : k + c])
            k += c
        return out_list


def torch_nonzero(mask) -> list[int]:
    import torch

    return torch.nonzero(mask).flatten().tolist()
