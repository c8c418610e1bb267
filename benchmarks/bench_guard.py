"""``make bench-guard``: quality and speed of the guard's scanners, on one core.

Quality: precision, recall and false-positive rate per scanner at the guard's default input policy
thresholds, on evaluation sets never used for training —
  * injection: ``services/guard/data/corpus/injection_eval.jsonl`` (hand-written, separate from training),
  * toxicity: ``services/guard/data/corpus/toxicity_eval.jsonl`` (idem),
  * structured PII and secrets: generated here with a fixed seed (valid checksums and provider formats,
    inside sentences) plus hand-written near misses (bad checksums, dates, versions, hashes, prose).
Speed: p50/p99 per scanner and for the whole input scan (every scanner, the default input policy, a new
text each run, every sentence of it new, so the per-sentence embedding cache never answers) on 200-character,
1 KB and 8 KB prompts (prose with an e-mail address and a phone number; a second variant names people, so
spaCy NER runs); the part of the scan a request waits for before inference starts when MiniLM's injection stage
is deferred (the gateway's default: it runs while the model reads the prompt); the whole scan on the fast
path (no MiniLM heads, no NER); and the whole scan of texts cut from the first evaluation set's benign texts
in random order (a spread of real inputs; embedding cache cleared before each).
Throughput: the real guard server (``python -m services.guard``, pinned to one core) over gRPC with mutual
TLS, 1, 8 and 32 concurrent clients sending 1 KB input scans: scans/s and latency p50/p99.

Writes ``benchmarks/results/guard.json`` and prints the tables.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(var, "1")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from services.guard.engine import Engine  # noqa: E402
from services.guard.policy import Policy  # noqa: E402
from services.guard.scanners.structured import luhn_valid  # noqa: E402
from services.guard.settings import GuardSettings  # noqa: E402

CORPUS = ROOT / "services" / "guard" / "data" / "corpus"
# Blind hold-out sets, each written by a session that never saw the rules, the training corpora or the other sets
# (see corpus_blind/README.md): injection_blind.jsonl (set 1), ...; a spent set moves to the training corpus
BLIND_SETS = sorted((ROOT / "services" / "guard" / "data" / "corpus_blind").glob("injection_blind*.jsonl"))
RESULTS = ROOT / "benchmarks" / "results" / "guard.json"


def load(name: str) -> list[dict]:
    return [json.loads(line) for line in (CORPUS / name).read_text().splitlines() if line.strip()]


# -- generated structured PII and secrets ------------------------------------------------------------


def _card(rng: random.Random) -> str:
    prefix, length = rng.choice([("4", 16), ("51", 16), ("55", 16), ("37", 15), ("6011", 16), ("3530", 16)])
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    check = next(d for d in string.digits if luhn_valid(body + d))
    digits = body + check
    sep = rng.choice(["", " ", "-"])
    return sep.join(digits[i : i + 4] for i in range(0, len(digits), 4)) if sep else digits


def _iban(rng: random.Random) -> str:
    country, length = rng.choice([("DE", 22), ("GB", 22), ("FR", 27), ("NL", 18), ("ES", 24)])
    if country == "GB":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban += "".join(rng.choice(string.digits) for _ in range(14))
    elif country == "NL":
        bban = "".join(rng.choice(string.ascii_uppercase) for _ in range(4))
        bban += "".join(rng.choice(string.digits) for _ in range(10))
    else:
        bban = "".join(rng.choice(string.digits) for _ in range(length - 4))
    numeric = "".join(str(int(c, 36)) for c in bban + country + "00")
    check = 98 - int(numeric) % 97
    iban = f"{country}{check:02d}{bban}"
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4)) if rng.random() < 0.5 else iban


def _ssn(rng: random.Random) -> str:
    area = rng.choice([n for n in range(1, 900) if n != 666])
    return f"{area:03d}-{rng.randint(1, 99):02d}-{rng.randint(1, 9999):04d}"


def _phone(rng: random.Random) -> str:
    area = rng.choice(["415", "212", "312", "617", "206", "303"])
    exchange = rng.randint(200, 999)
    line = rng.randint(1000, 9999)
    return rng.choice([f"+1 {area} {exchange} {line}", f"({area}) {exchange}-{line}", f"{area}-{exchange}-{line}",
                       f"+44 20 7946 {rng.randint(1000, 1999)}"])


def _email(rng: random.Random) -> str:
    user = rng.choice(["jane.doe", "j.smith", "ops-team", "maria_g", "li.wei+news", "a.b.c"])
    return f"{user}{rng.randint(1, 99)}@{rng.choice(['example.com', 'corp.example.org', 'mail.example.net'])}"


def _ip(rng: random.Random) -> str:
    if rng.random() < 0.8:
        return ".".join(str(rng.randint(1, 254)) for _ in range(4))
    return f"2001:db8:{rng.randint(1, 9999):x}::{rng.randint(1, 9999):x}"


PII_GENERATORS = {"pii.credit_card": _card, "pii.iban": _iban, "pii.us_ssn": _ssn, "pii.phone_number": _phone,
                  "pii.email": _email, "pii.ip_address": _ip}
PII_TEMPLATES = ["Please update my details: {v}.", "My number is {v}, call after 5pm.", "Use {v} for the refund",
                 "Customer record -> {v} (verified)", "Is {v} correct?", "Send it to {v} today."]
PII_NEGATIVES = [
    "Order 4111 1111 1111 1112 shipped yesterday.", "IBAN DE89 3704 0044 0532 0130 01 was rejected.",
    "We sold 1500 units at 12.50 each on 2024-05-01.", "Version 1.2.3 fixes the bug in build 20240501.",
    "The meeting is at 12:30:45 in room 101.", "Ticket 666-12-3456 is closed.", "Pi is about 3.14159265358979.",
    "Our revenue grew 12% to 4,500,000 dollars.", "Use port 8080 and timeout 30000 ms.",
    "ISBN 978-3-16-148410-0 is on the shelf.", "The tracking code is ZX-4471-AB.", "Call extension 4412.",
    "Population: 8,336,817 in 2020.", "SHA 3f786850e387550fdab836ed7e6dc881de23001b", "Build #2024.11.21.3 passed.",
    "The score was 3-2 after 90 minutes.", "See RFC 7231 section 6.5.1.", "Room 2B, floor 3, desk 14.",
    "Temperature ranged from -5 to 12 degrees.", "UUID 123e4567-e89b-12d3-a456-426614174000 is the job id.",
]


def _rand(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


AN = string.ascii_letters + string.digits
SECRET_GENERATORS = {
    "secrets.aws_access_key": lambda r: "AKIA" + _rand(r, string.ascii_uppercase + string.digits, 16),
    "secrets.github_token": lambda r: "ghp_" + _rand(r, AN, 36),
    "secrets.gitlab_token": lambda r: "glpat-" + _rand(r, AN + "_-", 20),
    "secrets.slack_token": lambda r: f"xoxb-{r.randint(10**11, 10**12)}-{r.randint(10**12, 10**13)}-"
    + _rand(r, AN, 24),
    "secrets.stripe_key": lambda r: "sk_live_" + _rand(r, AN, 24),
    "secrets.google_api_key": lambda r: "AIza" + _rand(r, AN + "_-", 35),
    "secrets.jwt": lambda r: "eyJhbGciOiJIUzI1NiJ9.eyJ" + _rand(r, AN, 30) + "." + _rand(r, AN + "_-", 43),
    "secrets.private_key": lambda r: "-----BEGIN RSA PRIVATE KEY-----\n"
    + "\n".join(_rand(r, AN + "+/", 64) for _ in range(4)) + "\n-----END RSA PRIVATE KEY-----",
    "secrets.password_assignment": lambda r: "password = \"" + _rand(r, AN + "!@#", 14) + "\"",
}
SECRET_TEMPLATES = ["Here is the config: {v}", "why does {v} not work?", "export KEY=x; then use {v} to deploy",
                    "I pasted {v} by mistake", "settings:\n  value: {v}\n  region: eu"]
SECRET_NEGATIVES = [
    "The password is required for every login.", "password: ********", "api_key = ${API_KEY}",
    "Commit 3f786850e387550fdab836ed7e6dc881de23001b fixed it.", "Use a strong passphrase of at least 12 characters.",
    "The token bucket refills every second.", "Set AWS_REGION=eu-west-1 in the environment.",
    "Our GitHub org is example-org and our Slack is example.slack.com.", "The JWT header says alg HS256.",
    "BEGIN TRANSACTION; UPDATE accounts SET balance = 0; COMMIT;", "sk-learn is not a real package name",
    "The key insight is that caching helps.", "Rotate keys every 90 days.", "docker run -e DEBUG=1 app:latest",
    "UUID 123e4567-e89b-12d3-a456-426614174000", "base64 of hello is aGVsbG8=",
    "Access was granted to the finance team.", "The secret to good bread is time.",
    "Use `ssh-keygen -t ed25519` to create a key pair.", "My API key is stored in the vault, not in code.",
]


def generated(generators: dict, templates: list[str], negatives: list[str], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    rows = []
    for kind, gen in generators.items():
        for _ in range(n):
            rows.append({"text": rng.choice(templates).format(v=gen(rng)), "types": [kind]})
    rows += [{"text": t, "types": []} for t in negatives]
    return rows


# -- metrics ------------------------------------------------------------------------------------------


def prf(flags: list[bool], labels: list[bool]) -> dict:
    tp = sum(f and y for f, y in zip(flags, labels, strict=True))
    fp = sum(f and not y for f, y in zip(flags, labels, strict=True))
    fn = sum(not f and y for f, y in zip(flags, labels, strict=True))
    neg = sum(not y for y in labels)
    return {
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "fpr": round(fp / neg, 4) if neg else None,
        "positives": tp + fn,
        "negatives": neg,
    }


def quality(engine: Engine, policy: Policy) -> dict:
    out: dict[str, dict] = {}
    th = {s: policy.rule_for(s).threshold for s in ("injection", "pii", "secrets", "toxicity")}
    rows = load("injection_eval.jsonl")
    labels = [bool(r["label"]) for r in rows]
    scored = [engine.matches(r["text"], None, [s for s in engine.scanners if s.name == "injection"]) for r in rows]
    for name, pick in (("injection (rules + classifier)", lambda m: True),
                       ("injection rules only", lambda m: m.type != "injection.classifier"),
                       ("injection classifier only", lambda m: m.type == "injection.classifier")):
        out[name] = prf([any(pick(m) and m.score >= th["injection"] for m in ms) for ms in scored], labels)
    out["injection (rules + classifier)"]["threshold"] = th["injection"]
    for path in BLIND_SETS:
        n = path.stem.removeprefix("injection_blind") or "1"  # the set's number (set 2 is spent: training data)
        blind = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        hits = [engine.matches(r["text"], None, [s for s in engine.scanners if s.name == "injection"]) for r in blind]
        flagged = [any(m.score >= th["injection"] for m in ms) for ms in hits]
        row = prf(flagged, [bool(r["label"]) for r in blind])
        out[f"injection, blind hold-out {n} (rules + classifier)"] = row
        if all("category" in r for r in blind):  # the share flagged per category: recall for attacks, FPR for benign
            cats: dict[str, list[bool]] = {}
            for r, f in zip(blind, flagged, strict=True):
                cats.setdefault(f"{'attack' if r['label'] else 'benign'}/{r['category']}", []).append(f)
            row["flagged_by_category"] = {c: f"{sum(v)}/{len(v)}" for c, v in sorted(cats.items())}
    clf = next((s for s in engine.scanners if type(s).__name__ == "InjectionClassifier"), None)
    if clf is not None and clf.head is not None:
        # How often the cascade ran MiniLM, and what MiniLM on every text (no cascade) would have scored.
        runs = []
        for r in rows:
            before = clf.minilm_runs
            clf.probability(r["text"])
            runs.append(clf.minilm_runs > before)
        out["injection classifier only"]["minilm_rate_benign"] = round(
            sum(x for x, y in zip(runs, labels, strict=True) if not y) / labels.count(False), 4)
        out["injection classifier only"]["minilm_rate_attacks"] = round(
            sum(x for x, y in zip(runs, labels, strict=True) if y) / labels.count(True), 4)
        skip, clf.skip_below = clf.skip_below, -1.0
        flags = [clf.probability(r["text"]) >= th["injection"] for r in rows]
        clf.skip_below = skip
        out["injection classifier, MiniLM on every text"] = prf(flags, labels)
        ngram_only = [clf.ngram.probability(r["text"]) >= th["injection"] for r in rows]
        out["injection n-gram head alone"] = prf(ngram_only, labels)
    system = [r for r in rows if r.get("role") == "system"]
    if system:
        # System-role eval rows through a real input scan: trusted by default, scanned with the switch on.
        for switch in (False, True):
            engine.scan_system_messages = switch
            flagged = [engine.scan([r["text"]], policy, roles=["system"]).verdict == "block" for r in system]
            name = "system prompts, " + ("scan_system_messages on" if switch else "trusted (default)")
            out[name] = prf(flagged, [bool(r["label"]) for r in system])
        engine.scan_system_messages = False

    rows = load("toxicity_eval.jsonl")
    tox = [s for s in engine.scanners if s.name == "toxicity"]
    tox_labels = [bool(r["labels"]) for r in rows]
    # The request path (n-gram gate, MiniLM heads only past it) and /v1/moderations (every head).
    scores = [{m.kind: m.score for m in engine.matches(r["text"], None, tox)} for r in rows]
    out["toxicity (any category)"] = prf([any(v >= th["toxicity"] for v in sc.values()) for sc in scores],
                                         tox_labels) | {"threshold": th["toxicity"]}
    if tox and getattr(tox[0], "head", None) is not None:
        full = [tox[0].scores(r["text"], full=True) for r in rows]
        out["toxicity, moderations (every head)"] = prf([any(v >= th["toxicity"] for v in sc.values())
                                                          for sc in full], tox_labels)
        right = sum(max((k for k in sc if k != "profanity"), key=sc.get) == r["labels"][0]
                    for sc, r in zip(full, rows, strict=True) if r["labels"])
        out["toxicity, moderations (every head)"]["top_category_accuracy"] = round(right / sum(tox_labels), 4)

    for name, rows in (("pii (structured)", generated(PII_GENERATORS, PII_TEMPLATES, PII_NEGATIVES, 100, 7)),
                       ("secrets", generated(SECRET_GENERATORS, SECRET_TEMPLATES, SECRET_NEGATIVES, 60, 11))):
        scanner = name.split(" ")[0]
        scs = [s for s in engine.scanners if s.name == scanner]
        found = [{m.type for m in engine.matches(r["text"], None, scs) if m.score >= th[scanner]} for r in rows]
        out[name] = prf([bool(f) for f in found], [bool(r["types"]) for r in rows]) | {"threshold": th[scanner]}
        kinds = sorted({t for r in rows for t in r["types"]})
        out[name]["recall_by_type"] = {
            k: round(sum(k in f for f, r in zip(found, rows, strict=True) if k in r["types"])
                     / sum(k in r["types"] for r in rows), 4) for k in kinds
        }
    return out


# -- latency ------------------------------------------------------------------------------------------

NAMED = ("Maria Garcia from finance met Tom Becker and Aisha Bello on Tuesday to plan the quarterly review. "
         "Please summarise the attached notes for the stakeholders and list open questions. Contact "
         "maria.garcia@example.com or call +1 415 555 0134 if anything is unclear. The budget line for cloud "
         "costs grew by 12% and the migration finished on time. ")
PROSE = ("Our team is planning the quarterly review. Please summarise the attached notes for the "
         "stakeholders and list open questions. Contact maria.garcia@example.com or call +1 415 555 0134 if "
         "anything is unclear. The budget line for cloud costs grew by 12% and the migration finished on time. ")


def prompt(size: int, i: int, prose: str = PROSE) -> str:
    """``size`` characters of ``prose`` in which every sentence carries its own reference (run ``i``, sentence
    ``k``): the guard caches embeddings per sentence, so repeated sentences would be answered from the cache."""
    sentences = [s.rstrip(".") for s in re.split(r"(?<=\.) ", prose.strip()) if s]
    out: list[str] = []
    while sum(len(x) + 1 for x in out) < size:
        k = len(out)
        out.append(f"{sentences[k % len(sentences)]} (ref {i}-{k}).")
    return " ".join(out)[:size]


def mixed(size: int, rng: random.Random, benign: list[str]) -> str:
    """``size`` characters of the first evaluation set's benign texts (requests, documents, operator prompts, in
    several languages) in random order: a spread of real inputs rather than one prose, whose sentences the
    n-gram stage either passes or not."""
    out = ""
    while len(out) < size:
        out = f"{out}\n\n{rng.choice(benign)}" if out else rng.choice(benign)
    return out[:size]


def clear_caches(engine: Engine) -> None:
    """Forget the embeddings of texts already scanned (mixed prompts repeat sentences)."""
    for s in engine.scanners:
        embedder = getattr(s, "embedder", None)
        if embedder is not None:
            embedder.clear()


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(q * (len(xs) - 1)))]


# The part of the input scan the request waits for before inference starts: the gateway's default
# (``guard_defer_slow``) leaves MiniLM's injection stage to ScanDeferred, which runs while the model reads the
# prompt and must finish before the first output token is released.
DEFERRED = "input scan before inference (MiniLM deferred)"
MIXED = "total (input scan), evaluation-set benign text"


def latency(engine: Engine, fast: Engine, policy: Policy, runs: dict[int, int]) -> dict:
    out: dict[str, dict] = {}
    names = {_label(s): s for s in engine.scanners}
    for size, n in runs.items():
        per: dict[str, list[float]] = {
            k: [] for k in (*names, "total (input scan)", "total (input scan), text naming people", DEFERRED,
                            f"{DEFERRED}, text naming people", "total, fast path", MIXED)
        }
        rng = random.Random(size)
        benign = [r["text"] for r in load("injection_eval.jsonl") if r["label"] == 0]
        for i in range(n + 2):
            text = prompt(size, i)
            for name, s in names.items():
                t0 = time.perf_counter()
                s.scan(text)
                if i >= 2:  # two warm-up runs
                    per[name].append(time.perf_counter() - t0)
            text = prompt(size, 10_000 + i)
            t0 = time.perf_counter()
            engine.scan([text], policy)
            if i >= 2:
                per["total (input scan)"].append(time.perf_counter() - t0)
            text = prompt(size, 30_000 + i, NAMED)
            t0 = time.perf_counter()
            engine.scan([text], policy)
            if i >= 2:
                per["total (input scan), text naming people"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.scan([prompt(size, 40_000 + i)], policy, defer=True)
            if i >= 2:
                per[DEFERRED].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            engine.scan([prompt(size, 50_000 + i, NAMED)], policy, defer=True)
            if i >= 2:
                per[f"{DEFERRED}, text naming people"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fast.scan([prompt(size, 20_000 + i)], policy)
            if i >= 2:
                per["total, fast path"].append(time.perf_counter() - t0)
            text = mixed(size, rng, benign)
            clear_caches(engine)
            t0 = time.perf_counter()
            engine.scan([text], policy)
            if i >= 2:
                per[MIXED].append(time.perf_counter() - t0)
        out[f"{size} chars"] = {
            k: {"p50_ms": round(pct(v, 0.5) * 1000, 2), "p99_ms": round(pct(v, 0.99) * 1000, 2), "runs": len(v)}
            for k, v in per.items()
        }
    return out


def _label(scanner) -> str:
    inner = getattr(scanner, "inner", scanner)  # the lock wrapper around Presidio/spaCy
    return {"InjectionScanner": "injection rules", "InjectionClassifier": "injection classifier (n-gram→MiniLM)",
            "PiiScanner": "pii (Presidio + spaCy NER)", "SecretsScanner": "secrets",
            "ToxicityScanner": "toxicity (n-gram gate→MiniLM)"}.get(type(inner).__name__, type(inner).__name__)


# -- throughput over gRPC/mTLS -------------------------------------------------------------------------


async def _load(stub, concurrency: int, total: int, offset: int) -> dict:
    from flotilla.v1 import guard_pb2

    latencies: list[float] = []
    queue = list(range(total))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            req = guard_pb2.ScanRequest(request_id=f"bench-{i}", texts=[prompt(1024, offset + i)], roles=["user"])
            t0 = time.perf_counter()
            await stub.ScanInput(req, timeout=30)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - started
    return {"concurrency": concurrency, "scans": total, "scans_per_s": round(total / wall, 1),
            "p50_ms": round(pct(latencies, 0.5) * 1000, 2), "p99_ms": round(pct(latencies, 0.99) * 1000, 2)}


def throughput(levels: dict[int, int]) -> dict:
    """The guard server as a process pinned to one core (the client runs on the other cores when there are
    any), driven over mTLS gRPC with 1 KB input scans at each concurrency level."""
    from flotilla.tls import ensure_dev_certs, secure_channel
    from flotilla.v1 import guard_pb2, guard_pb2_grpc
    from tests.conftest import free_port

    pinned = os.sched_getaffinity(0)  # make bench-guard pins this process to core 0; the client may use the rest
    cores = sorted(range(os.cpu_count() or 1))
    server_core = min(pinned)
    client_cores = set(cores) - {server_core} or {server_core}
    home = Path(tempfile.mkdtemp(prefix="flotilla-bench-guard-"))
    certs = ensure_dev_certs(home / "certs")
    port = free_port()
    env = {**os.environ, "FLOTILLA_HOME": str(home), "FLOTILLA_GUARD_PORT": str(port),
           "FLOTILLA_GUARD_METRICS_PORT": "0", "FLOTILLA_GUARD_HOST": "127.0.0.1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(["taskset", "-c", str(server_core), sys.executable, "-m", "services.guard"], env=env,
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.sched_setaffinity(0, client_cores)

    async def run() -> list[dict]:
        channel = secure_channel(f"127.0.0.1:{port}", certs["gateway"])
        stub = guard_pb2_grpc.GuardStub(channel)
        deadline = time.monotonic() + 300
        while True:  # models load before the server listens
            try:
                await stub.ScanInput(guard_pb2.ScanRequest(texts=["warm-up"]), timeout=5)
                break
            except Exception:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the guard server did not come up") from None
                await asyncio.sleep(1)
        await _load(stub, 4, 40, 900_000)  # warm-up
        out = [await _load(stub, c, n, 1_000_000 * (k + 1)) for k, (c, n) in enumerate(levels.items())]
        await channel.close()
        return out

    try:
        return {"server": f"python -m services.guard pinned to core {server_core}, mTLS gRPC",
                "client_cores": sorted(client_cores), "levels": asyncio.run(run())}
    finally:
        os.sched_setaffinity(0, pinned)
        proc.terminate()
        proc.wait(30)


def main() -> int:
    settings = GuardSettings()
    t0 = time.perf_counter()
    engine = Engine.from_settings(settings)
    load_s = time.perf_counter() - t0
    policy = Policy.parse(settings.input_policy)
    q = quality(engine, policy)
    quick = os.environ.get("BENCH_QUICK") == "1"
    # The fast path: no MiniLM heads and no NER (rules, checksum recognisers, secrets, profanity).
    fast = Engine.from_settings(GuardSettings(classifiers=False, pii_ner=False))
    lat = latency(engine, fast, policy, {200: 20, 1024: 20, 8192: 5} if quick else {200: 100, 1024: 100, 8192: 30})
    tput = throughput({1: 30, 8: 120, 32: 320} if quick else {1: 100, 8: 400, 32: 960})
    result = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_start": [round(x, 2) for x in os.getloadavg()]},
        "threads": "one core: onnxruntime intra-op 1, OMP/OpenBLAS 1 (make bench-guard pins it with taskset)",
        "fast_path": "FLOTILLA_GUARD_CLASSIFIERS=false FLOTILLA_GUARD_PII_NER=false",
        "model_load_s": round(load_s, 2),
        "policy": settings.input_policy,
        "quality": q,
        "latency": lat,
        "throughput_1kb_grpc_mtls": tput,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")

    print(f"\nQuality at the default input policy ({settings.input_policy})")
    print(f"{'scanner':34} {'precision':>9} {'recall':>7} {'FPR':>6} {'pos':>5} {'neg':>5}")
    for name, m in q.items():
        print(f"{name:34} {m['precision'] or 0:9.3f} {m['recall'] or 0:7.3f} {m['fpr'] or 0:6.3f} "
              f"{m['positives']:5d} {m['negatives']:5d}")
    for name, m in q.items():
        if "flagged_by_category" in m:
            print(f"\n{name}, flagged per category:")
            print("\n".join(f"  {c:40} {share}" for c, share in m["flagged_by_category"].items()))
    print("\nLatency, one core (ms): p50 / p99")
    sizes = list(lat)
    print(f"{'scanner':68}" + "".join(f"{s:>20}" for s in sizes))
    for name in lat[sizes[0]]:
        print(f"{name:68}" + "".join(f"{lat[s][name]['p50_ms']:>10.2f} /{lat[s][name]['p99_ms']:>8.2f}" for s in sizes))
    print(f"\nThroughput, 1 KB input scans over mTLS gRPC ({tput['server']})")
    for row in tput["levels"]:
        print(f"  {row['concurrency']:3d} concurrent: {row['scans_per_s']:7.1f} scans/s, p50 {row['p50_ms']:.2f} ms, "
              f"p99 {row['p99_ms']:.2f} ms")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
