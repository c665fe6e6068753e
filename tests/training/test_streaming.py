"""Packs: TFRecord shards with a manifest, streamed training, balanced sources, corrupt shards named."""

import json
import shutil

import numpy as np
import pytest

from edge_wbc.data.pack import read_manifest, sha256_file, verify_pack, write_pack
from edge_wbc.errors import DataError


def _tree(root, data_root, per_class):
    """A class-per-folder tree of real PBC train images (two classes), copied into tmp."""
    for cls, n in per_class.items():
        (root / cls).mkdir(parents=True)
        for f in sorted((data_root / "pbc128" / "train" / cls).glob("*.jpg"))[:n]:
            shutil.copy(f, root / cls / f.name)
    return root


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory, data_root):
    base = tmp_path_factory.mktemp("src")
    big = _tree(base / "labA", data_root, {"basophil": 30, "eosinophil": 30})
    small = _tree(base / "labB", data_root, {"basophil": 5, "eosinophil": 5})
    out = base / "pack"
    m = write_pack([str(big), str(small)], out, size=28, shards=2, repeat=2, seed=0, log=lambda s: None)
    return out, m


def test_pack_writes_shards_and_a_manifest_with_counts_and_sha256(two_sources):
    out, m = two_sources
    assert m == read_manifest(out) and m["sources"] == ["labA", "labB"] and m["labels"] == ["basophil", "eosinophil"]
    # labA: 60 images split 42/6/12 (stratified 0.7/0.1/0.2), train written twice; labB: 10 -> 6/2/2
    tr = m["splits"]["train"]
    assert tr["by_source"] == {"labA": 84, "labB": 12} and tr["n"] == 96
    assert tr["counts"] == {"basophil": 48, "eosinophil": 48}
    assert m["splits"]["val"]["n"] == 6 + 2 and m["splits"]["test"]["n"] == 12 + 2  # never repeated
    assert "1 randomly flipped, turned and shifted" in m["repeat_note"]
    files = sorted(p.name for p in out.glob("*.tfrecord"))
    assert files == sorted(s["file"] for s in m["shards"]) and len(files) == 2 * 3 * 2
    assert "labA-train-00000-of-00002.tfrecord" in files
    for s in m["shards"]:
        assert sha256_file(out / s["file"]) == s["sha256"]
    assert sum(s["n"] for s in m["shards"] if s["split"] == "train") == 96
    with pytest.raises(DataError, match="already holds a pack"):
        write_pack([str(out.parent / "labA")], out, size=28, log=lambda s: None)


def test_sources_are_drawn_equally_and_files_shard_across_workers(two_sources):
    import tensorflow as tf

    from edge_wbc.training.streaming import open_pack, train_records
    from edge_wbc.training.train import HParams

    pack = open_pack(two_sources[0])
    hp = HParams(model="tiny", dataset=str(pack.path), shuffle_buffer=64)
    feats = {"source": tf.io.FixedLenFeature([], tf.string)}
    srcs = [tf.io.parse_single_example(r, feats)["source"].numpy().decode()
            for r in train_records(tf, pack, hp, 0, 1).take(600)]
    share_b = srcs.count("labB") / len(srcs)
    assert 0.4 < share_b < 0.6  # 12 of 96 train images, but half of the draws (source-balanced)
    with pytest.raises(DataError, match=r"source .labA. has 2 train shard\(s\) for 3 workers; re-pack with --shards >= 3"):  # noqa: E501
        train_records(tf, pack, hp, 0, 3)


def test_training_streams_a_pack_and_stops_on_a_corrupt_shard(tmp_path, two_sources):
    from edge_wbc.training.train import HParams, train

    src = tmp_path / "pack"
    shutil.copytree(two_sources[0], src)
    m = train(HParams(model="tiny", dataset=str(src), epochs=1, batch=16), tmp_path / "ok", verbose=0,
              log=lambda s: None)
    assert m["distributed"]["input"] == "pack (tf.data stream)" and m["n"] == 14
    assert m["distributed"]["steps_per_epoch"] == 6  # 96 / 16

    shard = src / "labA-train-00001-of-00002.tfrecord"
    raw = bytearray(shard.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    shard.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"labA-train-00001-of-00002.tfrecord: sha256 mismatch"):
        verify_pack(src)
    # a bad record that the manifest vouches for (a writer bug): still named, never trained on
    manifest = json.loads((src / "manifest.json").read_text())
    for s in manifest["shards"]:
        if s["file"] == shard.name:
            s["sha256"] = sha256_file(shard)
    (src / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"labA-train-00001-of-00002.tfrecord: bad record"):
        train(HParams(model="tiny", dataset=str(src), epochs=1, batch=16), tmp_path / "bad", verbose=0,
              log=lambda s: None)
    assert not (tmp_path / "bad" / "metrics.json").exists()


def test_pack_augmented_copies_differ_but_keep_the_pixels(two_sources):
    from edge_wbc.data.pack import _augment

    img = np.arange(28 * 28 * 3, dtype=np.uint8).reshape(28, 28, 3)
    outs = [_augment(img, np.random.default_rng(i)) for i in range(4)]
    assert all(o.shape == img.shape and o.dtype == np.uint8 for o in outs)
    assert len({o.tobytes() for o in outs}) == 4
