#!/usr/bin/env bash
# A real single-node Slurm on localhost, in a private directory, for tests and demos.
#
#   eval "$(slurm/local-cluster.sh start)"   # munged, slurmctld, slurmd, slurmrestd (JWT); prints exports
#   slurm/local-cluster.sh status            # which daemons run, with their pids
#   slurm/local-cluster.sh stop              # cancels jobs, stops every daemon it started
#   slurm/local-cluster.sh kill-node NAME    # several nodes: kill -9 all that runs on node NAME
#   slurm/local-cluster.sh revive-node NAME  # several nodes: start node NAME's slurmd again
#   slurm/local-cluster.sh restart-controller [SECONDS]  # stops slurmctld, stays down SECONDS (default 0),
#                                            # starts it again on its saved state (jobs survive)
#
# `start` prints ONLY `export` lines on stdout (SLURM_CONF, SLURM_JWT, SLURMRESTD_URL); progress
# goes to stderr. It is idempotent: a healthy cluster with the same settings is reused (with a
# fresh token); anything else is stopped and started anew. Debian 12's slurm-wlm 22.05 is enough
# (REST API v0.0.38); missing packages are installed with apt-get. Accounting is off (no slurmdbd).
#
# Settings (environment):
#   SCTRIAL_SLURM_VERSION          22.05 (the host's Debian 12 packages, default) or 24.11 (Debian 13's,
#                                  in a chroot under /var/tmp/sctrial-slurm-roots: slurm/lib/debian13.sh;
#                                  `start` then also prints PATH with its client commands; one node only)
#   SCTRIAL_SLURM_DIR              private directory (default /tmp/sctrial-slurm)
#   SCTRIAL_SLURM_MAX_ARRAY_SIZE   the controller's MaxArraySize (default 1001, Slurm's default)
#   SCTRIAL_SLURM_TOKEN_LIFESPAN   seconds the printed SLURM_JWT stays valid (default 86400)
#   SCTRIAL_SLURM_NODES            compute nodes (default 1: one slurmd on 127.0.0.1). With 2 or more,
#                                  each is a host of its own (network and UTS namespaces on a private
#                                  bridge; root only): see slurm/lib/nodes.sh. `start` then also
#                                  prints SCTRIAL_SLURM_NODES.
#   SCTRIAL_SLURM_NODE_CPUS, SCTRIAL_SLURM_NODE_MEMORY_MB  what each of those nodes offers (2, 8192; the reduce job asks 4096 MB)
#
# Everything listens on 127.0.0.1 only (on the nodes' private bridge with several nodes), on ports
# found free at start. munged runs with its own key and socket in the directory, so a system munge
# (if any) is neither used nor disturbed.
set -euo pipefail

DIR="${SCTRIAL_SLURM_DIR:-/tmp/sctrial-slurm}"
MAX_ARRAY_SIZE="${SCTRIAL_SLURM_MAX_ARRAY_SIZE:-1001}"
TOKEN_LIFESPAN="${SCTRIAL_SLURM_TOKEN_LIFESPAN:-86400}"
CONF="$DIR/etc/slurm.conf"
MUNGE_SOCKET="$DIR/munge/munge.socket"
# Every daemon (and so every slurmstepd) carries this variable; `stop` finds stragglers by it.
MARKER="SCTRIAL_LOCAL_SLURM=$DIR"

log() { echo "local-cluster: $*" >&2; }
die() { echo "local-cluster: error: $*" >&2; exit 1; }

case "$MAX_ARRAY_SIZE" in ''|*[!0-9]*) die "SCTRIAL_SLURM_MAX_ARRAY_SIZE must be a positive integer, not '$MAX_ARRAY_SIZE'";; esac
case "$TOKEN_LIFESPAN" in ''|*[!0-9]*) die "SCTRIAL_SLURM_TOKEN_LIFESPAN must be a number of seconds, not '$TOKEN_LIFESPAN'";; esac
[ "$MAX_ARRAY_SIZE" -ge 1 ] || die "SCTRIAL_SLURM_MAX_ARRAY_SIZE must be at least 1"

# A SLURM_JWT from an earlier `eval "$(… start)"` (this cluster's or another's) would make this
# script's commands and daemons authenticate with it: slurmctld then refuses to start ("AuthType
# change requires restart") and another cluster's token is refused. Only the caller uses the token.
unset SLURM_JWT

# Every daemon starts through here, in a subshell it replaces: `(daemon_exec [--node NAME] COMMAND...)`.
# COMMAND carries this cluster's marker; with --node it runs as that compute node (slurm/lib/nodes.sh).
# For Slurm 24.11 it runs inside the version's root (IN_ROOT, below).
daemon_exec() {
  if [ "${1:-}" = --node ]; then local node="$2"; shift 2; nodes_exec "$node" env "$MARKER" "$@"; fi
  exec "${IN_ROOT[@]}" env "$MARKER" "$@"
}

# --- Slurm version -------------------------------------------------------------------------------
# `stop` and `status` act on the version the directory's cluster was started with. For 24.11,
# IN_ROOT prefixes every daemon and munge command (run inside the chroot), and the client commands
# (sinfo, scontrol, squeue, scancel) are the root's, through the wrappers in $DIR/bin.
# shellcheck source=lib/debian13.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/debian13.sh"
VERSION="${SCTRIAL_SLURM_VERSION:-22.05}"
case "${1:-}" in start) ;; *) [ -n "${SCTRIAL_SLURM_VERSION:-}" ] || VERSION="$(cat "$DIR/run/version" 2>/dev/null || echo 22.05)";; esac
IN_ROOT=()
case "$VERSION" in
  22.05) ;;
  24.11) IN_ROOT=("$ROOT_EXEC"); export PATH="$DIR/bin:$PATH" ;;
  *) die "SCTRIAL_SLURM_VERSION must be 22.05 or 24.11, not '$VERSION'" ;;
esac
# -------------------------------------------------------------------------------------------------

# --- several compute nodes (SCTRIAL_SLURM_NODES >= 2) ----------------------------------------------
# shellcheck source=lib/nodes.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib/nodes.sh"
# Where slurmrestd listens: on the nodes' bridge when there are several.
rest_addr() { if nodes_multi; then nodes_bridge_addr; else echo 127.0.0.1; fi; }
# ----------------------------------------------------------------------------------------------------

ensure_packages() {
  if [ "$VERSION" = 24.11 ]; then
    ! nodes_multi || die "Slurm 24.11 runs one node only (SCTRIAL_SLURM_NODES=$NODES): its chroot is not set up for the nodes' namespaces"
    root_ensure
    command -v curl >/dev/null || die "curl is missing on this machine"
    return
  fi
  local missing=()
  command -v munged >/dev/null || missing+=(munge)
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null || missing+=(slurm-wlm)
  command -v slurmrestd >/dev/null || missing+=(slurmrestd)
  # auth/jwt lives in its own package, only recommended by the others.
  dpkg-query -W -f='${Status}' slurm-wlm-jwt-plugin 2>/dev/null | grep -q "install ok installed" || missing+=(slurm-wlm-jwt-plugin)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -eq 0 ] && return
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  log "installing ${missing[*]}"
  # Another apt run (a colleague's install) may hold the lock: wait for it rather than fail.
  $sudo apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${missing[@]}" >/dev/null
}

pid_of() {  # pid_of NAME: the live pid recorded for a daemon, or nothing
  local file="$DIR/run/$1.pid" pid
  [ -s "$file" ] || return 1
  pid="$(tr -dc 0-9 <"$file")"
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -qz "^$MARKER\$" "/proc/$pid/environ" 2>/dev/null || return 1
  echo "$pid"
}

port_is_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {  # a port nobody listens on, not among the ones already chosen ($@)
  local port tries=0
  while :; do
    port=$((20000 + RANDOM % 30000))
    tries=$((tries + 1))
    [ $tries -lt 200 ] || die "no free port found on 127.0.0.1"
    case " $* " in *" $port "*) continue;; esac
    port_is_free "$port" && { echo "$port"; return; }
  done
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds="$1" what="$2"; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.5
  done
  log "$what"
}

# What a running cluster must match to be reused: the settings and this script's own text.
settings() {
  echo "version=$VERSION max_array_size=$MAX_ARRAY_SIZE script=$(cksum <"${BASH_SOURCE[0]}") lib=$(cksum <"$(dirname "${BASH_SOURCE[0]}")/lib/debian13.sh")"
  if nodes_multi; then echo "nodes=$NODES cpus=$NODE_CPUS memory=$NODE_MEMORY_MB lib=$(cksum <"$(dirname "${BASH_SOURCE[0]}")/lib/nodes.sh")"; fi
}

write_config() {
  local node ctld_port slurmd_port rest_port hw
  node="$(hostname -s)"
  ctld_port="$(free_port)"
  slurmd_port="$(free_port "$ctld_port")"
  rest_port="$(free_port "$ctld_port" "$slurmd_port")"
  # `slurmd -C` reads the real CPUs, sockets, cores, threads and memory of this machine.
  hw="$("${IN_ROOT[@]}" slurmd -C | sed -n 's/^NodeName=[^ ]* //p')"
  [ -n "$hw" ] || die "slurmd -C did not describe this machine"
  cat >"$CONF" <<EOF
# Generated by slurm/local-cluster.sh; rewritten at every fresh start.
ClusterName=sctrial
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# A requeued job (node failure, preemption) waits cred_expire seconds before it may start again:
# 20 s here rather than Slurm's default 120.
AuthInfo=cred_expire=20,socket=$MUNGE_SOCKET
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$DIR/etc/jwt.key
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# Memory is enforced without cgroups: the step is polled every 2 s and killed over its --mem
# (OUT_OF_MEMORY), as sites without cgroup memory limits do.
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=task=2
JobAcctGatherParams=OverMemoryKill
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
# Start batch jobs as soon as resources free up (the default waits up to 3 s between array tasks).
SchedulerParameters=batch_sched_delay=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Without a default, every job would take the whole node's memory and tasks would run one by one.
DefMemPerCPU=256
MaxArraySize=$MAX_ARRAY_SIZE
ReturnToService=2
KillWait=5
MinJobAge=300
MailProg=/bin/true
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=$node $hw State=UNKNOWN
# Jobs in 'urgent' preempt those in 'debug', which Slurm requeues (tests follow a preempted run).
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP PriorityTier=1
PartitionName=urgent Nodes=ALL MaxTime=INFINITE State=UP PriorityTier=2 PreemptMode=OFF
EOF
  nodes_rewrite_config
  echo "$rest_port" >"$DIR/etc/slurmrestd.port"
  settings >"$DIR/etc/settings"
}

start_munge() {
  if pid_of munged >/dev/null; then return; fi
  [ -s "$DIR/munge/munge.key" ] || { dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none; chmod 0400 "$DIR/munge/munge.key"; }
  rm -f "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  (daemon_exec munged --force --socket="$MUNGE_SOCKET" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" --seed-file="$DIR/munge/munged.seed" \
    ) </dev/null >>"$DIR/log/munged.out" 2>&1 || die "munged did not start; see $DIR/log/munged.log"
  wait_for 20 "munged answers on $MUNGE_SOCKET" "${IN_ROOT[@]}" sh -c "munge -n -S '$MUNGE_SOCKET' | unmunge -S '$MUNGE_SOCKET'" \
    || die "munged does not answer; see $DIR/log/munged.log"
}

node_idle() { [ "$(sinfo --noheader --format=%t 2>/dev/null | tr -d ' *')" = idle ]; }

rest_ping() {  # the token goes to curl on stdin, never on a command line others can read
  local token="$1" port
  port="$(cat "$DIR/etc/slurmrestd.port")"
  printf 'X-SLURM-USER-NAME: %s\nX-SLURM-USER-TOKEN: %s\n' "$(id -un)" "$token" |
    curl -fsS --noproxy '*' -m 5 -H @- "http://$(rest_addr):$port/slurm/v0.0.38/ping" >/dev/null 2>&1 ||
  printf 'X-SLURM-USER-NAME: %s\nX-SLURM-USER-TOKEN: %s\n' "$(id -un)" "$token" |
    curl -fsS --noproxy '*' -m 5 -H @- "http://$(rest_addr):$port/openapi/v3" >/dev/null 2>&1
}

new_token() {
  local line
  line="$(scontrol token lifespan="$TOKEN_LIFESPAN")" || die "scontrol token failed (is auth/jwt enabled?)"
  echo "${line#SLURM_JWT=}"
}

all_running() {
  local d
  for d in munged slurmctld slurmrestd; do pid_of "$d" >/dev/null || return 1; done
  if nodes_multi; then nodes_all_running; else pid_of slurmd >/dev/null; fi
}

cmd_start() {
  ensure_packages
  export SLURM_CONF="$CONF"
  if [ -s "$CONF" ] && all_running && [ "$(cat "$DIR/etc/settings" 2>/dev/null)" = "$(settings)" ]; then
    log "already running in $DIR"
  else
    if [ -d "$DIR/run" ]; then cmd_stop; fi
    mkdir -p "$DIR"
    chmod 0700 "$DIR"
    rm -rf "$DIR/state" "$DIR/spool"
    mkdir -p "$DIR/etc" "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
    chmod 0700 "$DIR/munge"
    echo "$VERSION" >"$DIR/run/version"
    [ "$VERSION" = 22.05 ] || { root_up; root_provide_libraries; }
    nodes_up
    write_config
    [ -s "$DIR/etc/jwt.key" ] || { dd if=/dev/urandom of="$DIR/etc/jwt.key" bs=32 count=1 status=none; chmod 0600 "$DIR/etc/jwt.key"; }
    start_munge
    log "starting slurmctld"
    # shellcheck disable=SC2046  # nothing, or "--node ctld" (slurm/lib/nodes.sh)
    (daemon_exec $(nodes_ctld_exec) slurmctld -i -f "$CONF") </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld did not start; see $DIR/log/slurmctld.log"
    wait_for 60 "slurmctld answers" scontrol ping || die "slurmctld does not answer; see $DIR/log/slurmctld.log"
    if nodes_multi; then
      nodes_start_all
    else
      log "starting slurmd"
      (daemon_exec slurmd -f "$CONF" -N "$(hostname -s)") </dev/null >>"$DIR/log/slurmd.out" 2>&1 || die "slurmd did not start; see $DIR/log/slurmd.log"
      wait_for 90 "node $(hostname -s) is idle" node_idle || die "the node did not become idle; see $DIR/log/slurmd.log and $DIR/log/slurmctld.log"
    fi
    local port plugins
    port="$(cat "$DIR/etc/slurmrestd.port")"
    # Without slurmdbd the accounting plugins (dbv0.0.x, slurmdbd) refuse to load: take the others
    # (22.05 prefixes each line with "slurmrestd: ", 24.11 does not).
    plugins="$(SLURMRESTD_SECURITY=disable_user_check "${IN_ROOT[@]}" slurmrestd -f "$CONF" -s list 2>&1 |
      sed -n 's|^\(slurmrestd: \)\{0,1\}\(openapi/[^ ]*\)$|\2|p' | grep -v db | paste -sd, -)"
    [ -n "$plugins" ] || die "slurmrestd lists no OpenAPI plugin"
    log "starting slurmrestd on $(rest_addr):$port"
    # slurmrestd refuses to run as root without disable_user_check; SLURM_JWT=daemon makes it
    # forward each client's token to slurmctld (auth/jwt) instead of acting as itself.
    (
      cd "$DIR"
      daemon_exec env SLURM_JWT=daemon SLURMRESTD_SECURITY=disable_user_check \
        setsid slurmrestd -f "$CONF" -a rest_auth/jwt -s "$plugins" "$(rest_addr):$port" \
        </dev/null >>"$DIR/log/slurmrestd.log" 2>&1
    ) &
    echo $! >"$DIR/run/slurmrestd.pid"
  fi
  local token
  token="$(new_token)"
  wait_for 60 "slurmrestd answers" rest_ping "$token" || die "slurmrestd does not answer; see $DIR/log/slurmrestd.log"
  printf "export SLURM_CONF='%s'\n" "$CONF"
  printf "export SLURM_JWT='%s'\n" "$token"
  printf "export SLURMRESTD_URL='http://%s:%s'\n" "$(rest_addr)" "$(cat "$DIR/etc/slurmrestd.port")"
  if nodes_multi; then printf "export SCTRIAL_SLURM_NODES='%s'\n" "$NODES"; fi
  [ "$VERSION" = 22.05 ] || printf "export PATH='%s':\"\$PATH\"\n" "$DIR/bin"
}

marked_pids() {  # every process that carries this cluster's marker (daemons, slurmstepd)
  local p
  for p in /proc/[0-9]*; do
    grep -qz "^$MARKER\$" "$p/environ" 2>/dev/null && echo "${p#/proc/}"
  done
  return 0
}

cmd_stop() {
  export SLURM_CONF="$CONF"
  if pid_of slurmctld >/dev/null && { pid_of slurmd >/dev/null || nodes_any_slurmd; }; then
    # Cancel jobs while slurmd can still end their processes cleanly.
    if [ -n "$(squeue --noheader --format=%i 2>/dev/null)" ]; then
      log "cancelling jobs"
      squeue --noheader --format=%F | sort -u | xargs -r scancel --quiet 2>/dev/null || true
      wait_for 15 "jobs ended" sh -c '[ -z "$(squeue --noheader --states=RUNNING,COMPLETING --format=%i)" ]' || true
    fi
  fi
  local d pid
  for d in slurmrestd slurmd slurmctld munged; do
    [ "$d" != slurmctld ] || nodes_stop_slurmds
    if pid="$(pid_of "$d")"; then
      log "stopping $d ($pid)"
      kill "$pid" 2>/dev/null || true
    fi
  done
  local deadline=$((SECONDS + 15)) left
  while left="$(marked_pids)"; [ -n "$left" ]; do
    if [ $SECONDS -ge $deadline ]; then
      log "killing $(echo $left)"
      kill -9 $left 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.3
  done
  root_down   # 24.11: ends the chroot's mount namespace, and with it every mount
  rm -f "$DIR"/run/*.pid "$DIR/run/version" "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"
  nodes_down
  [ -z "$(marked_pids)" ] || die "processes survived: $(marked_pids | tr '\n' ' ')"
  log "stopped"
}

cmd_status() {
  local d pid down=0
  local daemons=(munged slurmctld slurmd slurmrestd)
  if nodes_multi; then daemons=(munged slurmctld slurmrestd); fi
  for d in "${daemons[@]}"; do
    if pid="$(pid_of "$d")"; then
      echo "$d running (pid $pid)"
    else
      echo "$d stopped"
      down=1
    fi
  done
  if nodes_multi; then
    export SLURM_CONF="$CONF"
    nodes_status
    nodes_all_running || down=1
  fi
  if [ "$VERSION" = 24.11 ]; then
    if pid="$(root_ns_pid)"; then echo "root $ROOT in mount namespace of pid $pid"; else echo "root namespace closed"; down=1; fi
  fi
  if [ $down -eq 0 ]; then
    echo "Slurm $VERSION"
    echo "SLURM_CONF=$CONF"
    echo "SLURMRESTD_URL=http://$(rest_addr):$(cat "$DIR/etc/slurmrestd.port")"
    echo "MaxArraySize=$(sed -n 's/^MaxArraySize=//p' "$CONF")"
    [ "$VERSION" = 22.05 ] || echo "PATH=$DIR/bin:\$PATH"
  fi
  return $down
}

cmd_restart_controller() {
  local down="${1:-0}" pid
  case "$down" in ''|*[!0-9]*) die "restart-controller: SECONDS must be a whole number, not '$down'";; esac
  export SLURM_CONF="$CONF"
  pid="$(pid_of slurmctld)" || die "slurmctld is not running (start the cluster first)"
  log "stopping slurmctld ($pid); it saves its state in $DIR/state"
  kill "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    [ $SECONDS -lt $deadline ] || die "slurmctld ($pid) did not stop within 30 s"
    sleep 0.2
  done
  sleep "$down"
  log "starting slurmctld on its saved state"
  (daemon_exec $(nodes_ctld_exec) slurmctld -i -f "$CONF") </dev/null >>"$DIR/log/slurmctld.out" 2>&1 || die "slurmctld did not start; see $DIR/log/slurmctld.log"
  wait_for 60 "slurmctld answers" scontrol ping || die "slurmctld does not answer; see $DIR/log/slurmctld.log"
}

case "${1:-}" in
  start) cmd_start ;;
  restart-controller) shift; cmd_restart_controller "$@" ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  kill-node) [ $# -eq 2 ] || die "usage: $0 kill-node NAME"; export SLURM_CONF="$CONF"; nodes_kill "$2" ;;
  revive-node) [ $# -eq 2 ] || die "usage: $0 revive-node NAME"; export SLURM_CONF="$CONF"; nodes_revive "$2" ;;
  *) echo "usage: $0 start|stop|status|restart-controller [SECONDS]|kill-node NAME|revive-node NAME" >&2; exit 2 ;;
esac
