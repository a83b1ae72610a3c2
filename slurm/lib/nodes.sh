# Several compute nodes on one machine, for slurm/local-cluster.sh (sourced, not run).
#
# With SCTRIAL_SLURM_NODES=N (N >= 2) the cluster is a controller plus N compute nodes node1..nodeN,
# each slurmd a host of its own: its own network namespace, joined by a veth pair to a bridge in the
# root namespace (a private 10.x.y.0/24 that no route or address on this machine covers yet; node i
# has .(10+i)), its own UTS namespace whose hostname is the node's name, its own spool directory,
# pid file and log (SlurmdSpoolDir/SlurmdPidFile/SlurmdLogFile with %n). slurmctld is a host of
# its own too, `ctld` at .2: slurmctld binds either to every address or to what its hostname
# resolves to (127.0.0.1 here), so in the root namespace it would either listen on the machine's
# external interfaces or be out of the nodes' reach. The root namespace has the bridge's .1, where
# slurmrestd listens and from where the client commands reach slurmctld. munged's socket is a
# file, so one munged serves every host; the filesystem is shared as it is.
#
# Everything made here is recorded in $DIR/run/nodes.net before it is made, and `nodes_down`
# removes exactly what that file names: the namespaces (after killing what runs in them), the veth
# pairs and the bridge. Names carry a tag derived from $DIR, so two clusters never share one.
#
# Needs root (ip netns, veth, bridge, nsenter, unshare). Expects from the caller: DIR, CONF, MARKER,
# log, die, wait_for, pid_of, daemon_exec.

NODES="${SCTRIAL_SLURM_NODES:-}"
# Without the variable, every command but `start` acts on the cluster as it was started.
if [ -z "$NODES" ] && [ "${1:-}" != start ]; then NODES="$(sed -n 's/^nodes=\([0-9]*\) .*/\1/p' "$DIR/etc/settings" 2>/dev/null)"; fi
NODES="${NODES:-1}"
case "$NODES" in ''|*[!0-9]*) die "SCTRIAL_SLURM_NODES must be a positive integer, not '$NODES'";; esac
[ "$NODES" -ge 1 ] && [ "$NODES" -le 50 ] || die "SCTRIAL_SLURM_NODES must be between 1 and 50, not $NODES"
# What each compute node offers the scheduler (the machine's real CPUs are shared by all nodes).
NODE_CPUS="${SCTRIAL_SLURM_NODE_CPUS:-2}"
NODE_MEMORY_MB="${SCTRIAL_SLURM_NODE_MEMORY_MB:-8192}"
case "$NODE_CPUS" in ''|*[!0-9]*|0) die "SCTRIAL_SLURM_NODE_CPUS must be a positive integer, not '$NODE_CPUS'";; esac
case "$NODE_MEMORY_MB" in ''|*[!0-9]*|0) die "SCTRIAL_SLURM_NODE_MEMORY_MB must be a positive integer, not '$NODE_MEMORY_MB'";; esac

NODES_NET="$DIR/run/nodes.net"
# A short tag for this cluster's interface and namespace names (interface names stop at 15 bytes).
NODES_TAG="$(printf '%05x' $(( $(printf '%s' "$DIR" | cksum | cut -d' ' -f1) % 1048576 )))"

nodes_multi() { [ "$NODES" -ge 2 ]; }

nodes_names() { local i; for ((i = 1; i <= NODES; i++)); do echo "node$i"; done; }

nodes_is_name() {  # nodes_is_name NAME: one of this cluster's compute nodes
  nodes_multi && [[ "$1" =~ ^node[0-9]+$ ]] && [ "${1#node}" -ge 1 ] && [ "${1#node}" -le "$NODES" ]
}

nodes_netns() { echo "sct-$NODES_TAG-$1"; }          # the network namespace of node NAME
nodes_bridge() { echo "sctb$NODES_TAG"; }
nodes_veth() {                                       # the root end of host NAME's veth pair
  if [ "$1" = ctld ]; then echo "sctv${NODES_TAG}c"; else echo "sctv$NODES_TAG${1#node}"; fi
}

nodes_subnet() {  # the recorded 10.a.b prefix
  sed -n 's/^subnet //p' "$NODES_NET" 2>/dev/null | head -n1
}

nodes_bridge_addr() { echo "$(nodes_subnet).1"; }
nodes_ctld_addr() { echo "$(nodes_subnet).2"; }
nodes_addr() {  # nodes_addr HOST: the address of ctld or of a compute node
  if [ "$1" = ctld ]; then nodes_ctld_addr; else echo "$(nodes_subnet).$((10 + ${1#node}))"; fi
}

nodes_subnet_free() {  # nodes_subnet_free 10.a.b: no route, address or other cluster covers 10.a.b.0/24
  local prefix="$1.0/24"
  [ -z "$(ip -4 route show table all to match "$prefix" 2>/dev/null | grep -v '^default' | grep -v '^broadcast\|^local 127\.')" ] &&
    [ -z "$(ip -4 route show table all root "$prefix" 2>/dev/null)" ] &&
    [ -z "$(ip -4 -o addr show to "$prefix" 2>/dev/null)" ]
}

nodes_pick_subnet() {  # a free 10.a.b, starting from one derived from the tag
  local seed=$((16#$NODES_TAG)) i a b
  for ((i = 0; i < 200; i++)); do
    a=$((100 + (seed / 256 + i * 13) % 150))
    b=$(((seed + i * 37) % 256))
    nodes_subnet_free "10.$a.$b" && { echo "10.$a.$b"; return; }
  done
  die "no free 10.x.y.0/24 found for the node network"
}

nodes_record() { echo "$*" >>"$NODES_NET"; }

# Makes the bridge and one namespace plus veth pair per host (ctld and the nodes); each is recorded
# before it is made.
nodes_up() {
  nodes_multi || return 0
  command -v nsenter >/dev/null && command -v unshare >/dev/null || die "nsenter and unshare (util-linux) are needed for several nodes"
  [ "$(id -u)" -eq 0 ] || die "SCTRIAL_SLURM_NODES=$NODES needs root (network namespaces, veth, bridge)"
  [ ! -s "$NODES_NET" ] || nodes_down
  local subnet bridge name ns veth
  subnet="$(nodes_pick_subnet)"
  bridge="$(nodes_bridge)"
  nodes_record "subnet $subnet"
  nodes_record "link $bridge"
  ip link add "$bridge" type bridge || die "cannot create the bridge $bridge"
  ip addr add "$subnet.1/24" dev "$bridge" || die "cannot give $bridge the address $subnet.1"
  ip link set "$bridge" up
  for name in ctld $(nodes_names); do
    ns="$(nodes_netns "$name")" veth="$(nodes_veth "$name")"
    nodes_record "netns $ns"
    ip netns add "$ns" || die "cannot create the network namespace $ns"
    nodes_record "link $veth"
    ip link add "$veth" type veth peer name eth0 netns "$ns" || die "cannot create the veth pair $veth"
    ip link set "$veth" master "$bridge" up
    ip -n "$ns" addr add "$(nodes_addr "$name")/24" dev eth0
    ip -n "$ns" link set lo up
    ip -n "$ns" link set eth0 up
  done
  log "slurmctld and $NODES nodes on $subnet.0/24 (bridge $bridge at $subnet.1)"
}

# Kills whatever runs in this cluster's namespaces, then removes the namespaces, veth pairs and
# bridge that nodes.net names, and nothing else.
nodes_down() {
  [ -s "$NODES_NET" ] || return 0
  local kind name pids
  while read -r kind name; do
    [ "$kind" = netns ] && [ -e "/run/netns/$name" ] || continue
    pids="$(ip netns pids "$name" 2>/dev/null | tr '\n' ' ')"
    [ -z "${pids// /}" ] || { log "killing what runs in $name: $pids"; kill -9 $pids 2>/dev/null || true; }
  done <"$NODES_NET"
  while read -r kind name; do
    case "$kind" in
      netns) [ ! -e "/run/netns/$name" ] || ip netns del "$name" 2>/dev/null || log "could not remove the namespace $name" ;;
      link) ! ip link show "$name" >/dev/null 2>&1 || ip link del "$name" 2>/dev/null || log "could not remove the link $name" ;;
    esac
  done < <(tac "$NODES_NET")   # veth pairs before the bridge they are attached to
  rm -f "$NODES_NET"
  log "removed the node network"
}

# The slurm.conf lines of a multi-node cluster replace the single node's: the controller as host
# ctld, one NodeName line per node, per-node slurmd files, and a short SlurmdTimeout so a lost node
# is noticed (and its batch jobs requeued, JobRequeue's default) within half a minute, and started
# again 20 s later rather than Slurm's default two minutes (cred_expire, set for every cluster). Every daemon is alone in
# its network namespace, so they bind to any address there (no CommunicationParameters).
nodes_rewrite_config() {
  nodes_multi || return 0
  local ctld nodes name tmp="$CONF.tmp"
  ctld="$(nodes_ctld_addr)"
  nodes="$(for name in $(nodes_names); do
    echo "NodeName=$name NodeAddr=$(nodes_addr "$name") NodeHostname=$name CPUs=$NODE_CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$NODE_CPUS ThreadsPerCore=1 RealMemory=$NODE_MEMORY_MB State=UNKNOWN"
  done)"
  NODE_LINES="$nodes" awk -v ctld="$ctld" -v dir="$DIR" -v count="$NODES" '
    /^SlurmctldHost=/ { $0 = "SlurmctldHost=ctld(" ctld ")" }
    /^CommunicationParameters=/ { next }
    /^SlurmdSpoolDir=/ { $0 = "SlurmdSpoolDir=" dir "/spool/%n" }
    /^SlurmdPidFile=/ { $0 = "SlurmdPidFile=" dir "/run/slurmd-%n.pid" }
    /^SlurmdLogFile=/ { $0 = "SlurmdLogFile=" dir "/log/slurmd-%n.log" }
    /^ReturnToService=/ { $0 = "ReturnToService=2" }
    /^NodeName=/ {
      print "# " count " compute nodes, each in its own network and UTS namespace (slurm/lib/nodes.sh)."
      print "SlurmdTimeout=10"
      print "SlurmdParameters=config_overrides"
      print ENVIRON["NODE_LINES"]
      next
    }
    { print }' "$CONF" >"$tmp" && mv "$tmp" "$CONF"
  grep -q "^NodeName=node1 " "$CONF" || die "could not write the node lines into $CONF"
}

# Replaces the current (sub)shell with COMMAND run as node NAME: inside its network namespace, in a
# UTS namespace of its own whose hostname is NAME (so `hostname` in a job names its node).
nodes_exec() {  # nodes_exec NAME COMMAND...
  local name="$1"; shift
  exec nsenter --net="/run/netns/$(nodes_netns "$name")" -- unshare --uts -- /bin/sh -c 'hostname "$0" && exec "$@"' "$name" "$@"
}

nodes_slurmd_pid() { pid_of "slurmd-$1"; }

nodes_start_slurmd() {  # nodes_start_slurmd NAME: slurmd of node NAME, through daemon_exec
  local name="$1"
  mkdir -p "$DIR/spool/$name"
  log "starting slurmd on $name ($(nodes_addr "$name"))"
  (daemon_exec --node "$name" slurmd -f "$CONF" -N "$name") </dev/null >>"$DIR/log/slurmd-$name.out" 2>&1 ||
    die "slurmd did not start on $name; see $DIR/log/slurmd-$name.log"
}

nodes_state() {  # nodes_state NAME: Slurm's compact state of the node (idle, alloc, down*, …)
  sinfo --noheader --nodes="$1" --format=%t 2>/dev/null | head -n1 | tr -d ' '
}

nodes_all_idle() {
  local name
  for name in $(nodes_names); do [ "$(nodes_state "$name")" = idle ] || return 1; done
}

nodes_start_all() {
  local name
  for name in $(nodes_names); do nodes_start_slurmd "$name"; done
  wait_for 90 "nodes $(nodes_names | paste -sd, -) are idle" nodes_all_idle ||
    die "the nodes did not become idle; see $DIR/log/slurmd-node*.log and $DIR/log/slurmctld.log"
}

nodes_all_running() {
  local name
  for name in $(nodes_names); do nodes_slurmd_pid "$name" >/dev/null || return 1; done
  for name in $(nodes_names); do [ -e "/run/netns/$(nodes_netns "$name")" ] || return 1; done
}

nodes_recorded() {  # the nodes whose slurmd left a pid file, whatever SCTRIAL_SLURM_NODES says now
  local file
  for file in "$DIR"/run/slurmd-*.pid; do
    [ -e "$file" ] || continue
    file="${file##*/slurmd-}"
    echo "${file%.pid}"
  done
}

nodes_any_slurmd() {
  local name
  for name in $(nodes_recorded); do nodes_slurmd_pid "$name" >/dev/null && return 0; done
  return 1
}

nodes_stop_slurmds() {
  local name pid
  for name in $(nodes_recorded); do
    if pid="$(nodes_slurmd_pid "$name")"; then
      log "stopping slurmd on $name ($pid)"
      kill "$pid" 2>/dev/null || true
    fi
  done
}

nodes_status() {  # one line per node: its slurmd, address and Slurm state
  local name pid state
  for name in $(nodes_names); do
    state="$(nodes_state "$name")"
    if pid="$(nodes_slurmd_pid "$name")"; then
      echo "$name slurmd running (pid $pid) at $(nodes_addr "$name"), Slurm state ${state:-unknown}"
    else
      echo "$name slurmd stopped at $(nodes_addr "$name"), Slurm state ${state:-unknown}"
    fi
  done
}

nodes_ctld_exec() {  # the prefix that makes slurmctld host ctld, as daemon_exec options
  if nodes_multi; then echo "--node ctld"; fi
}

nodes_require() {  # nodes_require NAME: dies unless NAME is a node of a running multi-node cluster
  nodes_multi || die "kill-node and revive-node need a multi-node cluster (SCTRIAL_SLURM_NODES >= 2)"
  nodes_is_name "$1" || die "'$1' is not a node of this cluster ($(nodes_names | paste -sd' ' -))"
  [ -e "/run/netns/$(nodes_netns "$1")" ] || die "node $1 has no namespace: is the cluster in $DIR running?"
}

# Losing a node: kill -9 everything in its namespace at once (slurmd, slurmstepd, the jobs), as a
# power cut would. slurmctld notices after SlurmdTimeout, marks it down and requeues its batch jobs.
nodes_kill() {
  local name="$1" ns pids
  nodes_require "$name"
  ns="$(nodes_netns "$name")"
  pids="$(ip netns pids "$ns" | tr '\n' ' ')"
  [ -n "${pids// /}" ] || die "nothing runs on $name"
  kill -9 $pids 2>/dev/null || true
  log "killed $name: $(echo $pids | wc -w) processes ($pids)"
}

# Brings a killed node back: a fresh slurmd, which ReturnToService=2 lets rejoin when it registers.
nodes_revive() {
  local name="$1" ns
  nodes_require "$name"
  ns="$(nodes_netns "$name")"
  ! nodes_slurmd_pid "$name" >/dev/null || die "slurmd already runs on $name"
  [ -z "$(ip netns pids "$ns")" ] || die "processes still run on $name: $(ip netns pids "$ns" | tr '\n' ' ')"
  nodes_start_slurmd "$name"
  wait_for 90 "node $name is back" sh -c "case \"\$(sinfo --noheader --nodes=$name --format=%t | tr -d ' ')\" in idle|mix|alloc) exit 0;; *) exit 1;; esac" ||
    die "node $name did not come back; see $DIR/log/slurmd-$name.log and $DIR/log/slurmctld.log"
}
