#!/usr/bin/env bash
# Every step of the peer comparison (docs/peers.md), in order. Not part of CI: it trains 7 models and
# takes hours of the 2-core CPU. Each step can be run alone (copy its line). Derived data, weights and
# predictions go to $PEERS_CACHE (default ~/.cache/edge-wbc/peers); only the scored JSONs land in
# docs/results/peers_{count,classify}.json.
#   EDGE_VENV: edge-wbc's venv (TensorFlow, edge_wbc); PEERS_VENV: made by setup.sh (torch, ultralytics, timm)
set -euo pipefail
cd "$(dirname "$0")"
REPO="$(cd ../.. && pwd)"
EDGE_PY="${EDGE_VENV:-$REPO/.venv}/bin/python"
PEERS_VENV="${PEERS_VENV:-$HOME/.cache/edge-wbc/peers-venv}"
PEER_PY="$PEERS_VENV/bin/python"
C="${PEERS_CACHE:-$HOME/.cache/edge-wbc/peers}"
export PYTHONPATH="$REPO" EDGE_WBC_DATA="${EDGE_WBC_DATA:-$REPO/../shared/data}" TF_CPP_MIN_LOG_LEVEL=2
mkdir -p "$C/preds" "$C/exports" "$C/timm"

[ -x "$PEER_PY" ] || bash setup.sh
# 1. data, through edge-wbc's own loaders (edge-wbc venv)
"$EDGE_PY" export_data.py fields crops
# 2. counting: YOLOv8n from its config on BCCD train (val for Ultralytics' checkpoint choice), 20 epochs, 416 px
nice -n 10 "$PEER_PY" yolo_count.py train --set bccd --cfg yolov8n.yaml --imgsz 416 --epochs 20 --hours 0
W="$C/runs/yolo_yolov8n_bccd/weights/best.pt"
taskset -c 1 "$PEER_PY" yolo_count.py predict --weights "$W" --label "YOLOv8n (PyTorch)" \
    --out "$C/preds/yolov8n_bccd_pytorch.json"
"$PEER_PY" yolo_count.py export --weights "$W" --format onnx --out "$C/exports/yolov8n_bccd_onnx.json" || true
[ -f "${W%.pt}.onnx" ] && taskset -c 1 "$PEER_PY" yolo_count.py predict --weights "${W%.pt}.onnx" --backend onnxruntime \
    --label "YOLOv8n (ONNX Runtime)" --out "$C/preds/yolov8n_bccd_onnx.json"
"$PEER_PY" yolo_count.py export --weights "$W" --format tflite --int8 --out "$C/exports/yolov8n_bccd_tflite_int8.json" || true
taskset -c 1 "$EDGE_PY" edge_count.py --out "$C/preds/edge_wbc.json"
# 3. classification: each timm model per LOSO fold, edge-wbc's budget (10 epochs x 100 steps x 32)
for m in mobilenetv3_small_100 efficientnet_b0; do
  for s in pbc128 bccd wbcseg; do
    nice -n 10 taskset -c 1 "$PEER_PY" timm_loso.py --model "$m" --holdout "$s" > "$C/timm/${m}_holdout_${s}.log" 2>&1 || true
  done
done
taskset -c 1 "$EDGE_PY" edge_field.py --json "$C/edge_field.json"
# 4. score everything with edge-wbc's scorers and print both tables
"$EDGE_PY" compare.py --collect
