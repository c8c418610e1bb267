"""BENCHMARK FAKE — an inference server that answers instantly, for ``make bench-gateway`` only.

It speaks the real ``flotilla.v1.Inference`` contract over real gRPC with mutual TLS (the same server
code path as the inference service: :func:`flotilla.grpcserver.start_server`), but instead of running a
model it streams ``--tokens`` one-word deltas and the usage message at once. It exists so that the
gateway's own cost can be measured in isolation; it is never part of the fleet.

    python -m benchmarks.fake_inference --port 50061 --ca ca.pem --cert inference.pem --key inference.key
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator

import grpc

from flotilla.grpcserver import serve_until_signal, start_server
from flotilla.tls import TLSFiles
from flotilla.v1 import inference_pb2, inference_pb2_grpc

MODEL = "bench-fake"
WORDS = "the quick brown fox jumps over the lazy dog and runs into the forest to find some food".split()


class BenchFakeInference(inference_pb2_grpc.InferenceServicer):
    """Answers every Generate with ``tokens`` deltas (or the request's max_tokens, if smaller)."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self.created = int(time.time())

    async def ListModels(
        self, request: inference_pb2.ListModelsRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.ListModelsResponse:
        card = inference_pb2.ModelCard(id=MODEL, max_model_len=4096, created=self.created, owned_by="benchmark")
        return inference_pb2.ListModelsResponse(models=[card])

    async def Generate(
        self, request: inference_pb2.GenerateRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[inference_pb2.GenerateResponse]:
        if request.model != MODEL:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"The model `{request.model}` does not exist.")
        sampling = request.sampling
        count = min(self.tokens, sampling.max_tokens) if sampling.HasField("max_tokens") else self.tokens
        prompt_tokens = sum(len(m.content.split()) for m in request.chat.messages) or len(request.prompt.split())
        if request.final_only:  # as vLLM's FINAL_ONLY: each choice once, whole
            text = " ".join(WORDS[i % len(WORDS)] for i in range(count))
            for n in range(max(sampling.n, 1)):
                yield inference_pb2.GenerateResponse(delta=inference_pb2.TextDelta(
                    index=n, text=text, token_count=count, finish_reason="length", prompt_tokens=prompt_tokens))
        for n in range(max(sampling.n, 1) if not request.final_only else 0):
            for i in range(count):
                text = WORDS[i % len(WORDS)] if i == 0 else " " + WORDS[i % len(WORDS)]
                yield inference_pb2.GenerateResponse(delta=inference_pb2.TextDelta(
                    index=n, text=text, token_count=1, finish_reason="length" if i == count - 1 else "",
                    prompt_tokens=prompt_tokens if i == 0 else 0,
                ))
        yield inference_pb2.GenerateResponse(usage=inference_pb2.Usage(
            prompt_tokens=prompt_tokens, completion_tokens=count * max(sampling.n, 1)))


async def serve(port: int, tls: TLSFiles, tokens: int) -> None:
    svc = await start_server(
        f"127.0.0.1:{port}", tls,
        [lambda s: inference_pb2_grpc.add_InferenceServicer_to_server(BenchFakeInference(tokens), s)],
        ["flotilla.v1.Inference"],
    )
    await svc.set_serving(True)
    await serve_until_signal(svc, grace=1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ca", required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--tokens", type=int, default=16)
    args = parser.parse_args()
    from pathlib import Path

    asyncio.run(serve(args.port, TLSFiles(Path(args.ca), Path(args.cert), Path(args.key)), args.tokens))


if __name__ == "__main__":
    main()
