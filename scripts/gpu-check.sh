#!/usr/bin/env bash
# The prepared GPU check (issue: GPU). Run from the repository root on a machine with an NVIDIA
# GPU and PyTorch, after `make gpu-pack` on the build machine put gpu/ntlb.xz (the `tch` build)
# and gpu/golden.tar.xz (the shared golden cases) in place. Prints one table; writes JSON to $OUT.
# Budget: under 8 minutes on an H100.
set -uo pipefail
OUT=${OUT:-results/gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
START=$(date +%s)
log() { echo "[$(( $(date +%s) - START ))s] $*" >&2; }

$PY - <<'PYEOF'
import lzma, tarfile, shutil, os
with lzma.open("gpu/ntlb.xz") as f, open("gpu/ntlb", "wb") as o: shutil.copyfileobj(f, o)
os.chmod("gpu/ntlb", 0o755)
with tarfile.open("gpu/golden.tar.xz") as t: t.extractall("gpu", filter="data")
PYEOF
TORCH_LIB=$($PY -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")
# System libraries the build machine linked (fontconfig, freetype, ...) travel in gpu/lib.
export LD_LIBRARY_PATH="$TORCH_LIB:$PWD/gpu/lib:${LD_LIBRARY_PATH:-}"
NTLB=gpu/ntlb
G=gpu/golden
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt" >&2
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" >&2

log "matmul rate (PyTorch, 8192^3)"
$PY - > "$OUT/matmul.json" <<'PYEOF'
import json, time, torch
r = {}
for name, dt, tf32 in [("f32", torch.float32, False), ("tf32", torch.float32, True), ("bf16", torch.bfloat16, False)]:
    torch.backends.cuda.matmul.allow_tf32 = tf32
    a = torch.randn(8192, 8192, device="cuda", dtype=dt); b = torch.randn(8192, 8192, device="cuda", dtype=dt)
    for _ in range(3): a @ b
    torch.cuda.synchronize(); t = time.perf_counter(); n = 10
    for _ in range(n): a @ b
    torch.cuda.synchronize(); r[name] = 2 * 8192**3 * n / (time.perf_counter() - t) / 1e12
print(json.dumps({"matmul_tflops": r}))
PYEOF
cat "$OUT/matmul.json" >&2

log "parity on the GPU (f32 everywhere; f16 and bf16 with tolerances x1000)"
for c in encode_text encode_image coop_middle coop_end; do
  for p in f32 f16 bf16; do
    if [ $p != f32 ] && { [ $c = encode_text ] || [ $c = coop_end ]; }; then continue; fi
    scale=1; [ $p != f32 ] && scale=1000
    timeout 120 $NTLB parity --case $G/$c.json --model $G/tiny-clip/openai.safetensors --tokenizer $G/tiny-clip/hf/tokenizer.json \
      --out "$OUT/parity_${c}_$p.json" --device cuda --precision $p --tolerance-scale $scale > "$OUT/parity_${c}_$p.txt" 2>&1; echo "rc=$?" >> "$OUT/parity_${c}_$p.txt"
  done
done

log "bench encode (ViT-B/32, batch 256)"
for p in f32 bf16; do
  timeout 150 $NTLB bench encode --presets ViT-B/32 --batches 256 --reps 5 --device cuda --precision $p --no-torch --json > "$OUT/encode_$p.json" 2> "$OUT/encode_$p.err"
done

log "bench train-step (vit-b-32, 1000 classes, batch 32)"
for p in f32 bf16; do
  timeout 200 $NTLB bench train-step --preset vit-b-32 --classes 1000 --batch 32 --chunk 250 --reps 1 --device cuda --precision $p --json > "$OUT/train_$p.json" 2> "$OUT/train_$p.err"
done

log "100 classes, and the original algorithm in PyTorch at that size (at 1000 classes x 32 it runs out of the GPU's memory)"
timeout 120 $NTLB bench train-step --preset vit-b-32 --classes 100 --batch 32 --reps 2 --device cuda --json > "$OUT/train100_f32.json" 2> "$OUT/train100_f32.err"
timeout 200 $PY scripts/bench_reference_step.py --preset vit-b-32 --classes 100 --batch 32 --reps 1 --device cuda > "$OUT/reference.json" 2> "$OUT/reference.err"

log "demo sweep on the GPU (seed 1)"
timeout 60 $NTLB generate-synth --out datasets/synth > /dev/null 2>&1
sed 's/^seeds = \[1, 2, 3\]/seeds = [1]/' configs/demo.toml > "$OUT/demo-gpu.toml"
timeout 150 $NTLB sweep "$OUT/demo-gpu.toml" --device cuda --results "$OUT/demo" > "$OUT/demo.txt" 2>&1; echo "rc=$?" >> "$OUT/demo.txt"

log "summary"
$PY - "$OUT" <<'PYEOF'
import json, os, sys, glob, csv
out = sys.argv[1]
def load(n):
    try: return json.load(open(os.path.join(out, n)))
    except Exception as e: return {"error": str(e)}
mm = load("matmul.json").get("matmul_tflops", {})
print("| check | result |\n|---|---|")
print(f"| GPU | {open(os.path.join(out,'gpu.txt')).read().strip()} |")
print(f"| PyTorch matmul TFLOP/s (f32 / tf32 / bf16) | {mm.get('f32',0):.1f} / {mm.get('tf32',0):.1f} / {mm.get('bf16',0):.1f} |")
for c in ["encode_text", "encode_image", "coop_middle", "coop_end"]:
    for p in ["f32", "f16", "bf16"]:
        if not os.path.exists(os.path.join(out, f"parity_{c}_{p}.txt")): continue
        t = open(os.path.join(out, f"parity_{c}_{p}.txt")).read().splitlines()
        rows = [l for l in t if l and l[0].isalpha() and not l.startswith(("field", "rc=", "error"))]
        def rel(l):
            try: return float(l.split()[2])
            except Exception: return 0.0
        worst = max(rows, key=rel, default="")
        print(f"| parity {c} {p} | {t[-1]}; worst: {' '.join(worst.split()[:3])} |")
for p in ["f32", "bf16"]:
    e = load(f"encode_{p}.json")
    for r in e.get("rows", []):
        print(f"| encode {r['what']} {p} batch {r['batch']} | {r['per_second']:.0f} /s |")
    t = load(f"train_{p}.json")
    if "seconds_per_step" in t:
        print(f"| train step 1000 cls x 32 {p} | {t['seconds_per_step']:.2f} s, {t['gflops_per_second']/1000:.1f} TFLOP/s |")
    else:
        print(f"| train step {p} | {t} {open(os.path.join(out, f'train_{p}.err')).read()[-300:]} |")
ref = load("reference.json")
t100 = load("train100_f32.json")
if "seconds_per_step" in t100:
    print(f"| train step 100 cls x 32 f32 | {t100['seconds_per_step']:.2f} s, {t100['gflops_per_second']/1000:.1f} TFLOP/s |")
if "seconds_per_step" in ref:
    print(f"| original algorithm (PyTorch f32) 100 cls x 32 | {ref['seconds_per_step']:.2f} s |")
    if "seconds_per_step" in t100: print(f"| speed-up vs original (f32, 100 cls x 32) | {ref['seconds_per_step']/t100['seconds_per_step']:.1f}x |")
else:
    print(f"| original algorithm | {open(os.path.join(out,'reference.err')).read()[-300:]} |")
demo = os.path.join(out, "demo", "results.csv")
if os.path.exists(demo):
    rows = list(csv.DictReader(open(demo)))
    for r in rows:
        if r["method"] != "zero-shot" and r["dataset"] == "imagenet":
            print(f"| demo {r['method']} λ={r['lambda']} seed={r['seed']} imagenet top-1 | {float(r['top1']):.2f} |")
else:
    print(f"| demo | {open(os.path.join(out,'demo.txt')).read()[-300:]} |")
PYEOF
log "done"
