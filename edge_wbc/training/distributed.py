"""Scale-out training on TensorFlow's own engine (``tf.distribute``): strategies, clusters, local workers.

- ``default``: one device (TensorFlow's default strategy).
- ``mirrored``: ``MirroredStrategy`` over every local GPU or, on a CPU-only machine, over
  ``hp.devices`` logical CPU devices (for testing the multi-replica path).
- ``multiworker``: ``MultiWorkerMirroredStrategy`` with the ``TF_CONFIG`` the cluster sets on each
  host; worker 0 (or the ``chief`` job) is the chief and is the only one that writes artifacts.

``hp.batch`` is the global batch under every strategy (each replica gets ``batch / replicas``), so
the learning rate, its schedule and the seeded split are the same whatever the strategy
(docs/training-distributed.md).

Before TensorFlow starts, :func:`parse_tf_config` checks ``TF_CONFIG`` and :func:`check_port_free`
this worker's port; after the strategy is made, a barrier (one all-reduce) must pass within
``hp.connect_timeout`` seconds, or the worker exits with an error naming itself and the chief's
address (never a hang). :func:`run_local_workers` starts N workers on 127.0.0.1 ports
(``--local-workers N``) and stops them all, naming the worker, when one fails.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from ..errors import EdgeWBCError

STRATEGIES = ("default", "mirrored", "multiworker")
LOCAL_WORKERS_ENV = "EDGE_WBC_LOCAL_WORKERS"


class ClusterError(EdgeWBCError):
    """A bad TF_CONFIG, a port in use, a worker that cannot reach the chief, a worker that failed."""


@dataclass(frozen=True)
class Cluster:
    """This process's place in a TF_CONFIG cluster."""

    task_type: str  # "worker" | "chief"
    index: int
    addresses: tuple[str, ...]  # chief first (if any), then the workers, as TF orders them
    chief: str  # the chief's address
    own: str  # this task's address

    @property
    def num_workers(self) -> int:
        return len(self.addresses)

    @property
    def rank(self) -> int:
        """0 for the chief; the position among all tasks otherwise (the file shard this task reads)."""
        return self.addresses.index(self.own)

    @property
    def is_chief(self) -> bool:
        return self.own == self.chief

    @property
    def name(self) -> str:
        return f"{self.task_type} {self.index}"


def _check_address(addr, where: str) -> str:
    if not isinstance(addr, str) or ":" not in addr:
        raise ClusterError(f"TF_CONFIG: {where} address {addr!r} is not HOST:PORT")
    host, _, port = addr.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ClusterError(f"TF_CONFIG: {where} address {addr!r} is not HOST:PORT with a port of 1-65535")
    return addr


def parse_tf_config(text: str | None) -> Cluster:
    """Check a ``TF_CONFIG`` value and return this task's place; every problem is one ClusterError line."""
    if not text:
        raise ClusterError(
            "--strategy multiworker needs TF_CONFIG (set by the cluster on each host) or --local-workers N"
        )
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise ClusterError(f"TF_CONFIG is not JSON ({e.msg} at character {e.pos}): {text[:80]!r}") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict) or not isinstance(cfg.get("task"), dict):
        raise ClusterError('TF_CONFIG needs {"cluster": {"worker": [HOST:PORT, ...]}, "task": {"type": ..., '
                           f'"index": ...}}}}, got {text[:80]!r}')
    jobs, task = cfg["cluster"], cfg["task"]
    bad_jobs = sorted(set(jobs) - {"chief", "worker"})
    if bad_jobs:
        raise ClusterError(f"TF_CONFIG: job {bad_jobs[0]!r} is not supported: valid jobs are chief, worker")
    for job, addrs in jobs.items():
        if not isinstance(addrs, list) or not addrs:
            raise ClusterError(f"TF_CONFIG: cluster.{job} must be a non-empty list of HOST:PORT, got {addrs!r}")
    if len(jobs.get("chief", [])) > 1:
        raise ClusterError(f"TF_CONFIG: cluster.chief must list one address, got {len(jobs['chief'])}")
    ttype, index = task.get("type"), task.get("index", 0)
    if ttype not in jobs:
        raise ClusterError(f"TF_CONFIG: task type {ttype!r} is not a job of the cluster: valid types are "
                           f"{', '.join(jobs)}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(jobs[ttype]):
        raise ClusterError(f"TF_CONFIG: task index {index!r} is outside cluster.{ttype} "
                           f"(valid: 0..{len(jobs[ttype]) - 1})")
    addresses = tuple(_check_address(a, f"cluster.{job}[{i}]")
                      for job in ("chief", "worker") for i, a in enumerate(jobs.get(job, [])))
    dup = sorted({a for a in addresses if addresses.count(a) > 1})
    if dup:
        raise ClusterError(f"TF_CONFIG: address {dup[0]} is listed twice (each task needs its own port)")
    chief = jobs["chief"][0] if "chief" in jobs else jobs["worker"][0]
    return Cluster(ttype, index, addresses, chief, jobs[ttype][index])


def check_port_free(cluster: Cluster) -> None:
    """Fail, naming the worker and the address, if this task's port is already taken on this host."""
    port = int(cluster.own.rpartition(":")[2])
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("", port))
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise ClusterError(f"{cluster.name} ({cluster.own}): port {port} is in use on this host; "
                               "give this task a free port in TF_CONFIG") from None
    finally:
        s.close()


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that are free on 127.0.0.1 now."""
    socks, ports = [], []
    try:
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind(("127.0.0.1", 0))
            socks.append(s)
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def local_tf_config(ports: list[int], index: int) -> str:
    return json.dumps({"cluster": {"worker": [f"127.0.0.1:{p}" for p in ports]},
                       "task": {"type": "worker", "index": index}})


@dataclass
class RunContext:
    """What a trainer needs to know about the strategy it runs under."""

    strategy: object
    name: str  # default | mirrored | multiworker
    replicas: int
    devices: tuple[str, ...]
    cluster: Cluster | None = None
    mixed_precision: bool = False
    notes: tuple[str, ...] = ()

    @property
    def is_chief(self) -> bool:
        return self.cluster is None or self.cluster.is_chief

    @property
    def num_workers(self) -> int:
        return self.cluster.num_workers if self.cluster else 1

    @property
    def rank(self) -> int:
        return self.cluster.rank if self.cluster else 0

    def work_dir(self, out: Path) -> Path:
        """Where this task writes: ``out`` on the chief, a scratch folder under it on the other workers."""
        return Path(out) if self.is_chief else Path(out) / ".workers" / f"worker-{self.rank}"

    def describe(self, batch: int) -> dict:
        return {
            "strategy": self.name, "workers": self.num_workers, "replicas": self.replicas,
            "devices": list(self.devices), "global_batch": batch,
            "per_replica_batch": batch / self.replicas, "mixed_precision": self.mixed_precision,
            "local_workers": int(os.environ.get(LOCAL_WORKERS_ENV, "0") or 0),
            "notes": list(self.notes),
        }


def _logical_cpus(tf, n: int) -> list[str]:
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * n)
    except RuntimeError:
        have = tf.config.list_logical_devices("CPU")
        if len(have) != n:
            raise ClusterError(f"--strategy mirrored on CPU needs {n} logical devices, but TensorFlow already "
                               f"started with {len(have)}; run it in a fresh process") from None
    return [d.name for d in tf.config.list_logical_devices("CPU")]


def _coordination_timeout(tf, timeout: float) -> None:
    """The coordination service that MultiWorkerMirroredStrategy would configure, with a register timeout.

    Without one, a task whose peers never come waits inside TensorFlow's C++ (holding the GIL, so no
    Python watchdog can run) for an hour; with it, the strategy raises after ``timeout`` seconds.
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    spec = tf.distribute.cluster_resolver.TFConfigClusterResolver().cluster_spec()
    jobs = [coordination_config_pb2.CoordinatedJob(name=j, num_tasks=spec.num_tasks(j))
            for j in ("chief", "worker") if j in spec.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=jobs, cluster_register_timeout_in_ms=int(1000 * timeout))


def _join_error(cluster: Cluster, timeout: float) -> str:
    if cluster.is_chief:
        others = ", ".join(a for a in cluster.addresses if a != cluster.own)
        msg = f"{cluster.name} (chief, {cluster.own}): the other workers ({others}) did not join"
    else:
        msg = f"{cluster.name} ({cluster.own}): cannot reach the chief at {cluster.chief}"
    return f"{msg} within {timeout:g} s (is every worker started, and are the ports open?)"


def _join(tf, cluster: Cluster, timeout: float):
    """Make the strategy and pass one all-reduce over every replica; a watchdog ends the process if that
    takes longer than ``timeout`` (TensorFlow itself would wait for a missing peer forever)."""
    fired = threading.Event()

    def expire():
        if not fired.is_set():
            fired.set()
            sys.stderr.write(f"error: {_join_error(cluster, timeout)}\n")
            sys.stderr.flush()
        time.sleep(1.0)  # let a stderr filter thread pass the line on
        os._exit(2)  # a normal exit can hang in TensorFlow's shutdown after a failed join

    # TensorFlow's own register timeout (3x, a last resort) keeps its C++ wait interruptible; the
    # watchdog (timeout) reports first, naming the worker and the chief's address
    _coordination_timeout(tf, 3 * timeout)
    timer = threading.Timer(timeout, expire)
    timer.daemon = True
    timer.start()
    try:
        try:
            strategy = tf.distribute.MultiWorkerMirroredStrategy()
        except tf.errors.OpError:  # TensorFlow's own deadline: the same report
            expire()
        total = strategy.reduce("SUM", strategy.run(lambda: tf.constant(1.0)), axis=None)
        if int(total.numpy()) != strategy.num_replicas_in_sync:
            raise ClusterError(f"{cluster.name}: barrier saw {int(total.numpy())} replicas, expected "
                               f"{strategy.num_replicas_in_sync}")
    finally:
        timer.cancel()
    return strategy


def make_context(hp, log=print) -> RunContext:
    """Configure devices and make the strategy of ``hp.strategy`` (call before TensorFlow runs any op)."""
    import tensorflow as tf

    notes = []
    gpus = tf.config.list_physical_devices("GPU")
    mixed = False
    if hp.mixed_precision:
        if gpus:
            import keras

            keras.mixed_precision.set_global_policy("mixed_float16")
            mixed = True
        else:
            notes.append("--mixed-precision is a no-op on CPU: training runs in float32")
            log("note: " + notes[-1])
    if hp.strategy == "default":
        strategy = tf.distribute.get_strategy()
        devices = tuple(d.name for d in tf.config.list_logical_devices("GPU")[:1]
                        or tf.config.list_logical_devices("CPU")[:1])
        return RunContext(strategy, "default", 1, devices, mixed_precision=mixed, notes=tuple(notes))
    if hp.strategy == "mirrored":
        if gpus:
            strategy = tf.distribute.MirroredStrategy()
        else:
            names = _logical_cpus(tf, hp.devices)
            strategy = tf.distribute.MirroredStrategy(names, cross_device_ops=tf.distribute.ReductionToOneDevice())
            notes.append(f"no GPU: mirrored over {hp.devices} logical CPU devices (correctness, not speed)")
        devices = tuple(strategy.extended.worker_devices)
        return RunContext(strategy, "mirrored", strategy.num_replicas_in_sync, devices,
                          mixed_precision=mixed, notes=tuple(notes))
    cluster = parse_tf_config(os.environ.get("TF_CONFIG"))
    check_port_free(cluster)
    strategy = _join(tf, cluster, hp.connect_timeout)
    return RunContext(strategy, "multiworker", strategy.num_replicas_in_sync,
                      tuple(strategy.extended.worker_devices), cluster, mixed, tuple(notes))


def sync_batchnorm(model, replicas: int) -> int:
    """Give every BatchNormalization layer the statistics of the global batch when ``replicas`` > 1.

    Without this, each replica normalizes with its own share of the batch (32 images of 64 on two
    replicas), so a two-replica run computes a different model from a one-replica run of the same
    recipe. Keras' ``synchronized`` all-reduces the sums under a tf.distribute strategy and is a no-op
    outside one (inference and the converters are unaffected). Returns how many layers it set.
    """
    if replicas <= 1:
        return 0
    import keras

    n = 0
    stack = list(getattr(model, "layers", []))
    while stack:  # nested models (a backbone inside a field model) too
        layer = stack.pop()
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            n += 1
        stack.extend(getattr(layer, "layers", []))
    return n


def global_batch_dropout(model, replicas: int) -> int:
    """Give every Dropout layer, under ``replicas`` > 1, its replica's rows of the mask that one replica
    would draw for the whole global batch.

    Keras 3.15 draws each replica's dropout mask from the layer's SeedGenerator, whose state is a
    mirrored variable: every replica gets the same seed and so the same mask, and the halves of a global
    batch of 64 share one 32-row mask (measured on two logical CPUs). That is correlated noise a
    one-replica run does not have. Here each replica draws the mask of the global batch (its rows times
    the replicas in sync) from the same seed and keeps its own rows: under MirroredStrategy, whose
    replicas get consecutive rows of each global batch, the masks are exactly the one-replica run's. The
    layer's config and weights are unchanged (the saved model is plain Keras; inference never drops).
    Returns how many layers it set.
    """
    if replicas <= 1:
        return 0
    import keras
    import tensorflow as tf

    def make_call(layer):
        def call(inputs, training=False):
            if not training or layer.rate <= 0:
                return inputs
            if layer.rate >= 1:
                return tf.zeros_like(inputs)
            ctx = tf.distribute.get_replica_context()
            n = ctx.num_replicas_in_sync if ctx is not None else 1
            rid = ctx.replica_id_in_sync_group if ctx is not None else 0
            seed = layer.seed_generator.next()
            seed = tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)  # as Keras' own dropout casts it
            shape = tf.shape(inputs)
            if layer.noise_shape is not None:
                shape = tf.stack([shape[i] if v is None else v for i, v in enumerate(layer.noise_shape)])
            rows = shape[0]
            full = tf.concat([[rows * n], shape[1:]], 0)
            keep = tf.nn.experimental.stateless_dropout(tf.ones(full, inputs.dtype), rate=layer.rate, seed=seed)
            return inputs * keep[rid * rows:(rid + 1) * rows]

        return call

    n = 0
    stack = list(getattr(model, "layers", []))
    while stack:
        layer = stack.pop()
        if type(layer) is keras.layers.Dropout:  # subclasses may draw their own way: left alone
            layer.call = make_call(layer)
            n += 1
        stack.extend(getattr(layer, "layers", []))
    return n


def patch_keras_multiworker(model, strategy) -> None:
    """Work around two Keras 3.15 bugs under ``MultiWorkerMirroredStrategy`` (no effect on other strategies).

    1. ``fit`` builds the model symbolically from a first batch that it all-reduces across workers
       (``strategy.reduce("MEAN", PerReplica)``), which fails to convert; one replica's batch has the
       shapes it needs.
    2. The logs are reduced with ``strategy.reduce("MEAN", v, axis=0)``, which fails on scalar losses
       and metrics; the mean across replicas is ``axis=None``.
    """
    import tensorflow as tf
    from keras.src.backend.tensorflow import trainer as tf_trainer

    if not tf_trainer._collective_all_reduce_multi_worker(strategy):
        return

    def one_replica(v):
        return strategy.experimental_local_results(v)[0] if isinstance(v, tf.distribute.DistributedValues) else v

    def symbolic_build(iterator=None, data_batch=None):
        if iterator is not None:
            for _, _, it in iterator:
                data_batch = tf.nest.map_structure(one_replica, next(it))
                break
        with strategy.scope():
            model._symbolic_build(data_batch=data_batch)

    model._maybe_symbolic_build = symbolic_build
    if getattr(tf_trainer.reduce_per_replica, "_edge_wbc", False):
        return
    original = tf_trainer.reduce_per_replica

    def reduce_per_replica(values, strat, reduction):
        if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strat):
            return tf.nest.map_structure(
                lambda v: strat.reduce("MEAN", v, axis=None) if isinstance(v, tf.distribute.DistributedValues)
                else v, values)
        return original(values, strat, reduction)

    reduce_per_replica._edge_wbc = True
    tf_trainer.reduce_per_replica = reduce_per_replica


# ---- --local-workers N ----------------------------------------------------------------------------
def _last_error(log_path: Path) -> str:
    try:
        lines = [ln.strip() for ln in log_path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    errs = [ln for ln in lines if ln.startswith("error:")]
    return (errs[-1] if errs else lines[-1] if lines else "")[:300]


def _describe_exit(rc: int) -> str:
    if rc < 0:
        try:
            return f"was killed by signal {-rc} ({signal.Signals(-rc).name})"
        except ValueError:
            return f"was killed by signal {-rc}"
    return f"exited with code {rc}"


def run_local_workers(hp, out: str | Path, n: int, data=None, log=print, poll: float = 0.5) -> dict:
    """Train ``hp`` with ``n`` worker processes on this machine (``--local-workers N``); returns the metrics.

    Each worker gets a generated TF_CONFIG on free 127.0.0.1 ports; worker 0 is the chief and writes
    the artifacts into ``out``. Every worker logs to ``out/.workers/worker-<i>.log``; the chief's lines
    are passed to ``log``. If one worker fails (or is killed), the others are stopped and a
    ClusterError names the worker, its address and its last error line.
    """
    if n < 1:
        raise ClusterError(f"--local-workers {n}: must be >= 1")
    out = Path(out)
    logs = out / ".workers"
    logs.mkdir(parents=True, exist_ok=True)
    ports = free_ports(n)
    hp_json = json.dumps(asdict(replace(hp, strategy="multiworker")))
    procs, files = [], []
    try:
        for i in range(n):
            env = dict(os.environ, TF_CONFIG=local_tf_config(ports, i), PYTHONUNBUFFERED="1",
                       **{LOCAL_WORKERS_ENV: str(n)})
            fh = open(logs / f"worker-{i}.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
            files.append(fh)
            cmd = [sys.executable, "-m", "edge_wbc.training.worker", hp_json, str(out), str(data or "")]
            procs.append(subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT))
        log(f"local workers: {n} on 127.0.0.1 ports {', '.join(map(str, ports))}; logs in {logs}")
        seen = 0
        while True:
            seen = _follow(logs / "worker-0.log", seen, log)
            codes = [p.poll() for p in procs]
            failed = [(i, rc) for i, rc in enumerate(codes) if rc not in (None, 0)]
            if failed:
                i, rc = failed[0]
                why = _last_error(logs / f"worker-{i}.log")
                raise ClusterError(f"worker {i} (127.0.0.1:{ports[i]}) {_describe_exit(rc)}"
                                   + (f": {why}" if why else "")
                                   + (" ; rerun with --resume to continue from the last epoch"
                                      if rc < 0 else ""))
            if all(rc == 0 for rc in codes):
                _follow(logs / "worker-0.log", seen, log)
                break
            time.sleep(poll)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        deadline = time.time() + 10
        for p in procs:
            try:
                p.wait(max(0.1, deadline - time.time()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for fh in files:
            fh.close()
    return json.loads((out / "metrics.json").read_text())


def _follow(path: Path, seen: int, log) -> int:
    """Pass the complete lines of ``path`` after the first ``seen`` to ``log``; return the new count."""
    try:
        lines = path.read_text(errors="replace").split("\n")[:-1]
    except OSError:
        return seen
    for line in lines[seen:]:
        log(line)
    return len(lines)
