#!/usr/bin/env bash
# Entrypoint of the sctrial-plan `slurm` image (docker/Dockerfile, target slurm): one image for
# every container of docker/slurm/compose.yaml, the command names the role.
#
#   slurmctld        controller; creates the cluster's MUNGE key and JWT key on first start
#   slurmd           compute node (its hostname must be a NodeName of slurm.conf)
#   slurmrestd       REST API on :6820, JWT authentication, runs as the unprivileged slurmrest user
#   token USER [S]   print a JWT for USER valid S seconds (default 3600), for slurmrestd clients
#   help             this text
#   anything else    run as given (e.g. bash), after starting munged
#
# Every role first waits for the shared MUNGE key (volume at /etc/munge) and starts munged.
# Environment: SCTRIAL_KEY_WAIT seconds to wait for the key (default 120), SLURMRESTD_LISTEN
# (default 0.0.0.0:6820).
set -euo pipefail

role=${1:-help}
[ $# -eq 0 ] || shift

munge_key=/etc/munge/munge.key
jwt_key=/var/spool/slurmctld/jwt_hs256.key   # AuthAltParameters=jwt_key=… in slurm.conf
key_wait=${SCTRIAL_KEY_WAIT:-120}

log() { echo "sctrial-slurm[$role]: $*" >&2; }
die() { log "error: $*"; exit 1; }

usage() { sed -n '2,15s/^# \{0,1\}//p' "$0"; }

# 32 bytes for the JWT HS256 key, 1 KiB for MUNGE, from the kernel's CSPRNG.
random_file() {  # PATH BYTES OWNER MODE
  local tmp="$1.tmp.$$"
  (umask 077 && head -c "$2" /dev/urandom > "$tmp")
  chown "$3" "$tmp"
  chmod "$4" "$tmp"
  mv -f "$tmp" "$1"
}

setup_munge() {
  if [ "$role" = slurmctld ] && [ ! -s "$munge_key" ]; then
    log "creating the cluster's MUNGE key in the shared volume ($munge_key)"
    random_file "$munge_key" 1024 munge:munge 0400
  fi
  local waited=0
  while [ ! -s "$munge_key" ]; do
    [ "$waited" -lt "$key_wait" ] || die "no MUNGE key at $munge_key after ${key_wait}s: is the munge-key volume mounted and slurmctld started?"
    [ "$waited" -gt 0 ] || log "waiting for slurmctld to create $munge_key"
    sleep 1; waited=$((waited + 1))
  done
  # munged refuses a key that others can read, or a key directory others can write.
  chown munge:munge /etc/munge "$munge_key"
  chmod 0700 /etc/munge
  chmod 0400 "$munge_key"
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  if ! munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged
    local _
    for _ in $(seq 1 50); do
      munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return 0
      sleep 0.1
    done
    die "munged did not come up (see /var/log/munge/munged.log)"
  fi
}

case "$role" in
  help|-h|--help)
    usage
    exit 0
    ;;
  slurmctld)
    setup_munge
    install -d -o slurm -g slurm -m 0755 /var/spool/slurmctld
    if [ ! -s "$jwt_key" ]; then
      log "creating the JWT signing key $jwt_key"
      random_file "$jwt_key" 32 slurm:slurm 0600
    fi
    log "starting slurmctld"
    exec slurmctld -D "$@"
    ;;
  slurmd)
    setup_munge
    install -d -m 0755 /var/spool/slurmd
    grep -Eq "^[[:space:]]*NodeName=" /etc/slurm/slurm.conf || die "/etc/slurm/slurm.conf defines no NodeName"
    log "starting slurmd as node $(hostname -s)"
    exec slurmd -D "$@"
    ;;
  slurmrestd)
    setup_munge
    # slurmrestd reads SLURMRESTD_LISTEN itself (an address given as an argument as well would
    # be bound twice: "Address already in use").
    export SLURMRESTD_LISTEN=${SLURMRESTD_LISTEN:-0.0.0.0:6820}
    log "starting slurmrestd on $SLURMRESTD_LISTEN (JWT: headers X-SLURM-USER-NAME, X-SLURM-USER-TOKEN)"
    # SLURM_JWT=daemon: talk to slurmctld with each client's token (auth/jwt), not with MUNGE as
    # the daemon's own user; without it every request fails "Rejecting thread config token".
    export SLURM_JWT=daemon
    # -u/-g: serve requests as slurmrest (slurmrestd refuses to serve as root or SlurmUser).
    exec slurmrestd -a rest_auth/jwt -s openapi/v0.0.38 \
      -u "$(id -u slurmrest)" -g "$(id -g slurmrest)" "$@"
    ;;
  token)
    [ $# -ge 1 ] || die "usage: token USER [SECONDS]"
    setup_munge
    exec scontrol token username="$1" lifespan="${2:-3600}"
    ;;
  *)
    setup_munge
    exec "$role" "$@"
    ;;
esac
