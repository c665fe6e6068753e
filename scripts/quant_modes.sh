#!/usr/bin/env bash
# Every quantization mode of the shipped BloodMNIST model, then one bench over all of them (issue 4).
# Usage: EDGE_WBC_DATA=../shared/data scripts/quant_modes.sh [RUN_DIR]   (about 10 min on 2 cores)
# RUN_DIR defaults to runs/bloodmnist_wbcnet; it is made from the shipped float model
# (android_assets/bloodmnist.keras + model.json) unless it already holds a model.keras.
set -euo pipefail
R="${1:-runs/bloodmnist_wbcnet}"
if [[ ! -f "$R/model.keras" ]]; then
  mkdir -p "$R"
  cp android_assets/bloodmnist.keras "$R/model.keras"
  cp android_assets/model.json "$R/model.json"
fi
for m in float32 float16 dynamic int8 int16x8; do edge-wbc convert "$R" --mode "$m"; done
edge-wbc convert "$R" --mode int8 --per-tensor --name int8_pertensor
edge-wbc convert "$R" --mode qat                                   # defaults: 8 epochs, lr 1e-5
edge-wbc convert "$R" --mode qat --ft-epochs 5 --ft-lr 2e-5 --name qat_e5_lr2e-5
edge-wbc convert "$R" --mode qat --ft-epochs 5 --ft-lr 1e-4 --name qat_e5_lr1e-4
edge-wbc convert "$R" --mode qat --ft-epochs 10 --ft-lr 2e-5 --name qat_e10_lr2e-5
edge-wbc convert "$R" --mode pruned --sparsity 0.5 --ft-epochs 3
edge-wbc convert "$R" --mode pruned --sparsity 0.6 --ft-epochs 3 --name pruned60
edge-wbc convert "$R" --mode pruned --sparsity 0.5 --ft-epochs 3 --prune-clusters 16 --name pruned50_c16
edge-wbc convert "$R" --mode clustered --clusters 16 --ft-epochs 2
edge-wbc bench -m "$R" --split val --runs 20 --json "$R/modes_val.json"   # what the choices were made on
edge-wbc bench -m "$R" --runs 100 --json "$R/modes.json" --markdown "$R/modes.md"
