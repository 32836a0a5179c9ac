"""PRMs that are causal LMs judged by P(positive token) vs P(negative token) at each step.

Two formats cover the common open PRMs (one config each in ``conf/reward/``):

- ``step_tag`` (Math-Shepherd style): ``question + question_sep`` then each step as
  ``step_prefix + step.strip() + step_tag``, joined by ``step_sep``; a step is judged by
  the next-token logits right after its tag (Math-Shepherd: tag ``" ки"``, ``+``/``-``).
- ``chat`` (RLHFlow style): a conversation whose user turns are the question with the
  first step, then one step each, and whose assistant turns are the positive token; a
  step is judged by the logits that predict its assistant turn's content.

A step's probability is ``softmax(logit[positive], logit[negative])[0]``; the candidate's
reward aggregates them (``last``, ``min``, ``product``). Judge points are located by
character offsets, so a ``+`` inside a step (``3+5=8``) is never mistaken for a label.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from gsi.engines.hf import check_local_path
from gsi.errors import ConfigError
from gsi.rewards.prm import PATH_HINT
from gsi.rewards.prm_format import check_aggregation, score_candidates

FORMATS = ("step_tag", "chat")


class StepTagLMPRM:
    """A causal LM used as a PRM; see the module docstring for the formats."""

    def __init__(
        self,
        path: str,
        name: str = "",
        format: str = "step_tag",
        step_tag: str = " ки",
        positive: str = "+",
        negative: str = "-",
        step_prefix: str = "",
        step_sep: str = "\n",
        question_sep: str = " ",
        chat_template: str | None = None,
        aggregation: str = "last",
        dtype: str = "float32",
        device: str = "auto",
        batch_size: int = 64,
        max_length: int | None = None,
        num_threads: int | None = None,
        prefix_cache: int = 512,
        load_format: str = "auto",
    ) -> None:
        from gsi.engines.hf import load
        from gsi.engines.prefix_cache import PrefixCache

        if format not in FORMATS:
            raise ConfigError(f"reward.format={format!r} is not allowed: choose one of {', '.join(FORMATS)}")
        if batch_size < 1:
            raise ConfigError(f"reward.batch_size={batch_size} is not allowed: it must be >= 1")
        check_local_path(path, "reward.path", PATH_HINT)
        self.name = name or path
        self.format = format
        self.aggregation = check_aggregation(aggregation)
        self.step_tag, self.step_prefix, self.step_sep, self.question_sep = step_tag, step_prefix, step_sep, question_sep
        self.positive = positive
        self.batch_size, self.max_length = batch_size, max_length
        self.model, self.tokenizer, self.device = load(path, None, dtype, device, num_threads, load_format=load_format)
        if not self.tokenizer.is_fast:
            raise ConfigError(f"reward.path={path!r}: a fast tokenizer (character offsets) is needed")
        if chat_template is not None:
            self.tokenizer.chat_template = chat_template
        if format == "chat" and self.tokenizer.chat_template is None:
            raise ConfigError(f"reward.format='chat' but the tokenizer of {path!r} has no chat template: "
                             "set reward.chat_template")
        self.label_ids = [self._single_token(positive, "positive"), self._single_token(negative, "negative")]
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.prefix_cache = PrefixCache(prefix_cache)

    def _single_token(self, text: str, key: str) -> int:
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        if len(ids) != 1:
            raise ConfigError(f"reward.{key}={text!r} is {len(ids)} tokens for this tokenizer: it must be one token")
        return ids[0]

    # -------------------------------------------------------------- rendering
    def render(self, question: str, steps: Sequence[str]) -> tuple[str, list[int]]:
        """The text and, per step, the character offset where its judgement is read."""
        if self.format == "chat":
            return self._render_chat(question, steps)
        text = question.strip() + self.question_sep
        cuts = []
        for k, step in enumerate(steps):
            if k:
                text += self.step_sep
            text += self.step_prefix.format(k=k + 1) + step.strip() + self.step_tag
            cuts.append(len(text))
        return text, cuts

    def _render_chat(self, question: str, steps: Sequence[str]) -> tuple[str, list[int]]:
        messages: list[dict[str, str]] = []
        cuts = []
        for k, step in enumerate(steps):
            content = question.strip() + self.question_sep + step.strip() if k == 0 else step.strip()
            messages.append({"role": "user", "content": content})
            head = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            cuts.append(len(head))
            messages.append({"role": "assistant", "content": self.positive})
        text = self.tokenizer.apply_chat_template(messages, tokenize=False)
        if any(not text.startswith(self.positive, c) for c in cuts):
            raise ConfigError("the chat template does not render prefixes of the conversation as prefixes; "
                             "use format='step_tag' for this model")
        return text, cuts

    def encode(self, question: str, steps: Sequence[str]) -> tuple[list[int], list[int]] | None:
        """(token ids, index of the token whose logits judge each step) or None."""
        text, cuts = self.render(question, steps)
        enc = self.tokenizer(text, add_special_tokens=self.format != "chat", return_offsets_mapping=True)
        ends = [end for start, end in enc["offset_mapping"]]
        starts = [start if end > start else None for start, end in enc["offset_mapping"]]
        points = []
        for c in cuts:
            # the token that ends exactly at the cut: its logits predict what follows
            matches = [t for t, (s, e) in enumerate(zip(starts, ends)) if s is not None and e == c]
            if not matches:
                return None  # a token straddles the cut: this step cannot be judged
            points.append(matches[-1])
        ids = list(enc["input_ids"])
        if self.max_length is not None and len(ids) > self.max_length:
            return None
        return ids, points

    # -------------------------------------------------------------- scoring
    def step_probabilities(self, encoded: Sequence[tuple[list[int], list[int]]]) -> list[np.ndarray]:
        from gsi.engines.hf import batched

        def run(ids, mask):
            logits = self.model(input_ids=ids, attention_mask=mask).logits
            return logits[..., self.label_ids].float().log_softmax(-1)[..., 0].exp().cpu().numpy()

        def read(pair, row, k):
            return pair[row, encoded[k][1]].astype(np.float64)

        return batched([e[0] for e in encoded], self.batch_size, run, read, self.pad_id, self.device)

    def score(
        self,
        questions: Sequence[str],
        previous: Sequence[Sequence[str]],
        candidates: Sequence[Sequence[str]],
    ) -> list[np.ndarray]:
        """Packed like :class:`~gsi.rewards.prm.HFQwenPRM` (:mod:`gsi.rewards.prm_packed`):
        a problem's shared prefix runs once (its KV reused from the previous step when
        cached), its candidates' own tokens after it; equal to :meth:`step_probabilities`
        on the full inputs up to float rounding. A model whose logits are not its LM head's
        output (soft-capped or scaled) is scored by full recomputation."""
        if not self._packable():
            return score_candidates(self, questions, previous, candidates)
        from gsi.rewards.prm_packed import score_packed

        items = []
        for question, prev, cands in zip(questions, previous, candidates):
            for c in cands:
                e = self.encode(question, list(prev) + [c])
                items.append(None if e is None else (tuple(e[0]), tuple(e[1])))
        return score_packed(self, items, candidates, self.model.base_model, self._pair_probabilities, judged_prefix)

    def _packable(self) -> bool:
        import torch

        config = self.model.config
        return (isinstance(self.model.get_output_embeddings(), torch.nn.Linear)
                and not getattr(config, "final_logit_softcapping", None)
                and getattr(config, "logit_scale", None) in (None, 1.0)
                and getattr(config, "logits_scaling", None) in (None, 1.0))

    def _pair_probabilities(self, hidden):
        """P(positive) vs P(negative) at every position, from the two label rows of the
        LM head only (never the full vocabulary)."""
        import torch

        head = self.model.get_output_embeddings()
        bias = None if head.bias is None else head.bias[self.label_ids]
        logits = torch.nn.functional.linear(hidden, head.weight[self.label_ids], bias)
        return logits.float().log_softmax(-1)[..., 0].exp()


def judged_prefix(items: Sequence[tuple[tuple[int, ...], tuple[int, ...]]]) -> int:
    """Length of the prefix a problem's inputs share, cut after the last judged token
    before each one's own step (the steps chosen so far, which the next step's inputs
    start with); the common part when no earlier step is judged."""
    first = np.asarray(items[0][0])
    n = min(points[-1] if points else len(ids) for ids, points in items)  # each one's own step judged after
    for ids, _ in items[1:]:
        differ = np.nonzero(np.asarray(ids[:n]) != first[:n])[0]
        n = int(differ[0]) if len(differ) else n
    done = [t for t in items[0][1] if t < n]
    return done[-1] + 1 if done else max(n, 1)
