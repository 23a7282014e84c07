#!/usr/bin/env bash
# Follow-up of scripts/gpu-check.sh: the demo (seed 1) in f16 and bf16, and the training step at
# 100 classes × 32 in half precision against the original algorithm in fp16 (its default).
set -uo pipefail
OUT=${OUT:-results/gpu-half}; PY=${PYTHON:-python3}; mkdir -p "$OUT"
$PY -c "import lzma, shutil, os; shutil.copyfileobj(lzma.open('gpu/ntlb.xz'), open('gpu/ntlb', 'wb')); os.chmod('gpu/ntlb', 0o755)"
export LD_LIBRARY_PATH="$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))"):$PWD/gpu/lib"
gpu/ntlb generate-synth --out datasets/synth > /dev/null
sed 's/^seeds = \[1, 2, 3\]/seeds = [1]/' configs/demo.toml > "$OUT/demo-gpu.toml"
for p in f16 bf16; do
  timeout 100 gpu/ntlb sweep "$OUT/demo-gpu.toml" --device cuda --precision $p --results "$OUT/demo-$p" > "$OUT/demo-$p.txt" 2>&1
  echo "== demo $p"; grep -E "^\| synth|rc=" "$OUT/demo-$p.txt"; grep -h "imagenet," "$OUT/demo-$p/results.csv" | grep -v "zero-shot," | cut -d, -f4,6,7,8,9
done
for p in f16 bf16; do
  echo "== ntlb train step 100 x 32 $p"; timeout 60 gpu/ntlb bench train-step --preset vit-b-32 --classes 100 --batch 32 --reps 2 --device cuda --precision $p --json
done
echo "== original algorithm fp16 100 x 32"; timeout 100 $PY scripts/bench_reference_step.py --preset vit-b-32 --classes 100 --batch 32 --reps 1 --device cuda --dtype float16 2>&1 | tail -2
