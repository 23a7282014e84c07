#!/usr/bin/env bash
# The steps of .github/workflows/gpu.yml, one per argument, so that the workflow and a local run
# (scripts/ci/test-gpu-workflow.sh) execute the same commands. Every step fails on what it checks:
# pipefail keeps `tee` from hiding gpu-check.sh's status, the summary must exist before it is read,
# and grep's "file absent" (status 2) is a failure, not a pass.
#   check    build the device pack, run scripts/gpu-check.sh, fail on any f32 parity miss
#   regress  `ntlb regress --device cuda` against results/baselines/demo-cuda.csv (the GPU baseline)
# Overridable for the local run: MAKE, GPU_CHECK (the check script), NTLB_GPU (the tch binary),
# NTLB_DEVICE (the device of the regression), GPU_BASELINE (its baseline).
set -euo pipefail
cd "$(dirname "$0")/../.."
TORCH_PY=${TORCH_PY:-python3}
SHARED=${SHARED:-../shared}
MAKE=${MAKE:-make}
GPU_CHECK=${GPU_CHECK:-scripts/gpu-check.sh}
NTLB_GPU=${NTLB_GPU:-gpu/ntlb}
OUT=${OUT:-results/gpu-check}

torch_lib() { "$TORCH_PY" -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))'; }

case "${1:-}" in
check)
  $MAKE gpu-pack TORCH_PY="$TORCH_PY" SHARED="$SHARED"
  mkdir -p "$OUT"
  PYTHON="$TORCH_PY" OUT="$OUT" bash "$GPU_CHECK" | tee "$OUT/summary.md"
  if ! grep -q -E "^\| parity .* f32 \| rc=0" "$OUT/summary.md"; then
    echo "gpu-workflow: $OUT/summary.md lists no passing f32 parity case" >&2
    exit 1
  fi
  # gpu-check.sh already exits non-zero on an f32 miss; the summary is read again so that a
  # check script that stops enforcing it is still caught here.
  if grep -E "^\| parity .* f32 \| rc=[^0]" "$OUT/summary.md"; then
    echo "gpu-workflow: an f32 parity case missed its tolerance (above)" >&2
    exit 1
  fi
  ;;
regress)
  baseline=${GPU_BASELINE:-results/baselines/demo-cuda.csv}
  if [ ! -s "$baseline" ]; then
    echo "gpu-workflow: $baseline is missing: run scripts/gpu-check.sh on a GPU and commit its demo-cuda.csv (docs/gpu.md)" >&2
    exit 1
  fi
  if [ -z "${NTLB_DEVICE:-}" ]; then
    LD_LIBRARY_PATH="$(torch_lib):$PWD/gpu/lib:${LD_LIBRARY_PATH:-}"
    export LD_LIBRARY_PATH
  fi
  "$NTLB_GPU" regress --config configs/demo.toml --device "${NTLB_DEVICE:-cuda}" --baseline "$baseline"
  ;;
*)
  echo "usage: $0 check|regress" >&2
  exit 2
  ;;
esac
