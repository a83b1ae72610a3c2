#!/usr/bin/env bash
# Slurm scale benchmark (issue 14, "Scale of the controller"): a plan with thousands of small
# shards on a real Slurm (slurm/local-cluster.sh, single node on localhost), submitted as arrays
# split at MaxArraySize with a %K throttle. For each shard count it measures
#   plan      `sctrial-plan plan did … --shards N` wall time
#   submit    `sctrial-plan submit RUN --max-concurrent K --wait` (via sbatch): seconds until the
#             "submitted …" line (the submission), and the whole process (= the run's total wall
#             time: every shard, the reduce job, the polling) with its peak RSS
#   RPCs      slurmctld's RPC counters by message type (`sdiag`, deltas around the wait), and the
#             Slurm commands our client ran (a counting wrapper on PATH logs each squeue/scontrol/
#             sbatch/sacct call and how many lines squeue returned): polls, RPCs per poll
#   status    `sctrial-plan status RUN` while the run is running (REPEAT times, their RPCs
#             subtracted from the wait's) and on the finished run (REPEAT times): median s, peak RSS
#   reduce    the reduce job's own time (its log line) and `sctrial-plan reduce RUN` on the
#             finished run (REPEAT times): median s, peak RSS
#   rest      (REST=1; REST_SHARDS, default the largest N) `submit --via rest` wall time and RSS;
#             on that run, one poll's RPCs per client: `status` sends the same states() query a
#             --wait poll sends (REPEAT calls each via rest and via sbatch, sdiag deltas around each
#             block); then `cancel`. It first waits until the controller can take N more job
#             records (MaxJobCount counts every array task, and finished or cancelled ones stay
#             MinJobAge = 300 s here): submitted next to a finished 5,000-shard run, its last array
#             would be refused. SHARDS="" REST=1 runs this part alone.
# and writes bench/data/slurm_scale/summary.json and summary.md (bench/data is gitignored), and
# prints the table.
#
# Usage: bench/slurm_scale.sh            # SHARDS="500 5000"
#   SHARDS="500 5000"   shard counts, one run each: `plan did --shards N` over GENES genes
#   MAX_CONCURRENT=50   the arrays' %K
#   REPEAT=7            timed repetitions of status and reduce (medians reported)
#   REST=1              also time a submission via slurmrestd (0: skip)
#   GENES=5000 CELLS=2000   the synthetic input (bench/did_benchmark.py's generator, fixed seed,
#                       cached in bench/data/); GENES must be at least the largest shard count
#   OUT=bench/data/slurm_scale   where the measurements and summaries go
#   BIN_DIR=DIR         use sctrial-plan and sctrial-worker from DIR instead of building
#   SCALE_SLURM_DIR=/tmp/sct-scale   this benchmark's own cluster (SCTRIAL_SLURM_DIR), started
#                       here with MaxArraySize MAX_ARRAY_SIZE (default 1001) and stopped at exit
#                       (KEEP_CLUSTER=1 leaves it running)
#
# Each shard task asks for one CPU (--cpus-per-task 1), so a 2-core node runs two at a time: the
# run's wall time is the controller's and slurmd's per-task overhead, not the statistics. The
# polling interval is the product's (1 s doubling to 30 s), so the poll count grows with the run's
# wall time, not with the number of shards; each poll is one squeue (REQUEST_JOB_INFO and
# REQUEST_PARTITION_INFO), however many arrays; via rest one GET job/ID per array and the reducer.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

SHARDS=${SHARDS-"500 5000"}
K=${MAX_CONCURRENT:-50}
REPEAT=${REPEAT:-7}
REST=${REST:-1}
GENES=${GENES:-5000}
CELLS=${CELLS:-2000}
export SCTRIAL_SLURM_DIR=${SCALE_SLURM_DIR:-/tmp/sct-scale}
export SCTRIAL_SLURM_MAX_ARRAY_SIZE=${MAX_ARRAY_SIZE:-1001}
out=${OUT:-$root/bench/data/slurm_scale}
mkdir -p "$out"

log() { echo "slurm_scale: $*" >&2; }
now() { date +%s.%N; }

if [ -n "${BIN_DIR:-}" ]; then   # binaries built elsewhere (e.g. another --scratch-path)
  bin=$BIN_DIR
else
  swift build -c release >/dev/null   # sctrial-plan and the sctrial-worker its jobs start
  bin="$(swift build -c release --show-bin-path)"
fi
plan_bin="$bin/sctrial-plan"

# --- input: N genes, small (each shard is one gene or a few) --------------------------------------
venv=bench/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q -r bench/requirements.txt
fi
data="$root/bench/data/slurm_scale_${CELLS}x${GENES}.h5ad"
if [ ! -s "$data" ]; then
  log "generating $data"
  "$venv/bin/python" - "$data" "$CELLS" "$GENES" <<'EOF'
import sys
sys.path.insert(0, "bench")
from did_benchmark import write_file
write_file(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), 0.10, 20)
EOF
fi

# --- the cluster -----------------------------------------------------------------------------------
eval "$(slurm/local-cluster.sh start)"
[ "${KEEP_CLUSTER:-0}" = 1 ] || trap 'slurm/local-cluster.sh stop || true' EXIT
max_array=$(scontrol show config | sed -n 's/^MaxArraySize *= *//p')
log "cluster in $SCTRIAL_SLURM_DIR, MaxArraySize $max_array"

# --- a counting wrapper for the Slurm commands our client runs -------------------------------------
shim="$out/shim"
calls="$out/calls.log"
rm -rf "$shim"; mkdir -p "$shim"; : >"$calls"
for command in squeue sbatch scontrol sacct scancel; do
  real=$(command -v "$command")
  cat >"$shim/$command" <<EOF
#!/bin/bash
# Logs "time tag command lines" to $calls, then behaves as $real.
if [ "$command" = squeue ]; then
  output=\$("$real" "\$@"); status=\$?
  [ -z "\$output" ] || printf '%s\n' "\$output"
  printf '%s %s %s %s\n' "\$(date +%s.%N)" "\${SCT_SCALE_TAG:-none}" "$command" "\$(printf '%s' "\$output" | grep -c . || true)" >>"$calls"
  exit \$status
fi
printf '%s %s %s 0\n' "\$(date +%s.%N)" "\${SCT_SCALE_TAG:-none}" "$command" >>"$calls"
exec "$real" "\$@"
EOF
  chmod +x "$shim/$command"
done
tagged() {  # tagged TAG COMMAND...: runs with the wrapper first on PATH, its calls tagged
  local tag=$1; shift
  PATH="$shim:$PATH" SCT_SCALE_TAG=$tag "$@"
}
sdiag_snapshot() { sdiag >"$1"; }

timed() {  # timed FILE COMMAND...: appends "seconds peak_rss_kb status" to FILE
  local file=$1 t0 t1 status=0; shift
  t0=$(now)
  /usr/bin/time -f '%M' -o "$file.rss" "$@" >/dev/null 2>>"$file.err" || status=$?
  t1=$(now)
  echo "$(echo "$t1 - $t0" | bc -l) $(tail -n 1 "$file.rss") $status" >>"$file"
}

wait_idle() {  # until the node runs nothing of ours (cancelled submissions drained)
  local deadline=$((SECONDS + 120))
  while [ -n "$(squeue --noheader --states=RUNNING,COMPLETING --format=%i)" ] && [ $SECONDS -lt $deadline ]; do sleep 1; done
}

largest=0
for n in ${SHARDS}; do [ "$n" -gt "$largest" ] && largest=$n; done
[ "$GENES" -ge "$largest" ] || { log "GENES ($GENES) must be at least the largest shard count ($largest)"; exit 2; }

for n in $SHARDS; do
  dir="$out/n$n"
  run="$dir/run"
  rm -rf "$dir"; mkdir -p "$dir"
  log "N=$n: planning"
  timed "$dir/plan.times" "$plan_bin" plan did "$data" --out "$run" --visits pre,post --features all --shards "$n"
  shards=$(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["shards"]))' "$run/plan.json")

  wait_idle
  log "N=$n: submit --max-concurrent $K --wait ($shards shards)"
  sdiag_snapshot "$dir/sdiag.before"
  t0=$(now); echo "$t0" >"$dir/submit.start"
  ( tagged wait /usr/bin/time -v -o "$dir/submit.timev" "$plan_bin" submit "$run" --max-concurrent "$K" --cpus-per-task 1 --wait \
      2> >(while IFS= read -r line; do echo "$(now) $line"; done >"$dir/submit.stderr") ; echo $? >"$dir/submit.status" ) &
  waiter=$!
  until grep -q "submitted" "$dir/submit.stderr" 2>/dev/null || [ -s "$dir/submit.status" ]; do sleep 0.05; done
  # Status while running: once some shards are done, REPEAT calls; their RPCs are counted apart.
  sleep "${STATUS_AFTER:-15}"
  if [ ! -s "$dir/submit.status" ]; then
    sdiag_snapshot "$dir/sdiag.status.before"
    for _ in $(seq "$REPEAT"); do
      tagged status-running timed "$dir/status_running.times" "$plan_bin" status "$run"
    done
    tagged status-running "$plan_bin" status "$run" --json >"$dir/status_running.json" 2>/dev/null || true
    sdiag_snapshot "$dir/sdiag.status.after"
  fi
  wait "$waiter"
  t1=$(now); echo "$t1" >"$dir/submit.end"
  sdiag_snapshot "$dir/sdiag.after"
  log "N=$n: run ended (status $(cat "$dir/submit.status")) after $(echo "$t1 - $t0" | bc -l) s"

  log "N=$n: status and reduce on the finished run, $REPEAT times each"
  for _ in $(seq "$REPEAT"); do tagged status-finished timed "$dir/status_finished.times" "$plan_bin" status "$run"; done
  cp "$run/results.csv" "$dir/results.slurm.csv"
  for _ in $(seq "$REPEAT"); do timed "$dir/reduce.times" "$plan_bin" reduce "$run"; done
  cmp -s "$run/results.csv" "$dir/results.slurm.csv" && echo same >"$dir/reduce.same" || echo differ >"$dir/reduce.same"
  cat "$run"/logs/slurm-reduce-*.out >"$dir/reduce_job.log" 2>/dev/null || true
  cp "$run/slurm/jobs.json" "$dir/jobs.json"
  du -sb "$run/plan.json" "$run/slurm/jobs.json" "$run/parts" >"$dir/sizes"
done

if [ "$REST" = 1 ]; then
  n=${REST_SHARDS:-$largest}
  [ "$n" -gt 0 ] || n=5000
  rest_n=$n
  dir="$out/n$n"
  rest_run="$dir/rest-run"
  mkdir -p "$dir"
  rm -rf "$rest_run" "$dir"/submit_rest.* "$dir"/sdiag.poll_*
  "$plan_bin" plan did "$data" --out "$rest_run" --visits pre,post --features all --shards "$n" >/dev/null 2>&1
  wait_idle
  # Every array task counts against the controller's MaxJobCount until its record is purged
  # (MinJobAge after it ends): wait until this submission fits next to the runs above.
  max_jobs=$(scontrol show config | sed -n 's/^MaxJobCount *= *//p')
  deadline=$((SECONDS + 600))
  while records=$(squeue --noheader --array --states=all --format=%i | wc -l); [ $((records + n + 1)) -ge "$max_jobs" ]; do
    [ $SECONDS -lt $deadline ] || { log "the controller still holds $records job records (MaxJobCount $max_jobs)"; break; }
    log "waiting for job records to be purged: $records held, MaxJobCount $max_jobs"
    sleep 20
  done
  log "N=$n: submit --via rest, one poll's RPCs via rest and via sbatch, then cancel"
  timed "$dir/submit_rest.times" "$plan_bin" submit "$rest_run" --via rest --max-concurrent "$K" --cpus-per-task 1
  for via in rest sbatch; do
    sdiag_snapshot "$dir/sdiag.poll_$via.before"
    for _ in $(seq "$REPEAT"); do tagged "poll-$via" "$plan_bin" status "$rest_run" --via "$via" >/dev/null 2>&1; done
    sdiag_snapshot "$dir/sdiag.poll_$via.after"
  done
  cp "$rest_run/slurm/jobs.json" "$dir/jobs_rest.json" 2>/dev/null || true
  "$plan_bin" cancel "$rest_run" 2>/dev/null || true
  wait_idle
  rm -rf "$rest_run" 2>/dev/null || true   # a task cancelled late may still be writing its log
fi

summarised=$SHARDS
case " $SHARDS " in *" ${rest_n:-} "*) ;; *) summarised="$SHARDS ${rest_n:-}";; esac
python3 bench/slurm_scale_summary.py "$out" "$K" "$max_array" $summarised
