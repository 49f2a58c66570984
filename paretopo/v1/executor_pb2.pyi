from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExecErrorKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXEC_ERROR_KIND_UNSPECIFIED: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_NONE: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_SYNTAX_ERROR: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_EXCEPTION: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_NONZERO_EXIT: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_TIMEOUT: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_CPU_LIMIT: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_MEMORY_LIMIT: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_OUTPUT_LIMIT: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_FILE_SIZE_LIMIT: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_KILLED_BY_SIGNAL: _ClassVar[ExecErrorKind]
    EXEC_ERROR_KIND_WORKER_CRASHED: _ClassVar[ExecErrorKind]

class IsolationMechanism(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ISOLATION_MECHANISM_UNSPECIFIED: _ClassVar[IsolationMechanism]
    ISOLATION_MECHANISM_BWRAP: _ClassVar[IsolationMechanism]
    ISOLATION_MECHANISM_RLIMITS: _ClassVar[IsolationMechanism]
EXEC_ERROR_KIND_UNSPECIFIED: ExecErrorKind
EXEC_ERROR_KIND_NONE: ExecErrorKind
EXEC_ERROR_KIND_SYNTAX_ERROR: ExecErrorKind
EXEC_ERROR_KIND_EXCEPTION: ExecErrorKind
EXEC_ERROR_KIND_NONZERO_EXIT: ExecErrorKind
EXEC_ERROR_KIND_TIMEOUT: ExecErrorKind
EXEC_ERROR_KIND_CPU_LIMIT: ExecErrorKind
EXEC_ERROR_KIND_MEMORY_LIMIT: ExecErrorKind
EXEC_ERROR_KIND_OUTPUT_LIMIT: ExecErrorKind
EXEC_ERROR_KIND_FILE_SIZE_LIMIT: ExecErrorKind
EXEC_ERROR_KIND_KILLED_BY_SIGNAL: ExecErrorKind
EXEC_ERROR_KIND_WORKER_CRASHED: ExecErrorKind
ISOLATION_MECHANISM_UNSPECIFIED: IsolationMechanism
ISOLATION_MECHANISM_BWRAP: IsolationMechanism
ISOLATION_MECHANISM_RLIMITS: IsolationMechanism

class ExecLimits(_message.Message):
    __slots__ = ("wall_s", "cpu_s", "memory_mb", "max_output_bytes", "max_processes", "max_file_bytes")
    WALL_S_FIELD_NUMBER: _ClassVar[int]
    CPU_S_FIELD_NUMBER: _ClassVar[int]
    MEMORY_MB_FIELD_NUMBER: _ClassVar[int]
    MAX_OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROCESSES_FIELD_NUMBER: _ClassVar[int]
    MAX_FILE_BYTES_FIELD_NUMBER: _ClassVar[int]
    wall_s: float
    cpu_s: float
    memory_mb: int
    max_output_bytes: int
    max_processes: int
    max_file_bytes: int
    def __init__(self, wall_s: _Optional[float] = ..., cpu_s: _Optional[float] = ..., memory_mb: _Optional[int] = ..., max_output_bytes: _Optional[int] = ..., max_processes: _Optional[int] = ..., max_file_bytes: _Optional[int] = ...) -> None: ...

class ExecuteRequest(_message.Message):
    __slots__ = ("code", "limits")
    CODE_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    code: bytes
    limits: ExecLimits
    def __init__(self, code: _Optional[bytes] = ..., limits: _Optional[_Union[ExecLimits, _Mapping]] = ...) -> None: ...

class ExecuteBatchRequest(_message.Message):
    __slots__ = ("snippets",)
    SNIPPETS_FIELD_NUMBER: _ClassVar[int]
    snippets: _containers.RepeatedCompositeFieldContainer[ExecuteRequest]
    def __init__(self, snippets: _Optional[_Iterable[_Union[ExecuteRequest, _Mapping]]] = ...) -> None: ...

class ExecuteBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[ExecuteResult]
    def __init__(self, results: _Optional[_Iterable[_Union[ExecuteResult, _Mapping]]] = ...) -> None: ...

class ExecuteResult(_message.Message):
    __slots__ = ("stdout", "stdout_truncated", "stderr_tail", "exit_code", "timed_out", "memory_exceeded", "killed", "error_kind", "error_message", "duration_ms", "stdout_bytes")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDOUT_TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    STDERR_TAIL_FIELD_NUMBER: _ClassVar[int]
    EXIT_CODE_FIELD_NUMBER: _ClassVar[int]
    TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    MEMORY_EXCEEDED_FIELD_NUMBER: _ClassVar[int]
    KILLED_FIELD_NUMBER: _ClassVar[int]
    ERROR_KIND_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    STDOUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    stdout: str
    stdout_truncated: bool
    stderr_tail: str
    exit_code: int
    timed_out: bool
    memory_exceeded: bool
    killed: bool
    error_kind: ExecErrorKind
    error_message: str
    duration_ms: float
    stdout_bytes: int
    def __init__(self, stdout: _Optional[str] = ..., stdout_truncated: _Optional[bool] = ..., stderr_tail: _Optional[str] = ..., exit_code: _Optional[int] = ..., timed_out: _Optional[bool] = ..., memory_exceeded: _Optional[bool] = ..., killed: _Optional[bool] = ..., error_kind: _Optional[_Union[ExecErrorKind, str]] = ..., error_message: _Optional[str] = ..., duration_ms: _Optional[float] = ..., stdout_bytes: _Optional[int] = ...) -> None: ...

class ExecutorDescribeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ExecutorDescribeResponse(_message.Message):
    __slots__ = ("mechanism", "degraded", "guarantees", "not_guaranteed", "warnings", "default_limits", "max_limits", "workers", "max_code_bytes", "max_batch", "seccomp")
    MECHANISM_FIELD_NUMBER: _ClassVar[int]
    DEGRADED_FIELD_NUMBER: _ClassVar[int]
    GUARANTEES_FIELD_NUMBER: _ClassVar[int]
    NOT_GUARANTEED_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_LIMITS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIMITS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    MAX_CODE_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_FIELD_NUMBER: _ClassVar[int]
    SECCOMP_FIELD_NUMBER: _ClassVar[int]
    mechanism: IsolationMechanism
    degraded: bool
    guarantees: _containers.RepeatedScalarFieldContainer[str]
    not_guaranteed: _containers.RepeatedScalarFieldContainer[str]
    warnings: _containers.RepeatedScalarFieldContainer[str]
    default_limits: ExecLimits
    max_limits: ExecLimits
    workers: int
    max_code_bytes: int
    max_batch: int
    seccomp: bool
    def __init__(self, mechanism: _Optional[_Union[IsolationMechanism, str]] = ..., degraded: _Optional[bool] = ..., guarantees: _Optional[_Iterable[str]] = ..., not_guaranteed: _Optional[_Iterable[str]] = ..., warnings: _Optional[_Iterable[str]] = ..., default_limits: _Optional[_Union[ExecLimits, _Mapping]] = ..., max_limits: _Optional[_Union[ExecLimits, _Mapping]] = ..., workers: _Optional[int] = ..., max_code_bytes: _Optional[int] = ..., max_batch: _Optional[int] = ..., seccomp: _Optional[bool] = ...) -> None: ...
