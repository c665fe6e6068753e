"""Packs: a dataset written as TFRecord shards plus a manifest, for streaming training (``edge-wbc data pack``).

``DIR/manifest.json`` lists the labels, the image size, the sources, per split the image count and
the count of each class (and of each source), and each shard with its split, source, record count
and sha256. A shard is ``<source>-<split>-<i>-of-<K>.tfrecord``; each record is a ``tf.train.Example``
with ``image`` (PNG, lossless), ``label`` (int64), ``source``, ``split`` and ``id``. Images go into
the K shards of their split round-robin after a seeded shuffle, so every shard holds every class.

``repeat=R`` writes the train split R times: the original and R - 1 copies with a random flip,
quarter turn and shift of up to 10 % (drawn at pack time, seeded). It makes large packs out of the
real data (the RSS check of docs/training-distributed.md); val and test are never repeated.

The pack is written with TensorFlow's TFRecord writer (the ``train`` extra); shards are written
under temp names and renamed, and the manifest is written last, atomically: a pack without a
manifest is an incomplete one.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..fileio import atomic_write_text
from .containers import SPLITS

MANIFEST = "manifest.json"
FORMAT = "edge-wbc-pack/1"


def is_pack(path) -> bool:
    return isinstance(path, (str, os.PathLike)) and (Path(path) / MANIFEST).is_file()


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def read_manifest(path) -> dict:
    p = Path(path) / MANIFEST
    try:
        m = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise DataError(f"{p}: not a readable pack manifest ({e})") from None
    if not isinstance(m, dict) or m.get("format") != FORMAT:
        raise DataError(f"{p}: not an edge-wbc pack manifest (format {m.get('format') if isinstance(m, dict) else m!r}"
                        f", expected {FORMAT})")
    return m


def verify_pack(path, manifest: dict | None = None, split: str | None = None) -> None:
    """Check every shard (of ``split``) against its sha256 in the manifest; a mismatch names the shard."""
    path = Path(path)
    manifest = manifest or read_manifest(path)
    for sh in manifest["shards"]:
        if split and sh["split"] != split:
            continue
        f = path / sh["file"]
        if not f.is_file():
            raise DataError(f"{f}: shard listed in the manifest is missing")
        got = sha256_file(f)
        if got != sh["sha256"]:
            raise DataError(f"{f}: sha256 mismatch (manifest {sh['sha256'][:12]}..., file {got[:12]}...): the "
                            "shard is corrupt or was changed; re-pack it, never train on it")


def _augment(img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random flip, quarter turn and shift of up to 10 % (reflect-padded), as the trainer's augmentation."""
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if rng.random() < 0.5:
        img = img[::-1]
    if img.shape[0] == img.shape[1]:
        img = np.rot90(img, int(rng.integers(0, 4)))
    h, w = img.shape[:2]
    pad = max(2, h // 10)
    big = np.pad(img, ((pad, pad), (pad, pad), (0, 0)), mode="reflect")
    y, x = rng.integers(0, 2 * pad + 1, 2)
    return np.ascontiguousarray(big[y:y + h, x:x + w])


def _png(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img.squeeze(-1) if img.shape[-1] == 1 else img).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def _example(tf, png: bytes, label: int, source: str, split: str, ident: str) -> bytes:
    def b(v: bytes):
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))

    feat = {"image": b(png), "label": tf.train.Feature(int64_list=tf.train.Int64List(value=[int(label)])),
            "source": b(source.encode()), "split": b(split.encode()), "id": b(ident.encode())}
    return tf.train.Example(features=tf.train.Features(feature=feat)).SerializeToString()


def write_pack(datasets: list[str], out, size: int | None = None, shards: int = 8, repeat: int = 1,
               seed: int = 0, data=None, log=print) -> dict:
    """Pack ``datasets`` (catalog names or folders; several sources must share their labels) into ``out``.

    Returns the manifest. Each dataset is loaded through :func:`~edge_wbc.data.load_dataset` (its
    seeded split, as training would see it), one at a time, and streamed into the shards.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    from ..spec import ModelSpec
    from .catalog import default_size
    from .loaders import load_dataset

    if shards < 1 or repeat < 1:
        raise DataError(f"--shards and --repeat must be >= 1, got {shards} and {repeat}")
    if not datasets:
        raise DataError("data pack needs at least one dataset")
    names = [Path(d).name if Path(d).expanduser().is_dir() else d for d in datasets]
    if len(set(names)) != len(names):
        raise DataError(f"data pack: source names {names} repeat; every source is packed once")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        raise DataError(f"{out}: already holds a pack (manifest.json); choose another --out or delete it")
    size = size or default_size(datasets[0], "classification", 28)[0]
    spec = ModelSpec("classification", size, size, ("a", "b"))
    labels, entries = None, []
    splits = {s: {"n": 0, "counts": {}, "by_source": {}} for s in SPLITS}
    rng = np.random.default_rng(seed)
    for name, source in zip(datasets, names):
        ds = load_dataset(name, spec, data=data, seed=seed)
        if labels is None:
            labels = ds.labels
        elif tuple(ds.labels) != tuple(labels):
            raise DataError(f"data pack: {name} has labels {list(ds.labels)}, the first source has {list(labels)}; "
                            "the sources of one pack must share their labels")
        for split in SPLITS:
            sp = ds.splits.get(split)
            if sp is None or len(sp) == 0:
                continue
            copies = repeat if split == "train" else 1
            order = rng.permutation(len(sp))
            k = min(shards, len(sp) * copies)
            files = [f"{source}-{split}-{i:05d}-of-{k:05d}.tfrecord" for i in range(k)]
            tmps = [out / f".{f}.tmp" for f in files]
            counts = [0] * k
            writers = [tf.io.TFRecordWriter(str(t)) for t in tmps]
            try:
                j = 0
                for c in range(copies):
                    for i in order:
                        img = sp.images[i] if c == 0 else _augment(sp.images[i], rng)
                        ident = sp.ids[i] if c == 0 else f"{sp.ids[i]}#aug{c}"
                        writers[j % k].write(_example(tf, _png(img), int(sp.labels[i]), source, split, ident))
                        counts[j % k] += 1
                        j += 1
            finally:
                for w in writers:
                    w.close()
            for f, t, n in zip(files, tmps, counts):
                os.replace(t, out / f)
                entries.append({"file": f, "split": split, "source": source, "n": n,
                                "sha256": sha256_file(out / f), "bytes": (out / f).stat().st_size})
            s = splits[split]
            s["n"] += len(sp) * copies
            for ci, lab in enumerate(labels):
                s["counts"][lab] = s["counts"].get(lab, 0) + int((sp.labels == ci).sum()) * copies
            s["by_source"][source] = len(sp) * copies
            log(f"{source} {split}: {len(sp) * copies} images"
                + (f" ({len(sp)} x {copies}, {copies - 1} augmented copies)" if copies > 1 else "")
                + f" in {k} shards")
    manifest = {
        "format": FORMAT, "labels": list(labels), "size": size, "channels": 3, "encoding": "png",
        "sources": names, "datasets": list(datasets), "split_seed": seed, "repeat": repeat,
        "repeat_note": (f"train written {repeat} times: the real images and {repeat - 1} randomly flipped, "
                        "turned and shifted copies of each (drawn at pack time)") if repeat > 1 else "",
        "splits": {s: v for s, v in splits.items() if v["n"]}, "shards": entries,
    }
    atomic_write_text(out / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    return manifest
