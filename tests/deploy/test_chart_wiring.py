"""The chart's wiring: mTLS material and names, the exact network flows, GPUs, migrations, autoscaling on
vLLM's queue, monitoring objects, and the env every service gets matches what its settings read."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import socket
import sys
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flotilla.grpcserver import start_server
from flotilla.tls import TLSFiles, secure_channel
from tests.deploy.chart import (
    CHART,
    NAMESPACE,
    Endpoint,
    NetworkModel,
    Rendered,
    containers,
    env_of,
    matches,
    plain_env,
    pod_endpoint,
    pod_labels,
    pod_template,
)
from tests.deploy.test_chart_render import COMBOS, THREE_MODELS

UPSTREAMS = {"GUARD": "guard", "RAG": "rag", "INFERENCE": "inference"}


def _r(render: Any, combo: str) -> Rendered:
    return render(**COMBOS[combo])


def _container(rendered: Rendered, component: str, index: int = 0) -> dict[str, Any]:
    (c,) = pod_template(rendered.component(component)[index])["spec"]["containers"]
    return c


def _gateway_targets(rendered: Rendered) -> dict[str, list[tuple[str, int]]]:
    env = plain_env(_container(rendered, "gateway"))
    out = {}
    for key, component in UPSTREAMS.items():
        if key == "GUARD" and env["FLOTILLA_GATEWAY_GUARD_ENABLED"] == "false":
            assert "FLOTILLA_GATEWAY_GUARD_TARGET" not in env, "no guard target without a guard"
            continue
        targets = env[f"FLOTILLA_GATEWAY_{key}_TARGET{'S' if key == 'INFERENCE' else ''}"].split(",")
        assert f"FLOTILLA_GATEWAY_{key}_SERVER_NAME" not in env, "each target is verified against its own name"
        out[component] = [(t.rsplit(":", 1)[0], int(t.rsplit(":", 1)[1])) for t in targets]
    return out


def _service_for_host(rendered: Rendered, host: str) -> dict[str, Any]:
    name, ns, svc, *domain = host.split(".")
    assert (ns, svc) == (NAMESPACE, "svc") and domain, f"{host} is not a Service FQDN"
    return rendered.get("Service", name)


# ---------------------------------------------------------------------------------------------------
# mTLS


def _pem(rendered: Rendered, secret: str) -> dict[str, bytes]:
    return rendered.secret_data(secret)


def _tls_secret_of(workload: dict[str, Any]) -> str:
    return next(v for v in pod_template(workload)["spec"]["volumes"] if v["name"] == "tls")["secret"]["secretName"]


@pytest.mark.parametrize("combo", ["defaults", "three-models", "names-and-load-balancer", "guard-disabled"])
def test_every_target_reaches_a_server_whose_certificate_names_it(render: Any, combo: str) -> None:
    """Gateway target host -> Service -> pods -> their mounted certificate: it carries that very name,
    is signed by the CA the gateway trusts, and the gateway's own certificate is signed by the CA the
    server trusts."""
    rendered = _r(render, combo)
    gateway = rendered.component("gateway")[0]
    gw = _pem(rendered, _tls_secret_of(gateway))
    gw_ca = x509.load_pem_x509_certificate(gw["ca.crt"])
    x509.load_pem_x509_certificate(gw["tls.crt"]).verify_directly_issued_by(gw_ca)
    targets = _gateway_targets(rendered)
    assert len(targets["inference"]) == len(rendered.component("inference"))
    for component, hosts in targets.items():
        for host, port in hosts:
            svc = _service_for_host(rendered, host)
            assert host.endswith(".svc." + ("corp.internal" if combo == "names-and-load-balancer" else "cluster.local"))
            (server,) = [
                w for w in rendered.workloads() if matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(w))
            ]
            assert pod_labels(server)["app.kubernetes.io/component"] == component
            (svc_port,) = [p for p in svc["spec"]["ports"] if p["port"] == port]
            (c,) = pod_template(server)["spec"]["containers"]
            assert svc_port["targetPort"] == "grpc"
            listen = int(plain_env(c)[f"FLOTILLA_{component.upper()}_PORT"])
            assert listen == next(p["containerPort"] for p in c["ports"] if p["name"] == "grpc")
            if component == "inference":
                assert svc["spec"]["clusterIP"] == "None", "inference is a headless Service"
            srv = _pem(rendered, _tls_secret_of(server))
            assert srv["ca.crt"] == gw["ca.crt"], "one fleet CA"
            cert = x509.load_pem_x509_certificate(srv["tls.crt"])
            cert.verify_directly_issued_by(gw_ca)
            sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            assert host in sans.get_values_for_type(x509.DNSName)
            assert svc["metadata"]["name"] in sans.get_values_for_type(x509.DNSName)
            assert "localhost" in sans.get_values_for_type(x509.DNSName)  # for the in-pod health probe
            assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)


def test_chart_certificates_are_mtls_capable_and_keys_match(render: Any) -> None:
    rendered = _r(render, "three-models")
    cas = set()
    for w in rendered.of("Deployment"):
        data = _pem(rendered, _tls_secret_of(w))
        cas.add(data["ca.crt"])
        cert = x509.load_pem_x509_certificate(data["tls.crt"])
        key = load_pem_private_key(data["tls.key"], password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        assert key.public_key().public_numbers() == cert.public_key().public_numbers()  # type: ignore[union-attr]
        usages = set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= usages
        ca = x509.load_pem_x509_certificate(data["ca.crt"])
        assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        assert cert.not_valid_after_utc > ca.not_valid_before_utc
    assert len(cas) == 1
    ca_secret = rendered.get("Secret", "rel-flotilla-ca")
    assert ca_secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert rendered.secret_data("rel-flotilla-ca")["tls.crt"] == next(iter(cas))


def _write_tls(directory: Path, data: dict[str, bytes]) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in data.items():
        (directory / name).write_bytes(content)
    return TLSFiles(ca=directory / "ca.crt", cert=directory / "tls.crt", key=directory / "tls.key")


async def test_rendered_certificates_complete_a_real_mtls_handshake(render: Any, tmp_path: Path) -> None:
    """A real gRPC server with the guard's rendered key pair; the gateway's rendered key pair connects under
    the name the gateway is configured with; the rendered readiness probe command answers SERVING; a client
    from another render (another CA) is refused."""
    rendered = _r(render, "defaults")
    guard_tls = _write_tls(tmp_path / "guard", _pem(rendered, _tls_secret_of(rendered.component("guard")[0])))
    gateway_tls = _write_tls(tmp_path / "gateway", _pem(rendered, _tls_secret_of(rendered.component("gateway")[0])))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    svc = await start_server(f"127.0.0.1:{port}", guard_tls, [], ["flotilla.v1.Guard"])
    await svc.set_serving(True)
    try:
        ((host, _),) = _gateway_targets(rendered)["guard"]
        channel = secure_channel(f"127.0.0.1:{port}", gateway_tls, server_name=host)
        try:
            resp = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
            assert resp.status == health_pb2.HealthCheckResponse.SERVING
        finally:
            await channel.close()

        # The readiness probe exactly as rendered, with the guard container's env (paths moved to tmp).
        guard = _container(rendered, "guard")
        env = {**plain_env(guard), "FLOTILLA_GUARD_PORT": str(port)}
        env.update(
            {
                f"FLOTILLA_GUARD_TLS_{k}": str(v)
                for k, v in (("CA", guard_tls.ca), ("CERT", guard_tls.cert), ("KEY", guard_tls.key))
            }
        )
        cmd = guard["readinessProbe"]["exec"]["command"]
        assert cmd[0] == "python"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *cmd[1:],
            env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        assert proc.returncode == 0, out.decode()

        rogue = _write_tls(
            tmp_path / "rogue",
            _pem(_r(render, "minimal"), _tls_secret_of(_r(render, "minimal").component("gateway")[0])),
        )
        channel = secure_channel(f"127.0.0.1:{port}", rogue, server_name=host)
        try:
            with pytest.raises(grpc.aio.AioRpcError):
                await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
        finally:
            await channel.close()
    finally:
        await svc.server.stop(None)


@pytest.mark.parametrize("combo", ["cert-manager", "cert-manager-cluster-issuer", "production"])
def test_cert_manager_issues_every_workload_from_one_issuer(render: Any, combo: str) -> None:
    rendered = _r(render, combo)
    assert not [s for s in rendered.of("Secret") if s["type"] == "kubernetes.io/tls"], "no chart-made certs"
    certs = {c["spec"]["secretName"]: c for c in rendered.of("Certificate") if not c["spec"].get("isCA")}
    issuers = {json.dumps(c["spec"]["issuerRef"], sort_keys=True) for c in certs.values()}
    assert len(issuers) == 1, issuers
    issuer_ref = json.loads(issuers.pop())
    if combo == "cert-manager-cluster-issuer":
        assert issuer_ref == {"name": "corp-ca", "kind": "ClusterIssuer", "group": "cert-manager.io"}
        assert not rendered.of("Issuer")
    else:
        ca_issuer = rendered.get("Issuer", issuer_ref["name"])
        (ca_cert,) = [c for c in rendered.of("Certificate") if c["spec"].get("isCA")]
        assert ca_issuer["spec"]["ca"]["secretName"] == ca_cert["spec"]["secretName"]
        assert "selfSigned" in rendered.get("Issuer", ca_cert["spec"]["issuerRef"]["name"])["spec"]
    for w in rendered.of("Deployment"):
        cert = certs[_tls_secret_of(w)]
        assert {"server auth", "client auth"} <= set(cert["spec"]["usages"])
        assert "localhost" in cert["spec"]["dnsNames"] and "127.0.0.1" in cert["spec"]["ipAddresses"]
    for component, hosts in _gateway_targets(rendered).items():
        for host, _ in hosts:
            svc = _service_for_host(rendered, host)
            (server,) = [
                w for w in rendered.workloads() if matches({"matchLabels": svc["spec"]["selector"]}, pod_labels(w))
            ]
            assert host in certs[_tls_secret_of(server)]["spec"]["dnsNames"], (component, host)


# ---------------------------------------------------------------------------------------------------
# NetworkPolicies: exactly the needed flows


CLIENT = Endpoint("client", "apps", (("app", "web"),), (("kubernetes.io/metadata.name", "apps"),))
INGRESS = Endpoint(
    "ingress-nginx", "ingress-nginx", (("app", "ingress-nginx"),), (("kubernetes.io/metadata.name", "ingress-nginx"),)
)
PROMETHEUS = Endpoint(
    "prometheus", "monitoring", (("app", "prometheus"),), (("kubernetes.io/metadata.name", "monitoring"),)
)
DNS = Endpoint("dns", "kube-system", (("k8s-app", "kube-dns"),), (("kubernetes.io/metadata.name", "kube-system"),))
INTERNET = Endpoint("internet", ip="93.184.216.34")
EXTERNAL_DB = Endpoint("external-db", ip="10.20.30.40")
# With networkPolicy.gatewayFrom empty the gateway is open to every source (clients, ingress controllers).
ANYONE = ["client", "ingress-nginx", "prometheus", "dns", "internet", "external-db"]
PROBE_PORTS = [53, 443, 5432, 8000, 9090, 9101, 9102, 9103, 50051, 50052, 50053, 12345]


def _network(rendered: Rendered) -> NetworkModel:
    eps = [CLIENT, INGRESS, PROMETHEUS, DNS, INTERNET, EXTERNAL_DB]
    for w in rendered.workloads():
        component = pod_labels(w)["app.kubernetes.io/component"]
        if component == "inference" and any(e.name == "inference" for e in eps):
            continue
        eps.append(pod_endpoint(component, NAMESPACE, pod_labels(w)))
    return NetworkModel(rendered.of("NetworkPolicy"), NAMESPACE, eps)


def _expected(
    *, metrics: bool, gateway_from: list[str], database: str, download: bool, guard: bool = True
) -> set[tuple[str, str, int]]:
    flows = {(src, "gateway", 8000) for src in gateway_from}
    flows |= {("gateway", "rag", 50053), ("gateway", "inference", 50051)}
    if guard:
        flows |= {("gateway", "guard", 50052)} | ({("prometheus", "guard", 9102)} if metrics else set())
    flows |= {(src, database, 5432) for src in ("gateway", "rag", "migrations")}
    flows |= {(src, "dns", 53) for src in ("gateway", "rag", "inference", "migrations")}
    if download:  # modelDownloadTo is 0.0.0.0/0: any address outside the cluster, on 443 only
        flows |= {("inference", "internet", 443), ("inference", "external-db", 443)}
    if metrics:
        flows |= {("prometheus", "gateway", 8000), ("prometheus", "rag", 9103)}
        flows |= {("prometheus", "inference", 9101)}
    return flows


@pytest.mark.parametrize(
    ("combo", "expected"),
    [
        ("defaults", _expected(metrics=True, gateway_from=ANYONE, database="postgres", download=True)),
        ("metrics-off", _expected(metrics=False, gateway_from=ANYONE, database="postgres", download=True)),
        (
            "metrics-with-prometheus-operator",
            _expected(metrics=True, gateway_from=ANYONE, database="postgres", download=True),
        ),
        ("external-database-url", _expected(metrics=True, gateway_from=ANYONE, database="external-db", download=True)),
        ("production", _expected(metrics=True, gateway_from=["ingress-nginx"], database="external-db", download=True)),
        (
            "guard-disabled",
            _expected(metrics=True, gateway_from=ANYONE, database="postgres", download=True, guard=False),
        ),
        (
            "gateway-spool-claims",
            _expected(metrics=True, gateway_from=ANYONE, database="postgres", download=True),
        ),
    ],
)
def test_network_policies_allow_exactly_the_needed_flows(
    render: Any, combo: str, expected: set[tuple[str, str, int]]
) -> None:
    rendered = _r(render, combo)
    network = _network(rendered)
    flows = network.flows(PROBE_PORTS)
    if combo == "external-database-url":
        # 0.0.0.0/0 is the default externalDatabaseTo: the database rule also reaches any address on 5432,
        # and inference's download rule any address on 443.
        expected = expected | {(s, "internet", 5432) for s in ("gateway", "rag", "migrations")}
    assert flows == expected, f"unexpected: {sorted(flows - expected)}; missing: {sorted(expected - flows)}"


def test_network_policies_default_deny_covers_every_pod(render: Any) -> None:
    rendered = _r(render, "defaults")
    (deny,) = [p for p in rendered.of("NetworkPolicy") if p["metadata"]["name"].endswith("default-deny")]
    assert deny["spec"]["policyTypes"] == ["Ingress", "Egress"] and "ingress" not in deny["spec"]
    for w in rendered.workloads():
        assert matches(deny["spec"]["podSelector"], pod_labels(w)), w["metadata"]["name"]
    assert not _r(render, "no-network-policy").of("NetworkPolicy")
    bare = _network(_r(render, "bare")).flows(PROBE_PORTS)
    assert not any(dst == "internet" for _, dst, _ in bare), "no download egress when disallowed"


# ---------------------------------------------------------------------------------------------------
# Inference, migrations, autoscaling, monitoring


@pytest.mark.parametrize("combo", ["defaults", "minimal", "production", "three-models"])
def test_inference_requests_gpus_and_is_scheduled_on_gpu_nodes(render: Any, combo: str) -> None:
    rendered = _r(render, combo)
    deployments = rendered.component("inference")
    assert deployments
    for d in deployments:
        spec = pod_template(d)["spec"]
        (c,) = spec["containers"]
        env = plain_env(c)
        tp = int(env["FLOTILLA_INFERENCE_TENSOR_PARALLEL_SIZE"])
        gpus = c["resources"]["limits"]["nvidia.com/gpu"]
        assert gpus >= tp >= 1 and c["resources"]["requests"]["nvidia.com/gpu"] == gpus
        assert any(t.get("key") == "nvidia.com/gpu" for t in spec.get("tolerations", [])), "GPU taint tolerated"
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert mounts["model-cache"] == "/models" and env["HF_HOME"].startswith("/models")
        assert mounts["dshm"] == "/dev/shm"
        assert env["FLOTILLA_INFERENCE_MODEL"]
    if combo == "three-models":
        by_model = {pod_labels(d)["flotilla.dev/model"]: d for d in deployments}
        assert set(by_model) == {m["name"] for m in THREE_MODELS}
        big = pod_template(by_model["big"])["spec"]
        assert big["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2
        assert big["nodeSelector"] == {"gpu": "h100"}
        assert plain_env(big["containers"][0])["FLOTILLA_INFERENCE_TOOL_CALL_PARSER"] == "hermes"
        local = plain_env(pod_template(by_model["local"])["spec"]["containers"][0])
        assert local["FLOTILLA_INFERENCE_SERVED_MODEL_NAME"] == "finetune"
        assert local["FLOTILLA_INFERENCE_MODEL"] == "/models/my-finetune"
        assert by_model["local"]["spec"]["replicas"] == 2
        assert "replicas" not in by_model["big"]["spec"]
        assert rendered.get("HorizontalPodAutoscaler", by_model["big"]["metadata"]["name"])["spec"]["maxReplicas"] == 3


@pytest.mark.parametrize(
    ("combo", "phases"),
    [
        ("defaults", {"post-install", "pre-upgrade"}),
        ("external-database-url", {"pre-install", "pre-upgrade"}),
        ("external-database-secret", {"pre-install", "pre-upgrade"}),
        ("production", {"pre-install", "pre-upgrade"}),
    ],
)
def test_migrations_run_as_a_hook_before_the_new_version(render: Any, combo: str, phases: set[str]) -> None:
    rendered = _r(render, combo)
    (job,) = rendered.of("Job")
    ann = job["metadata"]["annotations"]
    assert set(ann["helm.sh/hook"].split(",")) == phases
    assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
    (c,) = pod_template(job)["spec"]["containers"]
    assert c["command"][-1] == "migrate" and "flotilla.cli" in c["command"]
    env = env_of(c)
    assert "DATABASE_URL" in env
    spec = pod_template(job)["spec"]
    assert "serviceAccountName" not in spec, "the release's ServiceAccount may not exist at pre-install"
    if "pre-install" in phases:
        # Everything the hook needs must exist before the release's objects do.
        ref = env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"]
        if combo == "external-database-url":
            hook_secret = rendered.get("Secret", ref)
            assert hook_secret["metadata"]["annotations"]["helm.sh/hook"] == ann["helm.sh/hook"]
            assert int(hook_secret["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(ann["helm.sh/hook-weight"])
        else:
            assert ref == "corp-db" if combo == "external-database-secret" else ref == "flotilla-database"
    assert not _r(render, "bare").of("Job")


def test_rag_and_gateway_get_the_database_from_secrets(render: Any) -> None:
    rendered = _r(render, "defaults")
    pg = rendered.get("StatefulSet", "rel-flotilla-postgres")
    (c,) = pod_template(pg)["spec"]["containers"]
    assert c["image"].startswith("docker.io/pgvector/pgvector:")
    assert env_of(c)["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"] == {
        "name": "rel-flotilla-postgres",
        "key": "password",
    }
    assert pg["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
    # Postgres 18 images refuse a volume at the old /var/lib/postgresql/data location.
    assert {m["name"]: m["mountPath"] for m in c["volumeMounts"]}["data"] == "/var/lib/postgresql"
    assert (
        rendered.get("Secret", "rel-flotilla-postgres")["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    )
    for component in ("rag", "gateway"):
        env = env_of(_container(rendered, component))
        assert env["PGPASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "rel-flotilla-postgres"
        assert (
            env["DATABASE_URL"]["value"]
            == "postgresql://flotilla@rel-flotilla-postgres.flotilla.svc.cluster.local:5432/flotilla"
        )
    external = _r(render, "external-database-url")
    assert not external.of("StatefulSet")
    env = env_of(_container(external, "rag"))
    assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "rel-flotilla-database", "key": "database-url"}
    assert "PGPASSWORD" not in env


def test_gateway_replicas_share_a_generated_cache_salt_secret(render: Any) -> None:
    rendered = _r(render, "defaults")
    env = env_of(_container(rendered, "gateway"))
    ref = env["FLOTILLA_GATEWAY_CACHE_SALT_SECRET"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "rel-flotilla-gateway-secrets", "key": "cache-salt-secret"}
    assert len(rendered.secret_data(ref["name"])["cache-salt-secret"]) >= 32
    assert env["FLOTILLA_GATEWAY_CACHE_SALT_PER_TENANT"]["value"] == "true"
    own = render(sets={"gateway.cacheSalt.existingSecret": "salt"})
    assert (
        env_of(_container(own, "gateway"))["FLOTILLA_GATEWAY_CACHE_SALT_SECRET"]["valueFrom"]["secretKeyRef"]["name"]
        == "salt"
    )
    assert not [s for s in own.of("Secret") if s["metadata"]["name"].endswith("gateway-secrets")]


def test_inference_metrics_port_follows_the_values(render: Any) -> None:
    for combo in ("defaults", "metrics-with-prometheus-operator", "metrics-off"):
        c = _container(_r(render, combo), "inference")
        assert plain_env(c)["FLOTILLA_INFERENCE_METRICS_PORT"] == "9101"
        opened = [p["containerPort"] for p in c["ports"] if p["name"] == "metrics"]
        assert opened == ([9101] if combo != "metrics-off" else [])


@pytest.mark.parametrize(
    "combo", ["defaults", "production", "metrics-without-prometheus-operator", "metrics-off", "gateway-spool-claims"]
)
def test_every_service_is_scraped_on_the_port_it_serves_metrics_on(render: Any, combo: str) -> None:
    """Metrics are on by default: each pod's prometheus.io/port is a port its container opens, and the service
    listens there (FLOTILLA_<SERVICE>_METRICS_PORT; the gateway serves /metrics on its HTTP port)."""
    rendered = _r(render, combo)
    enabled = combo != "metrics-off"
    for component in ("gateway", "guard", "rag", "inference"):
        for w in rendered.component(component):
            if w["kind"] not in ("Deployment", "StatefulSet"):
                continue
            annotations = w["spec"]["template"]["metadata"].get("annotations") or {}
            (c,) = pod_template(w)["spec"]["containers"]
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            env = plain_env(c)
            if not enabled:
                assert "prometheus.io/scrape" not in annotations and "metrics" not in ports, component
                if component in ("guard", "rag"):
                    assert env[f"FLOTILLA_{component.upper()}_METRICS_PORT"] == "0"
                continue
            assert annotations["prometheus.io/scrape"] == "true" and annotations["prometheus.io/path"] == "/metrics"
            port = int(annotations["prometheus.io/port"])
            if component == "gateway":
                assert port == ports["http"] and "FLOTILLA_GATEWAY_METRICS_PORT" not in env
            else:
                assert port == ports["metrics"] == int(env[f"FLOTILLA_{component.upper()}_METRICS_PORT"]), component
    if enabled:
        assert {
            s["metadata"]["name"]
            for s in rendered.of("Service")
            if "metrics" in {p["name"] for p in s["spec"]["ports"]}
        } >= {"rel-flotilla-guard", "rel-flotilla-rag"}


def test_gateway_metrics_on_a_port_of_their_own(render: Any) -> None:
    c = _container(render(sets={"metrics.ports.gateway": "9100"}), "gateway")
    assert plain_env(c)["FLOTILLA_GATEWAY_METRICS_PORT"] == "9100"
    assert {p["name"]: p["containerPort"] for p in c["ports"]}["metrics"] == 9100


def test_inference_scales_on_vllm_queue_depth(render: Any) -> None:
    keda = _r(render, "inference-keda")
    (so,) = keda.of("ScaledObject")
    assert not keda.of("HorizontalPodAutoscaler")
    queries = {t["name"]: t["metadata"] for t in so["spec"]["triggers"]}
    assert "vllm:num_requests_waiting" in queries["queue-depth"]["query"]
    assert 'service="rel-flotilla-inference-smollm2"' in queries["queue-depth"]["query"]
    assert queries["queue-depth"]["threshold"] == "5"
    assert "vllm:kv_cache_usage_perc" in queries["kv-cache-usage"]["query"]
    assert so["spec"]["minReplicaCount"] == 1 and so["spec"]["maxReplicaCount"] == 4

    adapter = _r(render, "inference-hpa-prometheus-adapter")
    hpa = adapter.get("HorizontalPodAutoscaler", "rel-flotilla-inference-smollm2")
    metrics = {m["pods"]["metric"]["name"]: m["pods"]["target"] for m in hpa["spec"]["metrics"]}
    assert metrics["vllm_num_requests_waiting"] == {"type": "AverageValue", "averageValue": "5"}
    assert "vllm_kv_cache_usage_perc" in metrics
    assert not adapter.of("ScaledObject")

    cpu = _r(render, "cpu-autoscaling")
    for component in ("gateway", "guard", "rag"):
        hpa = cpu.get("HorizontalPodAutoscaler", f"rel-flotilla-{component}")
        assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"


def test_monitoring_objects_follow_the_prometheus_operator(render: Any) -> None:
    assert not _r(render, "defaults").of("ServiceMonitor"), "only where the Prometheus Operator's CRDs are"
    without = _r(render, "metrics-without-prometheus-operator")
    assert not without.of("ServiceMonitor") and not without.of("PrometheusRule"), "only where the CRDs are"
    assert without.of("ConfigMap"), "the dashboard needs no operator"
    rendered = _r(render, "metrics-with-prometheus-operator")
    monitors = rendered.of("ServiceMonitor")
    assert {
        pod_labels({"spec": {"template": {"metadata": m["metadata"]}}})["app.kubernetes.io/component"] for m in monitors
    } == {"gateway", "guard", "rag", "inference"}
    for m in monitors:
        services = [s for s in rendered.of("Service") if matches(m["spec"]["selector"], s["metadata"]["labels"])]
        assert services, m["metadata"]["name"]
        for s in services:
            assert m["spec"]["endpoints"][0]["port"] in {p["name"] for p in s["spec"]["ports"]}
    (rule,) = rendered.of("PrometheusRule")
    alerts = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(alerts) == {
        "FlotillaHighErrorRate",
        "FlotillaSlowTimeToFirstToken",
        "FlotillaInferenceQueueDeep",
        "FlotillaGuardBlocksSpike",
    }
    (dashboard_cm,) = rendered.of("ConfigMap")
    assert dashboard_cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(dashboard_cm["data"]["flotilla.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "flotilla.json").read_text())
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needle in (
        "requests",
        "tokens",
        "first token",
        "queue depth",
        "kv cache",
        "guard findings",
        "quota rejections",
    ):
        assert needle in titles, needle
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p["targets"])
    for metric in (
        "flotilla_requests_total",
        "flotilla_time_to_first_token_seconds_bucket",
        "vllm:num_requests_waiting",
        "flotilla_guard_verdicts_total",
    ):
        assert metric in exprs and metric in " ".join(alerts.values()), metric
    # Metrics ports are opened on the pods and Services only when enabled.
    assert not [
        p
        for c in containers(_r(render, "metrics-off").component("guard")[0])
        for p in c["ports"]
        if p["name"] == "metrics"
    ]


def test_gateway_exposure_options(render: Any) -> None:
    ingress = _r(render, "ingress").get("Ingress", "rel-flotilla-gateway")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "rel-flotilla-gateway", "port": {"name": "http"}}
    route = _r(render, "http-route").get("HTTPRoute", "rel-flotilla-gateway")
    assert route["spec"]["rules"][0]["backendRefs"][0] == {"name": "rel-flotilla-gateway", "port": 80}
    lb = _r(render, "names-and-load-balancer")
    assert lb.get("Service", "llm-gateway")["spec"]["type"] == "LoadBalancer"
    assert pod_template(lb.get("Deployment", "llm-gateway"))["spec"]["imagePullSecrets"] == [{"name": "regcred"}]


# ---------------------------------------------------------------------------------------------------
# The env the chart sets is what the services read


def _settings_env_names(settings_cls: type) -> set[str]:
    prefix = settings_cls.model_config.get("env_prefix", "")
    names = set()
    for name, f in settings_cls.model_fields.items():
        names.add(f"{prefix}{name}".upper())
        alias = f.validation_alias
        for choice in getattr(alias, "choices", [alias] if isinstance(alias, str) else []):
            if isinstance(choice, str):
                names.add(choice.upper())
    return names


def _settings_from_env(cls: type, env: dict[str, str]) -> Any:
    saved = dict(os.environ)
    try:
        os.environ.update(env)
        return cls()
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.mark.parametrize(
    "combo",
    ["defaults", "production", "three-models", "guard-disabled", "gateway-fault-settings", "gateway-spool-claims",
     "guard-policies"],
)
def test_chart_env_is_read_by_the_services(render: Any, combo: str) -> None:
    """Every FLOTILLA_* variable the chart sets is a field of the service's settings (a renamed setting
    breaks this test, not a cluster), and the settings accept the rendered values."""
    from services.gateway.settings import GatewaySettings
    from services.guard.settings import GuardSettings
    from services.inference.settings import InferenceSettings
    from services.rag.settings import RagSettings

    classes = {"gateway": GatewaySettings, "guard": GuardSettings, "rag": RagSettings, "inference": InferenceSettings}
    rendered = _r(render, combo)
    for component, cls in classes.items():
        for w in rendered.component(component):
            (c,) = pod_template(w)["spec"]["containers"]
            known = _settings_env_names(cls) | {"FLOTILLA_HOME", "DATABASE_URL"}
            ours = [n for n in env_of(c) if n.startswith("FLOTILLA_")]
            unknown = [n for n in ours if n not in known]
            assert not unknown, f"{component}: {unknown} are not settings of {cls.__name__}"
            env = {k: v for k, v in plain_env(c).items() if k.startswith("FLOTILLA_") or k == "DATABASE_URL"}
            settings = _settings_from_env(cls, env)
            assert str(settings.tls_files().cert) == "/etc/flotilla/tls/tls.crt"
            assert settings.host == "0.0.0.0"


# ---------------------------------------------------------------------------------------------------
# Gateway: fault behaviour, the guard switch, the usage-ledger spool

# values.yaml path -> GatewaySettings field of every gateway setting the chart renders from typed values.
GATEWAY_VALUES = {
    "failOpen.guard": "guard_fail_open",
    "failOpen.rag": "rag_fail_open",
    "retries.count": "retries",
    "retries.backoffSeconds": "retry_backoff_s",
    "retries.backoffMaxSeconds": "retry_backoff_max_s",
    "circuitBreaker.failures": "circuit_failures",
    "circuitBreaker.ejectSeconds": "eject_s",
    "circuitBreaker.ejectMaxSeconds": "eject_max_s",
    "logPrompts": "log_prompts",
    "forwardedAllowIps": "forwarded_allow_ips",
}


def _gateway_settings(rendered: Rendered) -> Any:
    from services.gateway.settings import GatewaySettings

    c = _container(rendered, "gateway")
    env = {k: v for k, v in plain_env(c).items() if k.startswith("FLOTILLA_")}
    return _settings_from_env(GatewaySettings, env)


def _values_at(values: dict[str, Any], dotted: str) -> Any:
    for part in dotted.split("."):
        values = values[part]
    return values


def test_gateway_defaults_are_the_services_defaults(render: Any) -> None:
    """The chart's default gateway values are GatewaySettings' own defaults (no silent behaviour change)."""
    import yaml

    from services.gateway.settings import GatewaySettings

    defaults = yaml.safe_load((CHART / "values.yaml").read_text())["gateway"]
    code = GatewaySettings.model_fields
    settings = _gateway_settings(_r(render, "defaults"))
    for path, field in GATEWAY_VALUES.items():
        value = _values_at(defaults, path)
        if isinstance(value, list):
            value = ",".join(value)
        assert value == code[field].default, f"gateway.{path}={value!r} but {field} defaults to {code[field].default!r}"
        assert getattr(settings, field) == code[field].default, field
    assert settings.guard_enabled is True
    assert "FLOTILLA_GATEWAY_FORWARDED_ALLOW_IPS" not in plain_env(_container(_r(render, "defaults"), "gateway"))


def test_gateway_fault_settings_reach_the_gateway(render: Any) -> None:
    combo = COMBOS["gateway-fault-settings"]
    given = {**{k: v for k, v in combo["sets"].items()}, **combo["set_json"]}
    settings = _gateway_settings(_r(render, "gateway-fault-settings"))
    for path, field in GATEWAY_VALUES.items():
        value = given[f"gateway.{path}"]
        expected = {"true": True, "false": False}.get(value, value) if isinstance(value, str) else value
        if isinstance(expected, list):
            expected = ",".join(expected)
        elif isinstance(expected, str):
            expected = type(getattr(settings, field))(expected)
        assert getattr(settings, field) == expected, (path, getattr(settings, field), expected)
    assert settings.forwarded_allow_ips == "10.0.0.0/8,fd00::/8"


def test_guard_policies_and_system_message_scanning_reach_the_guard(render: Any) -> None:
    from services.guard.settings import GuardSettings

    default_env = plain_env(_container(_r(render, "defaults"), "guard"))
    assert not any(k.endswith("_POLICY") for k in default_env)  # empty values: the guard's built-in defaults
    defaults = _settings_from_env(GuardSettings, {k: v for k, v in default_env.items() if k.startswith("FLOTILLA_")})
    assert defaults.scan_system_messages is False
    assert defaults.input_policy == GuardSettings.model_fields["input_policy"].default
    env = plain_env(_container(_r(render, "guard-policies"), "guard"))
    settings = _settings_from_env(GuardSettings, {k: v for k, v in env.items() if k.startswith("FLOTILLA_")})
    assert settings.input_policy == "injection=block:0.7, pii=block"
    assert settings.retrieved_policy == "secrets=block"
    assert settings.output_policy == GuardSettings.model_fields["output_policy"].default
    assert settings.scan_system_messages is True


def test_guard_can_be_turned_off(render: Any) -> None:
    """guard.enabled=false: the gateway runs without the guard hop and nothing of the guard is rendered."""
    on, off = _r(render, "defaults"), _r(render, "guard-disabled")
    assert _gateway_settings(on).guard_enabled is True
    assert _gateway_settings(off).guard_enabled is False
    env = plain_env(_container(off, "gateway"))
    assert env["FLOTILLA_GATEWAY_GUARD_ENABLED"] == "false"
    assert not [k for k in env if k.startswith("FLOTILLA_GATEWAY_GUARD_") and k != "FLOTILLA_GATEWAY_GUARD_ENABLED"]
    assert on.component("guard") and not off.component("guard")
    guard_objects = [
        f"{d['kind']}/{d['metadata']['name']}"
        for d in off.docs
        if d["metadata"]["name"].startswith("rel-flotilla-guard")
        or d["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "guard"
    ]
    assert not guard_objects, guard_objects
    assert [s for s in on.of("Secret") if s["metadata"]["name"] == "rel-flotilla-guard-tls"]
    with_monitors = render(sets={"guard.enabled": "true"}, api_versions=COMBOS["guard-disabled"]["api_versions"])
    assert {m["metadata"]["name"] for m in with_monitors.of("ServiceMonitor")} - {
        m["metadata"]["name"] for m in off.of("ServiceMonitor")
    } == {"rel-flotilla-guard"}
    gateway_policy = off.get("NetworkPolicy", "rel-flotilla-gateway")
    assert "50052" not in json.dumps(gateway_policy["spec"]["egress"])


def _expand_env(container: dict[str, Any], pod_name: str) -> dict[str, str]:
    """The container's env as the kubelet makes it: downward-API metadata.name and $(VAR) of earlier vars."""
    import re

    out: dict[str, str] = {}
    for e in container["env"]:
        if "value" in e:
            out[e["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: out.get(m[1], m[0]), e["value"])
        elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            out[e["name"]] = pod_name
    return out


@pytest.mark.parametrize(
    ("combo", "mount_path"), [("defaults", "/var/lib/flotilla/ledger-spool"), ("gateway-fault-settings", "/spool")]
)
def test_ledger_spool_is_a_volume_with_one_file_per_pod(render: Any, combo: str, mount_path: str) -> None:
    """The spool lives on its own volume (not the read-only root, not /tmp) in a file named for the pod, so
    replicas sharing a volume could never share a file; by default an emptyDir (survives container restarts)."""
    rendered = _r(render, combo)
    (gateway,) = rendered.component("gateway")
    assert gateway["kind"] == "Deployment"
    c = _container(rendered, "gateway")
    (mount,) = [m for m in c["volumeMounts"] if m["name"] == "ledger-spool"]
    assert mount["mountPath"] == mount_path and not mount.get("readOnly")
    (volume,) = [v for v in pod_template(gateway)["spec"]["volumes"] if v["name"] == "ledger-spool"]
    assert volume["emptyDir"]["sizeLimit"] == ("64Mi" if combo == "gateway-fault-settings" else "256Mi")
    files = {Path(_expand_env(c, pod)["FLOTILLA_GATEWAY_LEDGER_SPOOL"]) for pod in ("gw-a", "gw-b")}
    assert files == {Path(mount_path) / "gw-a.jsonl", Path(mount_path) / "gw-b.jsonl"}
    assert _gateway_settings(rendered).ledger_spool == f"{mount_path}/$(POD_NAME).jsonl"


def test_ledger_spool_on_a_claim_per_replica(render: Any) -> None:
    """persistence.enabled: a StatefulSet with one claim per replica (a replacement pod keeps its name, its claim
    and so its spool file); the Service, PDB and HPA follow it."""
    rendered = _r(render, "gateway-spool-claims")
    (gateway,) = rendered.component("gateway")
    assert gateway["kind"] == "StatefulSet"
    assert not [d for d in rendered.of("Deployment") if d["metadata"]["name"] == "rel-flotilla-gateway"]
    assert "replicas" not in gateway["spec"], "the HPA owns replicas"
    assert rendered.get("Service", gateway["spec"]["serviceName"])
    (claim,) = gateway["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "ledger-spool"
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert not [v for v in pod_template(gateway)["spec"]["volumes"] if v["name"] == "ledger-spool"]
    c = _container(rendered, "gateway")
    assert [m["mountPath"] for m in c["volumeMounts"] if m["name"] == "ledger-spool"] == [
        "/var/lib/flotilla/ledger-spool"
    ]
    assert _expand_env(c, "rel-flotilla-gateway-1")["FLOTILLA_GATEWAY_LEDGER_SPOOL"] == (
        "/var/lib/flotilla/ledger-spool/rel-flotilla-gateway-1.jsonl"
    )
    (hpa,) = [h for h in rendered.of("HorizontalPodAutoscaler") if h["metadata"]["name"] == "rel-flotilla-gateway"]
    assert hpa["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    pdb = rendered.get("PodDisruptionBudget", "rel-flotilla-gateway")
    assert matches(pdb["spec"]["selector"], pod_labels(gateway))
    assert rendered.get("ServiceMonitor", "rel-flotilla-gateway")
