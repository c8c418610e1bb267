"""Rendering the Helm chart and reasoning about the manifests: strict schema validation (offline, with
``kubernetes-validate``'s schemas), label selectors and a small NetworkPolicy evaluator."""

from __future__ import annotations

import base64
import functools
import ipaddress
import json
import subprocess
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "flotilla"
RELEASE = "rel"
NAMESPACE = "flotilla"
# Strict validation against a current Kubernetes; also the default chart on the oldest supported one.
KUBE_VERSION = "1.35.0"
MIN_KUBE_VERSION = "1.29.0"
PROMETHEUS_OPERATOR_APIS = ("monitoring.coreos.com/v1/ServiceMonitor", "monitoring.coreos.com/v1/PrometheusRule")


# ---------------------------------------------------------------------------------------------------
# YAML that refuses duplicate keys (Kubernetes would silently keep one of them).


class _StrictLoader(yaml.SafeLoader):
    pass


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def load_all(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.load_all(text, Loader=_StrictLoader) if d]


# ---------------------------------------------------------------------------------------------------
# helm


class HelmError(RuntimeError):
    pass


@dataclass
class Rendered:
    """The manifests of one ``helm template`` run."""

    docs: list[dict[str, Any]]
    args: tuple[str, ...] = ()

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def get(self, kind: str, name: str) -> dict[str, Any]:
        for d in self.docs:
            if d["kind"] == kind and d["metadata"]["name"] == name:
                return d
        have = [f"{d['kind']}/{d['metadata']['name']}" for d in self.docs]
        raise KeyError(f"{kind}/{name} not rendered; have {have}")

    def workloads(self) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] in ("Deployment", "StatefulSet", "Job")]

    def component(self, name: str) -> list[dict[str, Any]]:
        """Workloads of a component (app.kubernetes.io/component label of the pods)."""
        return [w for w in self.workloads() if pod_labels(w).get("app.kubernetes.io/component") == name]

    def secret_data(self, name: str) -> dict[str, bytes]:
        secret = self.get("Secret", name)
        out = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
        out.update({k: v.encode() for k, v in (secret.get("stringData") or {}).items()})
        return out


def helm_args(
    values: Sequence[Path | str] = (),
    sets: Mapping[str, str] | None = None,
    set_json: Mapping[str, Any] | None = None,
    kube_version: str = KUBE_VERSION,
    api_versions: Sequence[str] = (),
) -> tuple[str, ...]:
    args: list[str] = ["--kube-version", kube_version]
    for v in values:
        args += ["-f", str(CHART / v) if not Path(v).is_absolute() else str(v)]
    for k, v in (sets or {}).items():
        args += ["--set", f"{k}={v}"]
    for k, v in (set_json or {}).items():
        args += ["--set-json", f"{k}={json.dumps(v)}"]
    for a in api_versions:
        args += ["--api-versions", a]
    return tuple(args)


def run_helm(helm: Path, *args: str) -> str:
    proc = subprocess.run([str(helm), *args], capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip() or proc.stdout.strip())
    return proc.stdout


def template(helm: Path, args: tuple[str, ...]) -> Rendered:
    out = run_helm(helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE, *args)
    return Rendered(load_all(out), args)


# ---------------------------------------------------------------------------------------------------
# Strict schema validation, offline. kubernetes-validate's own validate() re-reads the 1.5 MB definitions
# for every object; this caches one validator per (version, kind) and is checked against it in the tests.

# Custom resources the chart may render; their schemas are not in kubernetes-validate, so each gets a
# structural check of the fields the chart relies on (CRD_REQUIRED) instead.
ALLOWED_CRDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ("spec.selector.matchLabels", "spec.endpoints"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): ("spec.groups",),
    ("keda.sh/v1alpha1", "ScaledObject"): ("spec.scaleTargetRef.name", "spec.triggers"),
    ("cert-manager.io/v1", "Certificate"): ("spec.secretName", "spec.issuerRef.name"),
    ("cert-manager.io/v1", "Issuer"): (),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): ("spec.parentRefs", "spec.rules"),
}


@functools.cache
def _definitions(schema_dir: str) -> Any:
    from kubernetes_validate import utils

    return utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/_definitions.json", schema_dir)


@functools.cache
def _validator(kube_version: str, kind: str, api_version: str) -> Any:
    import re

    import jsonschema
    from kubernetes_validate import utils
    from referencing import Registry, Resource

    version = [v for v in utils.all_versions() if utils.major_minor(v) <= utils.major_minor(kube_version)][-1]
    schema_dir = f"v{version}-local-strict"
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    try:
        schema = utils.schema_contents(f"kubernetes-json-schema/{schema_dir}/{kind.lower()}-{api}.json", version)
    except FileNotFoundError:
        return None
    registry = Resource.from_contents(_definitions(schema_dir)) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _dig(doc: Mapping[str, Any], dotted: str) -> Any:
    cur: Any = doc
    for part in dotted.split("."):
        if not isinstance(cur, Mapping) or part not in cur:
            return None
        cur = cur[part]
    return cur


def schema_errors(doc: Mapping[str, Any], kube_version: str = KUBE_VERSION) -> list[str]:
    """Every strict-schema error of one object; unknown kinds are errors unless allow-listed CRDs."""
    where = f"{doc.get('kind')}/{_dig(doc, 'metadata.name')}"
    key = (doc.get("apiVersion", ""), doc.get("kind", ""))
    if key in ALLOWED_CRDS:
        missing = [f for f in ALLOWED_CRDS[key] if _dig(doc, f) in (None, [], {})]
        errors = [f"{where}: {f} missing" for f in missing]
        if not _dig(doc, "metadata.name"):
            errors.append(f"{where}: metadata.name missing")
        return errors
    validator = _validator(kube_version, key[1], key[0])
    if validator is None:
        return [f"{where}: no schema for {key[0]} {key[1]} in Kubernetes {kube_version} and not an allowed CRD"]
    return [
        f"{where}: {'.'.join(str(p) for p in e.absolute_path)}: {e.message}"
        for e in validator.iter_errors(json.loads(json.dumps(doc)))
    ]


# ---------------------------------------------------------------------------------------------------
# Pods and selectors


def pod_template(workload: Mapping[str, Any]) -> dict[str, Any]:
    return workload["spec"]["template"]


def pod_labels(workload: Mapping[str, Any]) -> dict[str, str]:
    return pod_template(workload)["metadata"].get("labels", {})


def containers(workload: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = pod_template(workload)["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def env_of(container: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def plain_env(container: Mapping[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}


def matches(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Kubernetes LabelSelector semantics (matchLabels + matchExpressions); an empty selector matches all."""
    selector = selector or {}
    for k, v in (selector.get("matchLabels") or {}).items():
        if labels.get(k) != v:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


# ---------------------------------------------------------------------------------------------------
# NetworkPolicy evaluation: which (source, destination, port) flows the rendered policies allow.


@dataclass(frozen=True)
class Endpoint:
    """A pod (with labels, in a namespace) or an address outside the cluster (ip)."""

    name: str
    namespace: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    namespace_labels: tuple[tuple[str, str], ...] = ()
    ip: str | None = None

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def pod_endpoint(name: str, namespace: str, labels: Mapping[str, str]) -> Endpoint:
    return Endpoint(
        name,
        namespace,
        tuple(sorted(labels.items())),
        (("kubernetes.io/metadata.name", namespace),),
    )


def _peer_matches(peer: Mapping[str, Any], ep: Endpoint, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if ep.ip is None:  # pod addresses are never matched by ipBlock here (implementation-defined)
            return False
        net = ipaddress.ip_network(peer["ipBlock"]["cidr"])
        addr = ipaddress.ip_address(ep.ip)
        return addr in net and not any(addr in ipaddress.ip_network(x) for x in peer["ipBlock"].get("except", []))
    if ep.namespace is None:
        return False
    if "namespaceSelector" in peer:
        if not matches(peer["namespaceSelector"], dict(ep.namespace_labels)):
            return False
    elif ep.namespace != policy_ns:
        return False
    return matches(peer.get("podSelector"), ep.label_map) if "podSelector" in peer else True


def _rule_allows(rule: Mapping[str, Any], peers_key: str, other: Endpoint, port: int, policy_ns: str) -> bool:
    ports = rule.get("ports")
    if ports and not any(int(p["port"]) == port and p.get("protocol", "TCP") in ("TCP", "UDP") for p in ports):
        return False
    peers = rule.get(peers_key)
    if not peers:
        return True
    return any(_peer_matches(p, other, policy_ns) for p in peers)


@dataclass
class NetworkModel:
    policies: list[dict[str, Any]]
    namespace: str = NAMESPACE
    endpoints: list[Endpoint] = field(default_factory=list)

    def _selecting(self, ep: Endpoint, kind: str) -> list[dict[str, Any]]:
        if ep.namespace != self.namespace:
            return []
        return [
            p
            for p in self.policies
            if kind in p["spec"].get("policyTypes", ["Ingress"]) and matches(p["spec"].get("podSelector"), ep.label_map)
        ]

    def allowed(self, src: Endpoint, dst: Endpoint, port: int) -> bool:
        egress = self._selecting(src, "Egress")
        if egress and not any(
            _rule_allows(r, "to", dst, port, self.namespace) for p in egress for r in p["spec"].get("egress") or []
        ):
            return False
        ingress = self._selecting(dst, "Ingress")
        return not ingress or any(
            _rule_allows(r, "from", src, port, self.namespace) for p in ingress for r in p["spec"].get("ingress") or []
        )

    def flows(self, ports: Iterable[int]) -> set[tuple[str, str, int]]:
        """Every allowed (source, destination, port) among the endpoints, where one side is ours."""
        ports = sorted(set(ports))
        out = set()
        for src in self.endpoints:
            for dst in self.endpoints:
                if src == dst or (src.namespace != self.namespace and dst.namespace != self.namespace):
                    continue
                for port in ports:
                    if self.allowed(src, dst, port):
                        out.add((src.name, dst.name, port))
        return out


def iter_env_values(rendered: Rendered) -> Iterator[tuple[str, str, str]]:
    """(workload, env name, plain value) of every container."""
    for w in rendered.workloads():
        for c in containers(w):
            for name, value in plain_env(c).items():
                yield w["metadata"]["name"], name, value
