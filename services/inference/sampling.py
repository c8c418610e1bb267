"""Map the gRPC ``SamplingParams`` onto vLLM's ``SamplingParams`` (only fields the caller set)."""

from __future__ import annotations

from typing import Any

from flotilla.v1 import inference_pb2

_OPTIONAL = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


def to_vllm(sp: inference_pb2.SamplingParams, max_tokens: int, final_only: bool = False) -> Any:
    """``final_only``: vLLM hands back each choice once, complete (non-streamed answers), instead of deltas."""
    from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

    kind = RequestOutputKind.FINAL_ONLY if final_only else RequestOutputKind.DELTA
    kwargs: dict[str, Any] = {"n": sp.n or 1, "max_tokens": max_tokens, "output_kind": kind}
    for name in _OPTIONAL:
        if sp.HasField(name):
            kwargs[name] = getattr(sp, name)
    if sp.stop:
        kwargs["stop"] = list(sp.stop)
    if sp.logit_bias:
        kwargs["logit_bias"] = dict(sp.logit_bias)
    if sp.HasField("logprobs"):
        kwargs["logprobs"] = sp.logprobs
    if sp.json_schema:
        kwargs["structured_outputs"] = StructuredOutputsParams(json=sp.json_schema)
    elif sp.json_object:
        kwargs["structured_outputs"] = StructuredOutputsParams(json_object=True)
    return SamplingParams(**kwargs)
