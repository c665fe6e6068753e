"""Smear fields at the detector's canonical scale: what the multi-source WBC detector trains and calibrates on.

Every field of :mod:`edge_wbc.data.fields` is resampled to :data:`~edge_wbc.defaults.DETECTOR_UM_PER_PX`
with its *estimated* scale (:func:`edge_wbc.tasks.scale.estimate_scale`; a field without an estimate
takes the median of its source), exactly as ``edge-wbc count`` resamples a field it has never seen,
so the detector learns the sizes that the estimator gives, errors included. The target of each WBC is
a filled ellipse inside its box, shrunk by :data:`~edge_wbc.defaults.DETECTOR_TARGET_SHRINK` so that
touching cells stay apart; the runtime grows the boxes back.

The resampled fields are cached (``<cache>/fields/<source>-<key>.npz``; the key covers the scale
estimator's code and the canonical scale), as the crop cache of the field classifier is.
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from ..data.containers import Dataset, Split
from ..data.fields import PATCH_SOURCES, Field, field_list, parse_fields_dataset
from ..data.roots import cache_dir, data_root
from ..defaults import DETECTOR_DECODE, DETECTOR_OVERLAP, DETECTOR_TARGET_SHRINK, DETECTOR_UM_PER_PX
from ..preprocess import load_image
from ..runtime.nuclei import NucleusRule, detect_nuclei
from . import scale as scale_mod

SPLITS = ("train", "val", "test")


@dataclass
class CanonField:
    image: np.ndarray  # (H, W, 3) uint8 at the canonical scale
    target: np.ndarray  # (H, W) uint8 in {0, 1}: the shrunk WBC ellipses
    boxes: np.ndarray  # (K, 4) float, canonical pixels
    source: str
    split: str
    path: str
    um_per_px: float  # the estimate (or the source median) it was resampled with
    estimated: bool


def target_map(size: tuple[int, int], boxes, shrink: float = DETECTOR_TARGET_SHRINK) -> np.ndarray:
    """(H, W) uint8 map: 1 inside the ellipse inscribed in each box shrunk by ``shrink`` about its centre."""
    w, h = size
    m = Image.new("L", (w, h), 0)
    d = ImageDraw.Draw(m)
    for x0, y0, x1, y1 in boxes:
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, shrink * (x1 - x0) / 2, shrink * (y1 - y0) / 2
        d.ellipse([cx - hw, cy - hh, cx + hw, cy + hh], fill=1)
    return np.asarray(m, np.uint8)


def resample(img: Image.Image, s: float) -> Image.Image:
    W, H = max(1, int(round(img.width * s))), max(1, int(round(img.height * s)))
    if (W, H) == img.size:
        return img
    return img.resize((W, H), Image.Resampling.BILINEAR, reducing_gap=2.0 if s < 1 else None)


def is_field_detector(det) -> bool:
    """A multi-source field detector (trained on fields at one canonical scale; ``metrics.detector``)."""
    return (det.spec.metrics or {}).get("detector") == "fields"


def detect_wbcs(det, img: Image.Image, s: float, small: Image.Image | None = None) -> list[tuple[list[int], float]]:
    """The field detector ``det`` on ``img`` resampled by ``s`` to its scale (``small``, if the caller has
    it already), in overlapping windows (``predict_windows``); the components its decode rule
    (``metrics.decode``, else :data:`~edge_wbc.defaults.DETECTOR_DECODE`) keeps, each box grown back by
    1 / the targets' shrink about its centre, in ``img`` pixels, with the component's mean probability."""
    from ..runtime.components import component_boxes

    small = resample(img, s) if small is None else small
    prob = det.predict_windows(np.asarray(small.convert("RGB")), DETECTOR_OVERLAP)[..., 0]
    metrics = det.spec.metrics or {}
    grow = 1.0 / float(metrics.get("target_shrink", DETECTOR_TARGET_SHRINK))
    rule = DETECTOR_DECODE | metrics.get("decode", {})
    out = []
    for (x0, y0, x1, y1), p, _ in component_boxes(prob > rule["threshold"], rule["min_area_px"], prob):
        if p < rule["min_mean_prob"]:
            continue
        cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, grow * (x1 - x0) / 2, grow * (y1 - y0) / 2
        out.append(([max(0, int(round((cx - hw) / s))), max(0, int(round((cy - hh) / s))),
                     min(img.width, int(round((cx + hw) / s))), min(img.height, int(round((cy + hh) / s)))], p))
    return out


def detect_nuclei_at(img: Image.Image, s: float, rule: NucleusRule = NucleusRule(),
                     small: Image.Image | None = None) -> list[tuple[tuple[float, float, float, float], float]]:
    """The stained-nucleus rule (:func:`edge_wbc.runtime.nuclei.detect_nuclei`) on ``img`` resampled by
    ``s`` to the canonical scale (``small``, if the caller has it already): (box in ``img`` pixels, the
    share of its nucleus component that is stained core) per WBC."""
    small = resample(img, s) if small is None else small
    return [((x0 / s, y0 / s, x1 / s, y1 / s), p)
            for (x0, y0, x1, y1), p in detect_nuclei(np.asarray(small.convert("RGB")), rule)]


def _cache_key(canon_um: float) -> str:
    code = Path(scale_mod.__file__).read_bytes() + Path(__file__).read_bytes()
    return hashlib.sha256(code + repr((canon_um, DETECTOR_TARGET_SHRINK)).encode()).hexdigest()[:12]


def _prepare_source(fields: list[Field], canon_um: float) -> list[CanonField]:
    imgs = [load_image(f.path) for f in fields]
    ests = [scale_mod.estimate_scale(im) for im in imgs]
    ok = [e.um_per_px for e in ests if e.ok]
    median = float(np.median(ok)) if ok else canon_um
    out = []
    for f, im, e in zip(fields, imgs, ests):
        um = e.um_per_px if e.ok else median
        s = um / canon_um
        small = resample(im, s)
        boxes = np.array([[x0 * s, y0 * s, x1 * s, y1 * s] for x0, y0, x1, y1 in f.boxes], np.float32).reshape(-1, 4)
        out.append(CanonField(np.asarray(small, np.uint8), target_map(small.size, boxes), boxes, f.source, f.split,
                              str(f.path), float(um), bool(e.ok)))
    return out


def limit_fields(fields: list[Field], n: int | None, seed: int = 0) -> list[Field]:
    """A seeded ``n`` fields of each (source, split) (smoke runs, tests); all with ``n`` None."""
    if n is None:
        return fields
    rng = np.random.default_rng(seed)
    out = []
    for key in sorted({(f.source, f.split) for f in fields}):
        group = [f for f in fields if (f.source, f.split) == key]
        out += [group[i] for i in sorted(rng.permutation(len(group))[:n])]
    return out


def canonical_fields(sources, data=None, canon_um: float = DETECTOR_UM_PER_PX, log=None, limit: int | None = None,
                     seed: int = 0) -> list[CanonField]:
    """Every field of ``sources`` (a tuple or a ``fields:...`` name), resampled to ``canon_um`` (cached;
    with ``limit``, a seeded ``limit`` fields per source and split, not cached)."""
    if isinstance(sources, str):
        sources = parse_fields_dataset(sources)
    root = data_root(data)
    key = _cache_key(canon_um)
    out: list[CanonField] = []
    for src in sources:
        path = cache_dir() / "fields" / f"{src}-{key}.npz"
        fields = field_list(root, (src,))
        if limit is not None:
            out += _prepare_source(limit_fields(fields, limit, seed), canon_um)
            continue
        got = _load_cache(path, fields) if path.is_file() else None
        if got is None:
            if log:
                log(f"fields: resampling {len(fields)} {src} fields to {canon_um} µm/px (cached in {path.parent})")
            got = _prepare_source(fields, canon_um)
            _save_cache(path, got)
        out += got
    return out


def _save_cache(path: Path, fields: list[CanonField]) -> None:
    from ..fileio import atomic_write_bytes

    buf = io.BytesIO()
    arrays = {}
    for i, f in enumerate(fields):
        arrays[f"i{i}"], arrays[f"t{i}"], arrays[f"b{i}"] = f.image, f.target, f.boxes
    meta = np.array([(f.source, f.split, f.path, f.um_per_px, f.estimated) for f in fields], dtype=object)
    np.savez(buf, meta=meta, **arrays)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _load_cache(path: Path, fields: list[Field]) -> list[CanonField] | None:
    try:
        z = np.load(path, allow_pickle=True)
        meta = z["meta"]
        if [m[2] for m in meta] != [str(f.path) for f in fields]:
            return None
        return [CanonField(z[f"i{i}"], z[f"t{i}"], z[f"b{i}"], m[0], m[1], m[2], float(m[3]), bool(m[4]))
                for i, m in enumerate(meta)]
    except (OSError, KeyError, ValueError):
        return None


def pad_to(a: np.ndarray, h: int, w: int, mode: str = "constant") -> np.ndarray:
    """Pad (H, W[, C]) at the bottom/right to at least (h, w): zeros (black, as outside an eyepiece's
    field of view) or by reflection (patch sources)."""
    ph, pw = max(0, h - a.shape[0]), max(0, w - a.shape[1])
    if not ph and not pw:
        return a
    pad = [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2)
    if mode == "reflect":
        while a.shape[0] < h or a.shape[1] < w:  # reflect needs a side longer than the pad
            ph, pw = min(max(0, h - a.shape[0]), a.shape[0] - 1), min(max(0, w - a.shape[1]), a.shape[1] - 1)
            a = np.pad(a, [(0, ph), (0, pw)] + [(0, 0)] * (a.ndim - 2), mode="reflect")
        return a
    return np.pad(a, pad)


class CropSampler:
    """Random training crops of canonical fields, source-balanced, with scale jitter and image-level
    augmentation (flips, 90° turns, blur, JPEG, noise; colour is jittered in TensorFlow afterwards)."""

    def __init__(self, fields: list[CanonField], crop: int, seed: int = 0, wbc_share: float = 0.6,
                 scale_jitter: float = 1.35, strong: bool = False):
        self.crop, self.wbc_share, self.jitter, self.strong = crop, wbc_share, scale_jitter, strong
        self.rng = np.random.default_rng(seed)
        self.by_source: dict[str, list[CanonField]] = {}
        for f in fields:
            self.by_source.setdefault(f.source, []).append(f)
        self.sources = sorted(self.by_source)
        self.drawn = dict.fromkeys(self.sources, 0)  # crops per source so far

    def one(self) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        src = self.sources[rng.integers(len(self.sources))]
        self.drawn[src] += 1
        f = self.by_source[src]
        f = f[rng.integers(len(f))]
        z = float(np.exp(rng.uniform(-np.log(self.jitter), np.log(self.jitter))))  # crop side / output side
        side = max(8, int(round(self.crop * z)))
        mode = "reflect" if f.source in PATCH_SOURCES else "constant"
        img, tgt = f.image, f.target
        if mode == "reflect" or min(img.shape[:2]) < side:
            img, tgt = pad_to(img, side, side, mode), pad_to(tgt, side, side, mode)
        H, W = img.shape[:2]
        if len(f.boxes) and rng.random() < self.wbc_share:
            b = f.boxes[rng.integers(len(f.boxes))]
            cx = (b[0] + b[2]) / 2 + rng.uniform(-0.4, 0.4) * side
            cy = (b[1] + b[3]) / 2 + rng.uniform(-0.4, 0.4) * side
            x0, y0 = int(np.clip(cx - side / 2, 0, W - side)), int(np.clip(cy - side / 2, 0, H - side))
        else:
            x0, y0 = int(rng.integers(0, W - side + 1)), int(rng.integers(0, H - side + 1))
        ci = Image.fromarray(img[y0:y0 + side, x0:x0 + side])
        ct = Image.fromarray(tgt[y0:y0 + side, x0:x0 + side] * 255)
        if side != self.crop:
            ci = ci.resize((self.crop, self.crop), Image.Resampling.BILINEAR)
            ct = ct.resize((self.crop, self.crop), Image.Resampling.BILINEAR)
        if self.strong and rng.random() < 0.4:  # a coarser camera or optics: down, then back up
            f = float(rng.uniform(1.3, 2.5))
            small = ci.resize((max(4, int(self.crop / f)),) * 2, Image.Resampling.BILINEAR)
            ci = small.resize((self.crop, self.crop), Image.Resampling.BILINEAR)
        if rng.random() < 0.4:
            ci = ci.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.3, 1.5))))
        if rng.random() < 0.4:
            buf = io.BytesIO()
            ci.save(buf, format="JPEG", quality=int(rng.integers(35, 95)))
            ci = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
        x = np.asarray(ci, np.float32)
        if self.strong:  # another stain, lamp or white balance: per-channel gain and gamma
            x = 255.0 * (np.clip(x * rng.uniform(0.8, 1.2, 3), 0, 255) / 255.0) ** float(rng.uniform(0.7, 1.4))
        if rng.random() < 0.4:
            x = np.clip(x + rng.normal(0, rng.uniform(2, 10), x.shape), 0, 255)
        t = (np.asarray(ct, np.float32) >= 128).astype(np.float32)
        k = int(rng.integers(4))
        x, t = np.rot90(x, k), np.rot90(t, k)
        if rng.random() < 0.5:
            x, t = x[:, ::-1], t[:, ::-1]
        return np.ascontiguousarray(x, np.float32), np.ascontiguousarray(t[..., None], np.float32)

    def batch(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        xs, ts = zip(*(self.one() for _ in range(n)))
        return np.stack(xs), np.stack(ts)


def windows_of(f: CanonField, h: int, w: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The field cut into (h, w) windows (zero padding; patch sources reflected), no overlap."""
    mode = "reflect" if f.source in PATCH_SOURCES else "constant"
    H, W = f.image.shape[:2]
    img = pad_to(f.image, int(np.ceil(H / h)) * h, int(np.ceil(W / w)) * w, mode)
    tgt = pad_to(f.target, img.shape[0], img.shape[1], mode)
    return [(img[y:y + h, x:x + w], tgt[y:y + h, x:x + w])
            for y in range(0, max(H, 1), h) for x in range(0, max(W, 1), w)]


def load_for_spec(name: str, spec, data=None, seed: int = 0) -> Dataset:
    """A ``fields:...`` dataset as windows of the detector's input size, per split (for the converters:
    calibration on train, agreement on val). Labels: the shrunk WBC ellipses, one channel."""
    fields = canonical_fields(name, data)
    splits = {}
    for s in SPLITS:
        xs, ys, paths = [], [], []
        for f in (f for f in fields if f.split == s):
            for x, t in windows_of(f, spec.input_height, spec.input_width):
                xs.append(x)
                ys.append(t[..., None].astype(np.float32))
                paths.append(f.path)
        shape = (0, spec.input_height, spec.input_width)
        splits[s] = Split(np.stack(xs) if xs else np.zeros((*shape, 3), np.uint8),
                          np.stack(ys) if ys else np.zeros((*shape, 1), np.float32), paths)
    return Dataset(name, ("wbc",), splits, source=str(data_root(data)))
