"""SLO gates over a run's summary (``loadtests/slo.yaml``): the verdict ``make loadtest`` exits with.

The file is a list of gates::

    gates:
      - metric: ttft_p95_ms          # a key of the summary (see METRICS)
        endpoint: chat.stream        # optional: one endpoint's value; default: the whole run ("all")
        max: 8000                    # and/or min: …
        required: true               # default; false: a metric without data passes ("no data")

A gate whose metric has no data (e.g. TTFT in an embeddings-only run) fails unless ``required: false``:
a CI gate that silently measures nothing is not a gate.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

# Summary keys a gate may name (per endpoint and for "all"); report.summarize() writes exactly these.
METRICS = (
    "requests", "failures", "error_rate", "requests_per_s", "output_tokens_per_s",
    "latency_p50_ms", "latency_p90_ms", "latency_p95_ms", "latency_p99_ms",
    "ttft_p50_ms", "ttft_p90_ms", "ttft_p95_ms", "ttft_p99_ms",
    "itl_p50_ms", "itl_p90_ms", "itl_p95_ms", "itl_p99_ms",
    "tokens_per_s_p5", "tokens_per_s_p50", "tokens_per_s_mean",
)


class SLOError(ValueError):
    """The SLO file itself is wrong (unknown metric, no bound, not a list of gates)."""


@dataclass(frozen=True)
class Gate:
    metric: str
    endpoint: str = "all"
    max: float | None = None
    min: float | None = None
    required: bool = True

    def describe(self) -> str:
        bounds = " and ".join(b for b in (f"<= {self.max:g}" if self.max is not None else "",
                                          f">= {self.min:g}" if self.min is not None else "") if b)
        return f"{self.metric}[{self.endpoint}] {bounds}"


@dataclass(frozen=True)
class Result:
    gate: Gate
    value: float | None
    passed: bool
    status: str  # "pass", "fail", "no data"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self.gate), "value": self.value, "passed": self.passed, "status": self.status,
                "gate": self.gate.describe()}


def load(path: str | Path) -> list[Gate]:
    doc = yaml.safe_load(Path(path).read_text()) or {}
    raw = doc.get("gates") if isinstance(doc, dict) else None
    if not isinstance(raw, list) or not raw:
        raise SLOError(f"{path}: expected a non-empty list under 'gates'")
    gates = []
    for i, g in enumerate(raw):
        if not isinstance(g, dict):
            raise SLOError(f"{path}: gates[{i}] is not a mapping")
        unknown = set(g) - {"metric", "endpoint", "max", "min", "required"}
        if unknown:
            raise SLOError(f"{path}: gates[{i}] has unknown keys {sorted(unknown)}")
        if g.get("metric") not in METRICS:
            raise SLOError(f"{path}: gates[{i}].metric {g.get('metric')!r} is not one of {', '.join(METRICS)}")
        if g.get("max") is None and g.get("min") is None:
            raise SLOError(f"{path}: gates[{i}] ({g['metric']}) needs 'max' or 'min'")
        gates.append(Gate(metric=g["metric"], endpoint=str(g.get("endpoint", "all")),
                          max=None if g.get("max") is None else float(g["max"]),
                          min=None if g.get("min") is None else float(g["min"]),
                          required=bool(g.get("required", True))))
    return gates


def evaluate(gates: list[Gate], summary: dict[str, Any]) -> list[Result]:
    results = []
    for gate in gates:
        stats = summary.get("all") if gate.endpoint == "all" else summary.get("endpoints", {}).get(gate.endpoint)
        value = (stats or {}).get(gate.metric)
        if value is None:
            results.append(Result(gate, None, not gate.required, "no data"))
            continue
        ok = (gate.max is None or value <= gate.max) and (gate.min is None or value >= gate.min)
        results.append(Result(gate, float(value), ok, "pass" if ok else "fail"))
    return results
