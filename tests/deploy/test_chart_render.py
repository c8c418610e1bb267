"""``helm template`` over many value combinations: every manifest validates strictly against a current
Kubernetes, and invariants hold in every combination (selectors, security, secrets, scaling, drain)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import (
    CHART,
    KUBE_VERSION,
    MIN_KUBE_VERSION,
    PROMETHEUS_OPERATOR_APIS,
    Rendered,
    containers,
    env_of,
    iter_env_values,
    matches,
    pod_labels,
    pod_template,
    schema_errors,
)

EXTERNAL_DB_URL = "postgresql://flotilla:s3cr3t-Passw0rd@db.example.com:5432/flotilla"
THREE_MODELS = [
    {"name": "small", "model": "HuggingFaceTB/SmolLM2-135M-Instruct"},
    {
        "name": "big",
        "model": "Qwen/Qwen2.5-32B-Instruct",
        "tensorParallelSize": 2,
        "gpus": 2,
        "autoscaling": {"enabled": True, "maxReplicas": 3},
        "nodeSelector": {"gpu": "h100"},
        "toolCallParser": "hermes",
    },
    {"name": "local", "model": "/models/my-finetune", "servedModelName": "finetune", "replicas": 2},
]

COMBOS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "defaults-oldest-kubernetes": {"kube_version": MIN_KUBE_VERSION},
    "minimal": {"values": ["values-minimal.yaml"]},
    "production": {"values": ["values-production.yaml"], "api_versions": PROMETHEUS_OPERATOR_APIS},
    "production-without-operator-crds": {"values": ["values-production.yaml"]},
    "cert-manager": {"sets": {"certManager.enabled": "true"}},
    "cert-manager-cluster-issuer": {
        "sets": {
            "certManager.enabled": "true",
            "certManager.issuerRef.name": "corp-ca",
            "certManager.issuerRef.kind": "ClusterIssuer",
        }
    },
    "external-database-url": {"sets": {"postgres.enabled": "false", "externalDatabase.url": EXTERNAL_DB_URL}},
    "external-database-secret": {"sets": {"postgres.enabled": "false", "externalDatabase.existingSecret": "corp-db"}},
    "postgres-existing-secret": {"sets": {"postgres.existingSecret": "pg-password"}},
    "cpu-autoscaling": {
        "sets": {f"{c}.autoscaling.enabled": "true" for c in ("gateway", "guard", "rag")},
    },
    "inference-hpa-prometheus-adapter": {
        "sets": {"inference.autoscaling.enabled": "true"},
        "set_json": {"inference.autoscaling.kvCacheUsageThreshold": 0.8},  # --set makes floats strings
    },
    "inference-keda": {
        "sets": {"keda.enabled": "true", "inference.autoscaling.enabled": "true"},
        "set_json": {"inference.autoscaling.kvCacheUsageThreshold": 0.85},
    },
    "metrics-with-prometheus-operator": {
        "sets": {"metrics.enabled": "true"},
        "api_versions": PROMETHEUS_OPERATOR_APIS,
    },
    "metrics-without-prometheus-operator": {"sets": {"metrics.enabled": "true"}},
    "metrics-off": {"sets": {"metrics.enabled": "false"}},
    "no-network-policy": {"sets": {"networkPolicy.enabled": "false"}},
    "bare": {
        "sets": {
            "gateway.pdb.enabled": "false",
            "guard.pdb.enabled": "false",
            "rag.pdb.enabled": "false",
            "inference.pdb.enabled": "false",
            "migrations.enabled": "false",
            "serviceAccount.create": "false",
            "inference.allowModelDownload": "false",
        }
    },
    "ingress": {
        "sets": {
            "gateway.ingress.enabled": "true",
            "gateway.ingress.className": "nginx",
            "gateway.ingress.hosts[0].host": "llm.example.com",
            "gateway.ingress.tls[0].secretName": "llm-tls",
            "gateway.ingress.tls[0].hosts[0]": "llm.example.com",
        }
    },
    "http-route": {
        "sets": {"gateway.httpRoute.enabled": "true", "gateway.httpRoute.hostnames[0]": "llm.example.com"},
        "set_json": {"gateway.httpRoute.parentRefs": [{"name": "public", "namespace": "gateway-system"}]},
    },
    "three-models": {"set_json": {"models": THREE_MODELS}},
    "guard-disabled": {"sets": {"guard.enabled": "false"}, "api_versions": PROMETHEUS_OPERATOR_APIS},
    "guard-policies": {  # --set splits on commas: policies go as JSON
        "sets": {"guard.scanSystemMessages": "true"},
        "set_json": {"guard.policies": {"input": "injection=block:0.7, pii=block", "retrieved": "secrets=block"}},
    },
    "gateway-fault-settings": {
        "sets": {
            "gateway.failOpen.guard": "true",
            "gateway.failOpen.rag": "true",
            "gateway.retries.count": "4",
            "gateway.circuitBreaker.failures": "7",
            "gateway.logPrompts": "true",
            "gateway.ledgerSpool.mountPath": "/spool",
            "gateway.ledgerSpool.sizeLimit": "64Mi",
        },
        "set_json": {
            "gateway.retries.backoffSeconds": 0.2,
            "gateway.retries.backoffMaxSeconds": 2.5,
            "gateway.circuitBreaker.ejectSeconds": 1.5,
            "gateway.circuitBreaker.ejectMaxSeconds": 30,
            "gateway.forwardedAllowIps": ["10.0.0.0/8", "fd00::/8"],
        },
    },
    "gateway-spool-claims": {
        "sets": {
            "gateway.ledgerSpool.persistence.enabled": "true",
            "gateway.ledgerSpool.persistence.storageClass": "fast-ssd",
            "gateway.ledgerSpool.persistence.size": "2Gi",
            "gateway.autoscaling.enabled": "true",
        },
        "api_versions": PROMETHEUS_OPERATOR_APIS,
    },
    "model-cache-ephemeral": {
        "sets": {"inference.modelCache.type": "ephemeral", "inference.modelCache.storageClass": "fast-ssd"}
    },
    "model-cache-claim": {
        "sets": {"inference.modelCache.type": "existingClaim", "inference.modelCache.existingClaim": "models"}
    },
    "hf-token-and-runtime-class": {
        "sets": {"inference.hfTokenSecret.name": "hf", "inference.runtimeClassName": "nvidia"},
    },
    "names-and-load-balancer": {
        "sets": {
            "fullnameOverride": "llm",
            "gateway.service.type": "LoadBalancer",
            "clusterDomain": "corp.internal",
            "commonLabels.team": "ml",
        },
        "set_json": {"imagePullSecrets": [{"name": "regcred"}]},
    },
}


@pytest.fixture(scope="module")
def renders(render: Any) -> dict[str, Rendered]:
    render.prefetch(list(COMBOS.values()))
    return {name: render(**kwargs) for name, kwargs in COMBOS.items()}


def _kube_version(combo: str) -> str:
    return COMBOS[combo].get("kube_version", KUBE_VERSION)


def _serving_workloads(rendered: Rendered) -> list[dict[str, Any]]:
    """The Flotilla services' workloads: every Deployment, and the gateway also as a StatefulSet (per-replica
    ledger spool claims)."""
    return [
        w
        for w in rendered.workloads()
        if w["kind"] == "Deployment"
        or (w["kind"] == "StatefulSet" and pod_labels(w)["app.kubernetes.io/component"] == "gateway")
    ]


# ---------------------------------------------------------------------------------------------------


def test_the_cached_validator_agrees_with_kubernetes_validate(renders: dict[str, Rendered]) -> None:
    import kubernetes_validate

    deployment = renders["defaults"].of("Deployment")[0]
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    assert schema_errors(deployment) == []
    broken = {**deployment, "spec": {**deployment["spec"], "replicas": "two", "surprise": 1}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)
    errors = schema_errors(broken)
    assert any("replicas" in e for e in errors) and any("surprise" in e for e in errors), errors
    assert schema_errors({"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}})


@pytest.mark.parametrize("combo", COMBOS)
def test_every_manifest_validates_strictly(renders: dict[str, Rendered], combo: str) -> None:
    rendered = renders[combo]
    errors = [e for d in rendered.docs for e in schema_errors(d, _kube_version(combo))]
    assert not errors, "\n".join(errors)
    names = [(d["kind"], d["metadata"]["name"]) for d in rendered.docs]
    assert len(names) == len(set(names)), "duplicate objects"
    for d in rendered.docs:
        assert len(d["metadata"]["name"]) <= 63, d["metadata"]["name"]
        assert d["metadata"]["labels"]["app.kubernetes.io/instance"] == "rel"


@pytest.mark.parametrize("combo", COMBOS)
def test_selectors_match_exactly_their_workload(renders: dict[str, Rendered], combo: str) -> None:
    rendered = renders[combo]
    workloads = rendered.workloads()
    for w in workloads:
        if w["kind"] != "Job":
            assert matches(w["spec"]["selector"], pod_labels(w)), w["metadata"]["name"]
            others = [o for o in workloads if o is not w and matches(w["spec"]["selector"], pod_labels(o))]
            assert not others, f"{w['metadata']['name']}'s selector also selects {others}"
    for svc in rendered.of("Service"):
        selected = [w for w in workloads if matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(w))]
        assert len(selected) == 1, f"Service {svc['metadata']['name']} selects {len(selected)} workloads"
        target = selected[0]
        named_ports = {p["name"]: p["containerPort"] for c in containers(target) for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in named_ports, f"{svc['metadata']['name']}: no port {port['targetPort']}"
    for pdb in rendered.of("PodDisruptionBudget"):
        selected = [w for w in workloads if matches(pdb["spec"]["selector"], pod_labels(w))]
        assert len(selected) == 1, f"PDB {pdb['metadata']['name']} selects {len(selected)} workloads"
    for policy in rendered.of("NetworkPolicy"):
        assert any(matches(policy["spec"]["podSelector"], pod_labels(w)) for w in workloads), policy["metadata"]
    for w in workloads:
        if w["kind"] == "StatefulSet":
            rendered.get("Service", w["spec"]["serviceName"])


@pytest.mark.parametrize("combo", COMBOS)
def test_pods_run_locked_down(renders: dict[str, Rendered], combo: str) -> None:
    for w in renders[combo].workloads():
        spec = pod_template(w)["spec"]
        where = w["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, where
        assert spec["securityContext"]["runAsUser"] != 0, where
        assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec["automountServiceAccountToken"] is False, where
        for c in containers(w):
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            assert not sc.get("privileged"), where
            assert "memory" in c["resources"]["limits"], f"{where}: no memory limit"
            image = c["image"]
            assert ":" in image.rsplit("/", 1)[-1] and not image.endswith(":latest"), image
        mounted = {m["name"] for c in containers(w) for m in c.get("volumeMounts", [])}
        assert "tmp" in mounted, f"{where}: read-only root without a writable /tmp"


@pytest.mark.parametrize("combo", COMBOS)
def test_no_secret_value_in_plain_env(renders: dict[str, Rendered], combo: str) -> None:
    rendered = renders[combo]
    secrets = {
        value.decode(errors="replace")
        for s in rendered.of("Secret")
        for value in rendered.secret_data(s["metadata"]["name"]).values()
        if len(value) >= 8
    }
    if combo == "external-database-url":
        assert EXTERNAL_DB_URL in secrets
    for workload, name, value in iter_env_values(rendered):
        leaked = [s for s in secrets if s in value or (len(value) >= 8 and value in s)]
        assert not leaked, f"{workload}: env {name} carries a Secret's value"
        assert not re.search(r"(PASSWORD|TOKEN|SECRET)", name), f"{workload}: {name} must come from a Secret"
        if name == "DATABASE_URL":
            assert not re.match(r"^postgres(ql)?://[^/@]*:[^/@]*@", value), f"{workload}: password in DATABASE_URL"
    for w in rendered.workloads():
        for c in containers(w):
            for e in c.get("env", []):
                assert "configMapKeyRef" not in e.get("valueFrom", {}), "secrets only from Secrets"


@pytest.mark.parametrize("combo", COMBOS)
def test_autoscaler_and_replicas_are_never_both_set(renders: dict[str, Rendered], combo: str) -> None:
    rendered = renders[combo]
    scalers: dict[str, int] = {}
    for s in [*rendered.of("HorizontalPodAutoscaler"), *rendered.of("ScaledObject")]:
        ref = s["spec"]["scaleTargetRef"]
        kind = ref.get("kind", "Deployment")
        assert kind in ("Deployment", "StatefulSet")
        rendered.get(kind, ref["name"])  # the target exists, of that kind
        scalers[ref["name"]] = scalers.get(ref["name"], 0) + 1
    for d in [*rendered.of("Deployment"), *rendered.of("StatefulSet")]:
        name = d["metadata"]["name"]
        assert scalers.get(name, 0) <= 1, f"{name} has {scalers[name]} autoscalers"
        if scalers.get(name):
            assert "replicas" not in d["spec"], f"{name}: replicas set although an autoscaler owns it"
        else:
            assert "replicas" in d["spec"], f"{name}: neither replicas nor an autoscaler"


@pytest.mark.parametrize("combo", COMBOS)
def test_drain_lets_in_flight_work_finish(renders: dict[str, Rendered], combo: str) -> None:
    """preStop delay + the service's own drain grace fit in terminationGracePeriodSeconds; gRPC servers
    turn unready through their health service; rolling updates never go below the wanted replicas."""
    rendered = renders[combo]
    for w in _serving_workloads(rendered):
        spec = pod_template(w)["spec"]
        (c,) = spec["containers"]
        where = w["metadata"]["name"]
        pre_stop = c["lifecycle"]["preStop"]
        delay = pre_stop["sleep"]["seconds"] if "sleep" in pre_stop else int(pre_stop["exec"]["command"][-1])
        assert delay >= 5, where
        component = pod_labels(w)["app.kubernetes.io/component"]
        drain_env = env_of(c).get(f"FLOTILLA_{component.upper()}_DRAIN_GRACE_S")
        drain = float(drain_env["value"]) if drain_env else 30.0  # the gateway's uvicorn grace is fixed at 30 s
        assert spec["terminationGracePeriodSeconds"] >= delay + drain + 5, where
        if w["kind"] == "StatefulSet":  # the gateway with per-replica spool claims: one pod at a time
            assert w["spec"]["updateStrategy"]["type"] == "RollingUpdate", where
        else:
            assert w["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, where
        ready = c["readinessProbe"]
        if component == "gateway":
            assert ready["httpGet"]["path"] == "/readyz"
            assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        else:
            cmd = ready["exec"]["command"]
            assert cmd[:3] == ["python", "-m", "flotilla.healthcheck"], where
            prefix = cmd[cmd.index("--env-prefix") + 1]
            assert prefix == f"FLOTILLA_{component.upper()}_"
            port = int(env_of(c)[f"{prefix}PORT"]["value"])
            assert port == next(p["containerPort"] for p in c["ports"] if p["name"] == "grpc"), where
        if component == "inference":
            startup = c["startupProbe"]
            assert startup["periodSeconds"] * startup["failureThreshold"] >= 600, "weights need time to load"
        if kube := COMBOS[combo].get("kube_version"):
            assert ("sleep" in pre_stop) == (kube >= "1.30"), "native sleep only where Kubernetes has it"


@pytest.mark.parametrize("combo", COMBOS)
def test_every_pod_mounts_its_own_certificate(renders: dict[str, Rendered], combo: str) -> None:
    rendered = renders[combo]
    cert_manager = bool(rendered.of("Certificate"))
    secret_names = []
    for w in _serving_workloads(rendered):
        spec = pod_template(w)["spec"]
        (c,) = spec["containers"]
        component = pod_labels(w)["app.kubernetes.io/component"]
        prefix = f"FLOTILLA_{component.upper()}_"
        volume = next(v for v in spec["volumes"] if v["name"] == "tls")
        mount = next(m for m in c["volumeMounts"] if m["name"] == "tls")
        assert mount["readOnly"] is True
        files = {k: env_of(c)[f"{prefix}TLS_{k}"]["value"] for k in ("CA", "CERT", "KEY")}
        assert all(Path(p).parent == Path(mount["mountPath"]) for p in files.values()), files
        assert {Path(p).name for p in files.values()} == {"ca.crt", "tls.crt", "tls.key"}
        secret = volume["secret"]["secretName"]
        secret_names.append(secret)
        if cert_manager:
            assert any(cert["spec"]["secretName"] == secret for cert in rendered.of("Certificate")), secret
        else:
            assert set(rendered.secret_data(secret)) == {"ca.crt", "tls.crt", "tls.key"}
    assert len(secret_names) == len(set(secret_names)), "two workloads share a key pair"


def test_combinations_cover_every_values_file() -> None:
    files = {p.name for p in CHART.glob("values-*.yaml")}
    used = {v for combo in COMBOS.values() for v in combo.get("values", [])}
    assert files and files <= used, f"values files never rendered: {files - used}"
