from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from flotilla.settings import ServiceSettings


class GuardSettings(ServiceSettings):
    """Guard service settings; environment prefix ``FLOTILLA_GUARD_``."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_GUARD_", extra="ignore")
    service_name: ClassVar[str] = "guard"

    port: int = 50052
    drain_grace_s: float = 10.0
    # Texts longer than this (in total) are scanned on a worker thread instead of the event loop.
    offload_chars: int = 16_384
