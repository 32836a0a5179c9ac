"""A Qwen2.5-Math-PRM-style model through vLLM's pooling runner (see ``gsi.rewards.prm``
for the format and the transformers twin).

With ``prefix_caching`` (default) the engine runs ``ALL`` pooling with prefix caching on:
the partial solutions of one problem share everything up to the candidate, so their KV
is computed once. Each input is cut after its last step tag (the PRM is causal: the
tokens after the tag do not change any tag's output), so the last tag is the last token,
which vLLM always computes. A request whose cache hit covers a tag it needs (every tag
for ``min`` / ``product``, the last one for ``last``) is scored again without reading
the cache. ``prefix_caching: false`` is the previous way: ``STEP`` pooling, which turns
prefix caching off for the whole engine. Both give the same rewards up to float error.
"""

from __future__ import annotations

from functools import partial
from types import SimpleNamespace
from typing import Sequence

import numpy as np

from gsi.engines.vllm import device_key, engine_options, start_engine
from gsi.errors import ConfigError
from gsi.rewards.prm import _QwenPRMBase
from gsi.rewards.prm_format import QWEN_MATH_SYSTEM, QWEN_STEP_TAG, encode_group, score_candidates


class VLLMQwenPRM(_QwenPRMBase):
    """vLLM returns, per request, the softmax over the 2 classes at each pooled token
    (shape (tokens, 2)); column 1 at a step tag is that step's probability of being right."""

    def __init__(
        self,
        path: str,
        name: str = "",
        aggregation: str = "last",
        system_prompt: str = QWEN_MATH_SYSTEM,
        step_tag: str = QWEN_STEP_TAG,
        prefix_caching: bool = True,
        dtype: str = "auto",
        gpu_memory_utilization: float = 0.9,
        max_model_len: int | None = None,
        tensor_parallel_size: int = 1,
        enforce_eager: bool = False,
        seed: int = 0,
        visible_devices: str | None = None,
        env: dict | None = None,
        engine_kwargs: dict | None = None,
    ) -> None:
        super().__init__(path, name, aggregation, system_prompt, step_tag, max_model_len)
        try:
            from vllm.config import PoolerConfig
        except ImportError as exc:
            raise ConfigError(
                f"reward._target_ needs vLLM, which is not installed ({exc}): "
                "install the vllm extra, or use reward=toy_prm (transformers)"
            ) from exc
        self.prefix_caching = prefix_caching
        pooler = (
            PoolerConfig(pooling_type="ALL") if prefix_caching
            else PoolerConfig(pooling_type="STEP", step_tag_id=self.step_tag_id)
        )
        options = engine_options(
            path, dtype, seed, gpu_memory_utilization, max_model_len, tensor_parallel_size, enforce_eager,
            engine_kwargs, runner="pooling", pooler_config=pooler, enable_prefix_caching=prefix_caching,
        )
        self.llm, self.releasable = start_engine(options, env, visible_devices, "reward")
        self.device_key = device_key(visible_devices)
        self.score_counts = {"requests": 0, "rescored": 0, "cached_tokens": 0}

    def step_probabilities(self, token_ids: Sequence[Sequence[int]], last_only: bool = False) -> list[np.ndarray]:
        """Per sequence, the positive-class probability at each step tag (``last_only``:
        at its last tag only, all ``last`` aggregation needs)."""
        if not self.prefix_caching:
            outputs = self._encode([list(ids) for ids in token_ids], None)
            return [out.outputs.data.float().cpu().numpy()[:, 1].astype(np.float64) for out in outputs]
        tags = [np.flatnonzero(np.asarray(ids) == self.step_tag_id) for ids in token_ids]
        cut = [list(ids[: t[-1] + 1]) for ids, t in zip(token_ids, tags)]
        wanted = [t[-1:] if last_only else t for t in tags]
        out: list[np.ndarray | None] = [None] * len(cut)
        todo = list(range(len(cut)))
        for read in (True, False):
            outputs = self._encode([cut[k] for k in todo], read)
            redo = []
            for k, o in zip(todo, outputs):
                cached = (o.num_cached_tokens or 0) if read else 0
                self.score_counts["cached_tokens"] += cached
                if wanted[k][0] < cached:  # a needed tag's row was read from the cache, not computed
                    redo.append(k)
                    continue
                rows = o.outputs.data.float().cpu().numpy()
                assert len(rows) == len(cut[k]) - cached, "ALL pooling returns the computed tokens' rows"
                out[k] = rows[wanted[k] - cached, 1].astype(np.float64)
            self.score_counts["requests"] += len(todo) if read else 0
            self.score_counts["rescored"] += len(redo)
            todo = redo
            if not todo:
                break
        return out  # type: ignore[return-value]

    def _encode(self, token_ids: list[list[int]], read_cache: bool | None):
        from vllm import PoolingParams

        params = None if read_cache is None else PoolingParams(skip_reading_prefix_cache=not read_cache)
        return self.llm.encode(
            [{"prompt_token_ids": ids} for ids in token_ids], params, pooling_task="token_classify", use_tqdm=False,
        )

    def reset_prefix_cache(self) -> None:
        """Empty the engine's prefix cache."""
        self.llm.reset_prefix_cache()

    def score(self, questions, previous, candidates) -> list[np.ndarray]:
        last = self.aggregation == "last"
        judge = SimpleNamespace(
            encode=self.encode, aggregation=self.aggregation,
            step_probabilities=partial(self.step_probabilities, last_only=last),
        )
        return score_candidates(judge, questions, previous, candidates, partial(encode_group, self))
