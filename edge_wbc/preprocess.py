"""The one preprocessing path: file -> RGB uint8 array of the spec's input size.

Training, int8 calibration, bench and the on-device runtime all call :func:`preprocess` (or
:func:`preprocess_array` for arrays that are already decoded, such as BloodMNIST). Normalization is
not done here: it is a layer inside the model, so every model takes raw 0-255 RGB pixels.
"""

from __future__ import annotations

import io
import struct
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageError
from .spec import ModelSpec

#: Images with more pixels than this are refused before they are decoded (decompression bombs).
#: 64 MP is far above any microscope camera frame (a 2150 px SigTuple field is 2.6 MP).
MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit / 32-bit single channel: scale the real value range into 8 bits.
        a = np.asarray(img, dtype=np.float64)
        if a.size == 0:
            raise ValueError("empty image")
        hi = 65535.0 if mode.startswith("I;16") else max(float(a.max()), 1.0)
        a = np.clip(a / hi * 255.0, 0, 255).astype(np.uint8)
        return Image.fromarray(a, "L").convert("RGB")
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        # Composite transparency over white (slide background) instead of dropping it to black.
        rgba = img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    return img.convert("RGB")  # L, P, CMYK, YCbCr, 1, ...


def load_image(source: str | Path | bytes) -> Image.Image:
    """Decode an image with Pillow: first frame, EXIF orientation applied, RGB.

    Raises :class:`ImageError` naming the file and the problem for anything that is not a usable
    image. Multi-frame files (animated GIF, multi-page TIFF) use their first frame.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    try:
        if isinstance(source, (bytes, bytearray)):
            fh = io.BytesIO(source)
        else:
            p = Path(source)
            if not p.exists():
                raise ImageError(f"{name}: no such file")
            if p.is_dir():
                raise ImageError(f"{name}: is a directory, not an image")
            if p.stat().st_size == 0:
                raise ImageError(f"{name}: empty file (0 bytes)")
            fh = open(p, "rb")
        with fh:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img = Image.open(fh)
                w, h = img.size
                if w < 1 or h < 1:
                    raise ImageError(f"{name}: image has no pixels ({w}x{h})")
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        f"{name}: {w}x{h} = {w * h:,} pixels exceeds the limit of {MAX_PIXELS:,} "
                        "(edge_wbc.preprocess.MAX_PIXELS); downscale it first"
                    )
                if getattr(img, "n_frames", 1) > 1:
                    img.seek(0)
                img.load()
                img = ImageOps.exif_transpose(img)
                return _to_rgb(img)
    except ImageError:
        raise
    except UnidentifiedImageError:
        raise ImageError(f"{name}: not a recognised image file") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(f"{name}: refused as a decompression bomb ({e})") from None
    except (OSError, ValueError, SyntaxError, EOFError, IndexError, TypeError, KeyError, struct.error) as e:
        msg = str(e) or type(e).__name__
        if "truncated" in msg.lower():
            msg = "truncated or incomplete image data"
        raise ImageError(f"{name}: cannot decode image ({msg})") from None
    except MemoryError:
        raise ImageError(f"{name}: image too large to decode in memory") from None


def _crop(img: Image.Image, crop: str) -> Image.Image:
    if crop == "center_square":
        w, h = img.size
        s = min(w, h)
        left, top = (w - s) // 2, (h - s) // 2
        return img.crop((left, top, left + s, top + s))
    return img


def resize_image(img: Image.Image, spec: ModelSpec) -> np.ndarray:
    img = _crop(img, spec.crop)
    size = (spec.input_width, spec.input_height)
    if img.size != size:
        img = img.resize(size, _RESAMPLE[spec.resample])
    a = np.asarray(img, dtype=np.uint8)
    if spec.channels == 1:
        a = np.asarray(img.convert("L"), dtype=np.uint8)[..., None]
    return a


def preprocess(source: str | Path | bytes | Image.Image, spec: ModelSpec) -> np.ndarray:
    """Image file/bytes/PIL image -> uint8 array (H, W, C) as the spec says."""
    img = source if isinstance(source, Image.Image) else load_image(source)
    if isinstance(source, Image.Image):
        img = _to_rgb(ImageOps.exif_transpose(img))
    return resize_image(img, spec)


def preprocess_array(images: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """uint8 array (N, H, W, C) of decoded RGB images -> (N, spec H, spec W, C), same resampling."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None].repeat(3, axis=-1)
    if images.ndim != 4:
        raise ImageError(f"expected an array of images (N, H, W, C), got shape {images.shape}")
    if images.dtype != np.uint8:
        raise ImageError(f"expected uint8 RGB pixels, got dtype {images.dtype}")
    n, h, w, c = images.shape
    if (h, w) == (spec.input_height, spec.input_width) and spec.crop == "none" and c == spec.channels:
        return images
    out = np.empty((n, spec.input_height, spec.input_width, spec.channels), np.uint8)
    for i in range(n):
        out[i] = resize_image(Image.fromarray(images[i].squeeze() if c == 1 else images[i]).convert("RGB"), spec)
    return out


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS
