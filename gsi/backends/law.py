"""The sampling law shared by every backend: tempered, then top-p truncated.

Sampling and scoring in every backend go through :func:`sampling_logprobs`, so a step's
log-probability is the same number whether it was just sampled or is scored later, and
whichever engine computed the logits.

Temperature 0 is greedy decoding: the law at each position is a point mass on the
argmax token (ties go to the lowest token id, as ``torch.argmax`` breaks them), so a
step's log-probability is 0 for the model's greedy continuation and -inf for any other.
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
    (always at least the top token) and renormalises over it. ``temperature == 0``: the
    point mass on the argmax (0 there, -inf elsewhere; ties: the lowest token id), which
    every top-p keeps.
    """
    import torch

    if temperature == 0:
        return greedy_logprobs(logits)

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


def greedy_logprobs(logits):
    """The temperature-0 law: log-prob 0 at each row's argmax, -inf elsewhere.

    Ties go to the lowest token id (``torch.argmax`` returns the first maximum), the
    token that greedy sampling (transformers' ``generate(do_sample=False)``) picks.
    """
    import torch

    scores = logits.float()
    out = torch.full_like(scores, float("-inf"))
    return out.scatter_(-1, scores.argmax(dim=-1, keepdim=True), 0.0)
