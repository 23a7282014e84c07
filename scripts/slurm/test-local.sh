#!/bin/bash
# End-to-end test of the Slurm path on a real single-node Slurm (Debian's slurm-wlm + munge,
# recipe in ../shared/notes/slurm-local.md): stand the cluster up in a scratch folder, submit a
# small demo-like sweep (synthetic world, committed models/synth-clip, 2 CoOp epochs) as one
# array task per job of its plan through scripts/slurm/submit.sh (array + dependent merge +
# report), wait by polling squeue/scontrol, and check that the merged table equals a
# single-machine run byte for byte and that each dataset was encoded once. Every count (jobs,
# shards, datasets) is read from the sweep's dry run, never written here. Every failure prints
# `FAIL: <what>` and exits non-zero. Stops only the daemons it started. CI runs it through
# crates/ntlb-cli/tests/slurm_local.rs.
#
#   scripts/slurm/test-local.sh            # needs root (the daemons run as root here)
#   INSTALL=1 scripts/slurm/test-local.sh  # apt-get install the packages first
#   KEEP=1 ...                             # keep the scratch folder for inspection
#   LAMBDAS="[0.0, 1.0]" ...               # another λ list for the sweep (default: the demo's)
set -Eeuo pipefail
# Whatever fails outside an explicit check still says what it was doing.
what="starting"
trap 'rc=$?; echo "FAIL: $what (line $LINENO: \`$BASH_COMMAND\` exited $rc)" >&2; exit $rc' ERR
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
NTLB=${NTLB:-$repo/target/release/ntlb}
export NTLB
[ -x "$NTLB" ] || { echo "FAIL: no ntlb binary at $NTLB (build first: cargo build --release -p ntlb-cli)" >&2; exit 2; }
if [ "${INSTALL:-0}" = 1 ]; then
  what="installing slurm-wlm and munge"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge
fi
for b in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
  command -v "$b" >/dev/null || { echo "FAIL: $b not found: INSTALL=1 $0 (Debian slurm-wlm, munge)" >&2; exit 2; }
done

B=$(mktemp -d /tmp/ntlb-slurm.XXXXXX)
chmod 755 "$B"
mkdir -p "$B"/{etc,munge,state,spool,run,log,work}
export SLURM_CONF=$B/etc/slurm.conf

stop_daemons() {
  # Only the daemons of this cluster: the pids in its own pid files, checked by name.
  for d in slurmd slurmctld munged; do
    f=$B/run/$d.pid
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = "$d" ]; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 50); do [ -d /proc/"$pid" ] || break; sleep 0.1; done
    fi
  done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $B"; else rm -rf "$B"; fi
}
trap stop_daemons EXIT

what="starting munged"
# munge: a private key, socket and pid file.
chmod 700 "$B/munge"
head -c 1024 /dev/urandom >"$B/munge/munge.key"
chmod 400 "$B/munge/munge.key"
munged --force --socket="$B/munge/munge.socket.2" --key-file="$B/munge/munge.key" \
  --log-file="$B/log/munged.log" --pid-file="$B/run/munged.pid" --seed-file="$B/munge/munged.seed"

what="writing slurm.conf"
host=$(hostname -s)
# Ports of this cluster only (another test cluster, or a real slurmd, may hold the defaults).
free_port() {
  local p
  for _ in $(seq 50); do
    p=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
  done
  return 1
}
ctld_port=$(free_port)
slurmd_port=$(free_port)
[ "$ctld_port" != "$slurmd_port" ] || slurmd_port=$((ctld_port + 1))
node=$(slurmd -C | head -1)
cat >"$SLURM_CONF" <<CONF
ClusterName=ntlbtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$B/munge/munge.socket.2
SlurmUser=root
SlurmdUser=root
StateSaveLocation=$B/state
SlurmdSpoolDir=$B/spool
SlurmctldPidFile=$B/run/slurmctld.pid
SlurmdPidFile=$B/run/slurmd.pid
SlurmctldLogFile=$B/log/slurmctld.log
SlurmdLogFile=$B/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
MailProg=/bin/true
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
$node NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
what="starting slurmctld and slurmd"
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF"
t0=$(date +%s.%N)
for _ in $(seq 300); do
  [ "$(sinfo -h -N -o %T 2>/dev/null | head -1)" = idle ] && break
  sleep 0.1
done
[ "$(sinfo -h -N -o %T | head -1)" = idle ] || { echo "FAIL: the node never became idle" >&2; tail "$B"/log/*.log >&2; exit 1; }
echo "slurm up in $(echo "$(date +%s.%N) - $t0" | bc) s: $(sinfo -h -o '%P %D %T %C')"

# A small demo-like sweep: the synthetic world, the committed tiny CLIP, zero-shot plus CoOp
# with the demo's λ list (or LAMBDAS), one seed, two epochs instead of fifty.
what="generating the synthetic world and the sweep"
W=$B/work
"$NTLB" generate-synth --out "$W/synth" >/dev/null
# One unreadable image: both runs must count it, and the batch log must name it.
valdir=$(find "$W/synth/imagenet" -mindepth 3 -maxdepth 3 -type d -path '*/val/*' | sort | head -1)
printf 'not a jpeg' >"$valdir/zz_unreadable.JPEG"
sed -e "s|^results = .*|results = \"$W/single\"|" \
  -e "s|^data_root = .*|data_root = \"$W/synth\"|" \
  -e "s|^checkpoint_root = .*|checkpoint_root = \"$repo/models\"|" \
  -e "s|\"datasets/synth/|\"$W/synth/|g" \
  -e "s|^classes = .*|classes = \"$W/synth/classnames.tsv\"|" \
  -e "s|^config = \"configs/|config = \"$repo/configs/|" \
  -e "s|^seeds = .*|seeds = [1]\nepochs = 2|" \
  ${LAMBDAS:+-e "s|^lambdas = .*|lambdas = $LAMBDAS|"} \
  configs/demo.toml >"$W/sweep.toml"

# Every count below comes from the plan: jobs (= array tasks = shards) and datasets.
what="reading the plan (ntlb sweep --dry-run)"
"$NTLB" sweep "$W/sweep.toml" --results "$W/single" --dry-run >"$W/plan.txt"
njobs=$(sed -n 's/^sweep `.*`: \([0-9]*\) jobs in all.*/\1/p' "$W/plan.txt")
ndatasets=$(grep -c '^  dataset ' "$W/plan.txt" || true)
[ -n "$njobs" ] && [ "$njobs" -gt 0 ] && [ "$ndatasets" -gt 0 ] || {
  echo "FAIL: cannot read the number of jobs and datasets from the dry run:" >&2
  cat "$W/plan.txt" >&2
  exit 1
}
echo "plan: $njobs jobs, $ndatasets datasets"

what="the single-machine run (log: $W/single.log)"
t0=$(date +%s)
"$NTLB" sweep "$W/sweep.toml" --results "$W/single" --log-every 5 >"$W/single.log" 2>&1 || {
  echo "FAIL: $what" >&2
  tail -20 "$W/single.log" >&2
  exit 1
}
echo "single-machine run: $(($(date +%s) - t0)) s"

what="submitting the array and its merge job"
t0=$(date +%s)
# --array=1-N: task ids start at 1, as on many clusters; shard = ID − MIN.
ARRAY_START=1 RESULTS=$W/cluster LOGS=$W/logs SBATCH_ARGS="--gres=none --cpus-per-task=1 --mem=500M --time=00:30:00" \
  MERGE_SBATCH_ARGS="--cpus-per-task=1 --mem=500M" \
  scripts/slurm/submit.sh "$W/sweep.toml" --log-every 5 | tee "$W/submit.out"
eval "$(grep '^ARRAY_JOB=' "$W/submit.out")"
what="waiting for array $ARRAY_JOB and merge job $MERGE_JOB"
for _ in $(seq 1800); do
  [ -z "$(squeue -h -j "$ARRAY_JOB,$MERGE_JOB" 2>/dev/null)" ] && break
  sleep 1
done
state() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
tasks=$(scontrol show job "$ARRAY_JOB" | tr ' ' '\n' | grep -c '^ArrayTaskId=' || true)
what="checking the cluster run"
echo "array $ARRAY_JOB: $tasks task records; merge job $MERGE_JOB: $(state "$MERGE_JOB" JobState) exit $(state "$MERGE_JOB" ExitCode) after $(($(date +%s) - t0)) s"
fail=0
logs=$(find "$W/logs" -name 'sweep-*.out' | wc -l)
[ "$logs" = "$njobs" ] || { echo "FAIL: $logs task logs for a plan of $njobs jobs" >&2; fail=1; }
for f in "$W"/logs/sweep-*.out; do
  grep -q '^[0-9]* job(s) run' "$f" || { echo "FAIL: $f did not finish:" >&2; tail -5 "$f" >&2; fail=1; }
done
[ "$(state "$MERGE_JOB" JobState)" = COMPLETED ] && [ "$(state "$MERGE_JOB" ExitCode)" = 0:0 ] || { echo "FAIL: merge + report job did not complete" >&2; cat "$W"/logs/merge-*.out >&2 || true; fail=1; }
[ -f "$W/cluster/report/summary.md" ] || { echo "FAIL: no report" >&2; fail=1; }
# Every task ran its own shard, each job of the plan exactly once.
shards=$(grep -ho '^shard [0-9]* of [0-9]*' "$W"/logs/sweep-*.out | sort -t' ' -k2,2n | tr '\n' ',' || true)
want=$(for i in $(seq 0 $((njobs - 1))); do printf 'shard %s of %s,' "$i" "$njobs"; done)
[ "$shards" = "$want" ] || { echo "FAIL: shards seen: $shards (want $want)" >&2; fail=1; }
ran=$(grep -ho '^[0-9]* job(s) run' "$W"/logs/sweep-*.out | awk '{s += $1} END {print s + 0}')
[ "$ran" = "$njobs" ] || { echo "FAIL: the tasks ran $ran jobs in all, the plan has $njobs" >&2; fail=1; }
# Batch logs: plain progress lines (items/s, ETA) and the unreadable image named.
grep -q 'items/s, elapsed .*, ETA' "$W"/logs/sweep-*.out || { echo "FAIL: no plain progress line in the task logs" >&2; fail=1; }
grep -q 'skipping unreadable image: .*zz_unreadable.JPEG' "$W"/logs/sweep-*.out || { echo "FAIL: the unreadable image is not named in a task log" >&2; fail=1; }
# One encoding per dataset across the tasks (they share the cache).
enc=$(wc -l <"$W/cluster/cache/encodings.log" 2>/dev/null || echo 0)
uniq_enc=$(cut -d' ' -f1 "$W/cluster/cache/encodings.log" 2>/dev/null | sort -u | wc -l)
echo "encodings in the shared cache: $enc lines, $uniq_enc distinct datasets; by pid: $(awk '{print $5}' "$W/cluster/cache/encodings.log" 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
[ "$enc" = "$ndatasets" ] && [ "$uniq_enc" = "$ndatasets" ] || { echo "FAIL: expected each of $ndatasets datasets encoded once" >&2; cat "$W/cluster/cache/encodings.log" >&2 || true; fail=1; }
# The merged table equals the single-machine table row for row (same keys, same numbers).
sort "$W/single/results.csv" >"$W/single.sorted"
sort "$W/cluster/results.csv" >"$W/cluster.sorted" 2>/dev/null || true
rows=$(($(wc -l <"$W/single.sorted") - 1))
[ "$rows" -gt 0 ] || { echo "FAIL: the single-machine table has no rows" >&2; fail=1; }
if cmp -s "$W/single.sorted" "$W/cluster.sorted"; then
  echo "merged table == single-machine table: $rows rows, byte for byte"
else
  echo "FAIL: merged table differs from the single-machine run:" >&2
  diff "$W/single.sorted" "$W/cluster.sorted" | head -20 >&2
  fail=1
fi
# A failing array (data not mounted) must cancel its merge job, not leave it pending.
what="submitting the failing array"
RESULTS=$W/bad LOGS=$W/bad-logs SBATCH_ARGS="--gres=none --cpus-per-task=1 --mem=500M --time=00:05:00" \
  MERGE_SBATCH_ARGS="--cpus-per-task=1 --mem=500M" \
  scripts/slurm/submit.sh "$W/sweep.toml" --data "$W/not-mounted" >"$W/submit-bad.out"
eval "$(grep '^ARRAY_JOB=' "$W/submit-bad.out")"
what="waiting for the failing array $ARRAY_JOB and its merge job $MERGE_JOB"
for _ in $(seq 120); do
  [ -z "$(squeue -h -j "$ARRAY_JOB,$MERGE_JOB" 2>/dev/null)" ] && break
  sleep 1
done
what="checking the failing array"
echo "failing array $ARRAY_JOB: merge job $MERGE_JOB $(state "$MERGE_JOB" JobState) ($(state "$MERGE_JOB" Reason))"
[ "$(state "$MERGE_JOB" JobState)" = CANCELLED ] || { echo "FAIL: the merge job of a failed array was not cancelled" >&2; fail=1; }
grep -q 'not-mounted' "$W"/bad-logs/sweep-*.out || { echo "FAIL: the failed tasks' logs do not name the missing folder" >&2; fail=1; }
if [ "$fail" = 0 ]; then echo "PASS: $njobs-task array, merged table == single-machine table ($rows rows), $ndatasets datasets encoded once, a failing array cancels its merge"; else
  echo "logs:" >&2
  tail -n 20 "$W"/logs/*.out >&2 || true
  echo "FAIL: see the lines above" >&2
  exit 1
fi
