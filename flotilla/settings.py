"""Settings shared by every service: where local state lives and which TLS material to use.

Each service subclasses :class:`ServiceSettings` with its own env prefix (``FLOTILLA_GATEWAY_``,
``FLOTILLA_INFERENCE_``, ...). TLS paths default to ``$FLOTILLA_HOME/certs/<service>.{pem,key}``;
only the paths are configurable — there is no plaintext mode.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from pydantic import model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flotilla.tls import TLSFiles


def flotilla_home() -> Path:
    """Local state directory (certs, models, Postgres data); ``FLOTILLA_HOME`` or ``./.flotilla``."""
    return Path(os.environ.get("FLOTILLA_HOME", ".flotilla")).resolve()


class ServiceSettings(BaseSettings):
    """Base for each service's settings. ``service_name`` names its certificate and its logs."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_", extra="ignore")
    service_name: ClassVar[str] = "service"

    host: str = "127.0.0.1"
    port: int = 0
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    log_level: str = "INFO"
    log_json: bool = True

    @model_validator(mode="after")
    def _default_tls_paths(self) -> ServiceSettings:
        certs = flotilla_home() / "certs"
        if self.tls_ca is None:
            self.tls_ca = certs / "ca.pem"
        if self.tls_cert is None:
            self.tls_cert = certs / f"{self.service_name}.pem"
        if self.tls_key is None:
            self.tls_key = certs / f"{self.service_name}.key"
        return self

    def tls_files(self) -> TLSFiles:
        assert self.tls_ca and self.tls_cert and self.tls_key  # set by the validator above
        return TLSFiles(ca=self.tls_ca, cert=self.tls_cert, key=self.tls_key)

    @property
    def listen_address(self) -> str:
        return f"{self.host}:{self.port}"
