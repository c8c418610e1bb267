"""A third import: the prompt-injection corpus of the bastion packages, written to
``services/guard/data/corpus/injection_train_imported_bastion.jsonl`` (checked in; ``train_heads`` reads every
``injection_train*.jsonl``). Read straight from the wheels (downloaded, never installed):

    pip download --no-deps bastioncorpus==0.6.0 bastionprobe==0.19.0 -d /tmp/gr-wheels
    .venv/bin/python -m services.guard.training.import_bastion /tmp/gr-wheels

What is taken (MIT, © 2026 Stefano Rizzello; the corpus README has the NOTICE):

* bastioncorpus: every row of ``corpus/injections.jsonl`` with its own label — direct and indirect injections,
  overrides, personas, exfiltration, delimiter and obfuscated (encoded) attacks in English, German, French,
  Italian and Spanish (attack), and benign support questions that use "ignore", "forget", "act as", "reveal" or
  encoded strings innocently (benign).
* bastionprobe: its indirect-injection payloads (``payloads.jsonl``: tool output that asks the agent to append a
  token, call a tool, send data or leak its instructions; attack).

The ``{canary}`` slot is filled with a random token. Deterministic; rows close to an evaluation text are dropped
by ``import_corpora.finalise``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from services.guard.training.import_corpora import Wheels, finalise, write

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
OUT = CORPUS / "injection_train_imported_bastion.jsonl"
FILES = {
    ("bastioncorpus", "0.6.0"): "bastioncorpus/corpus/injections.jsonl",
    ("bastionprobe", "0.19.0"): "bastionprobe/payloads.jsonl",
}


def canary(rng: random.Random) -> str:
    alphabet = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return rng.choice(["CANARY-", "TRK-", "ref_", ""]) + "".join(rng.choice(alphabet) for _ in range(10))


def build(folder: Path) -> list[dict]:
    rng = random.Random(20261207)
    attacks, benign = [], []
    w = Wheels(folder, dict(FILES.keys()))
    for (pkg, ver), path in FILES.items():
        for row in w.jsonl(pkg, path):
            out = {"text": row["text"].replace("{canary}", canary(rng)), "source": f"{pkg}=={ver}:{path}"}
            (benign if row.get("label") == "benign" else attacks).append(out)
    return finalise(attacks, benign, rng)


def main(argv: list[str]) -> int:
    write(build(Path(argv[1] if len(argv) > 1 else "/tmp/gr-wheels")), OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
