"""Train the guard's logistic-regression heads over all-MiniLM-L6-v2 embeddings (the same ONNX model and
segmentation the guard runs), and write them as small JSON files the guard loads at start-up:

    .venv/bin/python -m services.guard.training.train_heads

Reads only ``*_train.jsonl`` (see ``build_corpus.py``); the evaluation sets are for ``make bench-guard``.
The injection head is trained at segment level (see :func:`train_injection`). The regularisation strength
is picked by 5-fold cross-validation on the training set, and the cross-validated operating point (the
lowest probability threshold with at most 2% false positives on held-out training folds) is recorded
next to the weights.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from services.guard import ngram
from services.guard.embeddings import Embedder
from services.guard.scanners.injection import normalise

DATA = Path(__file__).resolve().parent.parent / "data"
CORPUS = DATA / "corpus"
TOXICITY_LABELS = ["harassment", "hate", "violence", "self_harm", "sexual"]
# The injection cascade's false-positive budget on held-out training folds: the 2% target. (Half of it, 1%, left
# room for benign prompts unlike any in training; with the harder negatives of session 6 the 2% point gave more
# recall on both development sets together at 1.4% of their benign texts: corpus README, "Second hand-written file".)
OPERATING_FPR = 0.02
# The injection head over MiniLM (:func:`_mlp`): hidden units and L2 penalty (one setting, not searched).
HIDDEN_UNITS = 256
MLP_ALPHA = 1e-3


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line.strip()]


def injection_rows() -> list[dict]:
    """Every injection training file: the template corpus (``build_corpus.py``), rows imported from open-source
    red-team packages (``import_corpora.py``) and hand-written rows (see the corpus README)."""
    return [r for path in sorted(CORPUS.glob("injection_train*.jsonl")) for r in load(path.name)]


def embed_all(embedder: Embedder, texts: list[str]) -> np.ndarray:
    return np.stack([embedder.embed_whole(t) for t in texts])


def fit(x: np.ndarray, y: np.ndarray, seed: int = 0):
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    best = None
    for c in (0.5, 1.0, 2.0, 4.0, 8.0, 16.0):
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
        cv = StratifiedKFold(5, shuffle=True, random_state=seed)
        probs = cross_val_predict(model, x, y, cv=cv, method="predict_proba")[:, 1]
        loss = -np.mean(y * np.log(probs + 1e-9) + (1 - y) * np.log(1 - probs + 1e-9))
        if best is None or loss < best[0]:
            best = (loss, c, probs)
    _, c, probs = best
    negatives = np.sort(probs[y == 0])
    # Lowest threshold whose held-out false-positive rate stays at or under 2%.
    k = int(np.floor(0.02 * len(negatives)))
    operating = float(negatives[-(k + 1)]) + 1e-6 if len(negatives) else 0.5
    recall = float(np.mean(probs[y == 1] >= operating))
    model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit(x, y)
    return model, {"C": c, "cv_log_loss": round(float(best[0]), 4), "cv_threshold_fpr2": round(operating, 4),
                   "cv_recall_at_threshold": round(recall, 4)}


def save(name: str, embedder: Embedder, labels: list[str], coefs, intercepts, meta: dict,
         hidden: tuple | None = None) -> Path:  # fmt: skip
    """A head as :class:`~services.guard.embeddings.EmbeddingHead` loads it; ``hidden``: (weights (384, units),
    biases (units,)) of a ReLU layer the logistic regression (``coefs``: (labels, units)) reads instead of
    the embedding."""
    path = DATA / name
    payload = {
        "embedding_model": embedder.model_id,
        "labels": labels,
        "coef": [[round(float(v), 6) for v in row] for row in coefs],
        "intercept": [round(float(v), 6) for v in intercepts],
        "training": meta,
    }
    if hidden is not None:
        weights, biases = hidden
        payload["hidden"] = {"coef": [[round(float(v), 5) for v in row] for row in np.asarray(weights).T],
                             "intercept": [round(float(v), 6) for v in biases]}  # fmt: skip
    path.write_text(json.dumps(payload, separators=(",", ":")) + "\n")
    return path


def embed_cached(embedder: Embedder, texts: list[str]) -> tuple[np.ndarray, list[np.ndarray]]:
    """Whole-text and segment embeddings of ``texts``. With ``FLOTILLA_GUARD_TRAIN_CACHE`` set to a folder,
    they are kept there between runs (keyed by model and text), so retraining after a corpus edit embeds only
    the new texts."""
    import hashlib
    import os
    import pickle

    folder = os.environ.get("FLOTILLA_GUARD_TRAIN_CACHE")
    model = hashlib.sha1(embedder.model_id.encode()).hexdigest()[:12]
    path = Path(folder) / f"embeddings-{model}.pkl" if folder else None
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    if path is not None and path.exists():
        cache = pickle.loads(path.read_bytes())
    out = []
    for t in texts:
        key = hashlib.sha1(t.encode()).hexdigest()
        if key not in cache:
            cache[key] = (embedder.embed_whole(t), embedder.embed(t))
        out.append(cache[key])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(pickle.dumps(cache))
    return np.stack([w for w, _ in out]), [s for _, s in out]


def _mlp():
    """The injection head over MiniLM: one ReLU layer of :data:`HIDDEN_UNITS`, then a logistic output (one
    setting tried). Against a logistic regression over the same instances, everything else equal (rules +
    cascade at the 0.8 threshold): on 8,897 training texts, first evaluation set recall 1.00 vs 0.97 (both
    1.1% FPR), blind hold-out 0.95 vs 0.89 (both 1.8%); on 9,798 (foreign documents and more imports added),
    0.98 at 1.1% vs 0.97 at 1.7%, and 0.92 at 3.0% vs 0.92 at 3.6%."""
    from sklearn.neural_network import MLPClassifier

    return MLPClassifier(hidden_layer_sizes=(HIDDEN_UNITS,), alpha=MLP_ALPHA, max_iter=200, random_state=0)


def train_injection(embedder: Embedder, texts: list[str], labels: np.ndarray) -> tuple:
    """Multiple-instance training at the granularity the guard scores at (sentence segments, max over them):
    every segment of a benign text is a negative; of an attack text, the whole text and its most
    attack-like segment are positives (chosen by two rounds of a logistic regression). The head itself is
    :func:`_mlp`. Returns the model, its metadata and held-out text scores (5 folds over texts; a text's score
    is its highest segment's)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold

    whole, segments = embed_cached(embedder, texts)
    model = None
    chosen: dict[int, np.ndarray] = {}
    for round_ in range(3):
        if model is not None:
            chosen = {i: segments[i][int(np.argmax(model.predict_proba(segments[i])[:, 1]))]
                      for i in np.flatnonzero(labels == 1)}
        x, y = _instances(range(len(texts)), whole, segments, labels, chosen)
        if round_ < 2:
            model = LogisticRegression(C=4.0, class_weight="balanced", max_iter=5000).fit(x, y)
    held_out = np.zeros(len(texts))
    for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(texts)), labels):
        xf, yf = _instances(train, whole, segments, labels, chosen)
        fold = _mlp().fit(xf, yf)
        held_out[test] = [fold.predict_proba(segments[i])[:, 1].max() for i in test]
    model = _mlp().fit(x, y)
    loss = -np.mean(labels * np.log(held_out + 1e-9) + (1 - labels) * np.log(1 - held_out + 1e-9))
    meta = {"head": "mlp", "hidden_units": HIDDEN_UNITS, "alpha": MLP_ALPHA, "iterations": int(model.n_iter_),
            "cv_log_loss": round(float(loss), 4), "texts": len(texts), "attack_texts": int(labels.sum()),
            "instances": len(y), "positive_instances": int(y.sum())}  # fmt: skip
    return model, meta, held_out


def _instances(idx, whole: np.ndarray, segments: list[np.ndarray], labels: np.ndarray, chosen: dict):
    rows, y = [], []
    for i in idx:
        if labels[i] == 0:
            rows += [whole[i], *segments[i]]
            y += [0] * (1 + len(segments[i]))
        else:
            rows += [whole[i]] + ([chosen[i]] if i in chosen else [])
            y += [1] * (1 + (i in chosen))
    return np.stack(rows), np.array(y)


def _mil_fit(segs: list, wholes: list, labels: np.ndarray, c: float, rounds: int = 3):
    """Logistic regression over sparse segment features, multiple-instance style (see :func:`train_injection`):
    every instance of a negative text is a negative; a positive text's whole text and (after the first round)
    its most positive instance are positives."""
    import scipy.sparse as sp
    from sklearn.linear_model import LogisticRegression

    negatives = [segs[i] for i in np.flatnonzero(labels == 0)]
    wholes = [wholes[i] for i in np.flatnonzero(labels == 1)]
    model = None
    for _ in range(rounds):
        chosen = list(wholes)
        if model is not None:
            for i in np.flatnonzero(labels == 1):
                if segs[i].shape[0] > 1:
                    chosen.append(segs[i][int(np.argmax(model.decision_function(segs[i])))])
        x = sp.vstack(negatives + chosen).tocsr()
        y = np.array([0] * sum(m.shape[0] for m in negatives) + [1] * len(chosen))
        model = LogisticRegression(C=c, class_weight="balanced", solver="liblinear", max_iter=1000).fit(x, y)
    return model


def _train_ngram(texts: list[str], labels: np.ndarray):
    """A cascade's first stage (:mod:`services.guard.ngram`). C is picked by 5-fold cross-validation over
    texts (text score: highest over its segments). Returns the model, its metadata and the held-out folds'
    text scores."""
    from sklearn.model_selection import StratifiedKFold

    vec = ngram.vectorizer()
    segs = [ngram.features(normalise(t)[0]) for t in texts]
    wholes = [vec.transform([normalise(t)[0]]) for t in texts]
    best = None
    for c in (2.0, 8.0, 32.0):
        probs = np.zeros(len(texts))
        for train, test in StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(texts)), labels):
            model = _mil_fit([segs[i] for i in train], [wholes[i] for i in train], labels[train], c, rounds=2)
            probs[test] = [model.predict_proba(segs[i])[:, 1].max() for i in test]
        loss = -np.mean(labels * np.log(probs + 1e-9) + (1 - labels) * np.log(1 - probs + 1e-9))
        if best is None or loss < best[0]:
            best = (loss, c, probs)
    loss, c, probs = best
    model = _mil_fit(segs, wholes, labels, c)
    meta = {"C": c, "cv_log_loss": round(float(loss), 4), "texts": len(texts), "positive_texts": int(labels.sum())}
    return model, meta, probs


def skip_meta(probs: np.ndarray, labels: np.ndarray) -> dict:
    """``skip_below``, the probability under which the second stage (MiniLM) is not run, from the held-out
    folds' positive scores: at most 1% of the training positives (and never more than 0.3 probability) would
    skip it."""
    positives = np.sort(probs[labels == 1])
    skip_below = float(min(0.3, positives[int(np.floor(0.01 * len(positives)))]))
    return {"skip_below": round(skip_below, 4),
            "cv_positives_skipped": round(float(np.mean(positives < skip_below)), 4),
            "cv_negatives_skipped": round(float(np.mean(probs[labels == 0] < skip_below)), 4)}


def train_ngram(name: str, texts: list[str], labels: np.ndarray) -> dict:
    model, meta, probs = _train_ngram(texts, labels)
    meta.update(skip_meta(probs, labels))
    ngram.save(DATA / name, model.coef_[0], float(model.intercept_[0]), meta)
    return meta


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-z))


def operating_shift(fast: np.ndarray, slow: np.ndarray, labels: np.ndarray, threshold: float = 0.8,
                    max_fpr: float = OPERATING_FPR) -> dict:
    """The logit offset added to both injection heads' intercepts so that the cascade's score, on held-out
    training folds, crosses the guard's default blocking threshold for at most ``max_fpr`` of the benign
    texts, with as many attacks as possible above it. Chosen on the training set only; the evaluation set
    plays no part."""
    best = None
    for delta in np.round(np.arange(-4.0, 4.0001, 0.05), 2):
        f = _sigmoid(_logit(fast) + delta)
        s = _sigmoid(_logit(slow) + delta)
        skip = skip_meta(f, labels)["skip_below"]
        score = np.where(f < skip, f, (f + s) / 2)
        fpr = float(np.mean(score[labels == 0] >= threshold))
        recall = float(np.mean(score[labels == 1] >= threshold))
        if fpr <= max_fpr and (best is None or delta > best["delta"]):
            best = {"delta": float(delta), "cv_fpr": round(fpr, 4), "cv_recall": round(recall, 4), "max_fpr": max_fpr}
    return best or {"delta": 0.0, "cv_fpr": None, "cv_recall": None, "max_fpr": max_fpr}


def stack(fast: np.ndarray, slow: np.ndarray, labels: np.ndarray, threshold: float = 0.8,
          max_fpr: float = OPERATING_FPR) -> dict | None:
    """How the cascade combines its two heads' (already shifted) probabilities for a text that reaches MiniLM:
    a logistic regression over their logits, fitted on the held-out training folds' scores of those texts,
    its bias then moved (like :func:`operating_shift`) to the largest value that keeps at most ``max_fpr`` of
    the benign training texts at or over ``threshold``. Returned only when it keeps more held-out attacks over
    the threshold than the plain mean of the two probabilities at the same false-positive budget; None
    otherwise (the guard then averages). Training folds only; the evaluation set plays no part."""
    from sklearn.linear_model import LogisticRegression

    skip = skip_meta(fast, labels)["skip_below"]
    deep = fast >= skip
    x = np.column_stack([_logit(fast), _logit(slow)])
    if len(set(labels[deep].tolist())) < 2:
        return None
    model = LogisticRegression(C=1.0, class_weight="balanced", max_iter=1000).fit(x[deep], labels[deep])
    w_fast, w_slow = (float(v) for v in model.coef_[0])
    bias = float(model.intercept_[0])

    def rates(score: np.ndarray) -> tuple[float, float]:
        return float(np.mean(score[labels == 0] >= threshold)), float(np.mean(score[labels == 1] >= threshold))

    best = None
    for offset in np.round(np.arange(-8.0, 8.0001, 0.05), 2):
        fpr, recall = rates(np.where(deep, _sigmoid(x @ [w_fast, w_slow] + bias + offset), fast))
        if fpr <= max_fpr and (best is None or offset > best[0]):
            best = (float(offset), fpr, recall)
    mean_fpr, mean_recall = rates(np.where(deep, (fast + slow) / 2, fast))
    if best is None or best[2] <= mean_recall:
        return None
    return {"w_fast": round(w_fast, 6), "w_slow": round(w_slow, 6), "bias": round(bias + best[0], 6),
            "cv_fpr": round(best[1], 4), "cv_recall": round(best[2], 4), "threshold": threshold,
            "mean_cv_fpr": round(mean_fpr, 4), "mean_cv_recall": round(mean_recall, 4)}


def _checkpointed(stage: str, texts: list[str], labels: np.ndarray, train):
    """``train()`` (a head, its metadata, its held-out scores), kept in ``FLOTILLA_GUARD_TRAIN_CACHE`` when that
    is set, keyed by the corpus and this script's source: a retrain cut off by a time limit resumes after the
    stages it finished."""
    import hashlib
    import os
    import pickle

    folder = os.environ.get("FLOTILLA_GUARD_TRAIN_CACHE")
    if not folder:
        return train()
    key = hashlib.sha1(Path(__file__).read_bytes())
    for text, label in zip(texts, labels, strict=True):
        key.update(f"{int(label)}{text}\0".encode())
    path = Path(folder) / f"{stage}-{key.hexdigest()[:16]}.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    out = train()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(out))
    return out


def train_injection_heads(embedder: Embedder) -> tuple[dict, dict]:
    """Both injection heads, then one logit offset for both (:func:`operating_shift`), the cascade's
    ``skip_below`` on the shifted n-gram scores, and how the two heads' scores are combined (:func:`stack`)."""
    rows = injection_rows()
    texts = [r["text"] for r in rows]
    labels = np.array([r["label"] for r in rows])
    ng_model, ng_meta, fast = _checkpointed("ngram", texts, labels, lambda: _train_ngram(texts, labels))
    print(f"injection n-gram head: {ng_meta}", flush=True)
    model, meta, slow = _checkpointed("minilm", texts, labels, lambda: train_injection(embedder, texts, labels))
    shift = operating_shift(fast, slow, labels)
    delta = shift["delta"]
    fast, slow = _sigmoid(_logit(fast) + delta), _sigmoid(_logit(slow) + delta)  # as the saved heads score
    ng_meta.update(skip_meta(fast, labels), operating_point=shift)
    ngram.save(DATA / "injection_ngram.npz", ng_model.coef_[0], float(ng_model.intercept_[0]) + delta, ng_meta)
    meta["operating_point"] = shift
    meta["stack"] = stack(fast, slow, labels)
    print(f"injection stack: {meta['stack']}", flush=True)
    save("injection_head.json", embedder, ["injection"], model.coefs_[1].T, model.intercepts_[1] + delta, meta,
         hidden=(model.coefs_[0], model.intercepts_[0]))  # fmt: skip
    return ng_meta, meta


def train_toxicity_ngram() -> dict:
    """The toxicity cascade's gate: any category vs none, with the injection corpus' benign texts as extra
    negatives (they share the guard's everyday vocabulary)."""
    rows = load("toxicity_train.jsonl")
    benign = [r["text"] for r in load("injection_train.jsonl") if r["label"] == 0]
    texts = [r["text"] for r in rows] + benign
    labels = np.array([int(bool(r["labels"])) for r in rows] + [0] * len(benign))
    return train_ngram("toxicity_ngram.npz", texts, labels)


def main(argv: list[str]) -> int:
    """``--injection``: only the injection heads (the toxicity corpus has not changed)."""
    embedder = Embedder()
    ng_meta, meta = train_injection_heads(embedder)
    print(f"injection_ngram.npz: {ng_meta}\ninjection_head.json: {meta}", flush=True)
    if "--injection" in argv:
        return 0
    print(f"toxicity_ngram.npz: {train_toxicity_ngram()}", flush=True)

    rows = load("toxicity_train.jsonl")
    x = embed_all(embedder, [r["text"] for r in rows])
    coefs, intercepts, metas = [], [], {}
    for label in TOXICITY_LABELS:
        y = np.array([label in r["labels"] for r in rows], dtype=int)
        model, meta = fit(x, y)
        meta.update(examples=len(rows), positives=int(y.sum()))
        coefs.append(model.coef_[0])
        intercepts.append(model.intercept_[0])
        metas[label] = meta
    path = save("toxicity_head.json", embedder, TOXICITY_LABELS, coefs, intercepts, metas)
    print(f"{path.name}: {json.dumps(metas)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
