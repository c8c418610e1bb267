from pathlib import Path
from typing import ClassVar

from pydantic_settings import SettingsConfigDict

from flotilla.settings import ServiceSettings, flotilla_home


class InferenceSettings(ServiceSettings):
    """Inference service settings; environment prefix ``FLOTILLA_INFERENCE_``.

    The engine fields are passed straight to vLLM's ``AsyncEngineArgs``.
    """

    model_config = SettingsConfigDict(
        env_prefix="FLOTILLA_INFERENCE_", extra="ignore", protected_namespaces=()
    )
    service_name: ClassVar[str] = "inference"

    port: int = 50051
    # A local weights folder or a Hugging Face model id (GPU clusters). Locally: the prepared SmolLM2.
    model: str = str(flotilla_home() / "models" / "SmolLM2-135M-Instruct")
    served_model_name: str | None = None  # default: the model folder's / id's last component
    max_model_len: int = 2048
    dtype: str = "auto"
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int | None = None
    quantization: str | None = None
    enable_prefix_caching: bool | None = None
    enforce_eager: bool = False
    # CPU backend only: KV cache size in GiB (vLLM's VLLM_CPU_KVCACHE_SPACE).
    cpu_kvcache_space_gib: int | None = None
    drain_grace_s: float = 30.0
    # vLLM tool parser for tool_choice="auto" (e.g. "hermes", "llama3_json"); unset: "auto" is refused.
    tool_call_parser: str | None = None
    # HTTP port of /metrics (vLLM's and flotilla_inference_* metrics); 0 disables it.
    metrics_port: int = 9101

    @property
    def model_name(self) -> str:
        return self.served_model_name or Path(self.model.rstrip("/")).name
