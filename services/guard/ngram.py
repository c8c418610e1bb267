"""The guard's cheap first stage: logistic-regression heads over hashed word n-grams (1-3 grams, l2-normalised).

Featurising and scoring a 1 KB text costs well under a millisecond on one core, against tens of milliseconds
for a MiniLM pass, so the learned injection classifier runs MiniLM only on the texts this stage cannot call
benign with confidence (see :mod:`services.guard.scanners.injection_model`). Like the MiniLM heads it scores a
text sentence by sentence (short sentences joined) and takes the highest score, so one injected sentence in
a long benign document is not averaged away.

A head is stored as ``.npz`` (the non-zero weights of the hashed feature space, the intercept, and the
training metadata as JSON), written by ``python -m services.guard.training.train_heads``.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

try:
    from sklearn.feature_extraction._hashing_fast import transform as _hashing_transform
except ImportError:  # a private helper: fall back to hashing n-grams one by one
    _hashing_transform = None

N_FEATURES = 2**20
NGRAMS = (1, 3)
# Words, and runs of punctuation (chat-template and delimiter spoofing look like "<|", "###", "[/").
TOKEN_PATTERN = r"(?u)\b\w+\b|[^\w\s]{2,4}"
_SENTENCE = re.compile(r"(?<=[.!?。])\s+|\n+")
_MIN_SEGMENT_WORDS = 6  # shorter sentences ("Hi!", "Thanks.") join the next one
_MAX_SEGMENT_CHARS = 600  # longer sentences are cut (with overlap) so a long one cannot dilute an attack


def vectorizer(norm: str | None = "l2"):
    from sklearn.feature_extraction.text import HashingVectorizer

    return HashingVectorizer(
        analyzer="word", ngram_range=NGRAMS, n_features=N_FEATURES, alternate_sign=False, norm=norm,
        lowercase=True, token_pattern=TOKEN_PATTERN, dtype=np.float32,
    )  # fmt: skip


_COUNTS = vectorizer(None)
_TOKENS = re.compile(TOKEN_PATTERN)
_CACHE: OrderedDict[str, SegmentCounts] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def features(text: str):
    """Sparse l2-normalised features of :func:`segments` of ``text``, one row each (scikit-learn's vectorizer;
    what the heads are trained on). Each sentence is featurised once (a neighbour pair is the sum of its two
    sentences' counts). Scoring uses :class:`SegmentCounts`, which computes the same logits without
    building sparse matrices."""
    from sklearn.preprocessing import normalize

    segs = segments(text)
    counts = _COUNTS.transform(segs if len(segs) == 1 else segs[: (len(segs) + 1) // 2])
    if len(segs) > 1:
        import scipy.sparse as sp

        counts = sp.vstack([counts, counts[:-1] + counts[1:]]).tocsr()
    return normalize(counts, copy=False)


def _ngrams(text: str) -> list[str]:
    """The vectorizer's analyzer (lowercase, :data:`TOKEN_PATTERN`, :data:`NGRAMS`), without its call layers."""
    words = _TOKENS.findall(text.lower())
    low, high = NGRAMS
    out = list(words) if low == 1 else []
    for n in range(max(low, 2), high + 1):
        out.extend(map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)))
    return out


def _hash(sentences: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(feature index of every n-gram occurrence, sentence of each): the vectorizer's hashing without its
    per-call validation and sparse-matrix bookkeeping (most of its cost on a short text)."""
    grams = [_ngrams(s) for s in sentences]
    if _hashing_transform is not None:
        one = itertools.repeat(1)
        pairs = (zip(gs, one, strict=False) for gs in grams)  # (n-gram, count 1), as the vectorizer feeds it
        indices, indptr, _ = _hashing_transform(pairs, N_FEATURES, np.float32, False, seed=0)
        indices = np.asarray(indices, dtype=np.int64)
        lengths = np.diff(np.asarray(indptr))
    else:  # scikit-learn moved its private helper: hash each n-gram like it does
        from sklearn.utils import murmurhash3_32

        flat = [murmurhash3_32(g, seed=0) for gs in grams for g in gs]
        indices = np.array([abs(h) % N_FEATURES if h != -(2**31) else (2**31 - 1 - (N_FEATURES - 1)) % N_FEATURES
                            for h in flat], dtype=np.int64)  # fmt: skip
        lengths = np.array([len(gs) for gs in grams])
    return indices, np.repeat(np.arange(len(sentences)), lengths)


class SegmentCounts:
    """The n-gram counts of a text's :func:`segments`, kept in a form any head scores with a few numpy calls.

    Row ``r < k`` is sentence ``r``; row ``k + p`` the neighbour pair ``(p, p + 1)``, whose counts are the sum
    of its sentences'. A head's logit of a row is ``counts · coef / ||counts|| + intercept``, as on
    :func:`features`' l2-normalised rows: the dot product of a pair is the sum of its sentences', and its
    squared norm theirs plus twice the overlap of their counts.
    """

    __slots__ = ("count", "feature", "norm", "row", "sentences")

    def __init__(self, text: str) -> None:
        segs = segments(text)
        k = 1 if len(segs) == 1 else (len(segs) + 1) // 2
        self.sentences = k
        indices, rows = _hash(segs[:k])
        keys, count = np.unique(rows * N_FEATURES + indices, return_counts=True)
        self.row = keys // N_FEATURES
        self.feature = keys % N_FEATURES
        self.count = count.astype(np.float64)
        squares = np.bincount(self.row, weights=self.count * self.count, minlength=k).astype(np.float64)
        if k > 1:
            # The overlap of sentence p and p + 1: the features of p + 1 looked up among p's.
            nxt = self.row > 0
            shifted = keys[nxt] - N_FEATURES
            pos = np.minimum(np.searchsorted(keys, shifted), len(keys) - 1)
            hit = keys[pos] == shifted
            overlap = np.bincount(self.row[nxt][hit] - 1, weights=self.count[pos[hit]] * self.count[nxt][hit],
                                  minlength=k - 1)  # fmt: skip
            squares = np.concatenate([squares, squares[:-1] + squares[1:] + 2 * overlap])
        self.norm = np.sqrt(squares)

    @classmethod
    def of(cls, text: str) -> SegmentCounts:
        """Cached for the last few texts, so the injection and toxicity heads featurise a text once."""
        with _CACHE_LOCK:
            hit = _CACHE.get(text)
            if hit is not None:
                return hit
        out = cls(text)
        with _CACHE_LOCK:
            _CACHE[text] = out
            if len(_CACHE) > 64:
                _CACHE.popitem(last=False)
        return out

    def logits(self, coef: np.ndarray, intercept: float) -> np.ndarray:
        k = self.sentences
        dots = np.bincount(self.row, weights=self.count * coef[self.feature], minlength=k).astype(np.float64)
        if k > 1:
            dots = np.concatenate([dots, dots[:-1] + dots[1:]])
        return np.divide(dots, self.norm, out=np.zeros_like(dots), where=self.norm > 0) + intercept


def segments(text: str, max_segments: int = 64) -> list[str]:
    """What a text is scored on: the text itself when it is one sentence; else its sentences (short ones
    joined to the next, long ones cut; at most ``max_segments``, half from the head, half from the tail)
    and each pair of neighbours, so an instruction split over a sentence boundary is still seen whole.
    Never the whole of a longer text: bag-of-n-gram scores of long texts drift with their length."""
    out: list[str] = []
    pending = ""
    for sentence in _SENTENCE.split(text):
        if not sentence.strip():
            continue
        pending = f"{pending} {sentence}" if pending else sentence
        if len(pending.split()) >= _MIN_SEGMENT_WORDS:
            out.extend(_cut(pending))
            pending = ""
    if pending:
        out.extend(_cut(pending))
    if len(out) > max_segments:
        head = max_segments - max_segments // 2
        out = out[:head] + out[len(out) - max_segments // 2 :]
    if len(out) <= 1:
        return [text]
    return [*out, *(f"{a} {b}" for a, b in itertools.pairwise(out))]


def _cut(sentence: str) -> list[str]:
    if len(sentence) <= _MAX_SEGMENT_CHARS:
        return [sentence]
    step = _MAX_SEGMENT_CHARS - 100
    return [sentence[i : i + _MAX_SEGMENT_CHARS] for i in range(0, len(sentence) - 100, step)]


class NgramHead:
    """One binary logistic-regression head over :func:`vectorizer`'s features."""

    def __init__(self, path: Path) -> None:
        data = np.load(path)
        self.meta: dict = json.loads(str(data["meta"]))
        if self.meta.get("n_features") != N_FEATURES or tuple(self.meta.get("ngrams", ())) != NGRAMS:
            raise RuntimeError(f"{path.name} was trained on other features than this guard computes")
        self.coef = np.zeros(N_FEATURES, dtype=np.float32)
        self.coef[data["indices"]] = data["values"]
        self.intercept = float(data["intercept"])

    def probabilities(self, text: str) -> np.ndarray:
        """Probability of each of :func:`segments` of ``text``."""
        return 1.0 / (1.0 + np.exp(-SegmentCounts.of(text).logits(self.coef, self.intercept)))

    def probability(self, text: str) -> float:
        """The highest probability over the text's segments."""
        return float(self.probabilities(text).max())


def save(path: Path, coef: np.ndarray, intercept: float, meta: dict) -> Path:
    coef = np.asarray(coef, dtype=np.float32).ravel()
    indices = np.flatnonzero(np.abs(coef) > 1e-6).astype(np.int32)
    meta = {**meta, "n_features": N_FEATURES, "ngrams": list(NGRAMS), "token_pattern": TOKEN_PATTERN}
    with path.open("wb") as f:
        np.savez_compressed(f, indices=indices, values=coef[indices], intercept=np.float32(intercept),
                            meta=np.array(json.dumps(meta, sort_keys=True)))  # fmt: skip
    return path
