#!/usr/bin/env bash
# Builds the sctrial-plan image without a Docker engine or an image registry, and proves it:
#
#  1. stage the build context (docker/stage-context.sh: static-stdlib release build) and check it
#     (docker/check-context.sh --context);
#  2. debootstrap a Debian 12 (bookworm, minbase) root filesystem, shaped like debian:bookworm-slim,
#     into the cache (reused when present) and import it with buildah as localhost/sctrial-base;
#  3. `buildah bud --isolation chroot --build-arg BASE=localhost/sctrial-base:bookworm` the
#     runtime stage of docker/Dockerfile as localhost/sctrial-plan:local;
#  4. plan the bundled example (as scripts/example.sh does) on the host into two run directories,
#     run shard 0 with sctrial-worker on the host in one and inside the image (as its non-root
#     user, run directory and input mounted at the same absolute paths) in the other, and compare
#     every file the worker wrote byte for byte, except .done markers, locks and logs (timings
#     differ); then, if the planner has `reduce`, reduces both and compares results.csv;
#  5. optionally write a docker-archive tarball (for `docker load` or Apptainer).
#
#   sudo docker/build-local.sh [--slurm] [--no-archive] [--fresh]
#
#   --slurm       also build the `slurm` stage as localhost/sctrial-plan:local-slurm, check its
#                 daemons, plugins and entrypoint, and run docker/slurm/smoke-test.sh: the
#                 compose cluster (slurmctld, c1, c2, slurmrestd) in one container, an sbatch
#                 array job and a REST (JWT) job of sctrial-worker, results equal to the host's
#   --no-archive  skip the docker-archive tarball
#   --fresh       discard the cached rootfs and base image first (a from-scratch run)
#
# Needs root (debootstrap, buildah's chroot isolation) and the Debian mirror; installs debootstrap
# and buildah with apt when missing. Everything large goes to $SCTRIAL_DOCKER_CACHE (default
# /var/tmp/sctrial-docker), logs to its logs/ folder. SCTRIAL_SKIP_BUILD=1 stages the binaries
# of the last static build without rebuilding (see stage-context.sh). Prints PASS and exits 0
# when the container's output equals the host's; prints FAIL and exits 1 otherwise.
set -euo pipefail
# shellcheck source=docker/lib.sh
source "$(dirname "$0")/lib.sh"

with_slurm=0
archive=1
fresh=0
for arg in "$@"; do
  case "$arg" in
    --slurm) with_slurm=1 ;;
    --no-archive) archive=0 ;;
    --fresh) fresh=1 ;;
    -h|--help) sed -n '2,30s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $arg (see --help)" ;;
  esac
done

[ "$(id -u)" -eq 0 ] || die "run as root: debootstrap and buildah's chroot isolation need it"

suite=bookworm
mirror=${SCTRIAL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
security_mirror=${SCTRIAL_DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
rootfs="$SCTRIAL_DOCKER_CACHE/rootfs-$suite"
stamp="$rootfs/.sctrial-rootfs-complete"
context="$SCTRIAL_DOCKER_CACHE/context"
logs="$SCTRIAL_DOCKER_CACHE/logs"
proof="$SCTRIAL_DOCKER_CACHE/proof"
archive_file="$SCTRIAL_DOCKER_CACHE/sctrial-plan-local.docker.tar"
base_image=localhost/sctrial-base:$suite
image=localhost/sctrial-plan:local
slurm_image=localhost/sctrial-plan:local-slurm
export BUILDAH_ISOLATION=chroot
mkdir -p "$SCTRIAL_DOCKER_CACHE" "$logs"

timings=()
step() {  # NAME FUNCTION ARGS…: runs and times one step
  local name=$1 t0
  shift
  t0=$(now)
  note "$name"
  "$@"
  timings+=("$(printf '  %-56s %7ss' "$name" "$(elapsed "$t0")")")
}

logged() {  # LOGNAME CMD…: runs CMD with its output in logs/LOGNAME.log; shows the tail on failure
  local log="$logs/$1.log"
  shift
  if ! "$@" >"$log" 2>&1; then
    echo "---- last lines of $log ----" >&2
    tail -n 40 "$log" >&2
    die "failed: $*"
  fi
}

ensure_tools() {
  local missing=() tool
  for tool in debootstrap buildah; do command -v "$tool" >/dev/null || missing+=("$tool"); done
  if [ "$with_slurm" = 1 ] && ! command -v ip >/dev/null; then missing+=(iproute2); fi
  if [ ${#missing[@]} -gt 0 ]; then
    note "installing ${missing[*]} with apt"
    logged apt-update apt-get update
    DEBIAN_FRONTEND=noninteractive logged apt-install apt-get install -y --no-install-recommends "${missing[@]}"
  fi
  command -v swift >/dev/null || die "swift is not on PATH (needed to build the binaries)"
}

stage_context() {
  logged stage-context "$DOCKER_DIR/stage-context.sh" "$context"
}

check_context() {
  "$DOCKER_DIR/check-context.sh" --context "$context" | sed 's/^/  /'
}

# A Debian 12 minbase root filesystem shaped like debian:bookworm-slim: apt sources with updates
# and security, no service starts during package installs, no docs/man pages/locales.
make_rootfs() {
  if [ "$fresh" = 1 ]; then rm -rf "$rootfs"; fi
  if [ -f "$stamp" ]; then
    note "reusing $rootfs ($(cat "$stamp"))"
    return 0
  fi
  local tmp="$rootfs.partial"
  rm -rf "$tmp"
  logged debootstrap debootstrap --variant=minbase --components=main "$suite" "$tmp" "$mirror"
  rm -f "$tmp/etc/apt/sources.list"
  cat >"$tmp/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: $suite $suite-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security_mirror
Suites: $suite-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  printf '#!/bin/sh\n# No daemons start while an image is built.\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
  chmod 0755 "$tmp/usr/sbin/policy-rc.d"
  cat >"$tmp/etc/dpkg/dpkg.cfg.d/01-sctrial-slim" <<'EOF'
# Container image: keep copyright files, drop documentation, manual pages and translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  # What those excludes would have kept out of the packages debootstrap installed.
  find "$tmp/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
  find "$tmp/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$tmp"/usr/share/man/* "$tmp"/usr/share/info/*
  find "$tmp/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
  rm -rf "$tmp"/var/cache/apt/*.bin "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/* "$tmp"/var/log/*.log
  : >"$tmp/etc/machine-id"
  echo "debian $suite minbase from $mirror, $(date -u +%Y-%m-%dT%H:%M:%SZ)" >"$tmp/.sctrial-rootfs-complete"
  mv "$tmp" "$rootfs"
  note "rootfs $rootfs: $(du -sh "$rootfs" | cut -f1)"
}

# Imports the rootfs as an image (what `docker import` would do), labelled with the rootfs stamp
# so that a rebuilt rootfs is re-imported and an unchanged one is reused.
import_base() {
  local id have ctr mnt
  id=$(cat "$stamp")
  have=$(buildah inspect --type image --format '{{index .OCIv1.Config.Labels "sctrial.rootfs"}}' "$base_image" 2>/dev/null || true)
  if [ "$fresh" = 0 ] && [ "$have" = "$id" ]; then
    note "reusing $base_image"
    return 0
  fi
  ctr=$(buildah from --pull=never scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' \
      --exclude='./.sctrial-rootfs-complete' -cf - . | tar -C "$mnt" --numeric-owner -xpf -
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd /bin/bash --label "sctrial.rootfs=$id" "$ctr"
  buildah commit --rm --quiet "$ctr" "$base_image" >/dev/null
}

build_image() {  # TARGET TAG LOGNAME
  logged "$3" buildah bud --isolation chroot --layers --format docker --pull=never \
    --build-arg "BASE=$base_image" --target "$1" -t "$2" -f "$context/Dockerfile" "$context"
}

image_size() {
  buildah images --format '{{.Size}}' "$1" | head -n 1
}

# Files under DIR with size and modification time, to tell what a worker wrote.
listing() { (cd "$1" && find . -type f -printf '%P\t%s\t%T@\n' | LC_ALL=C sort); }

worker_outputs() {  # BEFORE AFTER -> paths new or changed, minus .done markers, locks and logs
  LC_ALL=C comm -13 "$1" "$2" | cut -f1 | grep -Ev '(\.done$|\.lock$|\.log$|(^|/)logs/)' || true
}

# Sets proof_result to the PASS line when the outputs agree; leaves it empty (and says why) when not.
proof_run() {
  local input="$REPO_DIR/examples/trial_example.h5ad" host="$proof/host" inbox="$proof/container"
  local ctr uid gid f compared=0 mismatches=0
  [ -f "$input" ] || die "no example input $input"
  rm -rf "$proof"
  mkdir -p "$proof"
  # The same planning command as scripts/example.sh; plan.json records the input's absolute path.
  "$context/bin/sctrial-plan" plan did "$input" --out "$host" --visits pre,post >"$logs/plan-host.log"
  "$context/bin/sctrial-plan" plan did "$input" --out "$inbox" --visits pre,post >"$logs/plan-container.log"
  listing "$host" >"$proof/host.before"
  listing "$inbox" >"$proof/container.before"

  note "worker on the host (the image's binary): sctrial-worker $host --shard 0"
  "$context/bin/sctrial-worker" "$host" --shard 0 >"$logs/worker-host.log" 2>&1 ||
    { cat "$logs/worker-host.log" >&2; die "the worker failed on the host"; }

  ctr=$(buildah from --pull=never "$image")
  uid=$(buildah run "$ctr" -- id -u sctrial)
  gid=$(buildah run "$ctr" -- id -g sctrial)
  chown -R "$uid:$gid" "$inbox"
  local missing
  missing=$(buildah run "$ctr" -- sh -c 'ldd /usr/local/bin/* | grep "not found" || true')
  [ -z "$missing" ] || { buildah rm "$ctr" >/dev/null; die "libraries missing in the image: $missing"; }
  note "worker in the image as $(buildah run --user sctrial "$ctr" -- id -un) (uid $uid): sctrial-worker $inbox --shard 0"
  if ! buildah run --user sctrial \
      --volume "$(dirname "$input"):$(dirname "$input"):ro" --volume "$inbox:$inbox" \
      "$ctr" -- sctrial-worker "$inbox" --shard 0 >"$logs/worker-container.log" 2>&1; then
    buildah rm "$ctr" >/dev/null
    cat "$logs/worker-container.log" >&2
    die "the worker failed in the image"
  fi
  buildah rm "$ctr" >/dev/null

  listing "$host" >"$proof/host.after"
  listing "$inbox" >"$proof/container.after"
  worker_outputs "$proof/host.before" "$proof/host.after" >"$proof/host.outputs"
  worker_outputs "$proof/container.before" "$proof/container.after" >"$proof/container.outputs"
  if ! cmp -s "$proof/host.outputs" "$proof/container.outputs"; then
    echo "FAIL: the workers wrote different files" >&2
    diff "$proof/host.outputs" "$proof/container.outputs" | sed 's/^/  /' >&2 || true
    return 0
  fi
  while read -r f; do
    if cmp -s "$host/$f" "$inbox/$f"; then
      echo "  identical: $f ($(wc -c <"$host/$f") bytes, sha256 $(sha256sum <"$host/$f" | cut -c1-16)…)"
    else
      echo "  DIFFERENT: $f" >&2
      cmp "$host/$f" "$inbox/$f" >&2 || true
      mismatches=$((mismatches + 1))
    fi
    compared=$((compared + 1))
  done <"$proof/host.outputs"
  if [ "$compared" -eq 0 ]; then
    echo "FAIL: the worker wrote no output file to compare" >&2
    return 0
  fi
  if [ "$mismatches" -gt 0 ]; then
    echo "FAIL: $mismatches of $compared worker output file(s) differ between host and container" >&2
    return 0
  fi
  proof_result="PASS: $compared worker output file(s) identical, host vs container ($image, user sctrial)"

  # Planners with a `reduce` step: reduce each run where its shard was computed and compare the
  # tables too (summary.json holds timings, so only results.csv).
  if "$context/bin/sctrial-plan" reduce --help >/dev/null 2>&1; then
    "$context/bin/sctrial-plan" reduce "$host" >"$logs/reduce-host.log" 2>&1 ||
      { cat "$logs/reduce-host.log" >&2; die "reduce failed on the host"; }
    ctr=$(buildah from --pull=never "$image")
    if ! buildah run --user sctrial \
        --volume "$(dirname "$input"):$(dirname "$input"):ro" --volume "$inbox:$inbox" \
        "$ctr" -- sctrial-plan reduce "$inbox" >"$logs/reduce-container.log" 2>&1; then
      buildah rm "$ctr" >/dev/null
      cat "$logs/reduce-container.log" >&2
      die "reduce failed in the image"
    fi
    buildah rm "$ctr" >/dev/null
    if cmp -s "$host/results.csv" "$inbox/results.csv"; then
      echo "  identical after sctrial-plan reduce: results.csv ($(wc -c <"$host/results.csv") bytes)"
      proof_result="$proof_result; reduce: results.csv identical"
    else
      echo "FAIL: results.csv of sctrial-plan reduce differs between host and container" >&2
      cmp "$host/results.csv" "$inbox/results.csv" >&2 || true
      proof_result=""
    fi
  fi
}

slurm_check() {
  build_image slurm "$slurm_image" bud-slurm
  local ctr out
  ctr=$(buildah from --pull=never "$slurm_image")
  # shellcheck disable=SC2016  # expanded by the container's shell
  out=$(buildah run "$ctr" -- sh -c '
    set -e
    for d in slurmctld slurmd slurmrestd munged scontrol sbatch sctrial-worker; do command -v "$d" >/dev/null || { echo "missing $d"; exit 1; }; done
    for p in auth_munge auth_jwt rest_auth_jwt openapi_v0_0_38 proctrack_linuxproc task_none select_cons_tres; do
      ls /usr/lib/x86_64-linux-gnu/slurm-wlm/$p.so >/dev/null || { echo "missing plugin $p"; exit 1; }
    done
    [ ! -e /etc/munge/munge.key ] || { echo "a MUNGE key ships in the image"; exit 1; }
    id slurm >/dev/null && id munge >/dev/null && id slurmrest >/dev/null && id sctrial >/dev/null
    /usr/local/sbin/sctrial-slurm-entrypoint help >/dev/null
    slurmctld -V') || { buildah rm "$ctr" >/dev/null; die "slurm image check: $out"; }
  note "slurm image: $out, daemons, plugins (jwt, linuxproc, cons_tres) and entrypoint present"

  # The cluster of compose.yaml inside this one container (docker/slurm/smoke-test.sh), in a
  # private network namespace of its own: its daemons cannot meet any other Slurm on this machine.
  # The extra address on lo: slurmctld could not resolve its listening address in a namespace
  # holding loopback addresses only (seen here), nothing is sent to it.
  local runs="$SCTRIAL_DOCKER_CACHE/slurm-runs"
  rm -rf "$runs"
  mkdir -p "$runs"
  chown "$(buildah run "$ctr" -- id -u sctrial):$(buildah run "$ctr" -- id -g sctrial)" "$runs"
  if ! timeout 600 unshare --net sh -c 'ip link set lo up && ip addr add 10.217.0.1/8 dev lo && exec "$@"' _ \
      buildah run --cap-add CAP_SYS_ADMIN \
        --volume "$DOCKER_DIR/slurm:/smoke:ro" --volume "$REPO_DIR/examples:/data:ro" \
        --volume "$runs:/runs" --volume "$proof:/proof:ro" \
        "$ctr" -- bash /smoke/smoke-test.sh /proof/host /proof/host.outputs >"$logs/slurm-smoke.log" 2>&1; then
    buildah rm "$ctr" >/dev/null
    grep -v pmix "$logs/slurm-smoke.log" | tail -n 60 >&2
    die "the Slurm smoke test failed (full log: $logs/slurm-smoke.log)"
  fi
  buildah rm "$ctr" >/dev/null
  grep '^smoke: ' "$logs/slurm-smoke.log" | sed 's/^/  /'
}

write_archive() {
  rm -f "$archive_file"
  logged push-archive buildah push "$image" "docker-archive:$archive_file:sctrial-plan:local"
  # What `docker load` reads first: the manifest naming the tag and the layers.
  tar -xOf "$archive_file" manifest.json | grep -q 'sctrial-plan:local"' ||
    die "$archive_file has no manifest.json tagged sctrial-plan:local"
}

total0=$(now)
if [ "$fresh" = 1 ]; then
  buildah rmi "$image" "$slurm_image" "$base_image" >/dev/null 2>&1 || true
fi
step "tools (debootstrap, buildah)" ensure_tools
step "stage context (static release build)" stage_context
step "check context" check_context
step "debootstrap $suite rootfs" make_rootfs
step "import base image $base_image" import_base
step "buildah bud runtime -> $image" build_image runtime "$image" bud-runtime
proof_result=""
step "proof: worker on host vs in image" proof_run
if [ "$with_slurm" = 1 ]; then step "buildah bud slurm -> $slurm_image" slurm_check; fi
if [ "$archive" = 1 ]; then step "docker-archive tarball" write_archive; fi

echo
echo "timings:"
printf '%s\n' "${timings[@]}"
printf '  %-56s %7ss\n' "total" "$(elapsed "$total0")"
echo "image $image: $(image_size "$image") (base $base_image: $(image_size "$base_image"))"
if [ "$with_slurm" = 1 ]; then echo "image $slurm_image: $(image_size "$slurm_image")"; fi
if [ "$archive" = 1 ]; then
  echo "docker-archive: $archive_file ($(du -h "$archive_file" | cut -f1)); docker load -i it, or: apptainer build sctrial.sif docker-archive://$archive_file"
fi
echo "logs: $logs"
if [ -z "$proof_result" ]; then
  echo "FAIL: the image's worker output differs from the host's (see above)"
  exit 1
fi
echo "$proof_result"
