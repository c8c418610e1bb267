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


def test_stack_weights_the_head_that_separates_better() -> None:
    from services.guard.training.train_heads import stack

    rng = np.random.default_rng(1)
    labels = np.array([0] * 500 + [1] * 500)
    # The n-gram head separates the classes; the MiniLM head is mostly noise, so their mean dilutes the first.
    fast = np.concatenate([rng.beta(1.5, 6, 500), rng.beta(8, 1.2, 500)])
    slow = rng.beta(2, 2, 1000)
    st = stack(fast, slow, labels, max_fpr=0.01)
    assert st is not None
    assert st["w_fast"] > abs(st["w_slow"])
    assert st["cv_fpr"] <= 0.01 and st["cv_recall"] > st["mean_cv_recall"]


def test_stack_is_dropped_when_it_does_not_beat_the_mean() -> None:
    from services.guard.training.train_heads import stack

    labels = np.array([0] * 100 + [1] * 100)
    # Both heads already put every attack over the threshold and every benign text under it.
    fast = np.concatenate([np.linspace(0.3, 0.6, 100), np.full(100, 0.99)])
    assert stack(fast, fast.copy(), labels, max_fpr=0.01) is None


def test_import_more_reads_prompt_lists_set_in_methods() -> None:
    from services.guard.training.import_more import _self_lists

    source = (
        "class Probe:\n"
        "    def __init__(self):\n"
        "        self.prompts = ['one', 'two']\n"
        "        self.templates = ['a {x}']\n"
        "        self.other = [call()]\n"
    )
    assert _self_lists(source) == {"prompts": ["one", "two"], "templates": ["a {x}"]}


def test_saved_mlp_head_scores_like_the_fitted_model(tmp_path, monkeypatch) -> None:
    from sklearn.neural_network import MLPClassifier

    from services.guard.embeddings import EmbeddingHead
    from services.guard.training import train_heads

    rng = np.random.default_rng(2)
    x = rng.normal(size=(300, 384)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0).astype(int)  # not linearly separable
    model = MLPClassifier(hidden_layer_sizes=(16,), max_iter=300, random_state=0).fit(x, y)

    class Stub:
        model_id = "stub"

    monkeypatch.setattr(train_heads, "DATA", tmp_path)
    path = train_heads.save("head.json", Stub(), ["injection"], model.coefs_[1].T, model.intercepts_[1], {},
                            hidden=(model.coefs_[0], model.intercepts_[0]))  # fmt: skip
    head = EmbeddingHead(path, "stub")
    for row in x[:20]:
        expected = model.predict_proba(row[None])[0, 1]
        assert abs(head.predict(row[None])["injection"] - expected) < 1e-4
