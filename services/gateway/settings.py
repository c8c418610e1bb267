from typing import ClassVar

from pydantic import AliasChoices, Field
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
    # Comma-separated inference targets ``host:port``; a host resolving to several addresses (a headless
    # Service) is one replica per address. Models are discovered from each replica's ListModels.
    inference_targets: str = Field(
        default="localhost:50051",
        validation_alias=AliasChoices("FLOTILLA_GATEWAY_INFERENCE_TARGETS", "FLOTILLA_GATEWAY_INFERENCE_TARGET"),
    )
    guard_target: str = "localhost:50052"
    rag_target: str = "localhost:50053"
    inference_server_name: str | None = None
    guard_server_name: str | None = None
    rag_server_name: str | None = None

    # Scan prompts, retrieved chunks and answers with the guard service; false: no guard hop at all (fleets
    # without the guard, and the gateway-overhead benchmark).
    guard_enabled: bool = True

    # Deadlines (seconds) of each gRPC hop.
    guard_timeout_s: float = 2.0
    # The guard's slow stage (the MiniLM injection classifier, for prompts its fast first stage cannot call benign)
    # runs while the model already reads the prompt: no output is released before its verdict, and a block stops
    # the generation. False: the whole input scan finishes before inference starts.
    guard_defer_slow: bool = True
    rag_timeout_s: float = 5.0
    inference_timeout_s: float = 600.0

    # Routing across inference replicas.
    affinity_slack: int = 4  # prefer the prefix-affine replica unless it has this many more requests in flight
    eject_s: float = 5.0  # a replica whose circuit opens is skipped this long (doubling per re-opening) ...
    eject_max_s: float = 60.0  # ... up to this
    circuit_failures: int = 3  # consecutive failures (other than UNAVAILABLE, which opens at once) that eject
    retries: int = 2  # retries on other replicas of a call that failed before streaming anything
    retry_backoff_s: float = 0.05  # base of the jittered exponential backoff between those retries
    retry_backoff_max_s: float = 1.0
    refresh_s: float = 10.0  # re-resolve targets and re-read their models this often

    # Degraded modes when an optional hop is unreachable (UNAVAILABLE or past its deadline).
    # Guard: fail closed (503 guard_unavailable) unless fail-open, which serves the request unscanned,
    # says so in `x-flotilla-guard: skipped` and counts flotilla_guard_fail_open_total.
    guard_fail_open: bool = False
    # RAG: fail (503 rag_unavailable) unless fail-open, which answers without context, says so in
    # `x-flotilla-rag: unavailable` and counts flotilla_rag_degraded_total.
    rag_fail_open: bool = False

    # vLLM prefix-cache isolation: a per-tenant cache_salt (tenants cannot probe each other's cached prompts).
    cache_salt_per_tenant: bool = True
    cache_salt_secret: str = "flotilla"

    # Postgres: API keys, quotas and the usage ledger. Empty: no keys can be loaded (every /v1 call gets 401).
    database_url: str = Field(
        default="", validation_alias=AliasChoices("DATABASE_URL", "FLOTILLA_GATEWAY_DATABASE_URL")
    )
    db_pool_size: int = 10
    admin_key: str = ""  # bearer token of the /admin API; empty disables it
    quota_lease_fraction: float = 0.1  # share of a key's per-minute limit one replica leases at a time
    ledger_flush_s: float = 0.5
    ledger_spool: str | None = None  # default: $FLOTILLA_HOME/ledger-spool/gateway-<port>.jsonl

    tenant_id: str = "default"  # until API keys carry tenants
    rag_k: int = 4
    # Citations when the model writes no [n] marker: attribute answer sentences to the chunks that support them
    # (services/gateway/citations.py); a chunk must cover at least this share of a sentence's new content.
    citation_attribution: bool = True
    citation_min_support: float = Field(default=0.5, ge=0.0, le=1.0)
    max_body_bytes: int = 1024 * 1024
    drain_grace_s: float = 30.0  # after SIGTERM, in-flight requests and streams may finish within this
    forwarded_allow_ips: str = ""  # comma-separated proxies whose X-Forwarded-For/-Proto are trusted ("*": any)
    max_n: int = 16

    # Guard policies sent with each request (``scanner=action[:threshold][:restore], ...``, see
    # flotilla/guardpolicy.py); empty: the guard's defaults. Per-key policies will replace these per request.
    guard_input_policy: str = ""
    guard_output_policy: str = ""
    guard_retrieved_policy: str = ""
    guard_policy_name: str = "gateway"

    # Observability: the opt-in prompt text in the access log, the /readyz cache, an extra /metrics port.
    log_prompts: bool = False  # never on by default: prompts may hold personal data
    ready_cache_s: float = 2.0
    metrics_port: int = 0  # 0: /metrics only on the HTTP port; else also served on this port

    @property
    def inference_target_list(self) -> list[str]:
        return [t.strip() for t in self.inference_targets.split(",") if t.strip()]
