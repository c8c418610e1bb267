"""Build vLLM's ``AsyncLLM`` from settings. vLLM is imported lazily: it is heavy and spawns processes."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from services.inference.settings import InferenceSettings

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM


def configure_environment(settings: InferenceSettings) -> None:
    """Environment vLLM reads at import time; must run before ``import vllm``."""
    if settings.cpu_kvcache_space_gib is not None:
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(settings.cpu_kvcache_space_gib)
    os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def build_engine(settings: InferenceSettings) -> AsyncLLM:
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    args = AsyncEngineArgs(
        model=settings.model,
        served_model_name=[settings.model_name],
        max_model_len=settings.max_model_len,
        dtype=settings.dtype,  # type: ignore[arg-type]
        tensor_parallel_size=settings.tensor_parallel_size,
        gpu_memory_utilization=settings.gpu_memory_utilization,
        enforce_eager=settings.enforce_eager,
        quantization=settings.quantization,  # type: ignore[arg-type]
        **({"max_num_seqs": settings.max_num_seqs} if settings.max_num_seqs else {}),
        **(
            {"enable_prefix_caching": settings.enable_prefix_caching}
            if settings.enable_prefix_caching is not None
            else {}
        ),
    )
    return AsyncLLM.from_engine_args(args)
