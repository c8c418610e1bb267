"""The bundled workload: prompts with a realistic spread of lengths, and a small corpus for RAG.

``data/prompts.jsonl`` holds 50 prompts, each with the ``max_tokens`` a client would plausibly ask for:

* 30 short questions (4–15 prompt tokens with SmolLM2's tokenizer; 32–160 output tokens),
* 14 medium tasks over one passage (160–215 tokens; 64–160 output tokens),
* 6 long tasks over four to six passages (700–1060 tokens; 96–128 output tokens),

so a uniform draw is 60 % short, 28 % medium and 12 % long — the shape of chat traffic, where most turns are
short and a few carry a document. ``data/docs/`` is the corpus the RAG profile uploads into a vector store,
and ``data/rag_questions.json`` the questions answered from it. Nothing here is personal data or an attack,
so the guard lets every prompt through.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data"
KINDS = ("short", "medium", "long")


@dataclass(frozen=True)
class Prompt:
    id: str
    kind: str
    text: str
    max_tokens: int

    def capped(self, cap: int | None) -> int:
        return min(self.max_tokens, cap) if cap else self.max_tokens


@cache
def prompts() -> tuple[Prompt, ...]:
    rows = [json.loads(line) for line in (DATA / "prompts.jsonl").read_text().splitlines() if line.strip()]
    out = tuple(Prompt(r["id"], r["kind"], r["prompt"], int(r["max_tokens"])) for r in rows)
    if not out or any(p.kind not in KINDS or p.max_tokens <= 0 or not p.text for p in out):
        raise ValueError(f"{DATA / 'prompts.jsonl'} is empty or has a malformed row")
    return out


@cache
def rag_questions() -> tuple[str, ...]:
    return tuple(json.loads((DATA / "rag_questions.json").read_text()))


def rag_documents() -> list[Path]:
    return sorted((DATA / "docs").glob("*.md"))


def pick(rng: random.Random, kinds: tuple[str, ...] | None = None) -> Prompt:
    pool = [p for p in prompts() if kinds is None or p.kind in kinds]
    return rng.choice(pool)


def embedding_batch(rng: random.Random, size: int) -> list[str]:
    """``size`` texts to embed: chunks of the prompts and corpus, as an ingestion pipeline would send."""
    texts = [p.text[:1200] for p in prompts()] + [d.read_text()[:1200] for d in rag_documents()]
    return [rng.choice(texts) for _ in range(size)]
