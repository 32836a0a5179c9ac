"""RowMemo fills the prompt log-prob rows a prefix-cache hit skipped from the request
that computed them, keyed by the token prefix (pure: no engine)."""

from __future__ import annotations

import numpy as np

from gsi.backends.vllm_rows import RowMemo, prefix_keys


def test_prefix_keys_name_the_tokens_up_to_each_position():
    a, b = prefix_keys([1, 2, 3, 4], 2), prefix_keys([1, 2, 3, 5], 2)
    assert len(a) == 2 and a[0] == b[0] and a[1] != b[1]
    # the same tokens give the same key whichever position the continuation starts at
    assert prefix_keys([1, 2, 3, 4], 1)[1:] == a
    assert prefix_keys([9, 2, 3, 4], 2)[0] != a[0]


def test_missing_positions_come_from_a_request_with_the_same_prefix():
    memo = RowMemo()
    prompt = [7, 7, 7]
    full = memo.add(0, prompt + [1, 2, 3], start=3, cached=0, known=np.array([-0.1, -0.2, -0.3]))
    assert full == -0.1 - 0.2 - 0.3
    # request 1 shares the first two step tokens; its cache hit covers tokens 0..4, so
    # rows of positions 3 and 4 are missing and position 5 (token 9) is computed
    assert memo.add(1, prompt + [1, 2, 9], start=3, cached=4, known=np.array([-2.0])) is None
    # request 2 diverges inside the hit: position 4 (token 8) was never computed
    assert memo.add(2, prompt + [1, 8, 9], start=3, cached=4, known=np.array([-1.0])) is None
    done, left = memo.resolve()
    assert done == {1: -0.1 - 0.2 - 2.0} and left == [2]


def test_the_last_calls_rows_are_kept_for_the_next():
    first = RowMemo()
    first.add(0, [5, 1, 2], start=1, cached=0, known=np.array([-0.5, -0.25]))
    second = RowMemo(first.values)
    assert second.add(0, [5, 1, 2, 3], start=1, cached=2, known=np.array([-1.0])) is None
    done, left = second.resolve()
    assert done == {0: -0.5 - 0.25 - 1.0} and not left
