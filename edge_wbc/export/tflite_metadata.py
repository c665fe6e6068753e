"""TFLite model metadata (labels, normalization) without tflite-support and without TensorFlow.

A ``.tflite`` file is a flatbuffer ``Model`` (tensorflow/lite/schema/schema.fbs). Its ``metadata``
vector maps names to buffers; the entry named ``TFLITE_METADATA`` holds a ``ModelMetadata``
flatbuffer (file identifier ``M001``, tflite-support's ``metadata_schema.fbs``) that Android
tooling reads: the LiteRT / Task Library metadata extractor, the Android Studio model viewer and
code generator. Files that the metadata names (``AssociatedFile``) are packed the way tflite-support's
``MetadataPopulator`` does it: a zip archive of stored (uncompressed) members appended after the
flatbuffer, which the interpreter ignores and zip readers find through the archive's end record.

tflite-support no longer installs on current Python, so this module writes the few metadata
tables it needs with ``flatbuffers.Builder`` and reads them back with ``flatbuffers.table.Table``,
using the field ids of metadata_schema.fbs (version 1.x; only tables in its 1.0.0 subset are
written, so ``min_parser_version`` is "1.0.0", except SubGraphMetadata.custom_metadata, added in 1.5.0,
which a segmenter carries for MediaPipe: its ``SEGMENTER_METADATA`` entry, an ImageSegmenterOptions
flatbuffer of MediaPipe's image_segmenter_metadata_schema.fbs that names the output's activation).
Reading needs only the ``flatbuffers`` package. Writing re-serializes the ``Model`` with the generated
object API shipped in ``ai_edge_litert`` (``schema_py_generated``, the same one tflite-support and
TensorFlow's flatbuffer_utils use), so every tensor, operator and buffer is carried over unchanged.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field

import flatbuffers
from flatbuffers import number_types as N
from flatbuffers.table import Table

from ..errors import ModelError

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry tflite-support reads
MODEL_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # everything written here exists in metadata schema 1.0.0 ...
CUSTOM_METADATA_PARSER_VERSION = "1.5.0"  # ... but SubGraphMetadata.custom_metadata (added in 1.5.0)
SEGMENTER_METADATA_NAME = "SEGMENTER_METADATA"  # MediaPipe's ImageSegmenterOptions custom metadata
SEGMENTER_IDENTIFIER = b"V001"  # file identifier of image_segmenter_metadata_schema.fbs
SEGMENTER_ACTIVATIONS = {0: "NONE", 1: "SIGMOID", 2: "SOFTMAX"}  # its enum Activation
_ACTIVATION_IDS = {v: k for k, v in SEGMENTER_ACTIVATIONS.items()}

# Enums of metadata_schema.fbs.
ASSOCIATED_FILE_TYPES = {0: "UNKNOWN", 1: "DESCRIPTIONS", 2: "TENSOR_AXIS_LABELS", 3: "TENSOR_VALUE_LABELS",
                         4: "TENSOR_AXIS_SCORE_CALIBRATION", 5: "VOCABULARY", 6: "SCANN_INDEX_FILE"}
_FILE_TYPE_IDS = {v: k for k, v in ASSOCIATED_FILE_TYPES.items()}
COLOR_SPACES = {0: "UNKNOWN", 1: "RGB", 2: "GRAYSCALE"}
_COLOR_SPACE_IDS = {v: k for k, v in COLOR_SPACES.items()}
# union ContentProperties { FeatureProperties, ImageProperties, BoundingBoxProperties, AudioProperties }
_CONTENT_FEATURE, _CONTENT_IMAGE = 1, 2
# union ProcessUnitOptions { NormalizationOptions, ScoreCalibrationOptions, ScoreThresholdingOptions, ... }
_PU_NORMALIZATION = 1

# Field ids (slot numbers in declaration order) of the tables used here.
_MODEL = {"version": 0, "operator_codes": 1, "subgraphs": 2, "description": 3, "buffers": 4,
          "metadata_buffer": 5, "metadata": 6, "signature_defs": 7}  # schema.fbs Model
_MODEL_METADATA_ENTRY = {"name": 0, "buffer": 1}  # schema.fbs Metadata
_BUFFER = {"data": 0, "offset": 1, "size": 2}  # schema.fbs Buffer
_MM = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4, "license": 5,
       "associated_files": 6, "min_parser_version": 7}  # ModelMetadata
_SG = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3,
       "associated_files": 4, "input_process_units": 5, "output_process_units": 6, "input_tensor_groups": 7,
       "output_tensor_groups": 8, "custom_metadata": 9}  # SubGraphMetadata
_CUSTOM = {"name": 0, "data": 1}  # CustomMetadata
_SEG_OPTIONS = {"activation": 0, "min_parser_version": 1}  # MediaPipe's ImageSegmenterOptions (V001)
_TM = {"name": 0, "description": 1, "dimension_names": 2, "content": 3, "process_units": 4, "stats": 5,
       "associated_files": 6}  # TensorMetadata
_AF = {"name": 0, "description": 1, "type": 2, "locale": 3}  # AssociatedFile
_CONTENT = {"content_properties_type": 0, "content_properties": 1, "range": 2}  # Content
_IMAGE_PROPS = {"color_space": 0, "default_size": 1}  # ImageProperties
_IMAGE_SIZE = {"width": 0, "height": 1}  # ImageSize
_PU = {"options_type": 0, "options": 1}  # ProcessUnit
_NORM = {"mean": 0, "std": 1}  # NormalizationOptions
_STATS = {"max": 0, "min": 1}  # Stats
_RANGE = {"min": 0, "max": 1}  # ValueRange


# ---- plain data --------------------------------------------------------------------------------
@dataclass(frozen=True)
class AssociatedFile:
    name: str
    type: str = "UNKNOWN"  # a name from ASSOCIATED_FILE_TYPES
    description: str = ""
    locale: str = ""


@dataclass(frozen=True)
class TensorMetadata:
    name: str
    description: str = ""
    content: str = ""  # "image", "feature" or "" (none)
    color_space: str = ""  # image content: "RGB" / "GRAYSCALE"
    image_size: tuple[int, int] | None = None  # image content: (width, height)
    norm_mean: tuple[float, ...] = ()  # NormalizationOptions: (x - mean) / std, per channel
    norm_std: tuple[float, ...] = ()
    stats_min: tuple[float, ...] = ()
    stats_max: tuple[float, ...] = ()
    associated_files: tuple[AssociatedFile, ...] = ()
    content_range: tuple[int, int] | None = None  # Content.range: (min, max) dimensions the content spans

    @property
    def has_normalization(self) -> bool:
        return bool(self.norm_mean) and bool(self.norm_std)


@dataclass(frozen=True)
class CustomMetadata:
    """A SubGraphMetadata.custom_metadata entry: a name and an opaque buffer (e.g. SEGMENTER_METADATA)."""

    name: str
    data: bytes = b""


@dataclass(frozen=True)
class ModelMetadata:
    name: str
    description: str = ""
    version: str = ""
    author: str = ""
    license: str = ""
    inputs: tuple[TensorMetadata, ...] = ()
    outputs: tuple[TensorMetadata, ...] = ()
    subgraph_name: str = ""
    associated_files: tuple[AssociatedFile, ...] = ()
    min_parser_version: str = MIN_PARSER_VERSION
    custom_metadata: tuple[CustomMetadata, ...] = ()  # of the (one) subgraph
    extra: dict = field(default_factory=dict, compare=False)

    def label_file(self) -> str | None:
        """Name of the class-label file: the first TENSOR_AXIS_LABELS file of the first output, else
        one attached to the model (edge-wbc puts it there for a single sigmoid output)."""
        for f in (*(self.outputs[0].associated_files if self.outputs else ()), *self.associated_files):
            if f.type == "TENSOR_AXIS_LABELS":
                return f.name
        return None


# ---- writing the ModelMetadata flatbuffer ------------------------------------------------------
def _vector(b: flatbuffers.Builder, offsets: list[int]) -> int:
    b.StartVector(4, len(offsets), 4)
    for off in reversed(offsets):
        b.PrependUOffsetTRelative(off)
    return b.EndVector()


def _float_vector(b: flatbuffers.Builder, values: tuple[float, ...]) -> int:
    b.StartVector(4, len(values), 4)
    for v in reversed(values):
        b.PrependFloat32(float(v))
    return b.EndVector()


def _strings(b: flatbuffers.Builder, **values: str) -> dict[str, int]:
    """Create the non-empty strings first: flatbuffers forbids nesting objects inside a table."""
    return {k: b.CreateString(v) for k, v in values.items() if v}


def _add_strings(b: flatbuffers.Builder, slots: dict[str, int], offs: dict[str, int]) -> None:
    for k, off in offs.items():
        b.PrependUOffsetTRelativeSlot(slots[k], off, 0)


def _write_associated_file(b: flatbuffers.Builder, f: AssociatedFile) -> int:
    if f.type not in _FILE_TYPE_IDS:
        raise ModelError(f"invalid associated file type {f.type!r}: valid choices are {', '.join(_FILE_TYPE_IDS)}")
    s = _strings(b, name=f.name, description=f.description, locale=f.locale)
    b.StartObject(len(_AF))
    _add_strings(b, _AF, s)
    b.PrependInt8Slot(_AF["type"], _FILE_TYPE_IDS[f.type], 0)
    return b.EndObject()


def _write_tensor(b: flatbuffers.Builder, t: TensorMetadata) -> int:
    # Content: ImageProperties (color space, size) or FeatureProperties (an empty table).
    content = None
    if t.content == "image":
        size = None
        if t.image_size:
            b.StartObject(len(_IMAGE_SIZE))
            b.PrependUint32Slot(_IMAGE_SIZE["width"], int(t.image_size[0]), 0)
            b.PrependUint32Slot(_IMAGE_SIZE["height"], int(t.image_size[1]), 0)
            size = b.EndObject()
        b.StartObject(len(_IMAGE_PROPS))
        b.PrependInt8Slot(_IMAGE_PROPS["color_space"], _COLOR_SPACE_IDS.get(t.color_space or "UNKNOWN", 0), 0)
        if size is not None:
            b.PrependUOffsetTRelativeSlot(_IMAGE_PROPS["default_size"], size, 0)
        props, props_type = b.EndObject(), _CONTENT_IMAGE
    elif t.content == "feature":
        b.StartObject(0)
        props, props_type = b.EndObject(), _CONTENT_FEATURE
    elif t.content:
        raise ModelError(f"invalid tensor content {t.content!r}: valid choices are image, feature")
    if t.content:
        rng = None
        if t.content_range is not None:
            b.StartObject(len(_RANGE))
            b.PrependInt32Slot(_RANGE["min"], int(t.content_range[0]), 0)
            b.PrependInt32Slot(_RANGE["max"], int(t.content_range[1]), 0)
            rng = b.EndObject()
        b.StartObject(len(_CONTENT))
        b.PrependUint8Slot(_CONTENT["content_properties_type"], props_type, 0)
        b.PrependUOffsetTRelativeSlot(_CONTENT["content_properties"], props, 0)
        if rng is not None:
            b.PrependUOffsetTRelativeSlot(_CONTENT["range"], rng, 0)
        content = b.EndObject()
    elif t.content_range is not None:
        raise ModelError(f"tensor {t.name!r}: a content range needs a content type (image, feature)")
    # Process units: the NormalizationOptions that an app applies before quantizing the input.
    units = None
    if t.has_normalization:
        mean, std = _float_vector(b, t.norm_mean), _float_vector(b, t.norm_std)
        b.StartObject(len(_NORM))
        b.PrependUOffsetTRelativeSlot(_NORM["mean"], mean, 0)
        b.PrependUOffsetTRelativeSlot(_NORM["std"], std, 0)
        norm = b.EndObject()
        b.StartObject(len(_PU))
        b.PrependUint8Slot(_PU["options_type"], _PU_NORMALIZATION, 0)
        b.PrependUOffsetTRelativeSlot(_PU["options"], norm, 0)
        units = _vector(b, [b.EndObject()])
    stats = None
    if t.stats_min or t.stats_max:
        smax, smin = _float_vector(b, t.stats_max), _float_vector(b, t.stats_min)
        b.StartObject(len(_STATS))
        b.PrependUOffsetTRelativeSlot(_STATS["max"], smax, 0)
        b.PrependUOffsetTRelativeSlot(_STATS["min"], smin, 0)
        stats = b.EndObject()
    files = _vector(b, [_write_associated_file(b, f) for f in t.associated_files]) if t.associated_files else None
    s = _strings(b, name=t.name, description=t.description)
    b.StartObject(len(_TM))
    _add_strings(b, _TM, s)
    for slot, off in (("content", content), ("process_units", units), ("stats", stats), ("associated_files", files)):
        if off is not None:
            b.PrependUOffsetTRelativeSlot(_TM[slot], off, 0)
    return b.EndObject()


def _byte_vector(b: flatbuffers.Builder, data: bytes, alignment: int) -> int:
    b.StartVector(1, len(data), alignment)
    b.head = b.head - len(data)
    b.Bytes[b.head : b.head + len(data)] = data
    return b.EndVector()


def _version(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split("."))
    except ValueError:
        raise ModelError(f"invalid min_parser_version {v!r}: expected numbers like 1.5.0") from None


def build_metadata(md: ModelMetadata) -> bytes:
    """Serialize ``md`` as a ModelMetadata flatbuffer with the ``M001`` file identifier."""
    if md.custom_metadata and _version(md.min_parser_version) < _version(CUSTOM_METADATA_PARSER_VERSION):
        raise ModelError(f"custom metadata needs min_parser_version {CUSTOM_METADATA_PARSER_VERSION}, "
                         f"not {md.min_parser_version}")
    b = flatbuffers.Builder(1024)
    inputs = _vector(b, [_write_tensor(b, t) for t in md.inputs])
    outputs = _vector(b, [_write_tensor(b, t) for t in md.outputs])
    customs = []
    for c in md.custom_metadata:
        data = _byte_vector(b, bytes(c.data), 16)  # data:[ubyte] (force_align: 16)
        cname = _strings(b, name=c.name)
        b.StartObject(len(_CUSTOM))
        _add_strings(b, _CUSTOM, cname)
        b.PrependUOffsetTRelativeSlot(_CUSTOM["data"], data, 0)
        customs.append(b.EndObject())
    custom = _vector(b, customs) if customs else None
    sg_name = _strings(b, name=md.subgraph_name)
    b.StartObject(len(_SG))
    _add_strings(b, _SG, sg_name)
    b.PrependUOffsetTRelativeSlot(_SG["input_tensor_metadata"], inputs, 0)
    b.PrependUOffsetTRelativeSlot(_SG["output_tensor_metadata"], outputs, 0)
    if custom is not None:
        b.PrependUOffsetTRelativeSlot(_SG["custom_metadata"], custom, 0)
    subgraphs = _vector(b, [b.EndObject()])
    files = _vector(b, [_write_associated_file(b, f) for f in md.associated_files]) if md.associated_files else None
    s = _strings(b, name=md.name, description=md.description, version=md.version, author=md.author,
                 license=md.license, min_parser_version=md.min_parser_version)
    b.StartObject(len(_MM))
    _add_strings(b, _MM, s)
    b.PrependUOffsetTRelativeSlot(_MM["subgraph_metadata"], subgraphs, 0)
    if files is not None:
        b.PrependUOffsetTRelativeSlot(_MM["associated_files"], files, 0)
    b.Finish(b.EndObject(), file_identifier=METADATA_IDENTIFIER)
    return bytes(b.Output())


def build_segmenter_options(activation: str = "NONE") -> bytes:
    """MediaPipe's ImageSegmenterOptions flatbuffer (``V001``), the data of SEGMENTER_METADATA.

    MediaPipe's ImageSegmenterGraph applies ``activation`` to the model's output before it makes the
    masks (NONE: the output already holds the probabilities).
    """
    if activation not in _ACTIVATION_IDS:
        raise ModelError(f"invalid segmenter activation {activation!r}: valid choices are "
                         f"{', '.join(_ACTIVATION_IDS)}")
    b = flatbuffers.Builder(64)
    version = b.CreateString(MIN_PARSER_VERSION)  # of that schema (its 1.0.0)
    b.StartObject(len(_SEG_OPTIONS))
    b.PrependInt8Slot(_SEG_OPTIONS["activation"], _ACTIVATION_IDS[activation], 0)
    b.PrependUOffsetTRelativeSlot(_SEG_OPTIONS["min_parser_version"], version, 0)
    b.Finish(b.EndObject(), file_identifier=SEGMENTER_IDENTIFIER)
    return bytes(b.Output())


def parse_segmenter_options(buf: bytes) -> str:
    """The activation named by an ImageSegmenterOptions (``V001``) buffer."""
    t = _root(bytes(buf), _SEG_OPTIONS, SEGMENTER_IDENTIFIER, "MediaPipe ImageSegmenterOptions")
    code = t.scalar("activation", N.Int8Flags)
    if code not in SEGMENTER_ACTIVATIONS:
        raise ModelError(f"ImageSegmenterOptions: unknown activation {code}")
    return SEGMENTER_ACTIVATIONS[code]


# ---- reading flatbuffer tables -----------------------------------------------------------------
class _T:
    """A table with named fields: thin wrapper over flatbuffers.table.Table."""

    def __init__(self, buf: bytes | bytearray | memoryview, pos: int, slots: dict[str, int]):
        self.t, self.slots = Table(buf, pos), slots

    def _off(self, name: str) -> int:
        return self.t.Offset(4 + 2 * self.slots[name])

    def string(self, name: str) -> str:
        o = self._off(name)
        return self.t.String(o + self.t.Pos).decode("utf-8") if o else ""

    def scalar(self, name: str, flags, default=0):
        o = self._off(name)
        return self.t.Get(flags, o + self.t.Pos) if o else default

    def table(self, name: str, slots: dict[str, int]) -> _T | None:
        o = self._off(name)
        return _T(self.t.Bytes, self.t.Indirect(o + self.t.Pos), slots) if o else None

    def tables(self, name: str, slots: dict[str, int]) -> list[_T]:
        o = self._off(name)
        if not o:
            return []
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return [_T(self.t.Bytes, self.t.Indirect(start + 4 * i), slots) for i in range(n)]

    def floats(self, name: str) -> tuple[float, ...]:
        o = self._off(name)
        if not o:
            return ()
        start, n = self.t.Vector(o), self.t.VectorLen(o)
        return tuple(float(self.t.Get(N.Float32Flags, start + 4 * i)) for i in range(n))

    def byte_span(self, name: str) -> tuple[int, int] | None:
        """(start, length) of a [ubyte] field inside the buffer."""
        o = self._off(name)
        return (self.t.Vector(o), self.t.VectorLen(o)) if o else None


def _root(buf: bytes, slots: dict[str, int], identifier: bytes, what: str) -> _T:
    if len(buf) < 8 or buf[4:8] != identifier:
        raise ModelError(f"not a {what} flatbuffer (no {identifier.decode()} identifier)")
    try:
        return _T(buf, N.UOffsetTFlags.py_type(int.from_bytes(buf[:4], "little")), slots)
    except Exception as e:  # pragma: no cover - defensive: struct errors on truncated data
        raise ModelError(f"corrupt {what} flatbuffer ({e})") from None


def _read_file(t: _T) -> AssociatedFile:
    code = t.scalar("type", N.Int8Flags)
    return AssociatedFile(name=t.string("name"), type=ASSOCIATED_FILE_TYPES.get(code, f"TYPE_{code}"),
                          description=t.string("description"), locale=t.string("locale"))


def _read_tensor(t: _T) -> TensorMetadata:
    content, color, size = "", "", None
    c = t.table("content", _CONTENT)
    rng = None
    if c is not None:
        r = c.table("range", _RANGE)
        if r is not None:
            rng = (int(r.scalar("min", N.Int32Flags)), int(r.scalar("max", N.Int32Flags)))
        kind = c.scalar("content_properties_type", N.Uint8Flags)
        if kind == _CONTENT_IMAGE:
            content = "image"
            props = c.table("content_properties", _IMAGE_PROPS)
            if props is not None:
                color = COLOR_SPACES.get(props.scalar("color_space", N.Int8Flags), "UNKNOWN")
                s = props.table("default_size", _IMAGE_SIZE)
                if s is not None:
                    size = (s.scalar("width", N.Uint32Flags), s.scalar("height", N.Uint32Flags))
        elif kind == _CONTENT_FEATURE:
            content = "feature"
        elif kind:
            content = f"content_type_{kind}"
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    for pu in t.tables("process_units", _PU):
        if pu.scalar("options_type", N.Uint8Flags) == _PU_NORMALIZATION:
            norm = pu.table("options", _NORM)
            if norm is not None:
                mean, std = norm.floats("mean"), norm.floats("std")
    smin: tuple[float, ...] = ()
    smax: tuple[float, ...] = ()
    st = t.table("stats", _STATS)
    if st is not None:
        smin, smax = st.floats("min"), st.floats("max")
    return TensorMetadata(
        name=t.string("name"),
        description=t.string("description"),
        content=content,
        color_space=color,
        image_size=size,
        norm_mean=mean,
        norm_std=std,
        stats_min=smin,
        stats_max=smax,
        associated_files=tuple(_read_file(f) for f in t.tables("associated_files", _AF)),
        content_range=rng,
    )


def _read_custom(t: _T) -> CustomMetadata:
    span = t.byte_span("data")
    return CustomMetadata(name=t.string("name"),
                          data=bytes(t.t.Bytes[span[0] : span[0] + span[1]]) if span else b"")


def parse_metadata(buf: bytes) -> ModelMetadata:
    """Decode a ModelMetadata flatbuffer (the TFLITE_METADATA buffer)."""
    m = _root(bytes(buf), _MM, METADATA_IDENTIFIER, "TFLite ModelMetadata")
    sgs = m.tables("subgraph_metadata", _SG)
    sg = sgs[0] if sgs else None
    return ModelMetadata(
        name=m.string("name"), description=m.string("description"), version=m.string("version"),
        author=m.string("author"), license=m.string("license"),
        inputs=tuple(_read_tensor(t) for t in sg.tables("input_tensor_metadata", _TM)) if sg else (),
        outputs=tuple(_read_tensor(t) for t in sg.tables("output_tensor_metadata", _TM)) if sg else (),
        subgraph_name=sg.string("name") if sg else "",
        associated_files=tuple(_read_file(f) for f in m.tables("associated_files", _AF)),
        min_parser_version=m.string("min_parser_version"),
        custom_metadata=tuple(_read_custom(c) for c in sg.tables("custom_metadata", _CUSTOM)) if sg else (),
        extra={"subgraphs": len(sgs)},
    )


def model_metadata_entries(model: bytes) -> dict[str, bytes]:
    """The ``Model.metadata`` table of a .tflite: {name: buffer contents}."""
    model = bytes(model)
    m = _root(model, _MODEL, MODEL_IDENTIFIER, "TFLite model")
    buffers = m.tables("buffers", _BUFFER)
    out = {}
    for entry in m.tables("metadata", _MODEL_METADATA_ENTRY):
        name, idx = entry.string("name"), entry.scalar("buffer", N.Uint32Flags)
        if idx >= len(buffers):
            raise ModelError(f"metadata entry {name!r} points to buffer {idx} of {len(buffers)}")
        buf = buffers[idx]
        offset, size = buf.scalar("offset", N.Uint64Flags), buf.scalar("size", N.Uint64Flags)
        if offset > 1:  # large models keep buffer data after the flatbuffer (offset/size)
            out[name] = model[offset : offset + size]
        else:
            span = buf.byte_span("data")
            out[name] = model[span[0] : span[0] + span[1]] if span else b""
    return out


def read_metadata(model: bytes) -> ModelMetadata | None:
    """The ModelMetadata embedded in a .tflite, or None if it has none."""
    buf = model_metadata_entries(model).get(METADATA_NAME)
    return parse_metadata(buf) if buf else None


def read_associated_files(model: bytes) -> dict[str, bytes]:
    """Files packed after the flatbuffer as a zip (MetadataPopulator layout); {} if none."""
    f = io.BytesIO(bytes(model))
    if not zipfile.is_zipfile(f):
        return {}
    with zipfile.ZipFile(f) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def read_labels(model: bytes) -> tuple[str, ...] | None:
    """The class labels a .tflite carries: its first output's TENSOR_AXIS_LABELS file."""
    md = read_metadata(model)
    name = md.label_file() if md else None
    if name is None:
        return None
    files = read_associated_files(model)
    if name not in files:
        raise ModelError(f"the metadata names label file {name!r} but the model does not pack it")
    return tuple(ln.strip() for ln in files[name].decode("utf-8").splitlines() if ln.strip())


# ---- writing into a model ----------------------------------------------------------------------
def flatbuffer_size(model: bytes) -> int:
    """Length of the TFLite flatbuffer proper, i.e. where an appended zip (if any) starts."""
    f = io.BytesIO(bytes(model))
    if not zipfile.is_zipfile(f):
        return len(model)
    with zipfile.ZipFile(f) as zf:
        infos = zf.infolist()
        # Python's zipfile shifts every header_offset by the data found before the archive.
        return min((i.header_offset for i in infos), default=len(model))


def populate(model: bytes, metadata: bytes, files: dict[str, bytes]) -> bytes:
    """Return ``model`` with ``metadata`` as its TFLITE_METADATA buffer and ``files`` zipped after it.

    An existing TFLITE_METADATA entry is replaced, and files packed earlier are dropped (they belong
    to the metadata being replaced). Other metadata entries (min_runtime_version,
    CONVERSION_METADATA ...), tensors, operators and signatures are kept as they are.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError as e:
        raise ModelError(f"writing TFLite metadata needs ai_edge_litert's flatbuffer schema ({e}): "
                         "pip install ai-edge-litert") from None
    model = bytes(model)
    if model[4:8] != MODEL_IDENTIFIER:
        raise ModelError("not a TFLite model (no TFL3 flatbuffer identifier)")
    if metadata[4:8] != METADATA_IDENTIFIER:
        raise ModelError("not a ModelMetadata flatbuffer (no M001 identifier)")
    parse_metadata(metadata)  # refuse a metadata buffer this module cannot read back
    m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    for buf in m.buffers or []:
        if buf.offset > 1:  # large-model layout: pull the data into the flatbuffer before re-packing
            buf.data = bytearray(model[buf.offset : buf.offset + buf.size])
            buf.offset, buf.size = 0, 0
    new = schema.BufferT()
    new.data = bytearray(metadata)
    m.buffers = list(m.buffers or [])
    m.metadata = list(m.metadata or [])
    for entry in m.metadata:
        name = entry.name.decode("utf-8") if isinstance(entry.name, bytes) else entry.name
        if name == METADATA_NAME:
            m.buffers[entry.buffer] = new
            break
    else:
        m.buffers.append(new)
        entry = schema.MetadataT()
        entry.name, entry.buffer = METADATA_NAME, len(m.buffers) - 1
        m.metadata.append(entry)
    b = flatbuffers.Builder(len(model) + len(metadata) + 1024)
    b.Finish(m.Pack(b), file_identifier=MODEL_IDENTIFIER)
    out = io.BytesIO()
    out.write(b.Output())
    if files:
        # Stored, not deflated: Android memory-maps associated files straight out of the model.
        with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as zf:
            for name, data in files.items():
                zf.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), data)
    return out.getvalue()


__all__ = [
    "METADATA_NAME", "MIN_PARSER_VERSION", "CUSTOM_METADATA_PARSER_VERSION", "SEGMENTER_METADATA_NAME",
    "AssociatedFile", "TensorMetadata", "CustomMetadata", "ModelMetadata", "build_metadata", "build_segmenter_options",
    "parse_segmenter_options", "parse_metadata", "model_metadata_entries", "read_metadata", "read_associated_files",
    "read_labels", "flatbuffer_size", "populate",
]
