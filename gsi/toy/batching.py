"""Right-padding of token id lists into training tensors, shared by the toy trainers."""

from __future__ import annotations

from typing import Sequence


def pad_right(seqs: Sequence[Sequence[int]], labels: Sequence[Sequence[int]], pad_id: int):
    """``(input_ids, attention_mask, labels)`` tensors, right-padded to the longest
    sequence (labels padded with -100, which the losses ignore)."""
    import torch

    size, width = len(seqs), max(len(s) for s in seqs)
    ids = torch.full((size, width), pad_id, dtype=torch.long)
    mask = torch.zeros((size, width), dtype=torch.long)
    target = torch.full((size, width), -100, dtype=torch.long)
    for i, (s, lab) in enumerate(zip(seqs, labels)):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
        target[i, : len(lab)] = torch.tensor(lab)
    return ids, mask, target
