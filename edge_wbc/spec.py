"""ModelSpec: the single source of truth for a model's input, preprocessing and labels.

It is written as ``model.json`` beside every ``model.keras`` and ``.tflite`` and read back by the
runtime, training, the converters and bench. Normalization is baked into the graph (a Rescaling
layer), so ``normalization`` documents what the graph does; callers always feed raw RGB pixels
(0-255) of ``input_size`` x ``input_size`` after :func:`edge_wbc.preprocess.preprocess`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .converters.modes import QUANTIZATIONS
from .errors import SpecError

TASKS = ("classification", "binary", "segmentation")
#: Every ``quantization`` a spec may have: "keras" and the conversion modes (the mode table's names).
MODES = QUANTIZATIONS
RESAMPLE = ("bicubic", "bilinear", "nearest", "lanczos", "box")
CROPS = ("none", "center_square", "wbc")
CHANNELS = (1, 3)
SPEC_VERSION = 1


def _choice(name: str, value: Any, choices: tuple) -> None:
    if value not in choices:
        raise SpecError(f"invalid {name} {value!r}: valid choices are {', '.join(map(str, choices))}")


@dataclass(frozen=True)
class ModelSpec:
    """Frozen description of a model's contract with the outside world."""

    task: str
    input_height: int
    input_width: int
    labels: tuple[str, ...]
    channels: int = 3
    # What the graph does to the raw 0-255 pixels: x * scale + offset (inside the model).
    norm_scale: float = 1.0 / 255.0
    norm_offset: float = 0.0
    normalization_in_graph: bool = True
    resample: str = "bicubic"
    crop: str = "none"
    # crop "wbc": the WBC-centred square (edge_wbc.runtime.wbccrop): side = crop_ratio x the WBC's longer
    # side, the WBC found by the shipped segmenter crop_model. Both are None (and absent from the JSON)
    # for every other crop.
    crop_ratio: float | None = None
    crop_model: str | None = None
    dataset: str = ""
    source_model: str = ""
    # keyword arguments of the registered builder beyond its defaults (e.g. {"base": 12} for unet),
    # so that the same architecture can be rebuilt from the spec (QAT / pruning rebuild it in tf_keras)
    model_kwargs: dict = field(default_factory=dict, hash=False)
    # seed of the train/val/test split of seeded datasets (BCCD, folder trees, segmentation sets): the
    # training seed, so that conversion, bench and calibration read the split the model was trained on
    split_seed: int = 0
    quantization: str = "keras"
    metrics: dict = field(default_factory=dict, compare=False, hash=False)
    version: int = SPEC_VERSION

    def __post_init__(self) -> None:
        _choice("task", self.task, TASKS)
        _choice("channels", self.channels, CHANNELS)
        _choice("resample", self.resample, RESAMPLE)
        _choice("crop", self.crop, CROPS)
        if self.crop == "wbc":
            r = self.crop_ratio
            if not isinstance(r, (int, float)) or isinstance(r, bool) or not 1.0 <= r <= 4.0:
                raise SpecError(f"invalid crop_ratio {self.crop_ratio!r}: a 'wbc' crop needs a ratio between 1 and 4")
            if not isinstance(self.crop_model, str) or not self.crop_model:
                raise SpecError("a 'wbc' crop needs crop_model: the name of the segmenter that finds the WBC")
        elif self.crop_ratio is not None or self.crop_model is not None:
            raise SpecError(f"crop_ratio and crop_model are for crop 'wbc', not {self.crop!r}")
        _choice("quantization", self.quantization, MODES)
        for name in ("input_height", "input_width"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or not 8 <= v <= 4096:
                raise SpecError(f"invalid {name} {v!r}: must be an integer between 8 and 4096")
        if not isinstance(self.split_seed, int) or isinstance(self.split_seed, bool) or self.split_seed < 0:
            raise SpecError(f"invalid split_seed {self.split_seed!r}: must be an integer >= 0")
        if not isinstance(self.model_kwargs, dict) or not all(isinstance(k, str) for k in self.model_kwargs):
            raise SpecError(
                f"invalid model_kwargs {self.model_kwargs!r}: must be an object of builder keyword arguments"
            )
        labels = tuple(self.labels)
        object.__setattr__(self, "labels", labels)
        if self.task != "segmentation" and len(labels) < 2:
            raise SpecError(f"a {self.task} model needs at least 2 labels, got {len(labels)}: {labels}")
        if len(set(labels)) != len(labels):
            raise SpecError(f"labels must be unique, got {labels}")
        if any(not isinstance(x, str) or not x.strip() or "\n" in x for x in labels):
            raise SpecError(f"labels must be non-empty single-line strings, got {labels}")

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.input_height, self.input_width, self.channels)

    def replace(self, **changes: Any) -> ModelSpec:
        return dataclasses.replace(self, **changes)

    # ---- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["labels"] = list(self.labels)
        for k in ("crop_ratio", "crop_model"):  # only a 'wbc' crop has them: other specs keep their JSON
            if d[k] is None:
                del d[k]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        if not isinstance(d, dict):
            raise SpecError(f"model spec must be a JSON object, got {type(d).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise SpecError(f"unknown model.json keys {unknown}: valid keys are {sorted(known)}")
        missing = [k for k in ("task", "input_height", "input_width", "labels") if k not in d]
        if missing:
            raise SpecError(f"model.json lacks required keys {missing}")
        if not isinstance(d["labels"], list):
            raise SpecError(f"model.json 'labels' must be a list, got {type(d['labels']).__name__}")
        return cls(**d)

    def save(self, path: str | Path) -> Path:
        from .fileio import atomic_write_text

        path = Path(path)
        if path.is_dir():
            path = path / "model.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> ModelSpec:
        path = Path(path)
        if path.is_dir():
            path = path / "model.json"
        if not path.is_file():
            raise SpecError(f"{path}: model.json not found (every model needs its model.json beside it)")
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise SpecError(f"{path}: not valid JSON ({e})") from None
        if isinstance(d, dict) and isinstance(d.get("model_spec"), dict):
            d = d["model_spec"]  # a bundle JSON (edge-wbc export-android) that nests the spec
        try:
            return cls.from_dict(d)
        except TypeError as e:  # wrong value types
            raise SpecError(f"{path}: {e}") from None
        except SpecError as e:
            raise SpecError(f"{path}: {e}") from None


def spec_path_for(model_path: str | Path) -> Path:
    """The model.json that belongs to a model file: ``<stem>.json`` if present, else ``model.json``."""
    p = Path(model_path)
    own = p.with_suffix(".json")
    if own.is_file() and own != p:
        return own
    return p.parent / "model.json"
