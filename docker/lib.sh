# shellcheck shell=bash
# Helpers shared by the scripts in docker/ (sourced, not run). They read docker/Dockerfile and
# Package.swift so that the list of executables and runtime packages lives in one place each.

DOCKER_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$DOCKER_DIR/.." && pwd)
DOCKERFILE="$DOCKER_DIR/Dockerfile"
# Cache for everything large (debootstrap rootfs, staged context, proof runs): outside the repo.
SCTRIAL_DOCKER_CACHE=${SCTRIAL_DOCKER_CACHE:-/var/tmp/sctrial-docker}

die() { echo "error: $*" >&2; exit 1; }
note() { echo "==> $*" >&2; }

# Sources of every COPY instruction in the Dockerfile, one a line (relative to the build context).
# Flags (--chown=…, --from=…) are skipped; the last word is the destination.
dockerfile_copy_sources() {
  awk '
    toupper($1) == "COPY" {
      if ($NF == "\\") { print "COPY instruction continued over lines: keep each COPY on one line" > "/dev/stderr"; exit 1 }
      for (i = 2; i < NF; i++) if ($i !~ /^--/) print $i
    }' "$DOCKERFILE"
}

# Executables the image installs: the COPY sources under bin/, as names.
dockerfile_binaries() {
  dockerfile_copy_sources | sed -n 's|^bin/||p'
}

# Runtime packages: the package words between "# BEGIN runtime-packages" and "# END runtime-packages".
dockerfile_runtime_packages() {
  awk '
    /^# BEGIN runtime-packages/ { inside = 1; next }
    /^# END runtime-packages/ { inside = 0 }
    inside && $0 ~ /^[ \t]+[a-z0-9][a-z0-9.+-]+[ \t]*\\$/ { print $1 }' "$DOCKERFILE"
}

# Executable products declared in Package.swift (via the manifest's JSON; no build needed).
package_executables() {
  command -v python3 >/dev/null || die "python3 is needed to read 'swift package dump-package'"
  (cd "$REPO_DIR" && swift package dump-package) | python3 -c '
import json, sys
for p in json.load(sys.stdin)["products"]:
    if "executable" in p["type"]:
        print(p["name"])'
}

# Seconds since the epoch with decimals, for step timings.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
