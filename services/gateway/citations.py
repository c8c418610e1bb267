"""Grounded answers: how retrieved chunks are shown to the model, and which of them an answer cites.

The model is given the chunks as numbered sources (``Source [n] (filename):``) in a system message that asks
it to name the source it used in brackets. Citations then come from one of two mechanisms, and each says which:

- ``model``: the ``[n]`` markers the model wrote (they take precedence whenever there is a valid one);
- ``attribution``: when the model wrote none, the gateway attributes each sentence of the answer to the
  chunk(s) that support it — the share of the sentence's new content words (those not already in the
  question, each weighted by how specific it is among the retrieved chunks: a word every chunk has counts
  little) that occur in the chunk. A chunk is cited for a sentence when it supports at least
  ``citation_min_support`` of it and no other chunk supports it more. Sentences that no chunk supports —
  an answer the model made up — cite nothing, so citations never simply list the retrieved chunks.

Chat completions return the cited chunks as the ``citations`` extension field (file id, filename, chunk
span, where in the answer, which mechanism) next to ``search_results`` (every chunk given as context);
``/v1/responses`` turns them into OpenAI ``file_citation`` annotations (markers removed, the annotation's
``index`` at the marker's place or at the end of the supported sentence).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from flotilla.guardpolicy import PLACEHOLDER
from services.gateway.protocol import Citation, SearchResult

if TYPE_CHECKING:
    from flotilla.v1 import rag_pb2

RAG_HEADER = "x-flotilla-rag-chunks"
# [1], [2, 3], [1][2], 【1】 — the forms small models use when told to cite sources in brackets.
MARKER = re.compile(r"\s?[\[【]\s*(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\s*[\]】]")

# Measured with SmolLM2-135M (benchmarks/results/rag.json "grounding"): no wording made it write a marker that
# names the right source — appended to the question ("... then write the source number in brackets, like [1]")
# it wrote "[1]" whatever the right source's number, and answered worse — so the caller's message is left
# alone and attribution does the citing for small models; larger ones follow this.
CONTEXT_HEADER = ("Answer the question using the sources below, in one sentence, and end it with the number of the "
                  "source you used in brackets, like [2].")


def context_message(chunks: list[rag_pb2.Chunk]) -> str:
    """The system message that carries the retrieved chunks, numbered from 1."""
    sources = "\n\n".join(f"Source [{n}] ({c.source}):\n{c.text}" for n, c in enumerate(chunks, 1))
    return f"{CONTEXT_HEADER}\n\n{sources}"


# -- markers the model wrote --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Marker:
    index: int  # where the marker was, in the text with markers removed
    passages: tuple[int, ...]  # the 1-based passage numbers it names
    raw: int = 0  # where it starts in the text as written


def find_markers(text: str, passages: int) -> list[tuple[re.Match[str], tuple[int, ...]]]:
    """``[n]`` markers naming existing passages (1..passages), with the numbers each names."""
    found = []
    for m in MARKER.finditer(text):
        numbers = tuple(int(x) for x in re.split(r"\s*[,;]\s*", m.group(1).strip()))
        if all(1 <= x <= passages for x in numbers):
            found.append((m, numbers))
    return found


def strip_markers(text: str, passages: int) -> tuple[str, list[Marker]]:
    """Remove ``[n]`` markers that name existing passages (1..passages); others stay as written."""
    out: list[str] = []
    markers: list[Marker] = []
    pos = 0
    length = 0
    for m, numbers in find_markers(text, passages):
        out.append(text[pos : m.start()])
        length += m.start() - pos
        markers.append(Marker(length, numbers, m.start()))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), markers


class MarkerStream:
    """Streamed text with markers removed: holds back a possible marker until it is complete or cannot be
    one, so deltas never show half a ``[1``. ``feed`` returns (text to send, markers completed in it) with
    marker indices counted in the whole cleaned text."""

    _OPEN = ("[", "【")

    def __init__(self, passages: int) -> None:
        self.passages = passages
        self.pending = ""
        self.sent = 0  # characters of cleaned text sent so far

    def feed(self, delta: str, final: bool = False) -> tuple[str, list[Marker]]:
        buf = self.pending + delta
        cut = len(buf)
        if not final:
            # Keep from the last opening bracket (or a trailing space before one) if it may start a marker.
            last = max(buf.rfind(o) for o in self._OPEN)
            if last >= 0 and re.fullmatch(r"[\[【]\s*(\d{1,2}(\s*[,;]\s*\d{0,2})*\s*)?", buf[last:]):
                cut = last - 1 if last > 0 and buf[last - 1] == " " else last
            elif buf.endswith(" "):
                cut = len(buf) - 1  # a space may precede a marker (removed with it)
        ready, self.pending = buf[:cut], buf[cut:]
        clean, markers = strip_markers(ready, self.passages)
        markers = [Marker(self.sent + m.index, m.passages) for m in markers]
        self.sent += len(clean)
        return clean, markers


# -- attribution ------------------------------------------------------------------------------------------

STOPWORDS = frozenset(
    "a about above after again against all also am an and any are as at be because been before being below "
    "between both but by can could did do does doing down during each few for from further had has have having "
    "he her here hers him his how i if in into is it its itself just me more most my no nor not now of off on "
    "once only or other our out over own same she should so some such than that the their them then there these "
    "they this those through to too under until up very was we were what when where which while who whom why "
    "will with would you your yes answer question source sources based according called named located".split()
)
_WORD = re.compile(r"\d+(?:[.,:]\d+)*|[^\W\d_]+")
_SENTENCE = re.compile(r"[^\n]*?(?:[.!?]+(?=\s|$)|(?=\n)|$)")
_TRAILING = " \t.!?…:;,\"')]"


def content_words(text: str) -> set[str]:
    """Lower-cased content words and numbers of ``text`` (placeholders and stopwords left out; a plural's
    final s dropped, so "Mondays" meets "Monday")."""
    words = set()
    for w in _WORD.findall(PLACEHOLDER.sub(" ", text).lower()):
        if w in STOPWORDS or (len(w) == 1 and not w.isdigit()):
            continue
        if len(w) > 3 and w.endswith("s") and not w.endswith("ss") and not w[0].isdigit():
            w = w[:-1]
        words.add(w)
    return words


def sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence with content; ``end`` excludes trailing punctuation and spaces."""
    spans = []
    for m in _SENTENCE.finditer(text):
        start, end = m.start(), m.end()
        while end > start and text[end - 1] in _TRAILING:
            end -= 1
        while start < end and text[start].isspace():
            start += 1
        if end > start:
            spans.append((start, end))
    return spans


@dataclass(frozen=True)
class Attribution:
    passage: int  # 1-based
    index: int  # end of the supported sentence in the answer
    support: float  # 0..1


def attribute(answer: str, chunks: list[str], question: str = "", min_support: float = 0.5) -> list[Attribution]:
    """The chunks that support each sentence of ``answer`` (see the module docstring)."""
    if not chunks or not answer.strip():
        return []
    vocab = [content_words(c) for c in chunks]
    asked = content_words(question)
    out: list[Attribution] = []
    for start, end in sentences(answer):
        said = content_words(answer[start:end])
        new = said - asked
        if not new:
            continue  # the sentence only restates the question: nothing to ground
        df = {w: sum(w in v for v in vocab) for w in new}
        weight = {w: 1.0 / df[w] if df[w] else 1.0 for w in new}
        total = sum(weight.values())
        support = [sum(weight[w] for w in new if w in v) / total for v in vocab]
        best = max(support)
        if best < min_support:
            continue
        out.extend(Attribution(n, end, round(s, 3)) for n, s in enumerate(support, 1) if math.isclose(s, best))
    return out


# -- the result -------------------------------------------------------------------------------------------


def search_result(n: int, chunk: rag_pb2.Chunk) -> SearchResult:
    return SearchResult(
        index=n, file_id=chunk.file_id, filename=chunk.source, vector_store_id=chunk.vector_store_id,
        chunk_index=chunk.chunk_index, start_char=chunk.start_char, end_char=chunk.end_char, text=chunk.text,
        score=round(float(chunk.score), 6),
    )


@dataclass(frozen=True)
class Cite:
    passage: int  # 1-based
    index: int  # where in the answer
    by: Literal["model", "attribution"]
    support: float | None = None


def cite(
    answer: str, chunks: list[rag_pb2.Chunk], question: str, attribution: bool = True, min_support: float = 0.5,
    clean: bool = False,
) -> list[Cite]:
    """The citations of one answer: the model's own markers when it wrote any, else (``attribution``) the
    chunks that support its sentences. Indices are in ``answer`` as written, or with ``clean`` in the answer
    with markers removed (what /v1/responses returns)."""
    text, markers = strip_markers(answer, len(chunks))
    if markers:
        return [Cite(p, m.index if clean else m.raw, "model") for m in markers for p in m.passages]
    if not attribution:
        return []
    return [Cite(a.passage, a.index, "attribution", a.support)
            for a in attribute(text, [c.text for c in chunks], question, min_support)]


def citations(cites: list[Cite], chunks: list[rag_pb2.Chunk], choice: int = 0) -> list[Citation]:
    """One chat ``Citation`` per cited chunk of one choice, with every place in the answer that cites it."""
    out: dict[int, Citation] = {}
    for c in cites:
        if c.passage not in out:
            base = search_result(c.passage, chunks[c.passage - 1])
            out[c.passage] = Citation(**base.model_dump(), choice_index=choice, cited_by=c.by, support=c.support,
                                      positions=[])
        entry = out[c.passage]
        if c.index not in entry.positions:
            entry.positions.append(c.index)
        if c.support is not None and (entry.support is None or c.support > entry.support):
            entry.support = c.support
    return sorted(out.values(), key=lambda c: c.index)
