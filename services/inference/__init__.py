"""Inference service: vLLM's async engine (continuous batching, streaming, abort) behind gRPC."""
