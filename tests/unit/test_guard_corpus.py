"""The guard's injection training corpus must not leak the evaluation set: no training text may equal an
evaluation text after normalisation, be near-identical to one, or contain one almost whole
(:mod:`services.guard.training.leakcheck`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from services.guard.training.leakcheck import overlaps

CORPUS = Path(__file__).resolve().parents[2] / "services" / "guard" / "data" / "corpus"


def _load(pattern: str) -> list[str]:
    return [
        json.loads(line)["text"]
        for path in sorted(CORPUS.glob(pattern))
        for line in path.read_text().splitlines()
        if line.strip()
    ]


def test_training_files_exist() -> None:
    names = {p.name for p in CORPUS.glob("injection_train*.jsonl")}
    assert {"injection_train.jsonl", "injection_train_imported.jsonl", "injection_train_handwritten.jsonl"} <= names


def test_no_eval_text_identical_near_identical_to_or_inside_a_training_text() -> None:
    eval_texts, train = _load("injection_eval.jsonl"), _load("injection_train*.jsonl")
    found = overlaps(eval_texts, train)
    assert not found, "\n".join(f"{k}: eval={eval_texts[i][:100]!r} train={train[j][:100]!r}" for k, i, j in found[:10])


@pytest.mark.parametrize("path", sorted((CORPUS.parent / "corpus_blind").glob("injection_blind*.jsonl")), ids=str)
def test_no_blind_hold_out_text_leaks_into_training(path: Path) -> None:
    blind = [json.loads(line)["text"] for line in path.read_text().splitlines() if line.strip()]
    train = _load("injection_train*.jsonl")
    found = overlaps(blind, train)
    assert not found, "\n".join(f"{k}: blind={blind[i][:100]!r} train={train[j][:100]!r}" for k, i, j in found[:10])


@pytest.mark.parametrize(
    ("a", "b", "kind"),
    [
        (
            "Please translate the quarterly report into German for the Berlin office.",
            "please translate the quarterly report into German, for the Berlin office!",
            "identical",
        ),
        (
            "Please translate the quarterly report into German for the Berlin office.",
            "Please translate this quarterly report into German for our Berlin office.",
            "near-identical",
        ),
        (
            "Please translate the quarterly report into German for the Berlin office.",
            "Summary: please translate the quarterly report into German for the Berlin office. Thanks, Ana. "
            "Also book a room for Tuesday and tell the team the agenda changed.",
            "contained",
        ),
        (
            "Please translate the quarterly report into German for the Berlin office.",
            "What is the boiling point of water at the top of Mount Everest?",
            None,
        ),
    ],
)
def test_the_check_finds_what_it_should(a: str, b: str, kind: str | None) -> None:
    found = [k for k, _, _ in overlaps([a], [b])]
    assert (found[0] if found else None) == kind
