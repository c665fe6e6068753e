"""Model outputs -> class probabilities, one definition for the runtime, bench, conversion and training.

Imports nothing but NumPy: a Keras model is passed in, never imported here.
"""

from __future__ import annotations

import numpy as np


def class_probs(p: np.ndarray, num_classes: int) -> np.ndarray:
    """Model outputs -> (N, num_classes) probabilities; a single sigmoid unit becomes [1 - p, p]."""
    p = np.asarray(p, np.float32).reshape(len(p), -1)
    if p.shape[1] == 1 and num_classes == 2:
        p = np.concatenate([1.0 - p, p], axis=1)
    return p


def keras_probs(model, images: np.ndarray, spec, batch: int = 256) -> np.ndarray:
    """Keras model -> (N, num_classes) probabilities on raw-pixel uint8 images."""
    return class_probs(model.predict(images.astype(np.float32), batch_size=batch, verbose=0), spec.num_classes)
