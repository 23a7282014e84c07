#!/usr/bin/env bash
# Runs the `run:` commands of .github/workflows/gpu.yml's check and regression steps as GitHub
# runs them (`bash --noprofile --norc -eo pipefail`, the workflow's `shell: bash`), with the
# GPU-only pieces stubbed, and requires each deliberate breakage to fail its step and the clean
# control to pass. With --regress it also reruns the demo regression on the CPU against a
# baseline with one top-1 moved by 10 points (a few minutes; needs target/release/ntlb).
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The step's command exactly as the workflow has it.
step_cmd() {
  python3 - "$1" <<'PY'
import re, sys
text = open(".github/workflows/gpu.yml").read()
m = re.search(r"- name: " + re.escape(sys.argv[1]) + r"\n\s+run: (.+)\n", text)
if not m:
    sys.exit(f"no step named {sys.argv[1]!r} with a one-line run: in gpu.yml")
print(m.group(1))
PY
}
grep -q "shell: bash" .github/workflows/gpu.yml || { echo "FAIL: gpu.yml does not run its steps with shell: bash"; exit 1; }
check=$(step_cmd "GPU parity, throughput, demo")
regress=$(step_cmd "Regression on the GPU device")

fails=0
expect() { # expect <pass|fail> <what> <env...>
  local want=$1 what=$2; shift 2
  local rc=0
  env "$@" bash --noprofile --norc -eo pipefail -c "$check" > "$tmp/log" 2>&1 || rc=$?
  if { [ "$want" = pass ] && [ $rc -ne 0 ]; } || { [ "$want" = fail ] && [ $rc -eq 0 ]; }; then
    echo "FAIL: $what: the step exited $rc, expected to $want"; sed 's/^/    /' "$tmp/log"; fails=$((fails + 1))
  else
    echo "ok: $what (exit $rc)"
  fi
}
stub() { # stub <name> <exit> <summary lines>
  printf '#!/usr/bin/env bash\nprintf "%%s\\n" %s\nexit %s\n' "$3" "$2" > "$tmp/$1.sh"
}
stub clean 0 "'| check | result |' '| parity coop_middle f32 | rc=0; worst: x |'"
stub exits1 1 "'| check | result |' '| parity coop_middle f32 | rc=1; worst: x |'"
stub hidden 0 "'| check | result |' '| parity coop_middle f32 | rc=1; worst: x |'"
stub silent 0 ""
common=(MAKE=true OUT="$tmp/out")
expect pass "clean check (control)" "${common[@]}" GPU_CHECK="$tmp/clean.sh"
rm -rf "$tmp/out"; expect fail "gpu-check.sh exits 1 behind tee" "${common[@]}" GPU_CHECK="$tmp/exits1.sh"
rm -rf "$tmp/out"; expect fail "an f32 parity miss in the summary, exit 0" "${common[@]}" GPU_CHECK="$tmp/hidden.sh"
rm -rf "$tmp/out"; expect fail "no summary at all" "${common[@]}" GPU_CHECK="$tmp/silent.sh"

rc=0
env GPU_BASELINE="$tmp/absent.csv" bash --noprofile --norc -eo pipefail -c "$regress" > "$tmp/log" 2>&1 || rc=$?
if [ $rc -eq 0 ]; then echo "FAIL: regression step passed without a GPU baseline"; fails=$((fails + 1)); else echo "ok: regression without a baseline (exit $rc)"; fi

if [ "${1:-}" = --regress ]; then
  python3 - results/baselines/demo.csv "$tmp/broken.csv" <<'PY'
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
r = next(r for r in rows if r["method"] == "zero-shot")
r["top1"] = str(float(r["top1"]) + 10.0)
w = csv.DictWriter(open(sys.argv[2], "w", newline=""), fieldnames=rows[0].keys()); w.writeheader(); w.writerows(rows)
PY
  rc=0
  env GPU_BASELINE="$tmp/broken.csv" NTLB_GPU=target/release/ntlb NTLB_DEVICE=cpu \
    bash --noprofile --norc -eo pipefail -c "$regress" > "$tmp/log" 2>&1 || rc=$?
  if [ $rc -eq 0 ]; then echo "FAIL: regression step passed against a broken baseline"; fails=$((fails + 1)); else echo "ok: regression against a broken baseline (exit $rc): $(grep -m1 REGRESSION "$tmp/log" || tail -1 "$tmp/log")"; fi
fi
[ $fails -eq 0 ] || { echo "$fails check(s) failed"; exit 1; }
echo "every step fails on what it checks"
