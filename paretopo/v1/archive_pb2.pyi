from paretopo.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_SCALARIZATION: _ClassVar[Stage]
    STAGE_PARETO_RANKING: _ClassVar[Stage]
STAGE_UNSPECIFIED: Stage
STAGE_SCALARIZATION: Stage
STAGE_PARETO_RANKING: Stage

class Stage1Settings(_message.Message):
    __slots__ = ("beta", "tau", "step_size", "weight_floor", "amplification", "initial_weights", "reference_point", "stage1_epochs")
    BETA_FIELD_NUMBER: _ClassVar[int]
    TAU_FIELD_NUMBER: _ClassVar[int]
    STEP_SIZE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FLOOR_FIELD_NUMBER: _ClassVar[int]
    AMPLIFICATION_FIELD_NUMBER: _ClassVar[int]
    INITIAL_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    REFERENCE_POINT_FIELD_NUMBER: _ClassVar[int]
    STAGE1_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    beta: float
    tau: float
    step_size: float
    weight_floor: float
    amplification: float
    initial_weights: _containers.RepeatedScalarFieldContainer[float]
    reference_point: _containers.RepeatedScalarFieldContainer[float]
    stage1_epochs: int
    def __init__(self, beta: _Optional[float] = ..., tau: _Optional[float] = ..., step_size: _Optional[float] = ..., weight_floor: _Optional[float] = ..., amplification: _Optional[float] = ..., initial_weights: _Optional[_Iterable[float]] = ..., reference_point: _Optional[_Iterable[float]] = ..., stage1_epochs: _Optional[int] = ...) -> None: ...

class RunConfig(_message.Message):
    __slots__ = ("run_id", "objectives", "stage1", "adapt_weights")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECTIVES_FIELD_NUMBER: _ClassVar[int]
    STAGE1_FIELD_NUMBER: _ClassVar[int]
    ADAPT_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    objectives: _containers.RepeatedScalarFieldContainer[str]
    stage1: Stage1Settings
    adapt_weights: bool
    def __init__(self, run_id: _Optional[str] = ..., objectives: _Optional[_Iterable[str]] = ..., stage1: _Optional[_Union[Stage1Settings, _Mapping]] = ..., adapt_weights: _Optional[bool] = ...) -> None: ...

class FrontPoint(_message.Message):
    __slots__ = ("outcome", "step")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    outcome: _common_pb2.ObjectiveVector
    step: int
    def __init__(self, outcome: _Optional[_Union[_common_pb2.ObjectiveVector, _Mapping]] = ..., step: _Optional[int] = ...) -> None: ...

class RunState(_message.Message):
    __slots__ = ("weights", "gain", "rho", "stage", "last_step", "hypervolume", "front", "known_prompts")
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    LAST_STEP_FIELD_NUMBER: _ClassVar[int]
    HYPERVOLUME_FIELD_NUMBER: _ClassVar[int]
    FRONT_FIELD_NUMBER: _ClassVar[int]
    KNOWN_PROMPTS_FIELD_NUMBER: _ClassVar[int]
    weights: _containers.RepeatedScalarFieldContainer[float]
    gain: float
    rho: float
    stage: Stage
    last_step: int
    hypervolume: float
    front: _containers.RepeatedCompositeFieldContainer[FrontPoint]
    known_prompts: int
    def __init__(self, weights: _Optional[_Iterable[float]] = ..., gain: _Optional[float] = ..., rho: _Optional[float] = ..., stage: _Optional[_Union[Stage, str]] = ..., last_step: _Optional[int] = ..., hypervolume: _Optional[float] = ..., front: _Optional[_Iterable[_Union[FrontPoint, _Mapping]]] = ..., known_prompts: _Optional[int] = ...) -> None: ...

class RunInfo(_message.Message):
    __slots__ = ("config", "state")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    config: RunConfig
    state: RunState
    def __init__(self, config: _Optional[_Union[RunConfig, _Mapping]] = ..., state: _Optional[_Union[RunState, _Mapping]] = ...) -> None: ...

class CreateRunRequest(_message.Message):
    __slots__ = ("config",)
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    config: RunConfig
    def __init__(self, config: _Optional[_Union[RunConfig, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs",)
    RUNS_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[RunInfo]
    def __init__(self, runs: _Optional[_Iterable[_Union[RunInfo, _Mapping]]] = ...) -> None: ...

class GetRunStateRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetOptimalCallsRequest(_message.Message):
    __slots__ = ("run_id", "prompt_ids")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_IDS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    prompt_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, run_id: _Optional[str] = ..., prompt_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class PromptCalls(_message.Message):
    __slots__ = ("prompt_id", "successful_calls")
    PROMPT_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESSFUL_CALLS_FIELD_NUMBER: _ClassVar[int]
    prompt_id: str
    successful_calls: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, prompt_id: _Optional[str] = ..., successful_calls: _Optional[_Iterable[int]] = ...) -> None: ...

class UpdateOptimalCallsRequest(_message.Message):
    __slots__ = ("run_id", "prompts")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    prompts: _containers.RepeatedCompositeFieldContainer[PromptCalls]
    def __init__(self, run_id: _Optional[str] = ..., prompts: _Optional[_Iterable[_Union[PromptCalls, _Mapping]]] = ...) -> None: ...

class OptimalCallsResponse(_message.Message):
    __slots__ = ("optimal_calls",)
    OPTIMAL_CALLS_FIELD_NUMBER: _ClassVar[int]
    optimal_calls: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, optimal_calls: _Optional[_Iterable[int]] = ...) -> None: ...

class ReportOutcomeRequest(_message.Message):
    __slots__ = ("run_id", "step", "outcome")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    step: int
    outcome: _common_pb2.ObjectiveVector
    def __init__(self, run_id: _Optional[str] = ..., step: _Optional[int] = ..., outcome: _Optional[_Union[_common_pb2.ObjectiveVector, _Mapping]] = ...) -> None: ...

class ReportOutcomeResponse(_message.Message):
    __slots__ = ("delta_hv", "gain", "rho", "weights", "hypervolume", "added", "replayed", "stage")
    DELTA_HV_FIELD_NUMBER: _ClassVar[int]
    GAIN_FIELD_NUMBER: _ClassVar[int]
    RHO_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    HYPERVOLUME_FIELD_NUMBER: _ClassVar[int]
    ADDED_FIELD_NUMBER: _ClassVar[int]
    REPLAYED_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    delta_hv: float
    gain: float
    rho: float
    weights: _containers.RepeatedScalarFieldContainer[float]
    hypervolume: float
    added: bool
    replayed: bool
    stage: Stage
    def __init__(self, delta_hv: _Optional[float] = ..., gain: _Optional[float] = ..., rho: _Optional[float] = ..., weights: _Optional[_Iterable[float]] = ..., hypervolume: _Optional[float] = ..., added: _Optional[bool] = ..., replayed: _Optional[bool] = ..., stage: _Optional[_Union[Stage, str]] = ...) -> None: ...

class SetStageRequest(_message.Message):
    __slots__ = ("run_id", "stage")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    stage: Stage
    def __init__(self, run_id: _Optional[str] = ..., stage: _Optional[_Union[Stage, str]] = ...) -> None: ...
