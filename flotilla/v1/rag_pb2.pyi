from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RetrieveRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "query", "vector_store_ids", "k", "score_threshold", "filters_json", "check_stores")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUERY_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_IDS_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTERS_JSON_FIELD_NUMBER: _ClassVar[int]
    CHECK_STORES_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    query: str
    vector_store_ids: _containers.RepeatedScalarFieldContainer[str]
    k: int
    score_threshold: float
    filters_json: str
    check_stores: bool
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., query: _Optional[str] = ..., vector_store_ids: _Optional[_Iterable[str]] = ..., k: _Optional[int] = ..., score_threshold: _Optional[float] = ..., filters_json: _Optional[str] = ..., check_stores: _Optional[bool] = ...) -> None: ...

class Chunk(_message.Message):
    __slots__ = ("text", "score", "source", "file_id", "vector_store_id", "chunk_index", "start_char", "end_char", "attributes_json", "similarity")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_INDEX_FIELD_NUMBER: _ClassVar[int]
    START_CHAR_FIELD_NUMBER: _ClassVar[int]
    END_CHAR_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    SIMILARITY_FIELD_NUMBER: _ClassVar[int]
    text: str
    score: float
    source: str
    file_id: str
    vector_store_id: str
    chunk_index: int
    start_char: int
    end_char: int
    attributes_json: str
    similarity: float
    def __init__(self, text: _Optional[str] = ..., score: _Optional[float] = ..., source: _Optional[str] = ..., file_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., chunk_index: _Optional[int] = ..., start_char: _Optional[int] = ..., end_char: _Optional[int] = ..., attributes_json: _Optional[str] = ..., similarity: _Optional[float] = ...) -> None: ...

class RetrieveResponse(_message.Message):
    __slots__ = ("chunks",)
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    chunks: _containers.RepeatedCompositeFieldContainer[Chunk]
    def __init__(self, chunks: _Optional[_Iterable[_Union[Chunk, _Mapping]]] = ...) -> None: ...

class EmbedRequest(_message.Message):
    __slots__ = ("request_id", "model", "inputs")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INPUTS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    inputs: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., inputs: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedResponse(_message.Message):
    __slots__ = ("model", "dim", "vectors", "prompt_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    dim: int
    vectors: bytes
    prompt_tokens: int
    def __init__(self, model: _Optional[str] = ..., dim: _Optional[int] = ..., vectors: _Optional[bytes] = ..., prompt_tokens: _Optional[int] = ...) -> None: ...

class ListRequest(_message.Message):
    __slots__ = ("tenant_id", "limit", "order", "after", "before", "purpose")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    limit: int
    order: str
    after: str
    before: str
    purpose: str
    def __init__(self, tenant_id: _Optional[str] = ..., limit: _Optional[int] = ..., order: _Optional[str] = ..., after: _Optional[str] = ..., before: _Optional[str] = ..., purpose: _Optional[str] = ...) -> None: ...

class UploadFileRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "filename", "purpose", "content", "content_type")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    filename: str
    purpose: str
    content: bytes
    content_type: str
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., filename: _Optional[str] = ..., purpose: _Optional[str] = ..., content: _Optional[bytes] = ..., content_type: _Optional[str] = ...) -> None: ...

class FileRef(_message.Message):
    __slots__ = ("tenant_id", "file_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    file_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., file_id: _Optional[str] = ...) -> None: ...

class FileInfo(_message.Message):
    __slots__ = ("id", "filename", "purpose", "bytes", "created_at", "content_type", "format")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    PURPOSE_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    content_type: str
    format: str
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., purpose: _Optional[str] = ..., bytes: _Optional[int] = ..., created_at: _Optional[int] = ..., content_type: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class FileContent(_message.Message):
    __slots__ = ("file", "content")
    FILE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    file: FileInfo
    content: bytes
    def __init__(self, file: _Optional[_Union[FileInfo, _Mapping]] = ..., content: _Optional[bytes] = ...) -> None: ...

class ListFilesResponse(_message.Message):
    __slots__ = ("files", "has_more")
    FILES_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[FileInfo]
    has_more: bool
    def __init__(self, files: _Optional[_Iterable[_Union[FileInfo, _Mapping]]] = ..., has_more: _Optional[bool] = ...) -> None: ...

class Deleted(_message.Message):
    __slots__ = ("id", "deleted")
    ID_FIELD_NUMBER: _ClassVar[int]
    DELETED_FIELD_NUMBER: _ClassVar[int]
    id: str
    deleted: bool
    def __init__(self, id: _Optional[str] = ..., deleted: _Optional[bool] = ...) -> None: ...

class ChunkingStrategy(_message.Message):
    __slots__ = ("max_chunk_size_tokens", "chunk_overlap_tokens", "set")
    MAX_CHUNK_SIZE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int
    set: bool
    def __init__(self, max_chunk_size_tokens: _Optional[int] = ..., chunk_overlap_tokens: _Optional[int] = ..., set: _Optional[bool] = ...) -> None: ...

class CreateVectorStoreRequest(_message.Message):
    __slots__ = ("tenant_id", "name", "metadata_json", "file_ids", "chunking", "expires_after_days")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    FILE_IDS_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_DAYS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    name: str
    metadata_json: str
    file_ids: _containers.RepeatedScalarFieldContainer[str]
    chunking: ChunkingStrategy
    expires_after_days: int
    def __init__(self, tenant_id: _Optional[str] = ..., name: _Optional[str] = ..., metadata_json: _Optional[str] = ..., file_ids: _Optional[_Iterable[str]] = ..., chunking: _Optional[_Union[ChunkingStrategy, _Mapping]] = ..., expires_after_days: _Optional[int] = ...) -> None: ...

class VectorStoreRef(_message.Message):
    __slots__ = ("tenant_id", "vector_store_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    vector_store_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ...) -> None: ...

class UpdateVectorStoreRequest(_message.Message):
    __slots__ = ("tenant_id", "vector_store_id", "name", "metadata_json", "expires_after_days")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_DAYS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    vector_store_id: str
    name: str
    metadata_json: str
    expires_after_days: int
    def __init__(self, tenant_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., name: _Optional[str] = ..., metadata_json: _Optional[str] = ..., expires_after_days: _Optional[int] = ...) -> None: ...

class FileCounts(_message.Message):
    __slots__ = ("in_progress", "completed", "failed", "cancelled", "total")
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    in_progress: int
    completed: int
    failed: int
    cancelled: int
    total: int
    def __init__(self, in_progress: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ..., total: _Optional[int] = ...) -> None: ...

class VectorStore(_message.Message):
    __slots__ = ("id", "name", "created_at", "last_active_at", "usage_bytes", "file_counts", "status", "metadata_json", "expires_after_days", "expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    LAST_ACTIVE_AT_FIELD_NUMBER: _ClassVar[int]
    USAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FILE_COUNTS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AFTER_DAYS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    created_at: int
    last_active_at: int
    usage_bytes: int
    file_counts: FileCounts
    status: str
    metadata_json: str
    expires_after_days: int
    expires_at: int
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., created_at: _Optional[int] = ..., last_active_at: _Optional[int] = ..., usage_bytes: _Optional[int] = ..., file_counts: _Optional[_Union[FileCounts, _Mapping]] = ..., status: _Optional[str] = ..., metadata_json: _Optional[str] = ..., expires_after_days: _Optional[int] = ..., expires_at: _Optional[int] = ...) -> None: ...

class ListVectorStoresResponse(_message.Message):
    __slots__ = ("stores", "has_more")
    STORES_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    stores: _containers.RepeatedCompositeFieldContainer[VectorStore]
    has_more: bool
    def __init__(self, stores: _Optional[_Iterable[_Union[VectorStore, _Mapping]]] = ..., has_more: _Optional[bool] = ...) -> None: ...

class AttachFileRequest(_message.Message):
    __slots__ = ("request_id", "tenant_id", "vector_store_id", "file_id", "attributes_json", "chunking")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    CHUNKING_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    tenant_id: str
    vector_store_id: str
    file_id: str
    attributes_json: str
    chunking: ChunkingStrategy
    def __init__(self, request_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., file_id: _Optional[str] = ..., attributes_json: _Optional[str] = ..., chunking: _Optional[_Union[ChunkingStrategy, _Mapping]] = ...) -> None: ...

class VectorStoreFileRef(_message.Message):
    __slots__ = ("tenant_id", "vector_store_id", "file_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    vector_store_id: str
    file_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., file_id: _Optional[str] = ...) -> None: ...

class VectorStoreFile(_message.Message):
    __slots__ = ("file_id", "vector_store_id", "created_at", "status", "last_error_code", "last_error_message", "usage_bytes", "attributes_json", "max_chunk_size_tokens", "chunk_overlap_tokens", "filename", "chunks")
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    ATTRIBUTES_JSON_FIELD_NUMBER: _ClassVar[int]
    MAX_CHUNK_SIZE_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CHUNK_OVERLAP_TOKENS_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    CHUNKS_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    vector_store_id: str
    created_at: int
    status: str
    last_error_code: str
    last_error_message: str
    usage_bytes: int
    attributes_json: str
    max_chunk_size_tokens: int
    chunk_overlap_tokens: int
    filename: str
    chunks: int
    def __init__(self, file_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., created_at: _Optional[int] = ..., status: _Optional[str] = ..., last_error_code: _Optional[str] = ..., last_error_message: _Optional[str] = ..., usage_bytes: _Optional[int] = ..., attributes_json: _Optional[str] = ..., max_chunk_size_tokens: _Optional[int] = ..., chunk_overlap_tokens: _Optional[int] = ..., filename: _Optional[str] = ..., chunks: _Optional[int] = ...) -> None: ...

class ListVectorStoreFilesRequest(_message.Message):
    __slots__ = ("tenant_id", "vector_store_id", "status", "limit", "order", "after", "before")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    VECTOR_STORE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    BEFORE_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    vector_store_id: str
    status: str
    limit: int
    order: str
    after: str
    before: str
    def __init__(self, tenant_id: _Optional[str] = ..., vector_store_id: _Optional[str] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ..., order: _Optional[str] = ..., after: _Optional[str] = ..., before: _Optional[str] = ...) -> None: ...

class ListVectorStoreFilesResponse(_message.Message):
    __slots__ = ("files", "has_more")
    FILES_FIELD_NUMBER: _ClassVar[int]
    HAS_MORE_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[VectorStoreFile]
    has_more: bool
    def __init__(self, files: _Optional[_Iterable[_Union[VectorStoreFile, _Mapping]]] = ..., has_more: _Optional[bool] = ...) -> None: ...
