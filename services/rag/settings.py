from typing import ClassVar

from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from flotilla.settings import ServiceSettings


class RagSettings(ServiceSettings):
    """RAG service settings; environment prefix ``FLOTILLA_RAG_``. The database is ``DATABASE_URL``."""

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_RAG_", extra="ignore")
    service_name: ClassVar[str] = "rag"

    port: int = 50053
    database_url: str = Field(
        default="postgresql://postgres@localhost:5432/postgres",
        validation_alias=AliasChoices("DATABASE_URL", "FLOTILLA_RAG_DATABASE_URL"),
    )
    pool_min_size: int = 1
    pool_max_size: int = 10
    default_k: int = 5
    max_k: int = 50
    drain_grace_s: float = 10.0
