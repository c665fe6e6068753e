"""Training entry point details: builder arguments in the spec, transfer from another model's weights."""

import numpy as np
import pytest

from edge_wbc.errors import DataError, SpecError
from edge_wbc.spec import ModelSpec


def test_hparams_check_builder_args_and_init_path(tmp_path):
    from edge_wbc.training.train import HParams

    with pytest.raises(
        SpecError, match=r"invalid argument 'widths' for model 'unet': valid choices are base=8, depth=4, dropout=0.2"
    ):
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


def test_jitter_and_ema_are_checked_and_shape_the_optimizer():
    import keras

    from edge_wbc.training.train import HParams, ema_callbacks, make_optimizer

    with pytest.raises(SpecError, match=r"invalid jitter 1.5: valid range is 0 to 1"):
        HParams(model="tiny", jitter=1.5)
    with pytest.raises(SpecError, match=r"invalid ema momentum 0.5: valid choices are 0 \(off\) or 0.9 <= ema < 1"):
        HParams(model="tiny", ema=0.5)
    plain = make_optimizer(HParams(model="tiny"), 10, keras)
    assert not plain.use_ema and ema_callbacks(HParams(model="tiny"), keras) == []
    for name in ("adam", "sgd", "adadelta"):
        opt = make_optimizer(HParams(model="tiny", optimizer=name, ema=0.99), 10, keras)
        assert opt.use_ema and opt.ema_momentum == pytest.approx(0.99)
    (cb,) = ema_callbacks(HParams(model="tiny", ema=0.99), keras)
    assert isinstance(cb, keras.callbacks.SwapEMAWeights) and cb.swap_on_epoch


def test_photometric_jitter_keeps_range_and_is_off_at_zero():
    import tensorflow as tf

    from edge_wbc.training.train import photometric

    x = tf.constant(np.repeat(np.random.default_rng(0).integers(0, 256, (1, 16, 16, 3)), 4, axis=0).astype("float32"))
    np.testing.assert_array_equal(photometric(tf, x, 0.0).numpy(), x.numpy())
    tf.random.set_seed(0)
    y = photometric(tf, x, 1.0).numpy()
    assert y.shape == x.shape and y.min() >= 0.0 and y.max() <= 255.0
    assert np.abs(y - x.numpy()).mean() > 1.0  # it did change the pixels
    # four copies of one image get four different draws (a batch-wide shift would be undone by BatchNorm)
    assert len({round(float(v), 3) for v in y.mean(axis=(1, 2, 3))}) == 4


def test_seg_training_honours_limit_init_jitter_and_ema(tmp_path, data_root, monkeypatch):
    import keras

    from edge_wbc.training import segment
    from edge_wbc.training.segment import train_seg
    from edge_wbc.training.train import HParams

    used = {"jitter": [], "ema": [], "optimizer": []}
    real_photometric, real_make_optimizer = segment.photometric, segment.make_optimizer

    def photometric(tf, x, strength):
        used["jitter"].append(strength)
        return real_photometric(tf, x, strength)

    def make_optimizer(hp, steps, keras):
        opt = real_make_optimizer(hp, steps, keras)
        used["ema"].append(opt.use_ema)
        used["optimizer"].append(type(opt).__name__)
        return opt

    monkeypatch.setattr(segment, "photometric", photometric)
    monkeypatch.setattr(segment, "make_optimizer", make_optimizer)

    kw = {"base": 4, "depth": 2}
    first = train_seg(HParams(model="unet", dataset="wbcseg", size=32, epochs=1, batch=4, limit=6, model_kwargs=kw),
                      tmp_path / "a", data=data_root, verbose=0, log=lambda s: None)
    assert first["n"] == 6
    lines = []
    m = train_seg(
        HParams(
            model="unet",
            dataset="wbcseg",
            size=32,
            epochs=2,
            batch=4,
            limit=6,
            model_kwargs=kw,
            init=str(tmp_path / "a"),
            jitter=0.5,
            ema=0.95,
            boundary_weight=3.0,
            optimizer="sgd",
        ),
        tmp_path / "b",
        data=data_root,
        verbose=0,
        log=lines.append,
    )
    assert used["jitter"][-1] == 0.5 and used["ema"] == [False, True] and used["optimizer"] == ["Adam", "SGD"]
    assert any(s.startswith("init: ") and "kept random" not in s for s in lines), lines
    assert (
        m["hparams"]["jitter"] == 0.5
        and m["hparams"]["ema"] == 0.95
        and m["hparams"]["boundary_weight"] == 3.0
        and m["n"] == 6
    )
    assert keras.saving.load_model(tmp_path / "b" / "model.keras", compile=False).get_layer("enc0a_conv").filters == 4


def test_boundary_band_marks_pixels_near_the_mask_edge_only():
    import tensorflow as tf

    from edge_wbc.training.segment import boundary_band
    from edge_wbc.training.train import HParams

    t = np.zeros((1, 12, 12, 1), np.float32)
    t[0, 3:9, 3:9, 0] = 1
    band = boundary_band(tf, tf.constant(t)).numpy()[0, ..., 0]
    assert band[0].sum() == 0 and band[:, 0].sum() == 0  # 3 px outside the square: not in the band
    assert band[1, 1] == 1 and band[4, 4] == 1  # 2 px outside / 1 px inside the edge
    assert band[5:7, 5:7].sum() == 0  # the centre, 2.5 px from every edge
    assert boundary_band(tf, tf.zeros((1, 8, 8, 1))).numpy().sum() == 0  # no mask, no boundary
    with pytest.raises(SpecError, match="invalid boundary weight -1.0: must be >= 0"):
        HParams(model="unet", dataset="seg", boundary_weight=-1.0)
    with pytest.raises(SpecError, match="--boundary-weight is for segmentation models; 'tiny' is a classifier"):
        HParams(model="tiny", boundary_weight=2.0)
    with pytest.raises(
        SpecError, match="--class-weights and label smoothing are for classifiers; 'unet' is a segmentation model"
    ):
        HParams(model="unet", dataset="seg", class_weights="balanced")


def test_seg_refit_trains_on_train_plus_val_and_keeps_the_last_epoch(tmp_path, data_root):
    from edge_wbc.training.segment import train_seg
    from edge_wbc.training.train import HParams

    lines = []
    m = train_seg(
        HParams(
            model="unet",
            dataset="wbcseg",
            size=32,
            epochs=2,
            batch=4,
            limit=6,
            refit=True,
            ema=0.95,
            seed=2,
            model_kwargs={"base": 4, "depth": 2},
        ),
        tmp_path / "r",
        data=data_root,
        verbose=0,
        log=lines.append,
    )
    assert "refit: training on train + val (12 images) for 2 epochs, no val selection" in lines
    assert m["best_epoch"] == 2 and m["hparams"]["refit"] is True
    assert ModelSpec.load(tmp_path / "r").split_seed == 2  # convert/bench read the split it was trained on
    assert (tmp_path / "r" / "history.csv").read_text().splitlines()[0] == "epoch,loss"
    with pytest.raises(SpecError, match="--refit is for segmentation models; 'tiny' is a classifier"):
        HParams(model="tiny", refit=True)


def test_seg_training_reports_dice_at_the_label_grid(tmp_path, data_root):
    from edge_wbc.training.segment import train_seg
    from edge_wbc.training.train import HParams

    lines = []  # SigTuple's 4 px annotation blocks are 2 px at 64 px
    m = train_seg(
        HParams(
            model="unet", dataset="sigtuple", size=64, epochs=1, batch=4, limit=10, model_kwargs={"base": 4, "depth": 2}
        ),
        tmp_path / "s",
        data=data_root,
        verbose=0,
        log=lines.append,
    )
    rep = m["segmentation"]["wbc/all"]
    assert rep["grid"] == 2 and 0 <= rep["dice_grid"] <= 1 and len(rep["dice_grid_per_image"]) == rep["n"] == 10
    assert "nucleus/all" not in m["segmentation"]  # SigTuple has no nucleus masks
    saved = ModelSpec.load(tmp_path / "s").metrics["wbc/all"]
    assert saved["grid"] == 2 and saved["dice_grid"] == rep["dice_grid"] and "dice_grid_per_image" not in saved
    assert f"wbc/all Dice {rep['dice']:.4f} ({rep['dice_grid']:.4f} at its 2 px label grid)" in lines[-1]


def test_classifier_training_uses_jitter_and_ema(tmp_path, data_root, monkeypatch):
    from edge_wbc.training import train as train_mod

    used = []
    real = train_mod.photometric
    monkeypatch.setattr(train_mod, "photometric", lambda tf, x, s: used.append(s) or real(tf, x, s))
    m = train_mod.train(
        train_mod.HParams(model="tiny", epochs=2, limit=200, jitter=0.5, ema=0.95),
        tmp_path,
        data=data_root,
        verbose=0,
        log=lambda s: None,
    )
    assert used and used[-1] == 0.5 and m["epochs_run"] == 2 and (tmp_path / "model.keras").is_file()


def test_random_resize_draws_each_filter_and_matches_it():
    import tensorflow as tf

    from edge_wbc.training.train import RANDOM_RESIZE_FILTERS, random_resize_fn

    x = tf.constant(np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3)).astype("float32"))
    want = [tf.clip_by_value(tf.image.resize(x, [12, 12], method=m, antialias=a), 0.0, 255.0).numpy()
            for m, a in RANDOM_RESIZE_FILTERS]
    assert all(np.abs(want[i] - want[j]).max() > 1 for i in range(4) for j in range(i))  # four different resizes
    fn = random_resize_fn(tf, 12, 12)
    tf.random.set_seed(0)
    seen = set()
    for _ in range(40):
        y, lab = fn(x, tf.constant([1, 2]))
        assert y.shape == (2, 12, 12, 3) and list(lab.numpy()) == [1, 2]
        (hit,) = [k for k, w in enumerate(want) if np.allclose(y.numpy(), w, atol=1e-3)]  # exactly one filter
        seen.add(hit)
    assert seen == {0, 1, 2, 3}


def test_resize_from_is_checked():
    from edge_wbc.training import train as train_mod

    with pytest.raises(SpecError, match=r"--resize-from 28 must be larger than the input size 28"):
        train_mod.HParams(model="tiny", resize_from=28)
    with pytest.raises(SpecError, match=r"--resize-from is for classifiers trained from an image dataset"):
        train_mod.HParams(model="unet", dataset="seg", resize_from=256)
