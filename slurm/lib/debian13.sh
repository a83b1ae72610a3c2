# shellcheck shell=bash
# Slurm 24.11 from Debian 13 (trixie) in a chroot, for slurm/local-cluster.sh (sourced, not run).
#
# The root is built once with debootstrap and cached outside the repository (rebuilt when missing
# or when its recipe below changes). Every daemon of one cluster runs chrooted into it inside one
# private mount namespace, held open by a `sleep` process started by `root_up`: the bind mounts
# (/proc, /dev, /sys, a /run tmpfs and the host directories jobs need, at the same paths) exist only
# in that namespace, so the host's mount table never changes and the mounts vanish with the last
# process in it. Client commands reach the same namespace through wrapper scripts in $DIR/bin.
#
# Settings (environment):
#   SCTRIAL_SLURM_ROOTS   where roots are cached (default /var/tmp/sctrial-slurm-roots)
#   SCTRIAL_SLURM_MIRROR  the Debian mirror (default http://deb.debian.org/debian)
#   SCTRIAL_SLURM_BINDS   host directories bound into the root at the same path (space-separated;
#                         default: /tmp /work /opt/swift /root /var/tmp, the repository and the
#                         cluster directory; missing ones are skipped)
#   SCTRIAL_SLURM_ROOT_BINARIES  executables jobs will run, whose shared libraries the root must
#                         provide (default: sctrial-worker and sctrial-plan under the repository's
#                         .build/debug and .build/release)
#
# Needs root (debootstrap, unshare, nsenter, chroot); debootstrap is installed with apt if missing.

ROOTS="${SCTRIAL_SLURM_ROOTS:-/var/tmp/sctrial-slurm-roots}"
ROOT_SUITE=trixie
ROOT="$ROOTS/$ROOT_SUITE"
ROOT_MIRROR="${SCTRIAL_SLURM_MIRROR:-http://deb.debian.org/debian}"
# The daemons, the client commands, the JWT plugin and munge; curl for the health checks.
ROOT_PACKAGES=(slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin munge curl)
# The root's file recording the recipe it was built from (written last, so a partial build has none).
ROOT_STAMP=".sctrial-recipe"
# The holder of the mount namespace: "pid mount-namespace" of its `sleep`.
ROOT_NS_FILE="$DIR/run/rootns"
ROOT_CLIENT_COMMANDS=(sbatch squeue sacct scancel scontrol sinfo sdiag)
ROOT_EXEC="$DIR/libexec/in-root"

root_repo() { cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd; }

# What the cached root must match: the suite, mirror, packages and the code that builds and fills it.
root_recipe() {
  { echo "suite=$ROOT_SUITE mirror=$ROOT_MIRROR packages=${ROOT_PACKAGES[*]}"; declare -f root_build_into root_provide_libraries; } |
    cksum | cut -d' ' -f1
}

root_users() {  # pids whose root directory is $ROOT (a cluster running on it)
  local p
  for p in /proc/[0-9]*; do
    [ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
  done
  return 0
}

root_host_mounts() { findmnt -rn -o TARGET | grep -E "^$ROOT(\.new)?(/|$)" || true; }

root_build_into() {  # root_build_into DIRECTORY: debootstrap and the packages, in a private mount namespace
  local target="$1"
  # debootstrap and dpkg mount /proc and /sys in the target; in this namespace those mounts end with it.
  unshare --mount --propagation private -- bash -euo pipefail -c '
    target="$1" suite="$2" mirror="$3"; shift 3
    debootstrap --variant=minbase "$suite" "$target" "$mirror" >&2
    # No package may start a daemon while it is being installed.
    printf "#!/bin/sh\nexit 101\n" >"$target/usr/sbin/policy-rc.d"
    chmod 0755 "$target/usr/sbin/policy-rc.d"
    mount -t proc proc "$target/proc"
    mount --rbind /dev "$target/dev"
    cp /etc/resolv.conf "$target/etc/resolv.conf"
    chroot "$target" apt-get -o Acquire::Retries=3 update -qq >&2
    DEBIAN_FRONTEND=noninteractive chroot "$target" apt-get -o Acquire::Retries=3 install -y -qq \
      --no-install-recommends "$@" >/dev/null
    chroot "$target" apt-get clean
  ' root-build "$target" "$ROOT_SUITE" "$ROOT_MIRROR" "${ROOT_PACKAGES[@]}"
}

# Builds the root when it is missing or was built from another recipe.
root_ensure() {
  local recipe started
  [ "$(id -u)" -eq 0 ] || die "Slurm 24.11 runs in a chroot and needs root (debootstrap, unshare, nsenter, chroot)"
  recipe="$(root_recipe)"
  [ "$(cat "$ROOT/$ROOT_STAMP" 2>/dev/null)" = "$recipe" ] && return
  command -v debootstrap >/dev/null || {
    log "installing debootstrap"
    apt-get -o DPkg::Lock::Timeout=600 update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq debootstrap >/dev/null
  }
  mkdir -p "$ROOTS"
  exec 8>"$ROOTS/.lock"
  flock -w 1800 8 || die "another build of $ROOT holds $ROOTS/.lock"
  if [ "$(cat "$ROOT/$ROOT_STAMP" 2>/dev/null)" != "$recipe" ]; then
    local users mounts
    users="$(root_users)"
    [ -z "$users" ] || die "$ROOT must be rebuilt but processes run in it ($(echo $users)): stop that cluster first"
    mounts="$(root_host_mounts)"
    [ -z "$mounts" ] || die "$ROOT must be rebuilt but has mounts ($(echo $mounts)): unmount them first"
    started=$SECONDS
    log "building the Debian $ROOT_SUITE root in $ROOT (${ROOT_PACKAGES[*]}; once, about a minute)"
    rm -rf --one-file-system "$ROOT.new"
    root_build_into "$ROOT.new" || die "building the $ROOT_SUITE root failed (see the messages above)"
    echo "$recipe" >"$ROOT.new/$ROOT_STAMP"
    rm -rf --one-file-system "$ROOT"
    mv "$ROOT.new" "$ROOT"
    log "root built in $((SECONDS - started)) s"
  fi
  flock -u 8
  exec 8>&-
}

root_ns_pid() {  # the live holder of this cluster's namespace, or nothing
  local pid ns
  [ -s "$ROOT_NS_FILE" ] || return 1
  read -r pid ns <"$ROOT_NS_FILE" || return 1
  [ -n "$pid" ] && [ "$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)" = "$ns" ] || return 1
  echo "$pid"
}

root_binds() {  # the host directories bound into the root, parents before children
  local dirs
  if [ -n "${SCTRIAL_SLURM_BINDS:-}" ]; then
    dirs="$SCTRIAL_SLURM_BINDS"
  else
    dirs="/tmp /work /opt/swift /root /var/tmp $(root_repo) $DIR"
  fi
  local d
  for d in $dirs; do
    case "$d" in /) die "SCTRIAL_SLURM_BINDS: '/' cannot be bound into the root";; /*) ;; *) die "SCTRIAL_SLURM_BINDS: '$d' is not an absolute path";; esac
    [ -d "$d" ] && readlink -f "$d"
  done | sort -u | awk '{ for (i = 1; i <= n; i++) if (index($0 "/", seen[i] "/") == 1) next; seen[++n] = $0; print }'
}

in_ns() { nsenter --mount="/proc/$(root_ns_pid)/ns/mnt" -- "$@"; }

# Opens the namespace and mounts what the root needs: /proc, /dev, /sys, a fresh /run, the binds.
root_up() {
  root_ns_pid >/dev/null && return
  [ -d "$DIR/run" ] || die "root_up: $DIR/run is missing"
  setsid unshare --mount --propagation private -- sleep infinity </dev/null >/dev/null 2>&1 &
  local pid=$! ns deadline=$((SECONDS + 10))
  # unshare runs first, then execs sleep in the new namespace: wait until it has left ours.
  while ns="$(readlink "/proc/$pid/ns/mnt" 2>/dev/null)"; [ "$ns" = "$(readlink /proc/self/ns/mnt)" ] || [ "$(cat "/proc/$pid/comm" 2>/dev/null)" != sleep ]; do
    [ $SECONDS -lt $deadline ] && kill -0 "$pid" 2>/dev/null || die "could not open a mount namespace (unshare --mount)"
    sleep 0.1
  done
  echo "$pid $ns" >"$ROOT_NS_FILE"
  root_write_wrappers
  in_ns mount -t proc proc "$ROOT/proc"
  in_ns mount --rbind /dev "$ROOT/dev"
  in_ns mount --rbind /sys "$ROOT/sys"
  in_ns mount -t tmpfs -o mode=0755 tmpfs "$ROOT/run"
  local d
  while read -r d; do
    mkdir -p "$ROOT$d"
    in_ns mount --bind "$d" "$ROOT$d"
  done < <(root_binds)
  # Name resolution as on the host (this machine's name is the node's).
  cp /etc/hosts "$ROOT/etc/hosts"
  cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
  log "root namespace open (pid $pid): $(root_binds | paste -sd' ' -) bound into $ROOT"
}

# Runs a command inside the root, in the current directory (which must be visible there), with the
# caller's environment and standard input.
in_root() { "$ROOT_EXEC" "$@"; }

# Ends every process in the namespace (the caller has stopped the daemons): the mounts go with it.
root_down() {
  local pid ns p left deadline
  [ -s "$ROOT_NS_FILE" ] || return 0
  read -r pid ns <"$ROOT_NS_FILE" || true
  [ -n "${ns:-}" ] || { rm -f "$ROOT_NS_FILE"; return 0; }
  deadline=$((SECONDS + 10))
  while :; do
    left=""
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] && left="$left ${p#/proc/}"
    done
    [ -n "$left" ] || break
    if [ $SECONDS -ge $deadline ]; then
      log "killing what is left in the root's namespace:$left"
      kill -9 $left 2>/dev/null || true
      sleep 0.5
      deadline=$((SECONDS + 5))
      continue
    fi
    kill $left 2>/dev/null || true
    sleep 0.2
  done
  rm -f "$ROOT_NS_FILE"
  log "root namespace closed (its mounts are gone)"
}

# $ROOT_EXEC runs one command of the root in this cluster's namespace, in the caller's directory,
# with the caller's environment and standard input; nsenter and chroot exec, so its pid is the
# command's. The Slurm client commands in $DIR/bin are wrappers around it, for PATH.
root_write_wrappers() {
  local command nsenter chroot
  nsenter="$(command -v nsenter)" chroot="$(command -v chroot)"
  mkdir -p "$DIR/bin" "${ROOT_EXEC%/*}"
  cat >"$ROOT_EXEC.tmp" <<EOF
#!/bin/sh
# Generated by slurm/local-cluster.sh. Usage: in-root COMMAND [ARG...]: runs COMMAND of the Slurm 24.11
# root $ROOT in the mount namespace of the cluster in $DIR, in the current directory.
read -r pid ns <'$ROOT_NS_FILE' 2>/dev/null && [ "\$(readlink "/proc/\$pid/ns/mnt" 2>/dev/null)" = "\$ns" ] || {
  echo "\${1:-in-root}: the Slurm 24.11 cluster in $DIR is not running (SCTRIAL_SLURM_VERSION=24.11 slurm/local-cluster.sh start)" >&2
  exit 1
}
exec '$nsenter' --mount="/proc/\$pid/ns/mnt" -- '$chroot' '$ROOT' /bin/sh -c '
  cd "\$0" 2>/dev/null || { echo "\$1: the directory \$0 is not visible inside the Slurm 24.11 root (bind it with SCTRIAL_SLURM_BINDS)" >&2; exit 1; }
  # Inside the root the commands are the real ones: without this the wrappers would call themselves.
  PATH="\$(printf %s ":\$PATH:" | sed "s|:$DIR/bin:|:|g; s|^:||; s|:\\\$||")"
  exec "\$@"' "\$PWD" "\$@"
EOF
  chmod 0755 "$ROOT_EXEC.tmp"
  mv "$ROOT_EXEC.tmp" "$ROOT_EXEC"
  for command in "${ROOT_CLIENT_COMMANDS[@]}"; do
    printf '#!/bin/sh\n# Generated by slurm/local-cluster.sh: %s of Slurm 24.11 (%s).\nexec %s %s "$@"\n' \
      "$command" "$ROOT" "'$ROOT_EXEC'" "$command" >"$DIR/bin/$command.tmp"
    chmod 0755 "$DIR/bin/$command.tmp"
    mv "$DIR/bin/$command.tmp" "$DIR/bin/$command"
  done
}

root_binaries() {
  if [ -n "${SCTRIAL_SLURM_ROOT_BINARIES:-}" ]; then
    echo "$SCTRIAL_SLURM_ROOT_BINARIES" | tr ' ' '\n' | grep -v '^$'
    return 0
  fi
  local repo b
  repo="$(root_repo)"
  for b in "$repo"/.build/debug/sctrial-worker "$repo"/.build/debug/sctrial-plan \
           "$repo"/.build/release/sctrial-worker "$repo"/.build/release/sctrial-plan; do
    [ -x "$b" ] && readlink -f "$b"
  done
  return 0
}

root_missing_sonames() {  # sonames the executables, or the libraries copied for them, cannot find inside the root
  local b
  {
    for b in "$@"; do in_root ldd "$b" 2>/dev/null; done
    for b in "$ROOT"/usr/local/lib/*.so*; do [ -e "$b" ] && in_root ldd "/${b#"$ROOT"/}" 2>/dev/null; done
  } | awk '$2 == "=>" && $3 == "not" { print $1 }' | sort -u
}

host_library() {  # host_library SONAME BINARY...: where the host's loader finds SONAME for those executables
  local soname="$1" b path
  shift
  for b in "$@"; do
    path="$(ldd "$b" 2>/dev/null | awk -v s="$soname" '$1 == s && $2 == "=>" && $3 ~ /^\// { print $3; exit }')"
    [ -n "$path" ] && { echo "$path"; return 0; }
  done
  # A library that only a copied library needs: the host's loader cache knows it.
  ldconfig -p | awk -v s="$soname" '$1 == s && $NF ~ /^\// && /x86-64|64bit/ { print $NF; exit }'
}

# Makes the root able to run the executables jobs start (the host-built sctrial-worker and
# sctrial-plan). A library they need that the root has (glibc, libstdc++, libcurl, OpenSSL, zlib:
# the base of its own Slurm) is the root's; every other one (libhdf5_serial.so.103, which trixie
# does not have, and OpenBLAS, liblzf, libaec, libgfortran...) is the host's own file, copied to
# the root's /usr/local/lib: trixie's OpenBLAS 0.3.29 rounds differently from the host's 0.3.21 in
# the 16th digit of a DiD, and a job must compute what the local executor computes, byte for byte.
# Found with ldd in the root, repeated until nothing is missing; the copies are refreshed when the
# host's file changes (ROOT_HOST_LIBRARIES lists them with their origin).
ROOT_HOST_LIBRARIES="usr/local/lib/.sctrial-host-libraries"

root_provide_libraries() {
  local binaries missing soname path round=0 copied
  # Refresh copies whose host file changed since (an upgraded host package).
  if [ -s "$ROOT/$ROOT_HOST_LIBRARIES" ]; then
    while read -r soname path; do
      [ -f "$path" ] && ! cmp -s "$path" "$ROOT/usr/local/lib/$soname" && {
        cp -L "$path" "$ROOT/usr/local/lib/$soname"
        log "refreshed $soname in the root from $path"
      }
    done <"$ROOT/$ROOT_HOST_LIBRARIES"
  fi
  mapfile -t binaries < <(root_binaries)
  if [ ${#binaries[@]} -eq 0 ]; then
    log "note: no sctrial-worker or sctrial-plan built under $(root_repo)/.build: jobs may miss libraries in the root (build first, or set SCTRIAL_SLURM_ROOT_BINARIES)"
    return 0
  fi
  while missing="$(root_missing_sonames "${binaries[@]}")"; [ -n "$missing" ]; do
    round=$((round + 1))
    [ $round -le 8 ] || die "the root still lacks $(echo $missing) for ${binaries[*]}"
    copied=()
    mkdir -p "$ROOT/usr/local/lib"
    for soname in $missing; do
      path="$(host_library "$soname" "${binaries[@]}" "$ROOT"/usr/local/lib/*.so*)"
      [ -n "$path" ] || die "the root lacks $soname and this machine has no copy of it"
      path="$(readlink -f "$path")"
      cp -L "$path" "$ROOT/usr/local/lib/$soname"
      echo "$soname $path" >>"$ROOT/$ROOT_HOST_LIBRARIES"
      copied+=("$soname")
    done
    log "copied from this machine into the root's /usr/local/lib: ${copied[*]}"
    in_root ldconfig
  done
}
