"""Build the synthetic conv models that `edge-wbc bench --roofline` times (needs TensorFlow).

Eight 3x3 Conv2D 64->64 layers on a 28x28x64 input (0.231 GMAC; activations and each layer's
weights stay in cache, as in the shipped edge models), as float32 and as full-integer
int8, with random weights and random calibration inputs: nothing here comes from any dataset.
Output: edge_wbc/roofline/{float32,int8}.tflite (shipped, so that the roof can be measured on a
device that has no TensorFlow).
"""

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "edge_wbc" / "bench" / "roofline"


def build():
    keras.utils.set_random_seed(0)
    inp = keras.Input((28, 28, 64))
    x = inp
    for _ in range(8):
        x = keras.layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    return keras.Model(inp, x)


def main():
    model = build()
    OUT.mkdir(parents=True, exist_ok=True)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    (OUT / "float32.tflite").write_bytes(conv.convert())
    rng = np.random.default_rng(0)
    conv = tf.lite.TFLiteConverter.from_keras_model(model)
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = lambda: ([rng.random((1, 28, 28, 64), np.float32)] for _ in range(16))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = tf.int8
    conv.inference_output_type = tf.int8
    (OUT / "int8.tflite").write_bytes(conv.convert())
    for f in sorted(OUT.glob("*.tflite")):
        print(f, f.stat().st_size)


if __name__ == "__main__":
    main()
