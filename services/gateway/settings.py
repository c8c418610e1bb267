from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from flotilla.settings import ServiceSettings


class GatewaySettings(ServiceSettings):
    """Gateway settings; environment prefix ``FLOTILLA_GATEWAY_``.

    Upstream targets are ``host:port``; each server certificate is checked against the CA and against
    the target host (or ``*_server_name`` when set, e.g. behind a Kubernetes Service name).
    """

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_GATEWAY_", extra="ignore")
    service_name: ClassVar[str] = "gateway"

    port: int = 8000
    inference_target: str = "localhost:50051"
    guard_target: str = "localhost:50052"
    rag_target: str = "localhost:50053"
    inference_server_name: str | None = None
    guard_server_name: str | None = None
    rag_server_name: str | None = None

    # Deadlines (seconds) of each gRPC hop.
    guard_timeout_s: float = 2.0
    rag_timeout_s: float = 5.0
    inference_timeout_s: float = 600.0

    tenant_id: str = "default"  # until API keys carry tenants
    rag_k: int = 4
    max_body_bytes: int = 1024 * 1024
    max_n: int = 16
