#!/usr/bin/env bash
# Smoke test of the `slurm` image on one machine, without Docker: runs inside ONE container of the
# image (docker/build-local.sh --slurm starts it with buildah) the cluster that compose.yaml would
# spread over four: slurmctld, slurmd c1 and c2, slurmrestd, all through the image's entrypoint.
# Each daemon gets its own hostname (UTS namespace); the names resolve to 127.0.0.1; the two
# slurmd differ only in port (6818, 6819) and spool directory. Then:
#
#   1. both nodes come up idle; `srun -N2 hostname` runs on c1 and c2;
#   2. as user sctrial: plan the example into /runs, `sbatch --wait --array=0` sctrial-worker;
#   3. slurmrestd with a JWT from `scontrol token`: ping, submit the same worker job over REST
#      (openapi v0.0.38), poll it to COMPLETED;
#   4. each job wrote the same files as the host's worker did for the same plan, byte for byte
#      (OUTPUTS lists them, relative to the run directory; EXPECTED_RUN holds the host's run).
#
#   smoke-test.sh EXPECTED_RUN OUTPUTS   (as root, with CAP_SYS_ADMIN, /data holding
#                                         trial_example.h5ad, /runs writable by sctrial)
#
# Everything runs in private PID/mount/UTS namespaces: when the script ends, every daemon ends.
# Traffic stays on 127.0.0.1 (ports 6817-6820). Every wait is bounded.
set -euo pipefail

expected=${1:?usage: smoke-test.sh EXPECTED_RUN OUTPUTS}
outputs=${2:?usage: smoke-test.sh EXPECTED_RUN OUTPUTS}
entry=/usr/local/sbin/sctrial-slurm-entrypoint
say() { echo "smoke: $*"; }
die() { echo "smoke: FAIL: $*" >&2; exit 1; }

if [ -z "${SCTRIAL_SMOKE_NS:-}" ]; then
  # PID 1 of a new PID namespace: the kernel ends all daemons with it.
  exec unshare --pid --fork --kill-child --mount --mount-proc --uts \
    env SCTRIAL_SMOKE_NS=1 bash "$0" "$@"
fi

work=$(mktemp -d /tmp/smoke.XXXXXX)
chmod 0755 "$work"
printf '127.0.0.1 localhost slurmctld c1 c2 slurmrestd\n' >"$work/hosts"
# The cluster's slurm.conf, with one change: c1 and c2 share an address here, so they get ports
# 6818 and 6819 and their own pid files.
sed -E -e 's|^(NodeName=)c\[1-2\](.*)$|\1c1\2 Port=6818\n\1c2\2 Port=6819|' \
       -e 's|^SlurmdPidFile=.*|SlurmdPidFile=/var/spool/slurmd/slurmd.pid|' \
       /etc/slurm/slurm.conf >"$work/slurm.conf"
grep -q '^NodeName=c2 .*Port=6819' "$work/slurm.conf" || die "could not derive the test slurm.conf"
mount --bind "$work/hosts" /etc/hosts
mount --bind "$work/slurm.conf" /etc/slurm/slurm.conf
hostname slurmctld

logs=/runs/smoke-logs
install -d -o sctrial -g sctrial /runs
rm -rf "$logs" /runs/smoke-sbatch /runs/smoke-rest
mkdir -p "$logs"
on_exit() {
  local rc=$?
  if [ "$rc" -ne 0 ]; then
    for f in "$logs"/*.log; do echo "---- $f"; tail -n 25 "$f"; done >&2
  fi
}
trap on_exit EXIT

same_outputs() {  # RUN: every file of OUTPUTS equal to the host's
  local f n=0
  while read -r f; do
    cmp -s "$1/$f" "$expected/$f" || die "$1/$f differs from the host's (or is missing)"
    n=$((n + 1))
  done <"$outputs"
  [ "$n" -gt 0 ] || die "no worker output listed in $outputs"
  echo "$n file(s) identical to the host's ($(tr '\n' ' ' <"$outputs"))"
}

wait_for() {  # SECONDS DESCRIPTION COMMAND…
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until timeout 10 "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
    sleep 1
  done
}

say "starting slurmctld"
"$entry" slurmctld >"$logs/slurmctld.log" 2>&1 &
wait_for 60 "slurmctld to answer" sh -c 'scontrol ping | grep -q UP'

mkdir -p /var/spool/slurmd
for node in c1 c2; do
  mkdir -p "$work/$node"
  say "starting slurmd $node"
  # shellcheck disable=SC2016  # positional parameters of the inner sh
  unshare --uts --mount --fork --kill-child sh -c \
    'hostname "$1"; mount --bind "$2" /var/spool/slurmd; exec "$3" slurmd' _ "$node" "$work/$node" "$entry" \
    >"$logs/slurmd-$node.log" 2>&1 &
done
# shellcheck disable=SC2016  # evaluated by sh at each try
wait_for 60 "c1 and c2 to be idle" sh -c '[ "$(sinfo -h -N -o "%N %t" | grep -c " idle")" -eq 2 ]'
sinfo -N -o '%N %P %t %c %m' | sed 's/^/smoke:   /'

hosts=$(timeout 60 runuser -u sctrial -- srun -N2 -t 1 hostname | sort | tr '\n' ' ')
[ "$hosts" = "c1 c2 " ] || die "srun -N2 hostname printed '$hosts', expected 'c1 c2'"
say "srun -N2 hostname: $hosts"

as_sctrial() { runuser -u sctrial -- "$@"; }

say "sbatch: plan, then sctrial-worker as array task 0"
as_sctrial sctrial-plan plan did /data/trial_example.h5ad --out /runs/smoke-sbatch --visits pre,post >/dev/null
timeout 180 runuser -u sctrial -- sbatch --wait --array=0 -t 5 -o /runs/smoke-sbatch/slurm-%A_%a.out \
  --wrap 'exec sctrial-worker /runs/smoke-sbatch' >"$logs/sbatch.log" 2>&1 ||
  { cat /runs/smoke-sbatch/slurm-*.out >&2 || true; die "sbatch job failed"; }
same=$(same_outputs /runs/smoke-sbatch)
say "sbatch job $(grep -o '[0-9]*' "$logs/sbatch.log" | head -n 1): $same"

say "slurmrestd with JWT"
SLURMRESTD_LISTEN=127.0.0.1:6820 "$entry" slurmrestd >"$logs/slurmrestd.log" 2>&1 &
token=$("$entry" token sctrial 600 2>>"$logs/token.log" | sed -n 's/^SLURM_JWT=//p')
[ -n "$token" ] || die "scontrol token gave no token"
api=http://127.0.0.1:6820/slurm/v0.0.38
rest() {  # METHOD PATH [JSON]
  curl -sS --max-time 10 -X "$1" -H "X-SLURM-USER-NAME: sctrial" -H "X-SLURM-USER-TOKEN: $token" \
    -H 'Content-Type: application/json' ${3:+--data "$3"} "$api$2"
}
wait_for 30 "slurmrestd to answer /ping" sh -c "curl -sf --max-time 2 -H 'X-SLURM-USER-NAME: sctrial' -H 'X-SLURM-USER-TOKEN: $token' $api/ping"
rest GET /ping | grep -q '"ping": *"UP"' || die "GET /ping: $(rest GET /ping)"
if curl -sf --max-time 5 -H "X-SLURM-USER-NAME: sctrial" -H "X-SLURM-USER-TOKEN: not-a-token" "$api/ping" >/dev/null; then
  die "slurmrestd accepted a bad token"
fi
say "GET /ping ok with the token, refused without"

as_sctrial sctrial-plan plan did /data/trial_example.h5ad --out /runs/smoke-rest --visits pre,post >/dev/null
body='{"script": "#!/bin/sh\nexec sctrial-worker /runs/smoke-rest\n",
       "job": {"name": "sctrial-rest", "array": "0", "time_limit": 5,
               "current_working_directory": "/runs/smoke-rest",
               "standard_output": "/runs/smoke-rest/slurm-%A_%a.out",
               "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin"}}}'
reply=$(rest POST /job/submit "$body")
job=$(grep -o '"job_id": *[0-9]*' <<<"$reply" | grep -o '[0-9]*$' | head -n 1)
[ -n "$job" ] || die "POST /job/submit: $reply"
state=""
for _ in $(seq 1 120); do
  state=$(rest GET "/job/$job" | grep -o '"job_state": *"[A-Z_]*"' | head -n 1 | grep -o '[A-Z_]*"$' | tr -d '"')
  case "$state" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY) break ;; esac
  sleep 1
done
[ "$state" = COMPLETED ] || { cat /runs/smoke-rest/slurm-*.out >&2 || true; die "REST job $job ended $state"; }
same=$(same_outputs /runs/smoke-rest)
say "REST job $job COMPLETED: $same"
say "PASS"
