"""Whole non-English documents with and without an injected instruction, written to
``services/guard/data/corpus/injection_candidate_foreign_docs.jsonl`` (checked in but not trained on: ``train_heads``
reads only ``injection_train*.jsonl``; see "Candidate files" in the corpus README):

    .venv/bin/python -m services.guard.training.build_foreign_docs

The multilingual family in ``build_families.py`` holds short overrides and prompt leaks; this one holds the
documents an agent reads — e-mails, web pages, support tickets, chat threads and reviews — written entirely in
German, French, Spanish, Italian, Portuguese, Dutch, Polish, Russian, Chinese or Japanese. An attack carries an
instruction in the same language addressed to the AI reading it (override and prompt leak, mailbox forwarding,
phishing reply, review manipulation, image-URL exfiltration, tool call with credentials, a note "for the
automatic summary" that hides the flaws and pushes a shop link, a fake ``<system>`` directive, a "P.S. to the
assistant" that reads a password file), nine per language, at the start, middle or end, plainly or (web
pages) in a comment or hidden element. A benign document carries an instruction for its
human reader ("reply by Friday", "ignore the first version of the table", "do not reply to this message"), a
note that mentions AI (a summary written with an AI tool, a chat assistant) or nothing, in the same places and
wrappings; half the attacks carry such a human instruction as well, so imperatives are no sign of an attack.
Filler paragraphs are hand-written prose (``foreign_doc_texts.py``), picked per carrier so a document hangs
together (an e-mail, a ticket and its follow-up, reviews of a delivery, a hotel and a gadget).

Balanced: :data:`PER_CELL` rows per (language, carrier, label); injected and human instructions are dealt round
robin, so none of them fills more than a fifth of its language's rows. Deterministic (fixed seed); rows close
to an evaluation text are dropped by ``import_corpora.finalise`` as for the imports.
"""

from __future__ import annotations

import random
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from services.guard.training.foreign_doc_texts import LANGUAGES, Language
from services.guard.training.import_corpora import finalise, write

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
OUT = CORPUS / "injection_candidate_foreign_docs.jsonl"
SEED = 20261207
PER_CELL = 8  # rows per (language, carrier, label)
MAX_SHARE = 0.2  # of a language's rows of one label, for any one injected or human instruction
# Which of a language's paragraphs (see ``foreign_doc_texts``) suit each carrier, in reading order.
PARAS_FOR = {"email": [0, 3, 4, 1], "webpage": [5, 1, 7], "ticket": [2, 6, 1], "chat": [0, 2, 3, 4],
             "review": [1, 5, 7]}


def dealer(rng: random.Random, items: list[str]) -> Iterator[str]:
    """The items round robin, reshuffled each round: an even share for each."""
    while True:
        order = list(items)
        rng.shuffle(order)
        yield from order


def body(rng: random.Random, lang: Language, carrier: str, slot: str | None, extra: str | None) -> list[str]:
    """Two or three of the language's paragraphs that suit the carrier, in order, with the slot (and a human
    instruction, if any) placed at the start, in the middle or at the end."""
    paras = [lang["paras"][i] for i in sorted(rng.sample(PARAS_FOR[carrier], rng.randint(2, 3)),
                                              key=PARAS_FOR[carrier].index)]
    if extra is not None:
        paras.insert(rng.randint(0, len(paras)), extra)
    if slot is not None:
        paras.insert(rng.choice([0, len(paras) // 2, len(paras)]), slot)
    return paras


def email(rng: random.Random, lang: Language, paras: list[str], code: str) -> str:
    sender = rng.choice(lang["names"])
    box, domain = rng.choice(["info", "team", "office", "kontakt", "mail"]), rng.choice(["example", "firma", "post"])
    address = f"{box}@{domain}.{code}"
    head = f"{lang['from_label']}: {sender} <{address}>\n{lang['subject_label']}: {rng.choice(lang['subjects'])}"
    return f"{head}\n\n{lang['greeting']}\n\n" + "\n\n".join(paras) + f"\n\n{lang['signoff']}\n{sender}"


def webpage(rng: random.Random, lang: Language, paras: list[str], code: str, slot: str | None) -> str:
    wrap = rng.choice(["p", "comment", "hidden", "small"])

    def element(text: str) -> str:
        if text != slot or wrap == "p":
            return f"<p>{text}</p>"
        if wrap == "comment":
            return f"<!-- {text} -->"
        if wrap == "hidden":
            return f'<div style="display:none">{text}</div>'
        return f'<p class="footnote"><small>{text}</small></p>'

    title = f"{lang['review']} — {rng.choice(lang['names'])}"
    inner = "\n".join(element(p) for p in paras)
    return (f'<html lang="{code}">\n<head><title>{title}</title></head>\n<body>\n<h1>{title}</h1>\n{inner}\n'
            "</body>\n</html>")


def ticket(rng: random.Random, lang: Language, paras: list[str]) -> str:
    head = f"{lang['ticket']} #{rng.randint(10000, 99999)} · {rng.choice(lang['subjects'])}"
    return f"{head}\n{rng.choice(lang['names'])}\n\n" + "\n\n".join(paras)


def chat(rng: random.Random, lang: Language, paras: list[str]) -> str:
    people = rng.sample(lang["names"], 3)
    hour, minute = rng.randint(8, 18), rng.randint(0, 50)
    lines = []
    for i, p in enumerate(paras):
        lines.append(f"[{hour:02d}:{minute + i * 3:02d}] {people[i % 3]}: {p}")
    return "\n".join(lines)


def review(rng: random.Random, lang: Language, paras: list[str]) -> str:
    out = []
    for p in paras:
        stars = rng.randint(2, 5)
        out.append(f"{'★' * stars}{'☆' * (5 - stars)} {lang['review']} — {rng.choice(lang['names'])}\n{p}")
    return "\n\n".join(out)


def carriers(code: str, slot: str | None) -> dict[str, Callable[[random.Random, Language, list[str]], str]]:
    return {
        "email": lambda rng, lang, paras: email(rng, lang, paras, code),
        "webpage": lambda rng, lang, paras: webpage(rng, lang, paras, code, slot),
        "ticket": ticket,
        "chat": chat,
        "review": review,
    }


def language_rows(rng: random.Random, code: str, lang: Language) -> tuple[list[dict], list[dict]]:
    injected, human = dealer(rng, lang["injected"]), dealer(rng, lang["human"])
    attacks: list[dict] = []
    benign: list[dict] = []
    for carrier in carriers(code, None):
        for label, rows in ((1, attacks), (0, benign)):
            seen: set[str] = set()
            while len(seen) < PER_CELL:
                if label:
                    slot, extra = next(injected), (next(human) if rng.random() < 0.5 else None)
                else:
                    roll = rng.random()
                    slot = next(human) if roll < 0.7 else rng.choice(lang["ai_notes"]) if roll < 0.85 else None
                    extra = None
                text = carriers(code, slot)[carrier](rng, lang, body(rng, lang, carrier, slot, extra))
                if text not in seen:
                    seen.add(text)
                    rows.append({"text": text, "source": f"foreign_docs:{code}:{carrier}"})
    return attacks, benign


def check_shares(rows: list[dict], sentences: list[str], code: str) -> None:
    uses = Counter(s for r in rows for s in sentences if s in r["text"])
    worst = max(uses.values(), default=0)
    if worst > MAX_SHARE * len(rows) + 1:
        raise SystemExit(f"{code}: one instruction fills {worst} of {len(rows)} rows")


def build() -> list[dict]:
    rng = random.Random(SEED)
    attacks, benign = [], []
    for code, lang in LANGUAGES.items():
        a, b = language_rows(rng, code, lang)
        check_shares(a, lang["injected"], code)
        check_shares(b, lang["human"], code)
        attacks += a
        benign += b
    rows = finalise(attacks, benign, rng)
    cells = Counter((r["source"], r["label"]) for r in rows)
    uneven = {k: n for k, n in cells.items() if n != PER_CELL}
    if uneven:
        print(f"cells below {PER_CELL} rows after de-duplication and the leak check: {uneven}")
    return rows


def main(argv: list[str]) -> int:
    write(build(), OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
