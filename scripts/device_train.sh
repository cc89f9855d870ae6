#!/usr/bin/env bash
# The training recipe at accelerator scale on a lent GPU machine, in one call, its weights back.
#
#   1. here, once per checkout: bash scripts/device_train.sh --kit
#      (open_clip and its two missing needs as wheels into .whl/, which git ignores; the GPU
#      machine has torch, einops, safetensors, typer and rich, and nothing can be fetched there)
#   2. on the machine (the device tool's run, carry [".whl"]), e.g. a first call that measures
#      only, then one that trains what the measured throughput fits in the time left:
#        bash scripts/device_train.sh --bench-only
#        bash scripts/device_train.sh 420 --batch-scale 8 --lr-scale 2 --t2i-steps 8000 ...
#      (420: seconds for training; the rest are scripts/train_shapes.py's options)
#   3. here: python scripts/device_weights.py merge FILES_AT runs/gpu/model.safetensors, then
#      `lumiere eval --weights runs/gpu/model.safetensors` on the CPU.
#
# Everything lands in $OUT: gpu.txt, bench.json (scripts/bench_device.py), train.log, and the
# last finished stage's weights as fp16 shards of at most 15 MiB (the tool's file limit is 16).
set -uo pipefail
cd "$(dirname "$0")/.."

if [[ "${1:-}" == "--kit" ]]; then
  mkdir -p .whl
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl open_clip_torch==3.3.0 ftfy==6.3.1 wcwidth==0.9.4 && ls .whl
  exit
fi

out=${OUT:-runs/device-out}
mkdir -p "$out"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
  || { echo "error: no wheels in .whl/ (run scripts/device_train.sh --kit here and carry .whl)"; exit 2; }
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" 2>&1

if [[ "${1:-}" == "--bench-only" ]]; then
  timeout 400 python3 scripts/bench_device.py --json > "$out/bench.json" 2> "$out/bench.err"
  python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(d['device'], d['peak']); [print(r) for r in d['sampling'] + d['training']]" "$out/bench.json"
  exit
fi

budget=${1:-420}
shift || true
timeout "$budget" python3 scripts/train_shapes.py --out runs/gpu --device cuda --workers 8 "$@" 2>&1 | tee "$out/train.log"
final=$(ls -td runs/gpu/*/weights 2>/dev/null | head -1)
if [[ -z "$final" ]]; then
  echo "error: no stage finished inside ${budget}s (see train.log)"
  exit 1
fi
echo "bringing back $final"
python3 scripts/device_weights.py split "$final/model.safetensors" "$out"
