"""Every runtime command works with TensorFlow, Keras and tf_keras unimportable, in every process it starts.

A ``sitecustomize`` on PYTHONPATH blocks the imports in the test's Python and in the bench workers it
spawns. One subprocess runs segment, count, a tflite-only bench (on the val split, checked against the
runtime's own predictions) and export-android --no-eval, with the shipped models and real images.
(``edge-wbc --version`` is not on this branch yet: the CLI consistency work adds it.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.test_tf_free import BLOCKER

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "android_assets"


def test_runtime_commands_without_tensorflow(tmp_path, data_root, pbc_files):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCKER)
    cell = pbc_files["neutrophil"][0]
    smear = data_root / "bccd" / "BCCD" / "JPEGImages" / "BloodImage_00000.jpg"
    out = tmp_path / "out"
    code = f"""
import json, sys
try:
    import tensorflow
    raise SystemExit('blocker failed')
except ImportError:
    pass
from typer.testing import CliRunner
from edge_wbc.cli import app
out = {str(out)!r}
def run(*args):
    r = CliRunner().invoke(app, [str(a) for a in args])
    assert r.exit_code == 0, (args[0], r.exit_code, r.output)
    bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]
    assert not bad, (args[0], bad[:3])
    print('OK', args[0])
run('segment', {str(cell)!r}, '--out', out + '/seg')
run('count', {str(smear)!r}, '--json', out + '/count.json', '--csv', out + '/count.csv')
run('bench', '--models', {str(ASSETS / 'bloodmnist_int8.tflite')!r}, '--models',
    {str(ASSETS / 'bloodmnist_float16.tflite')!r}, '--split', 'val', '--runs', '2', '--warmup', '0',
    '--data', {str(data_root)!r}, '--json', out + '/bench.json')
run('export-android', {str(ASSETS / 'bloodmnist_int8.tflite')!r}, '--out', out + '/bundle', '--no-eval')
print('TF-FREE OK')
"""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO)
    assert r.returncode == 0 and "TF-FREE OK" in r.stdout, r.stdout[-3000:] + r.stderr[-3000:]
    stem = cell.stem
    assert {p.name for p in (out / "seg").iterdir()} >= {f"{stem}.mask.png", f"{stem}.overlay.png"}
    c = json.loads((out / "count.json").read_text())
    assert c["images"][0]["width"] == 640 and sum(c["totals"].values()) == len(c["images"][0]["cells"]) >= 1
    b = json.loads((out / "bench.json").read_text())
    assert all(row["status"] == "ok" for row in b["rows"]), b["rows"]
    # the bench measured the val split it reports: same n and accuracy as the runtime on BloodMNIST val
    from edge_wbc.data import load_bloodmnist
    from edge_wbc.runtime import TFLiteClassifier

    val = load_bloodmnist(data_root / "bloodmnist" / "bloodmnist.npz").split("val")
    pred = TFLiteClassifier(ASSETS / "bloodmnist_int8.tflite").predict(val.images).argmax(1)
    acc = float((pred == val.labels).mean())
    row = next(x for x in b["rows"] if x["variant"] == "bloodmnist_int8.tflite")
    assert (b["split"], b["n"], row["accuracy"]) == ("val", len(val), acc)
    assert b["reference"] == "bloodmnist_float16.tflite" and 0.9 < row["agreement"] <= 1.0  # float16 is the reference
    bundle = json.loads((out / "bundle" / "bloodmnist_int8.json").read_text())
    assert bundle["accuracy"] is None or "test" in bundle["accuracy"]["test_set"]
    assert (out / "bundle" / "bloodmnist_int8.tflite").is_file()
    src = json.loads((ASSETS / "bloodmnist_int8.json").read_text())
    assert np.isclose(bundle["uncertain_threshold"], src["uncertain_threshold"])  # --no-eval keeps the bundle's rule
