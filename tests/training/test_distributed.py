"""Scale-out training: TF_CONFIG checks, ports, an unreachable chief, two local workers, SIGKILL and --resume."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from edge_wbc.training.distributed import ClusterError, check_port_free, free_ports, local_tf_config, parse_tf_config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cli(*args, env=None, **kw):
    e = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.Popen([sys.executable, "-m", "edge_wbc", *args], env=e, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **kw)


@pytest.mark.parametrize("text, message", [
    (None, "--strategy multiworker needs TF_CONFIG"),
    ("{cluster: 1}", "TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": ["a:1"]}}', 'TF_CONFIG needs {"cluster"'),
    ('{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}',
     "job 'ps' is not supported: valid jobs are chief, worker"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"task index 2 is outside cluster.worker \(valid: 0..1\)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "chief", "index": 0}}',
     "task type 'chief' is not a job of the cluster: valid types are worker"),
    ('{"cluster": {"worker": ["a:1", "b"]}, "task": {"type": "worker", "index": 0}}',
     r"cluster.worker\[1\] address 'b' is not HOST:PORT"),
    ('{"cluster": {"worker": ["a:1", "a:99999"]}, "task": {"type": "worker", "index": 0}}',
     "'a:99999' is not HOST:PORT with a port of 1-65535"),
    ('{"cluster": {"worker": ["a:1", "a:1"]}, "task": {"type": "worker", "index": 0}}',
     "address a:1 is listed twice"),
])
def test_malformed_tf_config_is_one_clear_error(text, message):
    with pytest.raises(ClusterError, match=message):
        parse_tf_config(text)


def test_tf_config_roles_and_port_in_use():
    c = parse_tf_config('{"cluster": {"chief": ["h0:5000"], "worker": ["h1:5001", "h2:5002"]}, '
                        '"task": {"type": "worker", "index": 1}}')
    assert (c.num_workers, c.rank, c.chief, c.own, c.is_chief, c.name) == (3, 2, "h0:5000", "h2:5002", False,
                                                                          "worker 1")
    assert parse_tf_config(local_tf_config([7001, 7002], 0)).is_chief
    busy = socket.socket()
    busy.bind(("", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        cluster = parse_tf_config(local_tf_config([free_ports(1)[0], port], 1))
        with pytest.raises(ClusterError, match=rf"worker 1 \(127.0.0.1:{port}\): port {port} is in use"):
            check_port_free(cluster)
    finally:
        busy.close()
    check_port_free(cluster)  # free again


def test_worker_that_cannot_reach_the_chief_fails_within_the_timeout():
    chief, me = free_ports(2)  # nothing listens on the chief's port
    t0 = time.time()
    p = cli("train", "tiny", "--limit", "64", "--epochs", "1", "--strategy", "multiworker", "--connect-timeout", "4",
            "-o", "/nonexistent/never-written", env={"TF_CONFIG": local_tf_config([chief, me], 1)})
    try:
        _, err = p.communicate(timeout=90)
    finally:
        p.kill()
    assert p.returncode == 2
    assert (f"error: worker 1 (127.0.0.1:{me}): cannot reach the chief at 127.0.0.1:{chief} within 4 s"
            in err.replace("\n", " "))
    assert time.time() - t0 < 60


def test_two_local_workers_train_and_only_the_chief_writes(tmp_path, data_root):
    from edge_wbc.training.distributed import run_local_workers
    from edge_wbc.training.train import HParams

    t0 = time.time()
    lines = []
    m = run_local_workers(HParams(model="tiny", limit=128, epochs=1, batch=32, seed=3), tmp_path, 2,
                          data=data_root, log=lines.append)
    assert time.time() - t0 < 120
    assert (m["strategy"], m["workers"]) == ("multiworker", 2)
    d = m["distributed"]
    assert (d["replicas"], d["global_batch"], d["per_replica_batch"], d["local_workers"]) == (2, 32, 16.0, 2)
    assert d["sync_batchnorm_layers"] == 1  # tiny's one BatchNormalization sees the global batch
    assert m["epochs_run"] == 1 and m["n"] == 128
    assert any(ln.startswith("strategy: multiworker, 2 worker(s)") for ln in lines)
    names = {p.name for p in tmp_path.iterdir()}
    assert {"model.keras", "model.json", "metrics.json", "history.csv"} <= names and ".backup" not in names
    assert sorted(p.name for p in (tmp_path / ".workers").iterdir()) == ["worker-0.log", "worker-1.log"]


def test_sigkill_mid_run_then_resume(tmp_path, data_root):
    """A real SIGKILL after the first epoch's checkpoint; --resume continues it and finishes all epochs."""
    from edge_wbc.training.checkpoint import CheckpointError
    from edge_wbc.training.train import HParams, train

    out = tmp_path / "run"
    args = ["train", "tiny", "--dataset", "bloodmnist", "--limit", "512", "--epochs", "3", "--batch", "32",
            "--seed", "2", "--data", str(data_root), "-o", str(out)]
    p = cli(*args)
    state = out / ".backup" / "state.json"
    deadline = time.time() + 400  # generous: a loaded 2-core machine
    while not state.is_file() and p.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, p.communicate()[1][-2000:]
    assert state.is_file(), "no checkpoint within the deadline"
    p.send_signal(signal.SIGKILL)
    p.wait()
    assert p.returncode == -signal.SIGKILL
    done = json.loads(state.read_text())["epoch"]
    assert 1 <= done < 3 and not (out / "metrics.json").exists()

    hp = dict(model="tiny", dataset="bloodmnist", limit=512, epochs=3, batch=32, seed=2)
    quiet = dict(data=data_root, verbose=0, log=lambda s: None)
    with pytest.raises(CheckpointError, match="an interrupted run left its checkpoint here; pass --resume"):
        train(HParams(**hp), out, **quiet)
    with pytest.raises(CheckpointError, match=r"from another run: batch 32 in the checkpoint vs 16 now; "
                                              r"model 'tiny' in the checkpoint vs 'cnn2' now"):
        train(HParams(**(hp | {"batch": 16, "model": "cnn2"}), resume=True), out, **quiet)

    m = train(HParams(**hp, resume=True), out, **quiet)
    assert m["distributed"]["resumed_after_epoch"] == done and m["epochs_run"] == 3
    assert len(m["distributed"]["epoch_seconds"]) == 3 and not (out / ".backup").exists()
    ref = train(HParams(**hp), tmp_path / "ref", **quiet)
    losses, ref_losses = json_history(out), json_history(tmp_path / "ref")
    # the weights were restored: the first epoch after the restart continues the curve, it does not restart it
    assert losses[done] < losses[0] and abs(losses[done] - ref_losses[done]) < 0.1
    assert abs(m["val_accuracy"] - ref["val_accuracy"]) <= 0.1


def json_history(d):
    import csv

    with open(d / "history.csv") as fh:
        return [float(r["loss"]) for r in csv.DictReader(fh)]


def test_mixed_precision_model_is_saved_as_float32():
    """On a GPU --mixed-precision trains under mixed_float16; what is saved (and converted) is float32."""
    import keras
    import numpy as np

    from edge_wbc.spec import ModelSpec
    from edge_wbc.training import build_model
    from edge_wbc.training.train import HParams, float32_copy

    spec = ModelSpec("classification", 28, 28, tuple("abcd"), source_model="tiny")
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = build_model("tiny", spec)
        assert mixed.get_layer("pw").compute_dtype == "float16"
        clean = float32_copy(mixed, HParams(model="tiny"), spec, keras)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert {layer.compute_dtype for layer in clean.layers if layer.weights} == {"float32"}
    x = np.random.default_rng(0).integers(0, 256, (4, 28, 28, 3)).astype("float32")
    np.testing.assert_allclose(clean.predict(x, verbose=0), mixed.predict(x, verbose=0), atol=2e-2)
    assert float32_copy(clean, HParams(model="tiny"), spec, keras) is clean


SYNC_BN = r"""
import json, sys
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from edge_wbc.training.distributed import sync_batchnorm
x = np.random.default_rng(0).normal(2.0, 3.0, (8, 4, 4, 3)).astype("float32")
x[:4] += 5.0  # the two halves have different statistics
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}
for sync in (False, True):
    with strategy.scope():
        inner = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.BatchNormalization(momentum=0.0)])
        model = keras.Sequential([keras.Input((4, 4, 3)), inner])  # nested, as in a field model
        n = sync_batchnorm(model, 2 if sync else 1)
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8))
    y = strategy.run(lambda b: model(b, training=True), args=(next(iter(ds)),))
    y = np.concatenate([t.numpy() for t in strategy.experimental_local_results(y)])
    ref = keras.layers.BatchNormalization()(x, training=True).numpy()  # one device, the whole batch
    out[str(sync)] = {"n": n, "err": float(np.abs(y - ref).max())}
print(json.dumps(out))
"""


def test_sync_batchnorm_gives_two_replicas_the_statistics_of_the_global_batch():
    """Per-replica BN normalizes each half with its own mean; synchronized BN matches the one-device result."""
    r = subprocess.run([sys.executable, "-c", SYNC_BN], env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["False"]["n"] == 0 and out["True"]["n"] == 1
    assert out["False"]["err"] > 0.5  # local statistics: a different computation
    assert out["True"]["err"] < 1e-4


DROPOUT = r"""
import json
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import keras
from edge_wbc.training.distributed import global_batch_dropout
x = np.ones((8, 16), "float32")


def build():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((16,)), keras.layers.Dropout(0.5)])
    return keras.Sequential([keras.Input((16,)), inner])  # nested, as in a field model


one = build()  # one replica: the reference, two steps
ref = [one(x, training=True).numpy() for _ in range(2)]
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
out = {}
for fix in (False, True):
    with strategy.scope():
        model = build()
        n = global_batch_dropout(model, 2 if fix else 1)
    ds = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(8).repeat(2))
    steps = []
    for b in ds:
        y = strategy.run(lambda b: model(b, training=True), args=(b,))
        steps.append(np.concatenate([t.numpy() for t in strategy.experimental_local_results(y)]))
    out[str(fix)] = {"n": n, "halves_equal": bool((steps[0][:4] == steps[0][4:]).all()),
                     "same_as_one_replica": [bool((s == r).all()) for s, r in zip(steps, ref)],
                     "kept": float((steps[0] > 0).mean()), "eval_is_identity": bool((model(x).numpy() == x).all())}
print(json.dumps(out))
"""


def test_two_replicas_draw_the_dropout_masks_of_one_replica():
    """Keras gives both replicas one mask (its halves of the batch equal); global_batch_dropout gives each
    replica its rows of the one-replica mask, step after step."""
    r = subprocess.run([sys.executable, "-c", DROPOUT], env=dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="2"),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["False"]["n"] == 0 and out["False"]["halves_equal"] is True  # the Keras 3.15 behaviour
    assert out["True"]["n"] == 1 and out["True"]["halves_equal"] is False
    assert out["True"]["same_as_one_replica"] == [True, True]
    assert 0.3 < out["True"]["kept"] < 0.7 and out["True"]["eval_is_identity"] is True
