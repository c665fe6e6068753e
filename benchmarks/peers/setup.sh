#!/usr/bin/env bash
# The peers' own venv (PyTorch + Ultralytics + timm), never part of edge-wbc's runtime, extras or CI.
# It lives outside the repo (derived, ~6 GB): $PEERS_VENV, default ~/.cache/edge-wbc/peers-venv.
# torch/torchvision: pip on Python 3.11 takes these two from this machine's disk (a CUDA build that runs
# on the CPU); ultralytics and timm come from PyPI and must not replace torch (checked below).
set -euo pipefail
VENV="${PEERS_VENV:-$HOME/.cache/edge-wbc/peers-venv}"
PY="${PEERS_PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1
"$VENV/bin/pip" install -q 'ultralytics==8.4.*' 'timm==1.0.*' onnx onnxruntime
# TFLite int8 without TensorFlow: litert-torch (torch.export -> LiteRT) and ai-edge-quantizer (it comes with
# litert-torch), the path of Ultralytics' own LiteRT export; ai-edge-litert runs the .tflite
"$VENV/bin/pip" install -q 'litert-torch>=0.10.0' 'ai-edge-litert>=2.3.0'
"$VENV/bin/python" - <<'PY'
import torch, torchvision, timm, ultralytics, litert_torch, ai_edge_quantizer
assert torch.__version__.split("+")[0] == "2.14.1", f"torch was replaced: {torch.__version__}"
print("peers venv ok: torch", torch.__version__, "torchvision", torchvision.__version__,
      "timm", timm.__version__, "ultralytics", ultralytics.__version__, "litert_torch", litert_torch.__version__)
PY
echo "$VENV"
