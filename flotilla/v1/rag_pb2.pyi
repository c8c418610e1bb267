from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrieveRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "query", "vector_store_ids", "k")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    query: str
    vector_store_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., query: _Optional[str] = ..., vector_store_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("text", "score", "source", "file_id", "vector_store_id", "chunk_index")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    source: str
    file_id: str
    vector_store_id: str
    chunk_index: int
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., source: _Optional[str] = ..., file_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., chunk_index: _Optional[int] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ...) -> None: ...
