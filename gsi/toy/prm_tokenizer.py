"""A Qwen2-compatible byte-level BPE tokenizer for the toy PRM, trained on toy-task text.

transformers reads a ``qwen2`` model's tokenizer through its own ``Qwen2Tokenizer``
(byte-level BPE, Qwen's pre-tokenizer regex, NFC), so the toy PRM's tokenizer is built
with exactly that pipeline from a small vocabulary learnt here, and saved as Qwen ships
its tokenizers: ``vocab.json``, ``merges.txt``, ``tokenizer.json`` and a
``tokenizer_config.json`` with a Qwen-style chat template and the special tokens
``<|endoftext|>``, ``<|im_start|>``, ``<|im_end|>`` and the step tag ``<extra_0>``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gsi.rewards.prm_format import QWEN_MATH_SYSTEM, QWEN_STEP_TAG
from gsi.toy.task import training_problem

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", QWEN_STEP_TAG)
VOCAB_SIZE = 400
# Qwen2.5's template, less tools: a default system turn when none is given.
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] != 'system' %}"
    "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def _corpus(count: int = 2000, seed: int = 7) -> list[str]:
    """Conversations about toy problems, with right and wrong steps, to learn merges from."""
    rng = np.random.default_rng(seed)
    texts = []
    for _ in range(count):
        p = training_problem(rng)
        steps = [s.strip() for s in p.solution_steps()]
        wrong = f"{p.values()[1]}{p.ops[0]}{p.operands[1]}={int(rng.integers(0, 1000))}"
        texts.append(
            f"<|im_start|>system\n{QWEN_MATH_SYSTEM}<|im_end|>\n<|im_start|>user\n{p.prompt.strip()}"
            f"<|im_end|>\n<|im_start|>assistant\n{QWEN_STEP_TAG.join(steps + [wrong])}<|im_end|>\n"
        )
    return texts


def _pipeline(vocab: dict[str, int], merges: list[tuple[str, str]]):
    """The tokenizers object transformers' ``Qwen2Tokenizer`` builds from vocab + merges."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, normalizers, pre_tokenizers
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX
    from tokenizers import Regex

    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, continuing_subword_prefix="",
                               end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL_TOKENS])
    return tok


def train_vocabulary(vocab_size: int = VOCAB_SIZE) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Byte-level BPE vocabulary and merges learnt from :func:`_corpus` (deterministic)."""
    from tokenizers import pre_tokenizers, trainers

    tok = _pipeline({t: i for i, t in enumerate(SPECIAL_TOKENS)}, [])
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_corpus(), trainer=trainer)
    state = json.loads(tok.to_str())["model"]
    return state["vocab"], [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in state["merges"]]


# Whole words merged by the character-level vocabulary: the chat roles and ``\\boxed``.
WORDS = ("system", "user", "assistant", "\\boxed")


def char_vocabulary(words=WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Every byte its own token (as the toy LMs read text: one character a token), plus
    one token for each of ``words``, merged left to right (its prefixes become tokens
    too; none of them occurs in a toy question or answer but inside ``\\boxed``). For
    models started from a toy LM: the question and the steps are the LM's characters."""
    from tokenizers import pre_tokenizers

    vocab = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
    for ch in sorted(pre_tokenizers.ByteLevel.alphabet()):
        vocab[ch] = len(vocab)
    merges = []
    for word in words:
        for k in range(2, len(word) + 1):
            if word[:k] not in vocab:
                merges.append((word[: k - 1], word[k - 1]))
                vocab[word[:k]] = len(vocab)
    return vocab, merges


def build_prm_tokenizer(directory: Path, chars: bool = False) -> None:
    """Write the tokenizer files into ``directory``: a BPE vocabulary learnt from toy
    text (the committed PRM's) or, with ``chars``, :func:`char_vocabulary`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    vocab, merges = char_vocabulary() if chars else train_vocabulary()
    tok = _pipeline(vocab, merges)
    tok.save(str(directory / "tokenizer.json"))
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, sort_keys=True) + "\n")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "added_tokens_decoder": {
            str(vocab[t]): {"content": t, "lstrip": False, "normalized": False, "rstrip": False,
                            "single_word": False, "special": True}
            for t in SPECIAL_TOKENS
        },
        "additional_special_tokens": ["<|im_start|>", "<|im_end|>", QWEN_STEP_TAG],
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "unk_token": None,
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
        "model_max_length": 512,
        "split_special_tokens": False,
        "add_prefix_space": False,
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
