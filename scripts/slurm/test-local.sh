#!/bin/bash
# End-to-end test of the Slurm path on a real single-node Slurm (Debian's slurm-wlm + munge,
# recipe in ../shared/notes/slurm-local.md): stand the cluster up in a scratch folder, submit a
# small demo-like sweep (synthetic world, committed models/synth-clip, 2 CoOp epochs) as an
# array of 3 through scripts/slurm/submit.sh (array + dependent merge + report), wait by polling
# squeue/scontrol, and check that the merged table equals a single-machine run row for row and
# that each dataset was encoded once. Stops only the daemons it started.
#
#   scripts/slurm/test-local.sh            # needs root (the daemons run as root here)
#   INSTALL=1 scripts/slurm/test-local.sh  # apt-get install the packages first
#   KEEP=1 ...                             # keep the scratch folder for inspection
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
cd "$repo"
NTLB=${NTLB:-$repo/target/release/ntlb}
export NTLB
[ -x "$NTLB" ] || { echo "build first: cargo build --release -p ntlb-cli ($NTLB missing)" >&2; exit 2; }
if [ "${INSTALL:-0}" = 1 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm slurmctld slurmd slurm-client munge
fi
for b in munged slurmctld slurmd sbatch squeue scontrol sinfo; do
  command -v "$b" >/dev/null || { echo "$b not found: INSTALL=1 $0 (Debian slurm-wlm, munge)" >&2; exit 2; }
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

# munge: a private key, socket and pid file.
chmod 700 "$B/munge"
head -c 1024 /dev/urandom >"$B/munge/munge.key"
chmod 400 "$B/munge/munge.key"
munged --force --socket="$B/munge/munge.socket.2" --key-file="$B/munge/munge.key" \
  --log-file="$B/log/munged.log" --pid-file="$B/run/munged.pid" --seed-file="$B/munge/munged.seed"

host=$(hostname -s)
node=$(slurmd -C | head -1)
cat >"$SLURM_CONF" <<CONF
ClusterName=ntlbtest
SlurmctldHost=$host(127.0.0.1)
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
slurmctld -f "$SLURM_CONF" -i
slurmd -f "$SLURM_CONF"
t0=$(date +%s.%N)
for _ in $(seq 300); do
  [ "$(sinfo -h -N -o %T 2>/dev/null | head -1)" = idle ] && break
  sleep 0.1
done
[ "$(sinfo -h -N -o %T | head -1)" = idle ] || { echo "the node never became idle" >&2; tail "$B"/log/*.log >&2; exit 1; }
echo "slurm up in $(echo "$(date +%s.%N) - $t0" | bc) s: $(sinfo -h -o '%P %D %T %C')"

# A small demo-like sweep: the synthetic world, the committed tiny CLIP, zero-shot plus CoOp
# with λ = 0 and λ = 1 (three jobs), two epochs instead of fifty.
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
  configs/demo.toml >"$W/sweep.toml"

t0=$(date +%s)
"$NTLB" sweep "$W/sweep.toml" --results "$W/single" --log-every 5 >"$W/single.log" 2>&1
echo "single-machine run: $(($(date +%s) - t0)) s"

t0=$(date +%s)
# --array=1-3: task ids start at 1, as on many clusters; shard = ID − MIN.
ARRAY_START=1 RESULTS=$W/cluster LOGS=$W/logs SBATCH_ARGS="--gres=none --cpus-per-task=1 --mem=500M --time=00:30:00" \
  MERGE_SBATCH_ARGS="--cpus-per-task=1 --mem=500M" \
  scripts/slurm/submit.sh "$W/sweep.toml" --log-every 5 | tee "$W/submit.out"
eval "$(grep '^ARRAY_JOB=' "$W/submit.out")"
for _ in $(seq 1800); do
  [ -z "$(squeue -h -j "$ARRAY_JOB,$MERGE_JOB" 2>/dev/null)" ] && break
  sleep 1
done
state() { scontrol show job "$1" | tr ' ' '\n' | sed -n "s/^$2=//p" | head -1; }
tasks=$(scontrol show job "$ARRAY_JOB" | tr ' ' '\n' | grep -c '^ArrayTaskId=' || true)
echo "array $ARRAY_JOB: $tasks task records; merge job $MERGE_JOB: $(state "$MERGE_JOB" JobState) exit $(state "$MERGE_JOB" ExitCode) after $(($(date +%s) - t0)) s"
fail=0
for f in "$W"/logs/sweep-*.out; do
  grep -q '^[0-9]* job(s) run' "$f" || { echo "FAIL: $f did not finish:" >&2; tail -5 "$f" >&2; fail=1; }
done
[ "$(state "$MERGE_JOB" JobState)" = COMPLETED ] && [ "$(state "$MERGE_JOB" ExitCode)" = 0:0 ] || { echo "FAIL: merge + report job did not complete" >&2; cat "$W"/logs/merge-*.out >&2 || true; fail=1; }
[ -f "$W/cluster/report/summary.md" ] || { echo "FAIL: no report" >&2; fail=1; }
# Every task ran its own shard, each of the three jobs exactly once.
shards=$(grep -ho '^shard [0-9]* of 3' "$W"/logs/sweep-*.out | sort | tr '\n' ',')
[ "$shards" = "shard 0 of 3,shard 1 of 3,shard 2 of 3," ] || { echo "FAIL: shards seen: $shards" >&2; fail=1; }
# Batch logs: plain progress lines (items/s, ETA) and the unreadable image named.
grep -q 'items/s, elapsed .*, ETA' "$W"/logs/sweep-*.out || { echo "FAIL: no plain progress line in the task logs" >&2; fail=1; }
grep -q 'skipping unreadable image: .*zz_unreadable.JPEG' "$W"/logs/sweep-*.out || { echo "FAIL: the unreadable image is not named in a task log" >&2; fail=1; }
# One encoding per dataset across the three tasks (they share the cache).
enc=$(wc -l <"$W/cluster/cache/encodings.log" 2>/dev/null || echo 0)
uniq_enc=$(cut -d' ' -f1 "$W/cluster/cache/encodings.log" 2>/dev/null | sort -u | wc -l)
echo "encodings in the shared cache: $enc lines, $uniq_enc distinct datasets; by pid: $(awk '{print $5}' "$W/cluster/cache/encodings.log" 2>/dev/null | sort | uniq -c | tr -s ' ' | tr '\n' ';')"
[ "$enc" = 5 ] && [ "$uniq_enc" = 5 ] || { echo "FAIL: expected each of 5 datasets encoded once" >&2; cat "$W/cluster/cache/encodings.log" >&2 || true; fail=1; }
# The merged table equals the single-machine table row for row (same keys, same numbers).
sort "$W/single/results.csv" >"$W/single.sorted"
sort "$W/cluster/results.csv" >"$W/cluster.sorted" 2>/dev/null || true
rows=$(($(wc -l <"$W/single.sorted") - 1))
if cmp -s "$W/single.sorted" "$W/cluster.sorted"; then
  echo "merged table == single-machine table: $rows rows, byte for byte"
else
  echo "FAIL: merged table differs from the single-machine run:" >&2
  diff "$W/single.sorted" "$W/cluster.sorted" | head -20 >&2
  fail=1
fi
# A failing array (data not mounted) must cancel its merge job, not leave it pending.
RESULTS=$W/bad LOGS=$W/bad-logs SBATCH_ARGS="--gres=none --cpus-per-task=1 --mem=500M --time=00:05:00" \
  MERGE_SBATCH_ARGS="--cpus-per-task=1 --mem=500M" \
  scripts/slurm/submit.sh "$W/sweep.toml" --data "$W/not-mounted" >"$W/submit-bad.out"
eval "$(grep '^ARRAY_JOB=' "$W/submit-bad.out")"
for _ in $(seq 120); do
  [ -z "$(squeue -h -j "$ARRAY_JOB,$MERGE_JOB" 2>/dev/null)" ] && break
  sleep 1
done
echo "failing array $ARRAY_JOB: merge job $MERGE_JOB $(state "$MERGE_JOB" JobState) ($(state "$MERGE_JOB" Reason))"
[ "$(state "$MERGE_JOB" JobState)" = CANCELLED ] || { echo "FAIL: the merge job of a failed array was not cancelled" >&2; fail=1; }
grep -q 'not-mounted' "$W"/bad-logs/sweep-*.out || { echo "FAIL: the failed tasks' logs do not name the missing folder" >&2; fail=1; }
if [ "$fail" = 0 ]; then echo "PASS"; else
  echo "logs:" >&2
  tail -n 20 "$W"/logs/*.out >&2
  exit 1
fi
