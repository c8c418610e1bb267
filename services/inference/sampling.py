"""Map the gRPC ``SamplingParams`` onto vLLM's ``SamplingParams`` (only fields the caller set)."""

from __future__ import annotations

from typing import Any

from flotilla.v1 import inference_pb2

_OPTIONAL = ("temperature", "top_p", "seed", "presence_penalty", "frequency_penalty")


def to_vllm(sp: inference_pb2.SamplingParams, max_tokens: int) -> Any:
    from vllm.sampling_params import RequestOutputKind, SamplingParams, StructuredOutputsParams

    kwargs: dict[str, Any] = {"n": sp.n or 1, "max_tokens": max_tokens, "output_kind": RequestOutputKind.DELTA}
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
