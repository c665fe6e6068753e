"""The runtime and `edge-wbc classify` work with TensorFlow, Keras and tf_keras unimportable."""

import subprocess
import sys

BLOCKER = r"""
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tensorflow', 'keras', 'tf_keras', 'tensorflow_model_optimization'):
            raise ImportError(f'blocked for this test: {name}')
        return None
sys.meta_path.insert(0, Block())
"""


def test_import_and_classify_without_tensorflow(tiny_converted, pbc_files, tmp_path):
    out = tmp_path / "o.csv"
    files = [str(f) for fs in pbc_files.values() for f in fs[:1]]
    code = (
        BLOCKER
        + f"""
try:
    import tensorflow
    raise SystemExit('blocker failed')
except ImportError:
    pass
import edge_wbc, edge_wbc.runtime, edge_wbc.bench, edge_wbc.data, edge_wbc.cli
from edge_wbc.cli import app
from typer.testing import CliRunner
model = {str(tiny_converted / "int8.tflite")!r}
r = CliRunner().invoke(app, ['classify', *{files!r}, '--model', model, '--csv', {str(out)!r}])
print(r.output)
assert r.exit_code == 0, r.output
bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'tf_keras')]
assert not bad, bad
print('TF-FREE OK')
"""
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TF-FREE OK" in r.stdout
    assert len(out.read_text().splitlines()) == 1 + len(files)


def test_training_without_tensorflow_says_what_to_install(tmp_path):
    code = BLOCKER + """
from edge_wbc.cli import app
from typer.testing import CliRunner
r = CliRunner().invoke(app, ['train', 'tiny', '--out', 'x'])
print(r.exit_code, r.output)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert r.stdout.startswith("2 ") and "pip install 'edge-wbc[train]'" in r.stdout, r.stdout + r.stderr
