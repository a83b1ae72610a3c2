#!/usr/bin/env bash
# Prepares the build context for docker/Dockerfile in CONTEXT_DIR (default
# /var/tmp/sctrial-docker/context): builds the release executables with the Swift runtime linked
# statically (`swift build -c release --static-swift-stdlib`, scratch path .build-docker), then
# copies in the executables the Dockerfile names (bin/…), the Dockerfile, and every other file the
# Dockerfile COPYs, from the same path under docker/ (slurm/entrypoint.sh, slurm/slurm.conf).
#
#   docker/stage-context.sh [CONTEXT_DIR]
#   docker build -t sctrial-plan CONTEXT_DIR
#
# Environment: SCTRIAL_SCRATCH (default REPO/.build-docker), SCTRIAL_STRIP=0 keeps the DWARF debug
# info (default: `strip --strip-debug`, about 5 MB less per binary; symbols stay for backtraces),
# SCTRIAL_SKIP_BUILD=1 stages the binaries of the last build without building.
# Needs a Debian 12 host with Swift 6 and the -dev packages of scripts/install-deps.sh: the
# binaries link that system's libhdf5, OpenBLAS and libcurl, which the image installs.
set -euo pipefail
# shellcheck source=docker/lib.sh
source "$(dirname "$0")/lib.sh"

ctx=${1:-$SCTRIAL_DOCKER_CACHE/context}
scratch=${SCTRIAL_SCRATCH:-$REPO_DIR/.build-docker}
strip_debug=${SCTRIAL_STRIP:-1}

[ "$ctx" != "$REPO_DIR" ] || die "the context directory must not be the repository itself"
command -v swift >/dev/null || die "swift is not on PATH (Swift 6 toolchain needed to build the binaries)"

mapfile -t binaries < <(dockerfile_binaries)
[ ${#binaries[@]} -gt 0 ] || die "$DOCKERFILE copies no bin/… executable"

build=(swift build -c release --static-swift-stdlib --scratch-path "$scratch")
if [ "${SCTRIAL_SKIP_BUILD:-0}" = 1 ]; then
  note "SCTRIAL_SKIP_BUILD=1: staging the binaries of the last build in $scratch as they are"
else
  note "building: ${build[*]}"
  (cd "$REPO_DIR" && "${build[@]}" >&2)
fi
bin=$(cd "$REPO_DIR" && "${build[@]}" --show-bin-path)

# Stage into a fresh temporary directory next to the target, then swap it in: a failed run never
# leaves a half-staged context behind.
mkdir -p "$(dirname "$ctx")"
tmp=$(mktemp -d "$ctx.staging.XXXXXX")
chmod 0755 "$tmp"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/bin"

for b in "${binaries[@]}"; do
  [ -x "$bin/$b" ] || die "the Dockerfile copies bin/$b but the build produced no $bin/$b (is it an executable product in Package.swift?)"
  cp "$bin/$b" "$tmp/bin/$b"
  if [ "$strip_debug" = 1 ]; then strip --strip-debug "$tmp/bin/$b"; fi
  if ldd "$tmp/bin/$b" | grep -q 'libswiftCore'; then
    die "$b links the Swift runtime dynamically: it was not built with --static-swift-stdlib"
  fi
done
cp "$DOCKERFILE" "$tmp/Dockerfile"
# Every other COPY source is the file of the same path under docker/ (mode kept: the entrypoint
# stays executable).
while read -r src; do
  case "$src" in bin/*) continue ;; esac
  [ -f "$DOCKER_DIR/$src" ] || die "the Dockerfile copies $src, but there is no docker/$src to stage"
  mkdir -p "$(dirname "$tmp/$src")"
  cp -p "$DOCKER_DIR/$src" "$tmp/$src"
done < <(dockerfile_copy_sources)

# Provenance: which build each binary came from (check-context.sh compares these).
{
  echo "# staged by docker/stage-context.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "# source: $(cd "$REPO_DIR" && git rev-parse --short HEAD 2>/dev/null || echo unknown)$(cd "$REPO_DIR" && git diff --quiet HEAD -- 2>/dev/null || echo ' (uncommitted changes)')"
  for b in "${binaries[@]}"; do
    echo "product $b $(sha256sum < "$bin/$b" | cut -d' ' -f1) $bin/$b"
  done
} > "$tmp/MANIFEST"

rm -rf "$ctx"
mv "$tmp" "$ctx"
trap - EXIT
note "staged $ctx: $(du -sh "$ctx" | cut -f1) ($(cd "$ctx" && find . -type f | sort | tr '\n' ' '))"
echo "$ctx"
