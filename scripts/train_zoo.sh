#!/usr/bin/env bash
# Train and convert the model zoo (issue 3): the reference models and the edge defaults.
# Usage: EDGE_WBC_DATA=../shared/data scripts/train_zoo.sh [RUNS_DIR]   (CPU; hours in total on 2 cores)
# Each line: name, model, dataset, size ("-" = the dataset's default), extra train options.
# Runs that already have int8.tflite are skipped. The BloodMNIST default was trained separately:
#   edge-wbc train wbcnet --dataset bloodmnist --epochs 40 --patience 12 --out runs/bloodmnist_wbcnet
set -uo pipefail
RUNS="${1:-runs}"
mkdir -p "$RUNS"
while read -r name model dataset size opts; do
  [[ -z "$name" || "$name" == \#* ]] && continue
  out="$RUNS/$name"
  if [[ -f "$out/int8.tflite" ]]; then echo "skip $name"; continue; fi
  echo "=== $name: $model on $dataset at ${size}px ($opts) $(date +%T)"
  sizeopt=(); [[ "$size" != "-" ]] && sizeopt=(--size "$size")   # "-": the dataset's default size
  edge-wbc train "$model" --dataset "$dataset" "${sizeopt[@]}" --out "$out" $opts > "$out.log" 2>&1 || { echo "train failed: $out.log"; continue; }
  tail -1 "$out.log"
  for mode in int8 float16; do
    edge-wbc convert "$out" --mode "$mode" >> "$out.log" 2>&1 || echo "convert $mode failed: $out.log"
  done
done <<'RUNS'
bloodmnist_crp3     crp3    bloodmnist 28 --epochs 30 --batch 32 --optimizer adam --patience 8
bloodmnist_cnn2     cnn2    bloodmnist 28 --epochs 30 --batch 32 --patience 8
bloodmnist_fnn1     fnn1    bloodmnist 28 --epochs 30 --batch 32 --patience 8
bccd2_binary2       binary2 bccd2      64 --epochs 60 --batch 32 --patience 15
bccd4_wbcnet        wbcnet  bccd4      64 --epochs 80 --batch 32 --patience 20 --class-weights balanced
bccd2_wbcnet        wbcnet  bccd2      64 --epochs 80 --batch 32 --patience 20 --class-weights balanced
pbc64_wbcnet_e24    wbcnet  pbc128     64 --epochs 24 --patience 8
pbc128_wbcnet_s4    wbcnet_s4 pbc128  128 --epochs 30 --patience 8
unet_seg150         unet    seg        -  --epochs 150 --patience 25 --batch 16
unet_seg150_refit   unet    seg        -  --epochs 150 --batch 16 --refit
unet_smear          unet    bccd_smear -  --epochs 60 --patience 12 --batch 16
RUNS
