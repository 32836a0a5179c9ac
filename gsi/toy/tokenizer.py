"""Character-level tokenizer of the toy world, saved in Hugging Face format.

The blank line ``"\\n\\n"`` is one token (the step separator and a stop id) and
``\\boxed{`` is one token; every other character is its own token. A single newline is
not in the vocabulary, so a step can only end with the separator token.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from gsi.backends.law import STEP_SEPARATOR

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
BOXED_TOKEN = "\\boxed{"
_CHARS = string.digits + "+-*=(){}.,:;?! " + string.ascii_lowercase + string.ascii_uppercase + "\\"


def vocabulary() -> dict[str, int]:
    tokens = [PAD, BOS, EOS, UNK, STEP_SEPARATOR, BOXED_TOKEN, *_CHARS]
    return {tok: i for i, tok in enumerate(tokens)}


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` with left padding and BOS prepended."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = vocabulary()
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    core.pre_tokenizer = pre_tokenizers.Split(
        Regex(r"\\boxed\{|\n\n|[\s\S]"), behavior="isolated"
    )
    core.decoder = decoders.Fuse()
    core.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        padding_side="left",
        model_max_length=256,
    )


def save_tokenizer(tokenizer, directory: Path) -> None:
    """Save and pin the tokenizer class, which ``save_pretrained`` may record otherwise."""
    tokenizer.save_pretrained(directory)
    cfg_path = Path(directory) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["padding_side"] = "left"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
