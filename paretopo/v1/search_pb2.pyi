from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Backend(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BACKEND_UNSPECIFIED: _ClassVar[Backend]
    BACKEND_BM25: _ClassVar[Backend]
    BACKEND_DENSE: _ClassVar[Backend]
BACKEND_UNSPECIFIED: Backend
BACKEND_BM25: Backend
BACKEND_DENSE: Backend

class SearchRequest(_message.Message):
    __slots__ = ("queries", "top_k")
    QUERIES_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    queries: _containers.RepeatedScalarFieldContainer[str]
    top_k: int
    def __init__(self, queries: _Optional[_Iterable[str]] = ..., top_k: _Optional[int] = ...) -> None: ...

class Passage(_message.Message):
    __slots__ = ("id", "title", "text", "score")
    ID_FIELD_NUMBER: _ClassVar[int]
    TITLE_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    id: str
    title: str
    text: str
    score: float
    def __init__(self, id: _Optional[str] = ..., title: _Optional[str] = ..., text: _Optional[str] = ..., score: _Optional[float] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("passages", "formatted")
    PASSAGES_FIELD_NUMBER: _ClassVar[int]
    FORMATTED_FIELD_NUMBER: _ClassVar[int]
    passages: _containers.RepeatedCompositeFieldContainer[Passage]
    formatted: str
    def __init__(self, passages: _Optional[_Iterable[_Union[Passage, _Mapping]]] = ..., formatted: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DescribeResponse(_message.Message):
    __slots__ = ("backend", "model", "num_passages", "default_top_k", "max_top_k", "max_queries", "max_query_chars", "corpus_sha256")
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    NUM_PASSAGES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_TOP_K_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERIES_FIELD_NUMBER: _ClassVar[int]
    MAX_QUERY_CHARS_FIELD_NUMBER: _ClassVar[int]
    CORPUS_SHA256_FIELD_NUMBER: _ClassVar[int]
    backend: Backend
    model: str
    num_passages: int
    default_top_k: int
    max_top_k: int
    max_queries: int
    max_query_chars: int
    corpus_sha256: str
    def __init__(self, backend: _Optional[_Union[Backend, str]] = ..., model: _Optional[str] = ..., num_passages: _Optional[int] = ..., default_top_k: _Optional[int] = ..., max_top_k: _Optional[int] = ..., max_queries: _Optional[int] = ..., max_query_chars: _Optional[int] = ..., corpus_sha256: _Optional[str] = ...) -> None: ...
