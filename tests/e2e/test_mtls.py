"""Every gRPC service of the running fleet refuses clients without a certificate from the fleet's CA."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flotilla.devfleet import DevFleet
from flotilla.tls import channel_credentials, ensure_dev_certs, secure_channel

pytestmark = pytest.mark.fleet
GRPC_SERVICES = ["inference", "guard", "rag"]


async def _check(channel: grpc.aio.Channel) -> health_pb2.HealthCheckResponse:
    try:
        return await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
    finally:
        await channel.close()


@pytest.mark.parametrize("service", GRPC_SERVICES)
async def test_fleet_client_cert_is_accepted(fleet: DevFleet, service: str) -> None:
    target = f"127.0.0.1:{fleet.config.ports[service]}"
    resp = await _check(secure_channel(target, fleet.certs["gateway"]))
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("service", GRPC_SERVICES)
async def test_client_without_certificate_is_refused(fleet: DevFleet, service: str) -> None:
    target = f"127.0.0.1:{fleet.config.ports[service]}"
    # Trusts the server (right CA) but presents no certificate of its own.
    creds = grpc.ssl_channel_credentials(root_certificates=fleet.certs["gateway"].ca.read_bytes())
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _check(grpc.aio.secure_channel(target, creds))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", GRPC_SERVICES)
async def test_client_signed_by_another_ca_is_refused(fleet: DevFleet, service: str, tmp_path: Path) -> None:
    target = f"127.0.0.1:{fleet.config.ports[service]}"
    rogue = ensure_dev_certs(tmp_path / "rogue", ["gateway"])["gateway"]
    # Presents a well-formed client certificate from a different CA, and trusts the real server.
    creds = grpc.ssl_channel_credentials(
        root_certificates=fleet.certs["gateway"].ca.read_bytes(),
        private_key=rogue.key.read_bytes(),
        certificate_chain=rogue.cert.read_bytes(),
    )
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _check(grpc.aio.secure_channel(target, creds))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("service", GRPC_SERVICES)
async def test_plaintext_client_is_refused(fleet: DevFleet, service: str) -> None:
    target = f"127.0.0.1:{fleet.config.ports[service]}"
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _check(grpc.aio.insecure_channel(target))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_checks_the_server_against_its_ca(fleet: DevFleet, tmp_path: Path) -> None:
    """The gateway side refuses a server whose certificate is not from its CA."""
    rogue = ensure_dev_certs(tmp_path / "rogue", ["gateway"])["gateway"]
    target = f"127.0.0.1:{fleet.config.ports['guard']}"
    with pytest.raises(grpc.aio.AioRpcError):
        await _check(grpc.aio.secure_channel(target, channel_credentials(rogue)))
