import dataclasses
import json

import pytest

from edge_wbc.errors import SpecError
from edge_wbc.spec import ModelSpec, spec_path_for


def make(**kw):
    base = dict(task="classification", input_height=28, input_width=28, labels=("a", "b", "c"))
    return ModelSpec(**{**base, **kw})


def test_roundtrip(tmp_path):
    s = make(dataset="bloodmnist", source_model="wbcnet", metrics={"accuracy": 0.9})
    p = s.save(tmp_path)
    assert p.name == "model.json"
    back = ModelSpec.load(tmp_path)
    assert back == s
    assert back.labels == ("a", "b", "c") and back.input_shape == (28, 28, 3) and back.num_classes == 3


def test_frozen():
    s = make()
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.input_height = 10


@pytest.mark.parametrize("field,value,needle", [
    ("task", "detect", "valid choices are classification, binary, segmentation"),
    ("channels", 4, "valid choices are 1, 3"),
    ("resample", "cubic", "valid choices are bicubic"),
    ("quantization", "int4", "valid choices are keras, float32"),
    ("input_height", 3, "between 8 and 4096"),
    ("split_seed", -1, "must be an integer >= 0"),
])
def test_invalid_values_name_value_and_choices(field, value, needle):
    with pytest.raises(SpecError) as e:
        make(**{field: value})
    assert repr(value) in str(e.value) and needle in str(e.value)


def test_label_checks():
    with pytest.raises(SpecError, match="at least 2 labels"):
        make(labels=("only",))
    with pytest.raises(SpecError, match="unique"):
        make(labels=("a", "a"))


def test_load_errors(tmp_path):
    with pytest.raises(SpecError, match="model.json not found"):
        ModelSpec.load(tmp_path)
    (tmp_path / "model.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        ModelSpec.load(tmp_path)
    (tmp_path / "model.json").write_text(json.dumps({"task": "classification", "input_height": 28, "input_width": 28,
                                                     "labels": ["a", "b"], "colour": "x"}))
    with pytest.raises(SpecError, match=r"unknown model.json keys \['colour'\]"):
        ModelSpec.load(tmp_path)


def test_spec_path_prefers_own_json(tmp_path):
    (tmp_path / "model.json").write_text("{}")
    assert spec_path_for(tmp_path / "int8.tflite") == tmp_path / "model.json"
    (tmp_path / "int8.json").write_text("{}")
    assert spec_path_for(tmp_path / "int8.tflite") == tmp_path / "int8.json"


def test_model_kwargs_roundtrip_and_old_files(tmp_path):
    s = make(source_model="unet", model_kwargs={"base": 12})
    assert ModelSpec.load(s.save(tmp_path)).model_kwargs == {"base": 12}
    assert make() != s.replace(source_model="")  # the builder arguments are part of the architecture
    d = make().to_dict()
    del d["model_kwargs"]  # model.json files written before the field existed still load
    (tmp_path / "old.json").write_text(json.dumps(d))
    assert ModelSpec.load(tmp_path / "old.json").model_kwargs == {}
    with pytest.raises(SpecError, match=r"invalid model_kwargs \[12\]"):
        make(model_kwargs=[12])


def test_split_seed_roundtrip_and_old_files(tmp_path):
    assert ModelSpec.load(make(split_seed=3).save(tmp_path)).split_seed == 3
    d = make().to_dict()
    del d["split_seed"]  # model.json files written before the field existed: the default split
    (tmp_path / "old.json").write_text(json.dumps(d))
    assert ModelSpec.load(tmp_path / "old.json").split_seed == 0
