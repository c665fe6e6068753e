"""Training entry point details: builder arguments in the spec, transfer from another model's weights."""

import numpy as np
import pytest

from edge_wbc.errors import DataError, SpecError
from edge_wbc.spec import ModelSpec


def test_hparams_check_builder_args_and_init_path(tmp_path):
    from edge_wbc.training.train import HParams

    with pytest.raises(SpecError, match=r"invalid argument 'widths' for model 'unet': valid choices are base=8, depth=4, dropout=0.2"):
        HParams(model="unet", dataset="seg", model_kwargs={"widths": [8]})
    with pytest.raises(SpecError, match="unknown model 'resnet9'"):
        HParams(model="resnet9")
    with pytest.raises(DataError, match="no model.keras there"):
        HParams(model="tiny", init=str(tmp_path))
    hp = HParams(model="wbcnet_s4", dataset="pbc128", size=128, model_kwargs={"widths": [16, 32, 48]})
    from edge_wbc.training.train import make_spec

    assert make_spec(hp, tuple("abcdefgh")).model_kwargs == {"widths": [16, 32, 48]}


def test_builder_args_change_the_architecture():
    from edge_wbc.training import build_model

    spec = ModelSpec("segmentation", 64, 64, ("wbc", "nucleus"), source_model="unet")
    narrow, wide = build_model("unet", spec), build_model("unet", spec, base=12)
    assert wide.count_params() > 2 * narrow.count_params()
    assert wide.get_layer("enc0a_conv").filters == 12


def test_init_from_copies_all_but_a_different_head(tiny_model_dir):
    import keras

    from edge_wbc.training import build_model
    from edge_wbc.training.train import init_from

    spec = ModelSpec("classification", 28, 28, ("a", "b", "c", "d"), source_model="tiny")
    model = build_model("tiny", spec)
    n, skipped = init_from(model, tiny_model_dir, keras)
    src = keras.saving.load_model(tiny_model_dir / "model.keras", compile=False)
    assert skipped == ["probs"] and n == sum(1 for layer in model.layers if layer.weights) - 1
    for name in ("c1_conv", "c1_bn", "dw", "pw"):
        for a, b in zip(model.get_layer(name).get_weights(), src.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(SpecError, match="no layer matches 'unet'"):
        init_from(build_model("unet", ModelSpec("segmentation", 32, 32, ("wbc",))), tiny_model_dir, keras)
