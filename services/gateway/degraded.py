"""What the gateway does when an optional hop (the guard, RAG) cannot be reached.

"Unreachable" is ``UNAVAILABLE`` (connection refused, the service draining) or ``DEADLINE_EXCEEDED`` (it did
not answer within its hop's deadline). Other gRPC failures are the service's answer and are mapped as usual.
By default both hops fail closed with a 503 naming the hop; ``guard_fail_open`` / ``rag_fail_open`` serve the
request without that hop instead, which the response headers, the counters and a log line record.
"""

from __future__ import annotations

import grpc

from services.gateway.errors import OpenAIError

GUARD_HEADER = "x-flotilla-guard"  # "skipped": some scan of this request was not done (fail-open)
RAG_HEADER = "x-flotilla-rag"  # "unavailable": answered without retrieved context (fail-open)
GUARD_SKIPPED_FINDING = "guard.skipped"  # recorded in the ledger row's guard_findings

_UNREACHABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


def unreachable(exc: grpc.aio.AioRpcError) -> bool:
    return exc.code() in _UNREACHABLE


def guard_unavailable() -> OpenAIError:
    return OpenAIError(
        503, "The content guard is unreachable and this deployment does not serve unscanned requests; retry shortly.",
        type="server_error", code="guard_unavailable", headers={"retry-after": "1"},
    )


def rag_unavailable() -> OpenAIError:
    return OpenAIError(
        503, "The retrieval (RAG) service is unreachable, so the vector stores cannot be searched; retry shortly.",
        type="server_error", code="rag_unavailable", headers={"retry-after": "1"},
    )
