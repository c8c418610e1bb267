"""How a service tells the gateway *which* OpenAI error to return.

The gRPC status carries the class of error; trailing metadata carries OpenAI's ``code`` and ``param``.
"""

from __future__ import annotations

import grpc

CODE_KEY = "flotilla-error-code"
PARAM_KEY = "flotilla-error-param"


async def abort(
    context: grpc.aio.ServicerContext, status: grpc.StatusCode, message: str, code: str = "", param: str = ""
) -> None:
    """End the RPC with ``status`` and OpenAI's error ``code``/``param`` in the trailers."""
    context.set_trailing_metadata(((CODE_KEY, code), (PARAM_KEY, param)))
    await context.abort(status, message)


def error_details(error: grpc.aio.AioRpcError) -> tuple[str, str]:
    """(code, param) sent by :func:`abort`, empty strings when absent."""
    trailers = dict(error.trailing_metadata() or ())
    return str(trailers.get(CODE_KEY, "")), str(trailers.get(PARAM_KEY, ""))
