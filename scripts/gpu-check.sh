#!/usr/bin/env bash
# The prepared GPU check (issue: GPU). Run from the repository root on a machine with an NVIDIA
# GPU and PyTorch, after `make gpu-pack` on the build machine put gpu/ntlb.xz (the `tch` build)
# and gpu/golden.tar.xz (the shared golden cases) in place. Prints one table; writes JSON to $OUT.
# Any crash, timeout or missing output fails the check (non-zero exit status); only the
# half-precision parity runs may miss their tolerance (exit 1) without failing it.
# Measured on an H200: 105 s with GPU_CHECK_E2E=0; the end-to-end run adds about 3 minutes (docs/gpu.md).
set -euo pipefail
OUT=${OUT:-results/gpu-check}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
START=$(date +%s)
log() { echo "[$(( $(date +%s) - START ))s] $*" >&2; }
need() { for f in "$@"; do [ -s "$f" ] || { echo "gpu-check: missing or empty output $f" >&2; exit 1; }; done; }

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
    rc=0
    timeout 120 $NTLB parity --case $G/$c.json --model $G/tiny-clip/openai.safetensors --tokenizer $G/tiny-clip/hf/tokenizer.json \
      --out "$OUT/parity_${c}_$p.json" --device cuda --precision $p --tolerance-scale $scale > "$OUT/parity_${c}_$p.txt" 2>&1 || rc=$?
    echo "rc=$rc" >> "$OUT/parity_${c}_$p.txt"
    # 0 = within tolerance, 1 = a tolerance miss, anything else (2 = error, 124 = timeout, a signal) fails.
    if [ $rc -ne 0 ] && { [ $p = f32 ] || [ $rc -ne 1 ]; }; then
      echo "gpu-check: parity $c $p exited $rc" >&2; tail -5 "$OUT/parity_${c}_$p.txt" >&2; exit 1
    fi
  done
done

log "bench encode (ViT-B/32, batch 256)"
for p in f32 bf16; do
  timeout 150 $NTLB bench encode --presets ViT-B/32 --batches 256 --reps 5 --device cuda --precision $p --no-torch --json > "$OUT/encode_$p.json" 2> "$OUT/encode_$p.err"
  need "$OUT/encode_$p.json"
done

log "bench train-step (vit-b-32, 1000 classes x 32): replicated vs shared (default) pass 1, each in its own process"
for p in f32 bf16 f16; do
  timeout 420 $NTLB bench train-step --preset vit-b-32 --classes 1000 --batch 32 --chunk 250 --reps 1 --device cuda --precision $p \
    --pass1 both --json > "$OUT/train_$p.json" 2> "$OUT/train_$p.err"
  need "$OUT/train_$p.json"
done

log "100 classes x 32, and the original algorithm in PyTorch at that size (it checks itself on the golden case first)"
timeout 200 $NTLB bench train-step --preset vit-b-32 --classes 100 --batch 32 --reps 2 --device cuda --pass1 both --json \
  > "$OUT/train100_f32.json" 2> "$OUT/train100_f32.err"
timeout 300 $PY scripts/bench_reference_step.py --preset vit-b-32 --classes 100 --batch 32 --reps 1 --device cuda --golden $G \
  > "$OUT/reference.json" 2> "$OUT/reference.err"
need "$OUT/train100_f32.json" "$OUT/reference.json"

# The end-to-end run takes minutes: GPU_CHECK_E2E=0 leaves it out where device time is short.
if [ "${GPU_CHECK_E2E:-1}" = 1 ]; then
log "end to end on generated data of ImageNet's shape: 1000 classes, one shot, 3 epochs of CoOp with lambda = 1 (bf16), eval on 10,000 images"
E2E="$OUT/e2e"
mkdir -p "$E2E/data/imagenet/images" "$E2E/ckpt"
$PY - "$E2E" <<'PYEOF'
# 64x64 PNGs (the pipeline resizes to 224) and a random ViT-B/32 in OpenAI's layout; nothing
# beyond torch (PNG and safetensors are written by hand).
import json, os, struct, sys, zlib, torch
root = sys.argv[1]
wnids = [l.split("\t")[0] for l in open("datasets/imagenet_classnames.tsv") if l.strip()]
assert len(wnids) == 1000, len(wnids)
def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))
g = torch.Generator().manual_seed(0)
for split, n in [("train", 1), ("val", 10)]:
    for wnid in wnids:
        d = os.path.join(root, "data/imagenet/images", split, wnid); os.makedirs(d, exist_ok=True)
        base = torch.randint(0, 256, (3,), generator=g)
        for i in range(n):
            img = (base + torch.randint(-40, 40, (64, 64, 3), generator=g)).clamp(0, 255).to(torch.uint8).numpy()
            png(os.path.join(d, f"{wnid}_{i}.png"), img)
W, V, E = 512, 768, 512
t = {}
def lin(p, o, i): t[p + ".weight"] = torch.randn(o, i) * i ** -0.5; t[p + ".bias"] = torch.zeros(o)
def ln(p, w): t[p + ".weight"] = torch.ones(w); t[p + ".bias"] = torch.zeros(w)
def blocks(prefix, w, n):
    for i in range(n):
        p = f"{prefix}transformer.resblocks.{i}."
        ln(p + "ln_1", w); ln(p + "ln_2", w)
        t[p + "attn.in_proj_weight"] = torch.randn(3 * w, w) * w ** -0.5; t[p + "attn.in_proj_bias"] = torch.zeros(3 * w)
        lin(p + "attn.out_proj", w, w); lin(p + "mlp.c_fc", 4 * w, w); lin(p + "mlp.c_proj", w, 4 * w)
t["token_embedding.weight"] = torch.randn(49408, W) * 0.02
t["positional_embedding"] = torch.randn(77, W) * 0.01
blocks("", W, 12); ln("ln_final", W)
t["text_projection"] = torch.randn(W, E) * W ** -0.5
t["logit_scale"] = torch.tensor(4.6052)
t["visual.conv1.weight"] = torch.randn(V, 3, 32, 32) * (3 * 32 * 32) ** -0.5
t["visual.class_embedding"] = torch.randn(V) * V ** -0.5
t["visual.positional_embedding"] = torch.randn(50, V) * V ** -0.5
ln("visual.ln_pre", V); ln("visual.ln_post", V); blocks("visual.", V, 12)
t["visual.proj"] = torch.randn(V, E) * V ** -0.5
header, blobs, off = {}, [], 0
for k in sorted(t):
    b = t[k].float().contiguous().numpy().tobytes()
    header[k] = {"dtype": "F32", "shape": list(t[k].shape), "data_offsets": [off, off + len(b)]}; blobs.append(b); off += len(b)
h = json.dumps(header).encode(); h += b" " * (-len(h) % 8)
with open(os.path.join(root, "ckpt/ViT-B-32.safetensors"), "wb") as f:
    f.write(struct.pack("<Q", len(h)) + h)
    for b in blobs: f.write(b)
PYEOF
cat > "$E2E/coop.toml" <<TOML
shots = 1
seed = 1
chunk = 250
[prompt]
n_ctx = 16
class_position = "middle"
allow_duplicate_names = true
[optim]
epochs = 3
TOML
cat > "$E2E/sweep.toml" <<TOML
name = "imagenet-shape"
results = "$E2E/results"
classes = "datasets/imagenet_classnames.tsv"
device = "cuda"
precision = "bf16"
batch_size = 256
data_root = "$E2E/data"
checkpoint_root = "$E2E/ckpt"
[[models]]
name = "ViT-B/32"
path = "ViT-B-32.safetensors"
tokenizer = "$PWD/$G/tiny-clip/hf/tokenizer.json"
[[datasets]]
kind = "imagenet"
root = "imagenet"
[zero_shot]
templates = "datasets/imagenet_templates_7.txt"
per_template = false
[coop]
train_root = "imagenet"
config = "$E2E/coop.toml"
lambdas = [1.0]
seeds = [1]
TOML
e2e_start=$(date +%s)
timeout 1200 $NTLB sweep "$E2E/sweep.toml" --device cuda --results "$E2E/results" > "$E2E/sweep.txt" 2>&1
echo "{\"seconds\": $(( $(date +%s) - e2e_start ))}" > "$E2E/time.json"
need "$E2E/results/results.csv"
fi

log "regression on the GPU device: the regression's rerun twice on cuda; run a becomes demo-cuda.csv (copy it to results/baselines/), run b is checked against it at zero tolerance (every move it prints is GPU run-to-run noise) and run a against the CPU baseline"
timeout 60 $NTLB generate-synth --out datasets/synth > /dev/null 2>&1
timeout 240 $NTLB regress --device cuda --results "$OUT/regress-a" --baseline results/baselines/demo.csv > "$OUT/regress-vs-cpu.txt" 2>&1 || true
need "$OUT/regress-a/results.csv"
$NTLB regress --write-baseline-from "$OUT/regress-a" --baseline "$OUT/demo-cuda.csv" > /dev/null
timeout 240 $NTLB regress --device cuda --results "$OUT/regress-b" --baseline "$OUT/demo-cuda.csv" --tol-top1 0 --tol-score 0 > "$OUT/regress-gpu-noise.txt" 2>&1 || true

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
def step_row(label, t, peak):
    for path in ["replicated", "shared"]:
        r = t[path]
        print(f"| {label}, pass 1 {path} | {r['seconds_per_step']:.2f} s, {r['modelled_gflops_per_second']/1000:.1f} TFLOP/s modelled "
              f"({100 * r['modelled_gflops_per_second'] / 1000 / peak:.0f} % of the matmul rate) |")
    print(f"| {label}, shared vs replicated | {t['speedup_shared_vs_replicated']:.2f}x |")
for p in ["f32", "bf16", "f16"]:
    step_row(f"train step 1000 cls x 32 {p}", load(f"train_{p}.json"), mm.get("bf16" if p != "f32" else "f32", 1.0))
t100 = load("train100_f32.json")
step_row("train step 100 cls x 32 f32", t100, mm.get("f32", 1.0))
ref = load("reference.json")
print(f"| original algorithm (PyTorch f32) 100 cls x 32 | {ref['seconds_per_step']:.2f} s (golden check {ref['golden_check']}) |")
print(f"| speed-up vs original (f32, 100 cls x 32), shared / replicated | {ref['seconds_per_step']/t100['shared']['seconds_per_step']:.1f}x / "
      f"{ref['seconds_per_step']/t100['replicated']['seconds_per_step']:.1f}x |")
e2e = load("e2e/time.json")
print(f"| end to end, 1000 classes, one shot, 3 epochs CoOp lambda=1 bf16 + zero-shot, 10k eval images | {e2e.get('seconds', 'not run')} s |")
for name, what in [("regress-vs-cpu.txt", "GPU rerun vs CPU baseline"), ("regress-gpu-noise.txt", "GPU rerun b vs rerun a, zero tolerance")]:
    path = os.path.join(out, name)
    lines = open(path).read().splitlines() if os.path.exists(path) else ["not run"]
    moved = [l for l in lines if l.startswith("REGRESSION")]
    print(f"| {what} | {lines[-1] if lines else ''}; {len(moved)} moved{': ' + ' / '.join(moved[:5]) if moved else ''} |")
PYEOF
log "done"
