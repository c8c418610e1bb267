"""Schemathesis against the real fleet's gateway: keys, files, vector stores, embeddings, moderations,
models and admin routes over real Postgres and gRPC never answer 5xx. (Generation routes are fuzzed
in tests/unit/test_gateway_schemathesis.py: random max_tokens on a CPU model would take minutes.)"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from flotilla.devfleet import DevFleet

pytestmark = pytest.mark.fleet

ADMIN = "schemathesis-admin"  # the fleet fixture's FLOTILLA_GATEWAY_ADMIN_KEY


def test_no_input_gives_a_server_error(fleet: DevFleet) -> None:
    base = fleet.config.base_url.removesuffix("/v1")
    schema = (
        schemathesis.openapi.from_url(f"{base}/openapi.json")
        .exclude(path_regex=r"^/v1/(chat/completions|completions|responses)$")
        .exclude(method="DELETE", path_regex=r"^/admin/keys/")  # could revoke the dev key other tests use
    )
    failures: list[str] = []
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 10

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case) -> None:
            token = ADMIN if case.path.startswith("/admin") else fleet.api_key
            response = case.call(headers={"authorization": f"Bearer {token}"}, timeout=60)
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path} -> {response.status_code}: "
                                f"{response.text[:300]}")

        fuzz()
    assert failures == []
