#!/usr/bin/env bash
# Deliberate breakages of the method, each applied to a scratch copy of the repository; for
# each, `ntlb regress` must FAIL (exit 1). Prints which are caught and exits non-zero if any
# is missed or no longer applies (a mutant whose code moved must be updated, not skipped).
#
#   scripts/mutants.sh            # all mutants
#   scripts/mutants.sh a c        # some
#
# SCRATCH (default /tmp/ntlb-mutants) keeps its own target/ between runs; on the first run it
# is seeded from this checkout's target/ when that exists, so only the ntlb crates rebuild.
set -euo pipefail
REPO="$(cd "$(dirname "$0")/.." && pwd)"
SCRATCH="${SCRATCH:-/tmp/ntlb-mutants}"
mkdir -p "$SCRATCH"
if [ ! -d "$SCRATCH/target" ] && [ -d "$REPO/target" ]; then
  cp -a "$REPO/target" "$SCRATCH/target"
fi

# name@@file@@search text@@replacement (python string literals, applied once, must match once)
MUTANTS=(
  "a@@crates/ntlb-prompt/src/train.rs@@'                &r.grad_ctx,\n                &mut state.momentum,\n                lr,'@@'                &r.grad_ctx,\n                &mut state.momentum,\n                0.0 * lr,'"
  "b@@crates/ntlb-prompt/src/objective.rs@@'objective = objective + (s * wts).sum() * loss.expl_weight;'@@'objective = objective + (s * wts).sum().detach() * loss.expl_weight;'"
  "c@@crates/ntlb-prompt/src/prompt.rs@@'.map(|p| f32::from(p >= self.name_start && p < self.name_start + nl))'@@'.map(|p| f32::from(p >= 1 && p < self.name_start && nl > 0))'"
  "d@@crates/ntlb-data/src/variants.rs@@'                let f = ImageFolder::read(&dir, &sub)?;\n                EvalSet::from_folder(kind, f)'@@'                let f = ImageFolder::read(&dir, &sub)?;\n                let mut s = EvalSet::from_folder(kind, f);\n                let n = s.classes.len();\n                s.items.iter_mut().for_each(|(_, l)| *l = (*l + 1) % n);\n                s'"
  "e@@crates/ntlb-eval/src/zeroshot.rs@@'    l2_normalize(stacked.mean_dim(0).squeeze_dim(0))'@@'    stacked.mean_dim(0).squeeze_dim(0)'"
  "f@@crates/ntlb-prompt/src/relevance.rs@@'            (rows * mask).sum_dim(2).reshape([b, k]) / counts'@@'            (rows * mask).sum_dim(2).reshape([b, k]) / (counts * 0.0 + 1.0)'"
)
declare -A WHAT=(
  [a]="the optimiser never updates the context"
  [b]="the explainability term is dropped from the gradient"
  [c]="the score is read at the context positions instead of the class name"
  [d]="-A/-R labels shifted by one"
  [e]="template ensemble without renormalisation"
  [f]="name_score = mean sums the name's relevance instead of averaging it"
)
# A fresh copy of the sources per run, every file touched: cargo decides by mtime, and a copy
# with older mtimes than a previous mutant's build would be taken as up to date.
rm -rf "$SCRATCH/src"
mkdir -p "$SCRATCH/src"
tar -C "$REPO" --exclude=./target --exclude=./target-tch --exclude=./.git --exclude='./results' --exclude=./datasets/synth -cf - . | tar -C "$SCRATCH/src" -xf -
mkdir -p "$SCRATCH/src/results" && cp -r "$REPO/results/baselines" "$SCRATCH/src/results/"
find "$SCRATCH/src" -type f -exec touch {} +
want=("$@")
results=()
status=0
for m in "${MUTANTS[@]}"; do
  name="${m%%@@*}"; rest="${m#*@@}"
  file="${rest%%@@*}"; rest="${rest#*@@}"
  search="${rest%%@@*}"; replace="${rest#*@@}"
  if [ ${#want[@]} -gt 0 ] && [[ ! " ${want[*]} " =~ " $name " ]]; then continue; fi
  echo "== mutant $name: ${WHAT[$name]}"
  cp "$SCRATCH/src/$file" "$SCRATCH/pristine"
  python3 - "$SCRATCH/src/$file" "$search" "$replace" <<'PY'
import ast, sys
path, search, replace = sys.argv[1], ast.literal_eval(sys.argv[2]), ast.literal_eval(sys.argv[3])
text = open(path).read()
if text.count(search) != 1:
    sys.exit(f"mutant does not apply: {search!r} occurs {text.count(search)} times in {path}")
open(path, "w").write(text.replace(search, replace))
PY
  (cd "$SCRATCH/src" && CARGO_TARGET_DIR="$SCRATCH/target" cargo build --release -q -p ntlb-cli)
  set +e
  (cd "$SCRATCH/src" && "$SCRATCH/target/release/ntlb" regress --results "$SCRATCH/results/regress-$name") >"$SCRATCH/mutant-$name.log" 2>&1
  rc=$?
  set -e
  # Restore by rewriting (a fresh mtime, so the next build sees the change back).
  cat "$SCRATCH/pristine" >"$SCRATCH/src/$file"
  if [ $rc -eq 1 ]; then
    results+=("$name caught   (${WHAT[$name]}): $(grep -c '^REGRESSION' "$SCRATCH/mutant-$name.log") failed checks, e.g. $(grep -m1 '^REGRESSION' "$SCRATCH/mutant-$name.log" | cut -c1-160)")
  else
    results+=("$name MISSED   (${WHAT[$name]}): regress exited $rc, log $SCRATCH/mutant-$name.log")
    status=1
  fi
done
echo
printf '%s\n' "${results[@]}"
exit $status
