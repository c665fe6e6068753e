"""The one preprocessing path: file -> RGB uint8 array of the spec's input size.

Training, int8 calibration, bench and the on-device runtime all call :func:`preprocess` (or
:func:`preprocess_array` for arrays that are already decoded, such as BloodMNIST). Normalization is
not done here: it is a layer inside the model, so every model takes raw 0-255 RGB pixels.
"""

from __future__ import annotations

import io
import os
import warnings
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .errors import ImageError
from .spec import ModelSpec

#: Images with more pixels than this are refused before they are decoded (decompression bombs).
#: 64 MP is far above any microscope camera frame (a 2150 px SigTuple field is 2.6 MP).
MAX_PIXELS = 64_000_000
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".gif", ".webp")
#: Formats that are decoded, recognised by content whatever the extension says. Everything else
#: Pillow knows (EPS, PDF, PSD, ICO, ...) is refused, so no external program (Ghostscript) and no
#: exotic decoder ever runs on a user's file.
#: (JPEG covers MPO, which Pillow opens through its JPEG opener; WEBP needs Pillow built with libwebp.)
FORMATS = ("JPEG", "PNG", "BMP", "DIB", "TIFF", "GIF", "WEBP")

_RESAMPLE = {
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
#: EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose does).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")


@cache
def _open_formats() -> tuple[str, ...]:
    Image.init()
    return tuple(f for f in FORMATS if f in Image.OPEN)


def _first_line(e: BaseException) -> str:
    s = str(e).strip()
    return s.splitlines()[0].strip() if s else type(e).__name__


def display_name(source: object) -> str:
    """A path as printable text: bytes that are not UTF-8 are shown as ``\\xNN`` escapes."""
    if isinstance(source, (str, os.PathLike)):
        try:
            return os.fsencode(source).decode("utf-8", "backslashreplace")
        except UnicodeError:  # a str with lone surrogates that do not come from file-system bytes
            return os.fspath(source).encode("utf-8", "backslashreplace").decode("utf-8")
    return str(source)


def _scale_to_8bit(a: np.ndarray) -> np.ndarray:
    """Single-channel integer/float pixels -> uint8, by the value range they use.

    Values up to 1.0 (float images only) are read as 0-1, up to 255 as 8-bit, up to 65535 as 16-bit;
    anything larger is scaled by its maximum. Negative, NaN and infinite values become 0.
    """
    is_float = a.dtype.kind == "f"
    a = np.nan_to_num(a.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)
    hi = float(a.max()) if a.size else 0.0
    if is_float and 0 < hi <= 1.0:
        top = 1.0
    elif hi <= 255:
        top = 255.0
    elif hi <= 65535:
        top = 65535.0
    else:
        top = hi
    return np.clip(a / top * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(img: Image.Image) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode.startswith("I;16"):
        # 16-bit single channel: the full 16-bit range maps onto 8 bits.
        a = np.asarray(img).astype(np.float64)
        return Image.fromarray(np.clip(a / 65535.0 * 255.0 + 0.5, 0, 255).astype(np.uint8), "L").convert("RGB")
    if mode in ("I", "F"):
        a = np.asarray(img)
        if mode == "F":
            a = a.astype(np.float32)
        return Image.fromarray(_scale_to_8bit(a), "L").convert("RGB")
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        # Composite transparency over white (slide background) instead of dropping it to black.
        rgba = img.convert("LA").convert("RGBA") if mode == "La" else img.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(bg, rgba).convert("RGB")
    try:
        return img.convert("RGB")  # L, P, 1, CMYK, YCbCr, LAB, HSV, RGBX ...
    except ValueError:
        raise ImageError(f"unsupported pixel mode {mode!r}") from None


def _orient(img: Image.Image) -> Image.Image:
    """Apply the EXIF orientation tag. Unlike ImageOps.exif_transpose this never rewrites the EXIF
    block (which fails on some corrupt blocks whose orientation tag is fine)."""
    try:
        o = img.getexif().get(0x0112)
    except Exception as e:  # noqa: BLE001 - Pillow raises many types on corrupt EXIF
        raise ImageError(
            f"corrupt EXIF metadata ({_first_line(e)}); remove the EXIF block (e.g. exiftool -all=)"
        ) from None
    method = _ORIENTATION.get(o) if isinstance(o, int) else None
    return img.transpose(method) if method is not None else img


def _describe(name: str, e: BaseException) -> ImageError:
    """Any exception from decoding -> one-line ImageError naming the file."""
    if isinstance(e, ImageError):
        return ImageError(f"{name}: {e}")
    if isinstance(e, UnidentifiedImageError):
        return ImageError(
            f"{name}: not a recognised image file (supported: {', '.join(f for f in _open_formats() if f != 'DIB')})"
        )
    if isinstance(e, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        return ImageError(
            f"{name}: refused as a decompression bomb, more than {MAX_PIXELS:,} pixels ({_first_line(e)})"
        )
    if isinstance(e, MemoryError):
        return ImageError(f"{name}: image too large to decode in memory")
    msg = _first_line(e)
    if "truncated" in msg.lower():
        msg = "truncated or incomplete image data"
    elif not isinstance(e, (OSError, ValueError, SyntaxError, EOFError)):
        msg = f"{type(e).__name__}: {msg}"
    return ImageError(f"{name}: cannot decode image ({msg})")


def load_image(source: str | Path | bytes) -> Image.Image:
    """Decode an image with Pillow: first frame, EXIF orientation applied, RGB.

    Raises :class:`ImageError` naming the file and the problem for anything that is not a usable
    image: no other exception type escapes (decoder errors, MemoryError and Pillow's internal
    errors on malformed files are all turned into ImageError). Multi-frame files (animated GIF/WebP,
    multi-page TIFF) use their first frame. Only :data:`FORMATS` are decoded; images over
    :data:`MAX_PIXELS` are refused before their pixels are decoded.
    """
    name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else display_name(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if len(source) == 0:
            raise ImageError(f"{name}: empty (0 bytes)")
        fh = io.BytesIO(source)
    else:
        p = Path(source)
        try:
            if not p.exists():
                if p.is_symlink():
                    raise ImageError(f"{name}: broken symbolic link (its target does not exist or loops)")
                raise ImageError(f"{name}: no such file")
            if p.is_dir():
                raise ImageError(f"{name}: is a directory, not an image")
            if not p.is_file():
                raise ImageError(f"{name}: not a regular file")
            if p.stat().st_size == 0:
                raise ImageError(f"{name}: empty file (0 bytes)")
            fh = open(p, "rb")
        except ImageError:
            raise
        except OSError as e:
            raise ImageError(f"{name}: cannot read file ({e.strerror or _first_line(e)})") from None
    try:
        with fh, warnings.catch_warnings():
            # Pillow warns (on stderr) about many recoverable oddities; the result is what counts.
            warnings.simplefilter("ignore")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fh, formats=_open_formats())
            w, h = img.size
            if w < 1 or h < 1:
                raise ImageError(f"image has no pixels ({w}x{h})")
            if w * h > MAX_PIXELS:
                raise ImageError(
                    f"{w}x{h} = {w * h:,} pixels exceeds the limit of {MAX_PIXELS:,} "
                    "(edge_wbc.preprocess.MAX_PIXELS); downscale it first"
                )
            img.load()  # the first frame: Image.open leaves multi-frame files there
            return _to_rgb(_orient(img))
    except Exception as e:  # noqa: BLE001 - every decoder failure (MemoryError too) becomes one ImageError
        raise _describe(name, e) from None


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
    """Image file/bytes/PIL image -> uint8 array (H, W, C) as the spec says. Raises only ImageError."""
    if isinstance(source, Image.Image):
        name = "<image>"
        if source.width < 1 or source.height < 1:
            raise ImageError(f"{name}: image has no pixels ({source.width}x{source.height})")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                img = _to_rgb(_orient(source))
        except Exception as e:  # noqa: BLE001
            raise _describe(name, e) from None
    else:
        name = "<bytes>" if isinstance(source, (bytes, bytearray, memoryview)) else display_name(source)
        img = load_image(source)
    try:
        return resize_image(img, spec)
    except Exception as e:  # noqa: BLE001 - e.g. MemoryError on a huge image
        raise _describe(name, e) from None


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
