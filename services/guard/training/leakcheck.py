"""Overlap between the injection evaluation set and training texts: equal after normalisation, near-identical
(character 5-gram Jaccard), or an evaluation text almost wholly inside a training text. Binary hashed 5-gram
sets, compared as one sparse product.

``tests/unit/test_guard_corpus.py`` fails on any overlap; ``import_corpora.py`` drops imported rows that
overlap (public jailbreak collections hold famous prompts that a hand-written evaluation line may quote) —
the only use of the evaluation texts outside ``make bench-guard``.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np

JACCARD_MAX = 0.6  # above this two texts are paraphrase-close (the same sentence, a word or two changed)
CONTAINMENT_MAX = 0.85  # share of an evaluation text's 5-grams found in one training text
CONTAINMENT_MIN_CHARS = 60  # containment is only meaningful for texts longer than a phrase


def normalise(text: str) -> str:
    """NFKC (full-width letters become ASCII), case-folded, punctuation and spacing collapsed."""
    return re.sub(r"[\W_]+", " ", unicodedata.normalize("NFKC", text).casefold()).strip()


def shingles(texts: list[str]):
    from sklearn.feature_extraction.text import HashingVectorizer

    vec = HashingVectorizer(
        analyzer="char",
        ngram_range=(5, 5),
        n_features=2**22,
        alternate_sign=False,
        norm=None,
        binary=True,
        lowercase=False,
    )
    return vec.transform([normalise(t) for t in texts]).tocsr()


def overlaps(eval_texts: list[str], train_texts: list[str]) -> list[tuple[str, int, int]]:
    """(kind, eval index, train index) for each overlapping pair."""
    found = []
    eval_norm = [normalise(t) for t in eval_texts]
    index = {t: i for i, t in enumerate(eval_norm)}
    for j, t in enumerate(train_texts):
        if normalise(t) and normalise(t) in index:
            found.append(("identical", index[normalise(t)], j))
    e, t = shingles(eval_texts), shingles(train_texts)
    inter = (e @ t.T).tocoo()
    e_size = np.asarray(e.sum(axis=1)).ravel()
    t_size = np.asarray(t.sum(axis=1)).ravel()
    for i, j, n in zip(inter.row, inter.col, inter.data, strict=True):
        if n / (e_size[i] + t_size[j] - n) > JACCARD_MAX:
            found.append(("near-identical", int(i), int(j)))
        elif len(eval_norm[i]) >= CONTAINMENT_MIN_CHARS and n / max(e_size[i], 1) > CONTAINMENT_MAX:
            found.append(("contained", int(i), int(j)))
    return found
