"""Resume after a crash: an atomic ``BackupAndRestore`` and the check that ``--resume`` continues the same run.

The backup lives in ``<work dir>/.backup/`` (the chief's is ``OUT/.backup``): ``run.json`` (the
recipe of the run that made it), ``epoch-<N>.weights.h5`` (model and optimizer state after epoch N)
and ``state.json`` (``{"epoch": N, "weights": ..., "history": ...}``), which is written last and
atomically, so a SIGKILL at any moment leaves the previous complete epoch; a resumed run loses at
most the epoch it was in. The backup is removed when the run finishes.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from ..errors import EdgeWBCError
from ..fileio import atomic_write_text

BACKUP_DIR = ".backup"
#: HParams that may change between a crash and --resume (how the run is executed, not what it learns).
NOT_RECIPE = ("strategy", "devices", "resume", "mixed_precision", "connect_timeout")


class CheckpointError(EdgeWBCError):
    """A backup that cannot be used: from another run, or left behind without --resume."""


def recipe(hp) -> dict:
    return {k: v for k, v in asdict(hp).items() if k not in NOT_RECIPE}


def rss_mb() -> float:
    """This process's resident set size in MB (Linux /proc; NaN elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def prepare_backup(hp, work_dir: Path, log=print) -> tuple[Path, int]:
    """Check or start the backup of this run; returns (backup dir, epochs already done)."""
    d = Path(work_dir) / BACKUP_DIR
    state = d / "state.json"
    if state.is_file():
        if not hp.resume:
            raise CheckpointError(f"{d}: an interrupted run left its checkpoint here; pass --resume to continue "
                                  f"it, or delete {d} to start over")
        try:
            old = json.loads((d / "run.json").read_text())
            done = int(json.loads(state.read_text())["epoch"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{d}: the checkpoint cannot be read ({e}); delete {d} to start over") from None
        new = json.loads(json.dumps(recipe(hp)))  # tuples -> lists, as in the file
        diffs = [f"{k} {old.get(k)!r} in the checkpoint vs {new.get(k)!r} now"
                 for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        if diffs:
            raise CheckpointError(f"--resume: the checkpoint in {d} is from another run: " + "; ".join(diffs))
        log(f"resume: continuing after epoch {done} from {d}")
        return d, done
    if hp.resume:
        log(f"resume: no checkpoint in {d}; starting at epoch 1")
    d.mkdir(parents=True, exist_ok=True)
    for stale in d.glob("epoch-*.weights.h5"):  # weights of a run killed before its first state.json
        stale.unlink()
    atomic_write_text(d / "run.json", json.dumps(recipe(hp), indent=2) + "\n")
    return d, 0


def backup_callback(keras, backup_dir: Path):
    """A ``BackupAndRestore`` that saves every epoch atomically and keeps the history of every epoch.

    Each epoch end writes ``epoch-<N>.weights.h5`` and then ``state.json`` (atomic rename) naming it;
    loading reads ``state.json`` first, so the weights and the epoch count always match. The
    callback also records each epoch's wall time and this process's RSS (``epoch_seconds``,
    ``rss_mb``), and ``history`` holds the logs of all epochs, those before a crash included.
    """

    class AtomicBackup(keras.callbacks.BackupAndRestore):
        def __init__(self):
            super().__init__(str(backup_dir), save_freq="epoch", delete_checkpoint=False)
            self.dir = Path(backup_dir)
            self.history: dict[str, list] = {}
            self.resumed_from = 0
            self._t0 = None

        def _load_model(self):
            state = self.dir / "state.json"
            if not state.is_file():
                return
            st = json.loads(state.read_text())
            if self.model.optimizer is not None and not self.model.optimizer.built:
                self.model.optimizer.build(self.model.trainable_variables)
            self.model.load_weights(self.dir / st["weights"])
            self.model._initial_epoch = self.resumed_from = int(st["epoch"])
            self.history = st["history"]

        def on_epoch_begin(self, epoch, logs=None):
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            secs = time.perf_counter() - (self._t0 or time.perf_counter())
            for k, v in {**(logs or {}), "epoch_seconds": secs, "rss_mb": rss_mb()}.items():
                self.history.setdefault(k, []).append(float(v))
            self._save_epoch(epoch + 1)

        def _save_epoch(self, n: int):
            name = f"epoch-{n}.weights.h5"
            tmp = self.dir / f".{name}.{os.getpid()}.tmp.weights.h5"
            try:
                self.model.save_weights(tmp, overwrite=True)
                os.replace(tmp, self.dir / name)
            finally:
                tmp.unlink(missing_ok=True)
            atomic_write_text(self.dir / "state.json",
                              json.dumps({"epoch": n, "weights": name, "history": self.history}) + "\n")
            for old in self.dir.glob("epoch-*.weights.h5"):
                if old.name != name:
                    old.unlink(missing_ok=True)

        def on_train_batch_end(self, batch, logs=None):
            pass

        def on_train_end(self, logs=None):
            pass

    return AtomicBackup()


def remove_backup(backup_dir: Path) -> None:
    import shutil

    shutil.rmtree(backup_dir, ignore_errors=True)
