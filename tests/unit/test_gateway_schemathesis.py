"""Schemathesis fuzzes every operation of the gateway's OpenAPI schema: no input may produce a 5xx.

Upstreams are the named fakes of tests/unit/fakes.py (in process, fast enough for many examples); the
real fleet's gateway gets the same treatment with fewer examples in tests/e2e/test_schemathesis_fleet.py.
"""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from services.gateway.app import create_app
from services.gateway.settings import GatewaySettings
from tests.unit.fakes import fake_access, fake_upstreams

_settings = GatewaySettings(max_body_bytes=64 * 1024)
_access, KEY = fake_access(_settings)
APP = create_app(_settings, fake_upstreams(), _access)
# The fakes do not implement the RAG service's file and vector-store RPCs, and there is no database here:
# those routes are fuzzed against the real fleet (tests/e2e/test_schemathesis_fleet.py).
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).exclude(
    path_regex=r"^/(v1/(files|vector_stores|embeddings)|admin)"
)


@schema.parametrize()
@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gives_a_server_error(case) -> None:
    response = case.call(headers={"authorization": f"Bearer {KEY}"})
    assert response.status_code < 500, f"{case.method} {case.path} -> {response.status_code}: {response.text[:500]}"
