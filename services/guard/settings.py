from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from flotilla.settings import ServiceSettings


class GuardSettings(ServiceSettings):
    """Guard service settings; environment prefix ``FLOTILLA_GUARD_``.

    Policies are ``scanner=action[:threshold][:restore]`` lists (see :mod:`flotilla.guardpolicy`); they are
    the defaults for requests whose policy does not name a scanner.
    """

    model_config = SettingsConfigDict(env_prefix="FLOTILLA_GUARD_", extra="ignore")
    service_name: ClassVar[str] = "guard"

    port: int = 50052
    drain_grace_s: float = 10.0
    metrics_port: int = 9102  # Prometheus /metrics over HTTP; 0 disables

    # Prompts: PII is masked for the model and restored in the answer for the caller (reversible masking). Answers:
    # PII the caller already has (its own restored values, values in the retrieved chunks of its documents) is
    # left alone; other PII the model writes is redacted.
    input_policy: str = "injection=block:0.8, pii=redact:0.5:restore, secrets=redact:0.5, toxicity=log:0.8"
    output_policy: str = "injection=log:0.8, pii=redact:0.5, secrets=redact:0.5, toxicity=log:0.8"
    retrieved_policy: str = "injection=block:0.8, pii=log:0.5, secrets=redact:0.5, toxicity=log:0.8"

    pii_ner: bool = True  # spaCy NER through Presidio (names); off: checksum-validated recognisers only
    pii_ner_entities: str = "PERSON"  # comma-separated Presidio entities, e.g. "PERSON,LOCATION"
    phone_region: str = "US"  # region for phone numbers written without a country code
    classifiers: bool = True  # MiniLM heads (injection classifier, toxicity categories)
    classifier_max_windows: int = 16  # sentence segments embedded per text (head and tail of longer ones)
    detect_secrets: bool = True  # detect-secrets' regex plugins next to our provider patterns
    # Injection scanning of the operator's system/developer messages (ScanRequest.roles); off: trusted.
    scan_system_messages: bool = False
    scan_workers: int = 0  # threads scanning off the event loop; 0: one per CPU
    deferred_workers: int = 0  # threads for ScanDeferred (the MiniLM stage run beside inference); 0: scan_workers
    stream_max_hold_chars: int = 4096  # a stream never holds back more than this
