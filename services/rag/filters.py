"""OpenAI attribute filters (``{"type": "eq", "key": ..., "value": ...}`` and
``{"type": "and"|"or", "filters": [...]}``) compiled to SQL over a ``jsonb`` attributes column.

Values are compared as ``jsonb`` of the same JSON type (numbers numerically, strings lexically), so a
string never equals a number and ``gt`` on mismatched types is false. Every key and value is a bind
parameter; nothing from the request is spliced into the SQL text.
"""

from __future__ import annotations

import json
from typing import Any

_OPS = {"eq": "=", "ne": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<="}
_MAX_DEPTH = 8


class FilterError(ValueError):
    pass


def compile_filter(spec: Any, column: str, params: list[Any], depth: int = 0) -> str:
    """SQL boolean expression for ``spec``; appends its bind values to ``params`` (``$n`` numbering)."""
    if depth > _MAX_DEPTH:
        raise FilterError("filters are nested too deeply")
    if not isinstance(spec, dict) or "type" not in spec:
        raise FilterError("a filter is an object with a 'type'")
    kind = spec["type"]
    if kind in ("and", "or"):
        subs = spec.get("filters")
        if not isinstance(subs, list) or not subs:
            raise FilterError(f"'{kind}' needs a non-empty 'filters' list")
        joined = f" {kind.upper()} ".join(compile_filter(s, column, params, depth + 1) for s in subs)
        return f"({joined})"
    key, value = spec.get("key"), spec.get("value")
    if not isinstance(key, str) or not key:
        raise FilterError("a comparison filter needs a string 'key'")
    if kind in ("in", "nin"):
        if not isinstance(value, list) or not all(isinstance(v, str | int | float | bool) for v in value):
            raise FilterError(f"'{kind}' needs a list of strings, numbers or booleans as 'value'")
        params.append(key)
        k = len(params)
        params.append([json.dumps(v) for v in value])
        v = len(params)
        test = f"({column} -> ${k}) = ANY(${v}::text[]::jsonb[])"
        return test if kind == "in" else f"({column} ? ${k} AND NOT {test})"
    if kind not in _OPS:
        raise FilterError(f"unknown filter type '{kind}'")
    if not isinstance(value, str | int | float | bool) or value is None:
        raise FilterError("a comparison 'value' is a string, number or boolean")
    params.append(key)
    k = len(params)
    params.append(json.dumps(value))
    v = len(params)
    return (
        f"(jsonb_typeof({column} -> ${k}) = jsonb_typeof(${v}::jsonb) "
        f"AND ({column} -> ${k}) {_OPS[kind]} ${v}::jsonb)"
    )


def parse(filters_json: str) -> Any | None:
    if not filters_json:
        return None
    try:
        return json.loads(filters_json)
    except json.JSONDecodeError as exc:
        raise FilterError(f"filters are not valid JSON: {exc}") from None
