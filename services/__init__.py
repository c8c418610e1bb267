"""Flotilla's four services: gateway, guard, rag, inference."""
