"""Bake a fixed area downscale into a classifier: a K*S px input, K x K average pooling, then the model.

    python scripts/bake_resize.py android_assets/bloodmnist.keras android_assets/model.json OUT_DIR 4 pbc128
    edge-wbc convert OUT_DIR --mode int8        # calibrated on pbc128 train at 112 px
    cp OUT_DIR/int8.tflite X/bloodmnist112_int8.tflite; cp OUT_DIR/int8.json X/bloodmnist112_int8.json
    edge-wbc export-android X/bloodmnist112_int8.tflite --out android_assets/

The 28 px BloodMNIST model then takes 112 px images: an app (or MediaPipe Tasks, which resizes with
plain bilinear sampling) shrinks a 128 px crop by only 1.14x, and the 4x4 average inside the graph does
the large downscale the way BloodMNIST's 28 px images were made. No retraining; the weights are the
shipped model's. The new model.json names the dataset its int8 calibration and checks read (a folder
dataset at the larger size: pbc128).
"""

import json
import sys
from pathlib import Path


def main(keras_path: str, spec_path: str, out: str, k: int, dataset: str) -> None:
    import keras

    base = keras.saving.load_model(keras_path, safe_mode=True, compile=False)
    spec = json.loads(Path(spec_path).read_text())
    h, w = spec["input_height"] * k, spec["input_width"] * k
    inp = keras.Input((h, w, spec.get("channels", 3)), name="pixels")
    x = keras.layers.AveragePooling2D(k, name=f"area{k}")(inp)
    model = keras.Model(inp, base(x), name=f"{base.name}_area{k}")
    Path(out).mkdir(parents=True, exist_ok=True)
    model.save(Path(out) / "model.keras")
    spec.update(input_height=h, input_width=w, dataset=dataset, metrics={})
    (Path(out) / "model.json").write_text(json.dumps(spec, indent=2) + "\n")
    print(f"{out}: {h}x{w} input, {k}x{k} area pooling, {model.count_params()} params")


if __name__ == "__main__":
    a = sys.argv[1:]
    if len(a) != 5:
        sys.exit(__doc__)
    main(a[0], a[1], a[2], int(a[3]), a[4])
