from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ALLOW: _ClassVar[Verdict]
    VERDICT_REDACT: _ClassVar[Verdict]
    VERDICT_BLOCK: _ClassVar[Verdict]
VERDICT_UNSPECIFIED: Verdict
VERDICT_ALLOW: Verdict
VERDICT_REDACT: Verdict
VERDICT_BLOCK: Verdict

class ScannerRule(_message.Message):
    __slots__ = ("scanner", "action", "threshold", "restore")
    SCANNER_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    scanner: str
    action: str
    threshold: float
    restore: bool
    def __init__(self, scanner: _Optional[str] = ..., action: _Optional[str] = ..., threshold: _Optional[float] = ..., restore: _Optional[bool] = ...) -> None: ...

class Policy(_message.Message):
    __slots__ = ("name", "rules")
    NAME_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    name: str
    rules: _containers.RepeatedCompositeFieldContainer[ScannerRule]
    def __init__(self, name: _Optional[str] = ..., rules: _Optional[_Iterable[_Union[ScannerRule, _Mapping]]] = ...) -> None: ...

class ScanRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "texts", "policy", "restore", "roles", "context", "defer_slow")
    class RestoreEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    ROLES_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    DEFER_SLOW_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    policy: Policy
    restore: _containers.ScalarMap[str, str]
    roles: _containers.RepeatedScalarFieldContainer[str]
    context: _containers.RepeatedScalarFieldContainer[str]
    defer_slow: bool
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., restore: _Optional[_Mapping[str, str]] = ..., roles: _Optional[_Iterable[str]] = ..., context: _Optional[_Iterable[str]] = ..., defer_slow: _Optional[bool] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("type", "text_index", "start", "end", "score", "action")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    TEXT_INDEX_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    type: str
    text_index: int
    start: int
    end: int
    score: float
    action: str
    def __init__(self, type: _Optional[str] = ..., text_index: _Optional[int] = ..., start: _Optional[int] = ..., end: _Optional[int] = ..., score: _Optional[float] = ..., action: _Optional[str] = ...) -> None: ...

class ScanResponse(_message.Message):
    __slots__ = ("verdict", "findings", "redacted_texts", "text_verdicts", "placeholders", "policy", "deferred")
    class PlaceholdersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    REDACTED_TEXTS_FIELD_NUMBER: _ClassVar[int]
    TEXT_VERDICTS_FIELD_NUMBER: _ClassVar[int]
    PLACEHOLDERS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    DEFERRED_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    redacted_texts: _containers.RepeatedScalarFieldContainer[str]
    text_verdicts: _containers.RepeatedScalarFieldContainer[Verdict]
    placeholders: _containers.ScalarMap[str, str]
    policy: str
    deferred: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., redacted_texts: _Optional[_Iterable[str]] = ..., text_verdicts: _Optional[_Iterable[_Union[Verdict, str]]] = ..., placeholders: _Optional[_Mapping[str, str]] = ..., policy: _Optional[str] = ..., deferred: _Optional[_Iterable[int]] = ...) -> None: ...

class OutputStreamStart(_message.Message):
    __slots__ = ("request_id", "tenant_id", "policy", "restore", "context")
    class RestoreEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RESTORE_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    policy: Policy
    restore: _containers.ScalarMap[str, str]
    context: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ..., restore: _Optional[_Mapping[str, str]] = ..., context: _Optional[_Iterable[str]] = ...) -> None: ...

class OutputDelta(_message.Message):
    __slots__ = ("index", "text", "final")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FINAL_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    final: bool
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., final: _Optional[bool] = ...) -> None: ...

class OutputStreamRequest(_message.Message):
    __slots__ = ("start", "delta")
    START_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    start: OutputStreamStart
    delta: OutputDelta
    def __init__(self, start: _Optional[_Union[OutputStreamStart, _Mapping]] = ..., delta: _Optional[_Union[OutputDelta, _Mapping]] = ...) -> None: ...

class OutputStreamResponse(_message.Message):
    __slots__ = ("index", "text", "verdict", "findings", "held")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    HELD_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    verdict: Verdict
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    held: int
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., verdict: _Optional[_Union[Verdict, str]] = ..., findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., held: _Optional[int] = ...) -> None: ...

class ModerateRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "texts", "policy")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    policy: Policy
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., policy: _Optional[_Union[Policy, _Mapping]] = ...) -> None: ...

class CategoryScore(_message.Message):
    __slots__ = ("category", "score", "flagged")
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    category: str
    score: float
    flagged: bool
    def __init__(self, category: _Optional[str] = ..., score: _Optional[float] = ..., flagged: _Optional[bool] = ...) -> None: ...

class Moderation(_message.Message):
    __slots__ = ("flagged", "categories", "finding_types")
    FLAGGED_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    FINDING_TYPES_FIELD_NUMBER: _ClassVar[int]
    flagged: bool
    categories: _containers.RepeatedCompositeFieldContainer[CategoryScore]
    finding_types: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, flagged: _Optional[bool] = ..., categories: _Optional[_Iterable[_Union[CategoryScore, _Mapping]]] = ..., finding_types: _Optional[_Iterable[str]] = ...) -> None: ...

class ModerateResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[Moderation]
    def __init__(self, results: _Optional[_Iterable[_Union[Moderation, _Mapping]]] = ...) -> None: ...
