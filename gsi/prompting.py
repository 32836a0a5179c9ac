"""Prompts per model family: the text the language models continue for a problem.

``model.prompt`` in the model config picks the style:

* ``none``: the data set's own prompt (the toy world writes its prompts itself);
* ``plain``: ``template`` with ``{question}`` filled in, e.g. ``"Question: {question}\\nAnswer:"``;
* ``chat``: the tokenizer's chat template (of ``tokenizer``, by default the small model),
  with an optional ``system`` message and ``template`` as the user message, ending in
  the assistant turn the models then write step by step. Qwen2.5-Math-Instruct's
  reference prompt is ``system: "Please reason step by step, and put your final answer
  within \\boxed{}."``.

Both models of a pair continue the same text, so they must share a chat format (true of
the paper's Qwen2.5-Math pair).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Sequence

from gsi.errors import ConfigError
from gsi.types import Problem

STYLES = ("none", "plain", "chat")


class PromptFormatter:
    def __init__(
        self,
        style: str = "none",
        template: str = "{question}",
        system: str | None = None,
        tokenizer: str | None = None,
    ) -> None:
        if style not in STYLES:
            raise ConfigError(f"model.prompt.style={style!r} is not allowed: choose one of {', '.join(STYLES)}")
        if "{question}" not in template:
            raise ConfigError(f"model.prompt.template={template!r} has no {{question}} placeholder: add one")
        if style == "chat" and not tokenizer:
            raise ConfigError("model.prompt.style=chat needs model.prompt.tokenizer (a tokenizer with a chat template)")
        self.style = style
        self.template = template
        self.system = system
        self.tokenizer_path = tokenizer
        self._tokenizer = None

    def _chat_tokenizer(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                tok = AutoTokenizer.from_pretrained(self.tokenizer_path)
            except OSError as exc:
                raise ConfigError(
                    f"model.prompt.tokenizer={self.tokenizer_path!r} could not be loaded ({exc}): "
                    "point it at a local model folder or a cached hub id"
                ) from None
            if not getattr(tok, "chat_template", None):
                raise ConfigError(
                    f"model.prompt.tokenizer={self.tokenizer_path!r} has no chat template: "
                    "use model.prompt.style=plain with a template instead"
                )
            self._tokenizer = tok
        return self._tokenizer

    def __call__(self, question: str) -> str:
        user = self.template.replace("{question}", question)
        if self.style == "plain":
            return user
        tok = self._chat_tokenizer()
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}
        ]
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        # The backends encode prompts with the tokenizer's special tokens; a template that
        # writes BOS itself would then give two.
        bos = tok.bos_token
        if bos and text.startswith(bos) and tok.encode("", add_special_tokens=True)[:1] == [tok.bos_token_id]:
            text = text[len(bos):]
        return text

    def apply(self, problems: Sequence[Problem]) -> list[Problem]:
        """Problems with ``prompt`` rebuilt from ``question`` (unchanged for style none)."""
        if self.style == "none":
            return list(problems)
        return [replace(p, prompt=self(p.question or p.prompt)) for p in problems]
