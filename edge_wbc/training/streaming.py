"""Training input from a pack (:mod:`edge_wbc.data.pack`) through ``tf.data``, in bounded memory.

Train: this worker's shards (files ``rank::workers`` of each source: sharding by file, done
explicitly so that each source of a multi-source pack is split across the workers) -> a seeded
shuffle of the file order -> ``interleave`` of the TFRecord readers -> a shuffle buffer of
``hp.shuffle_buffer`` encoded records -> parse and PNG-decode -> repeat -> batch (the global batch)
-> augmentation -> prefetch. A pack of several sources draws each source with equal probability
(``sample_from_datasets``), the source-balanced sampling of the field trainer. Val and test are read
in order. Memory is the shuffle buffer plus a few batches, whatever the size of the pack.

Every shard is checked against its sha256 before training; a record that fails to read or decode
stops training with a :class:`~edge_wbc.errors.DataError` naming the shard (:func:`find_bad_shard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.pack import read_manifest, verify_pack
from ..errors import DataError


@dataclass
class Pack:
    path: Path
    manifest: dict

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.manifest["labels"])

    @property
    def size(self) -> int:
        return int(self.manifest["size"])

    def n(self, split: str) -> int:
        return int(self.manifest["splits"].get(split, {}).get("n", 0))

    def counts(self, split: str) -> np.ndarray:
        c = self.manifest["splits"].get(split, {}).get("counts", {})
        return np.array([c.get(lab, 0) for lab in self.labels], dtype=float)

    def files(self, split: str, source: str | None = None) -> list[str]:
        return sorted(str(self.path / s["file"]) for s in self.manifest["shards"]
                      if s["split"] == split and (source is None or s["source"] == source))

    @property
    def sources(self) -> list[str]:
        return list(self.manifest["sources"])


def open_pack(path, verify: bool = True) -> Pack:
    pack = Pack(Path(path), read_manifest(path))
    if verify:
        verify_pack(pack.path, pack.manifest)
    return pack


def _parse(tf, size: int, channels: int):
    features = {"image": tf.io.FixedLenFeature([], tf.string), "label": tf.io.FixedLenFeature([], tf.int64)}

    def parse(record):
        ex = tf.io.parse_single_example(record, features)
        img = tf.io.decode_png(ex["image"], channels=channels)
        img = tf.ensure_shape(img, [size, size, channels])
        return img, ex["label"]

    return parse


def train_records(tf, pack: Pack, hp, rank: int, workers: int):
    """This worker's infinite stream of serialized train records, shuffled, the sources drawn equally."""
    streams = []
    for source in pack.sources:
        files = pack.files("train", source)
        mine = files[rank::workers]
        if len(files) < workers:  # some worker would get no file
            raise DataError(f"{pack.path}: source {source!r} has {len(files)} train shard(s) for {workers} workers; "
                            f"re-pack with --shards >= {workers}")
        ds = tf.data.Dataset.from_tensor_slices(mine).shuffle(len(mine), seed=hp.seed, reshuffle_each_iteration=True)
        ds = ds.repeat().interleave(tf.data.TFRecordDataset, cycle_length=min(4, len(mine)), block_length=1,
                                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        streams.append(ds.shuffle(hp.shuffle_buffer, seed=hp.seed, reshuffle_each_iteration=True))
    return streams[0] if len(streams) == 1 else tf.data.Dataset.sample_from_datasets(
        streams, weights=[1.0 / len(streams)] * len(streams), seed=hp.seed)


def train_dataset(tf, pack: Pack, hp, rank: int, workers: int, num_classes: int, augment_fn=None):
    """The infinite, batched train stream of this worker (use ``steps_per_epoch``)."""
    ds = train_records(tf, pack, hp, rank, workers)
    ds = ds.map(_parse(tf, pack.size, 3), num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    ds = ds.map(_target(tf, num_classes))
    ds = ds.batch(hp.batch).map(lambda x, y: (tf.cast(x, tf.float32), y))
    if augment_fn is not None:
        ds = ds.map(augment_fn)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF  # sharded above
    return ds.prefetch(tf.data.AUTOTUNE).with_options(options)


def _target(tf, num_classes: int):
    if num_classes == 1:  # binary: one sigmoid unit
        return lambda x, y: (x, tf.cast(y, tf.float32))
    return lambda x, y: (x, tf.one_hot(y, num_classes))


def eval_dataset(tf, pack: Pack, split: str, num_classes: int | None = None, batch: int = 256):
    """``split`` in order, batched; with ``num_classes`` the labels are model targets, else the int labels."""
    ds = tf.data.TFRecordDataset(pack.files(split)).map(_parse(tf, pack.size, 3), num_parallel_calls=tf.data.AUTOTUNE)
    if num_classes is not None:
        ds = ds.map(_target(tf, num_classes))
    ds = ds.batch(batch).map(lambda x, y: (tf.cast(x, tf.float32), y))
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.prefetch(2).with_options(options)


def predict_split(tf, model, pack: Pack, split: str, spec) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, labels) of ``split``, streamed batch by batch."""
    from ..runtime.probs import class_probs

    probs, labels = [], []
    for x, y in eval_dataset(tf, pack, split).as_numpy_iterator():
        probs.append(class_probs(model.predict_on_batch(x), spec.num_classes))
        labels.append(y)
    if not probs:
        return np.zeros((0, spec.num_classes), np.float32), np.zeros((0,), np.int64)
    return np.concatenate(probs), np.concatenate(labels).astype(np.int64)


def find_bad_shard(tf, pack: Pack) -> tuple[str, str] | None:
    """The first shard with a record that fails to read, parse or decode: (file, error), or None."""
    parse = _parse(tf, pack.size, 3)
    for f in sorted(pack.files("train") + pack.files("val") + pack.files("test")):
        try:
            for _ in tf.data.TFRecordDataset(f).map(parse):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as e:
            return f, str(e.message).splitlines()[0][:200]
    return None
