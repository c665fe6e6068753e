"""The U-Net segmentation builder (WBC / nucleus masks, smear WBC maps)."""

from __future__ import annotations

from ...errors import SpecError
from ..registry import register_model
from .layers import _cbr, _input, _keras


@register_model("unet", task="segmentation", default_size=128,
                description="U-Net (skip connections, dropout) for WBC / nucleus masks and smear WBC maps; int8-ready")
def unet(spec, K=None, base=8, depth=4, dropout=0.2):
    """Contracting/expanding paths with skip connections; one sigmoid map per label.

    Nearest-neighbour UpSampling2D + Conv2D instead of transposed convolutions and ReLU + BatchNorm
    (folded into the convs), so the whole graph converts to full-integer TFLite. Input height and
    width must be divisible by 2**depth.
    """
    K = _keras(K)
    for v in (spec.input_height, spec.input_width):
        if v % (2 ** depth):
            raise SpecError(f"unet input size {spec.input_height}x{spec.input_width} must be divisible by {2 ** depth}")
    inp, x = _input(K, spec)
    skips = []
    for d in range(depth):
        f = base * 2 ** d
        x = _cbr(K, x, f, f"enc{d}a")
        x = _cbr(K, x, f, f"enc{d}b")
        skips.append(x)
        x = K.layers.MaxPooling2D(2, name=f"down{d}")(x)
    x = _cbr(K, x, base * 2 ** depth, "mid_a")
    x = K.layers.Dropout(dropout, name="mid_drop")(x)
    x = _cbr(K, x, base * 2 ** depth, "mid_b")
    for d in reversed(range(depth)):
        f = base * 2 ** d
        x = K.layers.UpSampling2D(2, interpolation="nearest", name=f"up{d}")(x)
        x = _cbr(K, x, f, f"up{d}_conv", k=1)
        x = K.layers.Concatenate(name=f"skip{d}")([x, skips[d]])
        x = _cbr(K, x, f, f"dec{d}a")
        x = _cbr(K, x, f, f"dec{d}b")
    out = K.layers.Conv2D(spec.num_classes, 1, activation="sigmoid", name="masks")(x)
    return K.Model(inp, out, name="unet")
