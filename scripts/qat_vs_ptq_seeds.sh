#!/usr/bin/env bash
# QAT vs PTQ int8 over several seeds (issue 4): how much of the QAT-PTQ gap is seed noise?
# Seeds change the calibration sample (PTQ) and the fine-tuning shuffle/augmentation (QAT); the data
# split stays the training one. Every QAT seed is kept (--allow-below-ptq) so the table is complete.
# Usage: EDGE_WBC_DATA=../shared/data scripts/qat_vs_ptq_seeds.sh [RUN_DIR] [SEEDS...]
#   (BloodMNIST, 5 seeds: about 12 min on 2 cores; PBC 64: about 6 min per QAT seed)
set -euo pipefail
DEFAULT=runs/bloodmnist_wbcnet
R="${1:-$DEFAULT}"
shift || true
if [[ $# -gt 0 ]]; then SEEDS=("$@"); else SEEDS=(0 1 2 3 4); fi
if [[ ! -f "$R/model.keras" ]]; then
  if [[ "$R" != "$DEFAULT" ]]; then echo "$R: no model.keras there (usage: $0 [RUN_DIR] [SEEDS...])" >&2; exit 2; fi
  mkdir -p "$R"   # the default run dir is made from the shipped float model
  cp android_assets/bloodmnist.keras "$R/model.keras"
  cp android_assets/model.json "$R/model.json"
fi
S="$R/seeds"
mkdir -p "$S"
rm -f "$S"/ptq_s*.* "$S"/qat_s*.*   # only this run's seeds are benched and summarized
cp "$R/model.keras" "$R/model.json" "$S/"
[[ -f "$R/metrics.json" ]] && cp "$R/metrics.json" "$S/"
for s in "${SEEDS[@]}"; do
  edge-wbc convert "$S" --mode int8 --seed "$s" --name "ptq_s$s"
  edge-wbc convert "$S" --mode qat --seed "$s" --allow-below-ptq --name "qat_s$s"
done
edge-wbc bench -m "$S" --split val --runs 5 --warmup 2 --json "$S/val.json"
edge-wbc bench -m "$S" --runs 5 --warmup 2 --json "$S/test.json"
python benchmarks/qat_vs_ptq.py "$S/val.json" "$S/test.json" --json "$S/summary.json"
