"""A transformers KV cache that appends in place.

transformers' ``DynamicLayer`` concatenates the old keys and values with the new ones at
every forward pass, a copy of the whole cache per layer: for a scoring call after a long
cached prefix that is a second copy of every prefix, and for sampling one per generated
token (at the paper's shapes, gigabytes of memory traffic per decoding step).
:class:`GrowingLayer` keeps them in a buffer with room after them and writes the new
states into that room; ``keys`` / ``values`` are views of the filled part, which the
attention kernels read as they are (same numbers as a contiguous copy).
"""

from __future__ import annotations

from typing import Any, Sequence

from transformers.cache_utils import Cache, DynamicLayer


class GrowingLayer(DynamicLayer):
    """One layer's KV in ``[rows, heads, capacity, head_dim]`` buffers, the first
    ``length`` positions filled. An update that does not fit moves them into buffers
    half as long again as it needs (one copy; a decoding loop copies O(log) times, not
    once per token)."""

    def __init__(self):
        super().__init__()
        self._buffers: tuple[Any, Any] | None = None
        self._length = 0

    @classmethod
    def over(cls, keys, values, length: int) -> "GrowingLayer":
        """A layer whose buffers are ``keys`` / ``values`` (filled up to ``length``)."""
        layer = cls()
        layer.dtype, layer.device, layer.is_initialized = keys.dtype, keys.device, True
        layer._buffers, layer._length = (keys, values), length
        layer.keys, layer.values = keys[:, :, :length], values[:, :, :length]
        return layer

    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        self._buffers, self._length = None, 0

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self._length + key_states.shape[-2]
        if self._buffers is None or end > self._buffers[0].shape[-2]:
            self._reallocate(key_states, end)
        keys, values = self._buffers
        keys[:, :, self._length : end] = key_states
        values[:, :, self._length : end] = value_states
        self._length = end
        self.keys, self.values = keys[:, :, :end], values[:, :, :end]
        return self.keys, self.values

    def _reallocate(self, like, end: int) -> None:
        shape = (like.shape[0], like.shape[1], end + end // 2, like.shape[3])
        buffers = []
        for old in (self.keys, self.values):
            buffer = like.new_empty(shape)
            if self._length:
                buffer[:, :, : self._length] = old
            buffers.append(buffer)
        self._buffers = (buffers[0], buffers[1])

    def _adopt(self) -> None:
        """After an operation of the base class replaced ``keys`` / ``values``: they are
        the content; the next update moves them into new buffers."""
        self._buffers = None
        self._length = 0 if self.keys is None or self.keys.numel() == 0 else self.keys.shape[-2]

    def batch_select_indices(self, indices) -> None:
        super().batch_select_indices(indices)
        self._adopt()

    def batch_repeat_interleave(self, repeats: int) -> None:
        super().batch_repeat_interleave(repeats)
        self._adopt()

    def reorder_cache(self, beam_idx) -> None:
        super().reorder_cache(beam_idx)
        self._adopt()

    def crop(self, tokens_to_remove: int) -> None:
        super().crop(tokens_to_remove)
        self._adopt()

    def reset(self) -> None:
        super().reset()
        self._buffers, self._length = None, 0


def prefilled_cache(hits: Sequence[tuple[int, Any, Any]], known: int, extra: int) -> Cache:
    """A cache of ``len(hits)`` rows holding each hit's KV (``(cached length, [(K, V)
    per layer], extra)``, K / V ``[heads, length, head_dim]``) right-aligned at ``known``
    positions, zeros before it (padding the mask hides; finite, so no NaN reaches the
    softmax), and room for ``extra`` more positions. At least one hit is cached."""
    rows, layers = len(hits), []
    reference = next(kv for c, kv, _ in hits if c)
    for i, (k_ref, _) in enumerate(reference):
        heads, _, dim = k_ref.shape
        buffers = [k_ref.new_empty((rows, heads, known + extra, dim)) for _ in range(2)]
        for b, (c, kv, _) in enumerate(hits):
            if c < known:
                for buffer in buffers:
                    buffer[b, :, : known - c].zero_()
            if c:
                for buffer, part in zip(buffers, kv[i]):
                    buffer[b, :, known - c : known] = part
        layers.append(GrowingLayer.over(buffers[0], buffers[1], known))
    return Cache(layers=layers)


def growing_cache(count: int) -> Cache:
    """An empty cache of ``count`` :class:`GrowingLayer` layers."""
    return Cache(layers=[GrowingLayer() for _ in range(count)])
