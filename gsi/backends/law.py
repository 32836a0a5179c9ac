"""The sampling law shared by every backend: tempered, then top-p truncated.

Sampling and scoring in every backend go through :func:`sampling_logprobs`, so a step's
log-probability is the same number whether it was just sampled or is scored later, and
whichever engine computed the logits.
"""

from __future__ import annotations

STEP_SEPARATOR = "\n\n"  # GSI.md: a step runs up to and including the first blank line


def separator_tokens(tokenizer, separator: str) -> tuple[list[int], set[int]]:
    """The step-ending rule shared by the backends, as token sets.

    A step ends when its text contains ``separator``. ``stop`` holds the tokens whose text
    contains it (Qwen has ``".\n\n"`` as one token, not only ``"\n\n"``), so sampling
    one ends the step at once; ``partial`` holds the tokens that end in a proper prefix
    of it (``"\n"``), after which the next token can complete it across the boundary.
    """
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    stop = [i for i, t in enumerate(pieces) if separator in t]
    heads = tuple(separator[:k] for k in range(1, len(separator)))
    stop_set = set(stop)
    partial = {i for i, t in enumerate(pieces) if heads and t.endswith(heads) and i not in stop_set}
    return stop, partial


def sampling_logprobs(logits, temperature: float, top_p: float):
    """Log-probabilities of the law actually sampled from: tempered, then top-p truncated.

    Top-p keeps the smallest set of most likely tokens whose mass reaches ``top_p``
    (always at least the top token) and renormalises over it.
    """
    import torch

    logp = torch.log_softmax(logits.float() / temperature, dim=-1)
    if top_p >= 1.0:
        return logp
    sorted_lp, order = logp.sort(dim=-1, descending=True)
    probs = sorted_lp.exp()
    mass_before = probs.cumsum(dim=-1) - probs
    drop_sorted = mass_before >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted)
    logp = logp.masked_fill(drop, float("-inf"))
    return logp - logp.logsumexp(dim=-1, keepdim=True)
