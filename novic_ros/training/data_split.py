"""Which prompt rows are held out for validation, and the k-th training row, without an index
array over the whole data set: memory grows with the held-out set only."""
from __future__ import annotations

import numpy as np


class HeldOut:
    """A seeded random set of `round(num_rows * fraction)` held-out rows; every other row trains."""

    def __init__(self, num_rows: int, fraction: float, seed: int):
        self.num_rows = num_rows
        n_val = int(round(num_rows * fraction))
        rng = np.random.default_rng([seed, 0x5E1])
        picked = np.empty(0, np.int64)
        while len(picked) < n_val:                  # draw, drop repeats, top up: O(n_val) memory
            picked = np.unique(np.concatenate([picked, rng.integers(0, num_rows, n_val - len(picked))]))
        self.val_rows = rng.permutation(picked)     # random order: evaluation takes a prefix
        self._sorted = np.sort(picked)
        # The k-th training row is k plus the number of held-out rows at or below it; with
        # s[i] = sorted[i] - i that count is searchsorted(s, k, 'right').
        self._shifted = self._sorted - np.arange(len(picked))

    @property
    def num_train(self) -> int:
        return self.num_rows - len(self._sorted)

    def train_rows(self, k: np.ndarray) -> np.ndarray:
        """Row numbers of the k-th training rows (0 <= k < num_train)."""
        return k + np.searchsorted(self._shifted, k, side='right')

    def val_in(self, start: int, stop: int) -> np.ndarray:
        """Held-out rows in [start, stop), sorted."""
        return self._sorted[np.searchsorted(self._sorted, start):np.searchsorted(self._sorted, stop)]
