"""The in-place KV cache (``gsi.engines.hf_cache``): the same keys and values as
transformers' concatenating ``DynamicLayer`` through appends, row selection and a
prefilled start, with a few reallocations instead of a copy per update."""

from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from gsi.engines.hf_cache import GrowingLayer, prefilled_cache


def states(rows: int, length: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(rows, 2, length, 8, generator=g), torch.randn(rows, 2, length, 8, generator=g)


def test_appends_and_row_selection_equal_the_concatenating_layer():
    ours, theirs = GrowingLayer(), DynamicLayer()
    buffers = set()
    for step, length in enumerate([30, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4]):
        if step == 9:  # a quarter of the rows finished: keep the others
            keep = torch.tensor([0, 2, 3])
            ours.batch_select_indices(keep)
            theirs.batch_select_indices(keep)
        k, v = states(4 if step < 9 else 3, length, step)
        a, b = ours.update(k, v), theirs.update(k, v)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert ours.get_seq_length() == theirs.get_seq_length()
        buffers.add(ours._buffers[0].data_ptr())
    # 16 updates after the first: a handful of buffers, not one per update
    assert len(buffers) <= 5


def test_a_prefilled_cache_right_aligns_each_rows_kv_after_zeros():
    lengths = [5, 0, 3]
    hits = []
    for b, c in enumerate(lengths):
        kv = [tuple(t[0] for t in states(1, c, 10 * b + i)) for i in range(2)] if c else None
        hits.append((c, kv, None))
    cache = prefilled_cache(hits, 5, 2)
    assert len(cache.layers) == 2
    for i, layer in enumerate(cache.layers):
        assert layer.get_seq_length() == 5 and layer._buffers[0].shape[-2] == 7
        for b, (c, kv, _) in enumerate(hits):
            assert torch.equal(layer.keys[b, :, : 5 - c], torch.zeros(2, 5 - c, 8))
            if c:
                assert torch.equal(layer.keys[b, :, 5 - c :], kv[i][0])
                assert torch.equal(layer.values[b, :, 5 - c :], kv[i][1])
        k, v = states(3, 2, 99)
        keys, values = layer.update(k, v)  # fits: written in place after the prefix
        assert keys.data_ptr() == layer._buffers[0].data_ptr() and torch.equal(keys[:, :, 5:], k)
