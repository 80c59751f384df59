from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from typing import ClassVar as _ClassVar, Iterable as _Iterable, Mapping as _Mapping, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ModelStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STOPPED: _ClassVar[ModelStatus]
    STARTING: _ClassVar[ModelStatus]
    RUNNING: _ClassVar[ModelStatus]
    FAILED: _ClassVar[ModelStatus]
    STOPPING: _ClassVar[ModelStatus]
STOPPED: ModelStatus
STARTING: ModelStatus
RUNNING: ModelStatus
FAILED: ModelStatus
STOPPING: ModelStatus

class Bitmap(_message.Message):
    __slots__ = ("width", "height", "byte_data", "shared_memory_handle")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    BYTE_DATA_FIELD_NUMBER: _ClassVar[int]
    SHARED_MEMORY_HANDLE_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    byte_data: bytes
    shared_memory_handle: SharedMemoryHandle
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., byte_data: _Optional[bytes] = ..., shared_memory_handle: _Optional[_Union[SharedMemoryHandle, _Mapping]] = ...) -> None: ...

class SharedMemoryHandle(_message.Message):
    __slots__ = ("name", "size", "offset")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    name: str
    size: int
    offset: int
    def __init__(self, name: _Optional[str] = ..., size: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class AnomalyMaskParams(_message.Message):
    __slots__ = ("shared_memory_handle",)
    SHARED_MEMORY_HANDLE_FIELD_NUMBER: _ClassVar[int]
    shared_memory_handle: SharedMemoryHandle
    def __init__(self, shared_memory_handle: _Optional[_Union[SharedMemoryHandle, _Mapping]] = ...) -> None: ...

class DetectAnomaliesRequest(_message.Message):
    __slots__ = ("model_component", "bitmap", "anomaly_mask_params")
    MODEL_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    BITMAP_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MASK_PARAMS_FIELD_NUMBER: _ClassVar[int]
    model_component: str
    bitmap: Bitmap
    anomaly_mask_params: AnomalyMaskParams
    def __init__(self, model_component: _Optional[str] = ..., bitmap: _Optional[_Union[Bitmap, _Mapping]] = ..., anomaly_mask_params: _Optional[_Union[AnomalyMaskParams, _Mapping]] = ...) -> None: ...

class DetectAnomaliesResponse(_message.Message):
    __slots__ = ("detect_anomaly_result",)
    DETECT_ANOMALY_RESULT_FIELD_NUMBER: _ClassVar[int]
    detect_anomaly_result: DetectAnomalyResult
    def __init__(self, detect_anomaly_result: _Optional[_Union[DetectAnomalyResult, _Mapping]] = ...) -> None: ...

class DetectAnomalyResult(_message.Message):
    __slots__ = ("is_anomalous", "confidence", "anomaly_mask", "anomalies", "anomaly_score", "anomaly_threshold")
    IS_ANOMALOUS_FIELD_NUMBER: _ClassVar[int]
    CONFIDENCE_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_MASK_FIELD_NUMBER: _ClassVar[int]
    ANOMALIES_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_SCORE_FIELD_NUMBER: _ClassVar[int]
    ANOMALY_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    is_anomalous: bool
    confidence: float
    anomaly_mask: Bitmap
    anomalies: _containers.RepeatedCompositeFieldContainer[Anomaly]
    anomaly_score: float
    anomaly_threshold: float
    def __init__(self, is_anomalous: bool = ..., confidence: _Optional[float] = ..., anomaly_mask: _Optional[_Union[Bitmap, _Mapping]] = ..., anomalies: _Optional[_Iterable[_Union[Anomaly, _Mapping]]] = ..., anomaly_score: _Optional[float] = ..., anomaly_threshold: _Optional[float] = ...) -> None: ...

class Anomaly(_message.Message):
    __slots__ = ("name", "pixel_anomaly")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PIXEL_ANOMALY_FIELD_NUMBER: _ClassVar[int]
    name: str
    pixel_anomaly: PixelAnomaly
    def __init__(self, name: _Optional[str] = ..., pixel_anomaly: _Optional[_Union[PixelAnomaly, _Mapping]] = ...) -> None: ...

class PixelAnomaly(_message.Message):
    __slots__ = ("total_percentage_area", "hex_color")
    TOTAL_PERCENTAGE_AREA_FIELD_NUMBER: _ClassVar[int]
    HEX_COLOR_FIELD_NUMBER: _ClassVar[int]
    total_percentage_area: float
    hex_color: str
    def __init__(self, total_percentage_area: _Optional[float] = ..., hex_color: _Optional[str] = ...) -> None: ...

class DescribeModelRequest(_message.Message):
    __slots__ = ("model_component",)
    MODEL_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    model_component: str
    def __init__(self, model_component: _Optional[str] = ...) -> None: ...

class ModelDescription(_message.Message):
    __slots__ = ("model_component", "lookout_vision_model_arn", "status", "status_message")
    MODEL_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    LOOKOUT_VISION_MODEL_ARN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model_component: str
    lookout_vision_model_arn: str
    status: ModelStatus
    status_message: str
    def __init__(self, model_component: _Optional[str] = ..., lookout_vision_model_arn: _Optional[str] = ..., status: _Optional[_Union[ModelStatus, str]] = ..., status_message: _Optional[str] = ...) -> None: ...

class DescribeModelResponse(_message.Message):
    __slots__ = ("model_description",)
    MODEL_DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    model_description: ModelDescription
    def __init__(self, model_description: _Optional[_Union[ModelDescription, _Mapping]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelMetadata(_message.Message):
    __slots__ = ("model_component", "lookout_vision_model_arn", "status", "status_message")
    MODEL_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    LOOKOUT_VISION_MODEL_ARN_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    model_component: str
    lookout_vision_model_arn: str
    status: ModelStatus
    status_message: str
    def __init__(self, model_component: _Optional[str] = ..., lookout_vision_model_arn: _Optional[str] = ..., status: _Optional[_Union[ModelStatus, str]] = ..., status_message: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelMetadata]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelMetadata, _Mapping]]] = ...) -> None: ...

class StartModelRequest(_message.Message):
    __slots__ = ("model_component",)
    MODEL_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    model_component: str
    def __init__(self, model_component: _Optional[str] = ...) -> None: ...

class StartModelResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ModelStatus
    def __init__(self, status: _Optional[_Union[ModelStatus, str]] = ...) -> None: ...

class StopModelRequest(_message.Message):
    __slots__ = ("model_component",)
    MODEL_COMPONENT_FIELD_NUMBER: _ClassVar[int]
    model_component: str
    def __init__(self, model_component: _Optional[str] = ...) -> None: ...

class StopModelResponse(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: ModelStatus
    def __init__(self, status: _Optional[_Union[ModelStatus, str]] = ...) -> None: ...
