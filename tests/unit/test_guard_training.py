"""The injection heads' operating point is chosen on held-out training scores only."""

from __future__ import annotations

import numpy as np

from services.guard.training.train_heads import operating_shift


def test_operating_shift_keeps_held_out_false_positives_under_budget() -> None:
    rng = np.random.default_rng(0)
    labels = np.array([0] * 400 + [1] * 400)
    # Benign texts score low, attacks mostly high but many under the 0.8 threshold (an under-confident head).
    fast = np.concatenate([rng.beta(1, 8, 400), rng.beta(5, 2, 400)])
    slow = np.concatenate([rng.beta(1, 6, 400), rng.beta(6, 2, 400)])
    shift = operating_shift(fast, slow, labels, max_fpr=0.01)
    assert shift["cv_fpr"] <= 0.01
    assert shift["delta"] > 0  # an under-confident head is shifted up
    base = operating_shift(fast, slow, labels, max_fpr=0.0)
    assert base["delta"] <= shift["delta"] and base["cv_recall"] <= shift["cv_recall"]


def test_operating_shift_lowers_an_over_confident_head() -> None:
    labels = np.array([0] * 100 + [1] * 100)
    fast = np.concatenate([np.linspace(0.5, 0.9, 100), np.full(100, 0.99)])
    shift = operating_shift(fast, fast, labels, max_fpr=0.01)
    assert shift["delta"] < 0 and shift["cv_fpr"] <= 0.01 and shift["cv_recall"] == 1.0
