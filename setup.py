"""Build hook: install the repository's android_assets/ as the package data edge_wbc/android_assets/.

android_assets/ stays at the repository top, where a mobile developer copies the bundle from; a
wheel carries it inside the package so that `edge-wbc classify` and `edge-wbc bench` find the
shipped models after a plain `pip install`. (An editable install finds them in the checkout.)
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ASSETS = Path(__file__).resolve().parent / "android_assets"
SUFFIXES = {".tflite", ".json", ".txt", ".keras", ".md"}


class BuildPyWithAssets(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        dest = Path(self.build_lib) / "edge_wbc" / "android_assets"
        self.mkpath(str(dest))
        for f in sorted(ASSETS.iterdir()):
            if f.is_file() and f.suffix in SUFFIXES:
                self.copy_file(str(f), str(dest / f.name))


setup(cmdclass={"build_py": BuildPyWithAssets})
