#!/usr/bin/env bash
# Fast consistency check of the container build (no image is built, nothing is downloaded):
#
#  1. the executables docker/Dockerfile copies (COPY bin/…) are exactly the executable products
#     of Package.swift, and every other COPY source exists under docker/;
#  2. every shared library that `ldd` reports for those executables belongs to a Debian package
#     that the Dockerfile's runtime package list installs, directly or as a dependency (computed
#     from this host's dpkg database); the Swift runtime is allowed only in a dynamically linked
#     (debug) build, as stage-context.sh links it statically;
#  3. docker/slurm: compose.yaml parses (when PyYAML is there), its slurmd hostnames are NodeNames
#     of slurm.conf, SlurmctldHost is the controller service, and the JWT key paths agree.
#
#   docker/check-context.sh                      # binaries of the current debug build (.build)
#   docker/check-context.sh --bin DIR            # binaries in DIR (e.g. a release build)
#   docker/check-context.sh --context DIR        # a context staged by stage-context.sh, which must
#                                                # also be up to date with docker/
# Exit 0 when all holds, 1 with one line per problem otherwise.
set -euo pipefail
# shellcheck source=docker/lib.sh
source "$(dirname "$0")/lib.sh"

bin_dir=""
context=""
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin_dir=${2:?--bin needs a directory}; shift 2 ;;
    --context) context=${2:?--context needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,20s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument $1 (see --help)" ;;
  esac
done

problems=0
fail() { echo "check-context: FAIL: $*" >&2; problems=$((problems + 1)); }
ok() { echo "check-context: ok: $*"; }

# --- 1. executables and COPY sources -------------------------------------------------------
mapfile -t copied < <(dockerfile_binaries | sort)
mapfile -t products < <(package_executables | sort)
if [ "${copied[*]}" = "${products[*]}" ]; then
  ok "Dockerfile copies every executable product: ${copied[*]}"
else
  fail "Dockerfile copies [${copied[*]}] but Package.swift's executable products are [${products[*]}]: update the COPY bin/… line of docker/Dockerfile"
fi
while read -r src; do
  case "$src" in bin/*) continue ;; esac
  [ -f "$DOCKER_DIR/$src" ] || fail "Dockerfile copies $src but docker/$src does not exist"
done < <(dockerfile_copy_sources)
[ -x "$DOCKER_DIR/slurm/entrypoint.sh" ] || fail "docker/slurm/entrypoint.sh is not executable (chmod +x; the image runs it as is)"

if [ -n "$context" ]; then
  [ -d "$context" ] || die "no context directory $context (run docker/stage-context.sh $context)"
  cmp -s "$context/Dockerfile" "$DOCKERFILE" || fail "$context/Dockerfile differs from docker/Dockerfile: re-run docker/stage-context.sh"
  while read -r src; do
    [ -e "$context/$src" ] || { fail "the Dockerfile copies $src, missing from $context"; continue; }
    case "$src" in bin/*) continue ;; esac
    cmp -s "$context/$src" "$DOCKER_DIR/$src" || fail "$context/$src differs from docker/$src: re-run docker/stage-context.sh"
  done < <(dockerfile_copy_sources)
  # The binaries must be the release products recorded when staging, if that build is still there.
  if [ -f "$context/MANIFEST" ]; then
    while read -r _ _ sum path; do
      if [ -f "$path" ] && [ "$(sha256sum < "$path" | cut -d' ' -f1)" != "$sum" ]; then
        fail "$path changed since $context was staged: re-run docker/stage-context.sh"
      fi
    done < <(grep '^product ' "$context/MANIFEST")
  else
    fail "$context/MANIFEST is missing: not a context made by docker/stage-context.sh"
  fi
  bin_dir="$context/bin"
  static=1
else
  if [ -z "$bin_dir" ]; then
    bin_dir=$(cd "$REPO_DIR" && swift build --show-bin-path)
  fi
  static=0
fi

# --- 2. shared libraries -------------------------------------------------------------------
mapfile -t runtime_pkgs < <(dockerfile_runtime_packages)
[ ${#runtime_pkgs[@]} -gt 0 ] || fail "no packages between '# BEGIN runtime-packages' and '# END runtime-packages' in docker/Dockerfile"

# Dependency closure of the runtime packages over this host's dpkg database (Depends and
# Pre-Depends, every alternative, virtual packages through Provides). apt in the image resolves
# the same Debian 12 relations, so a library whose package is in the closure will be installed.
closure=$(
  dpkg-query -W -f='${Package}\t${Provides}\t${Pre-Depends}, ${Depends}\n' 2>/dev/null |
  awk -F'\t' -v roots="${runtime_pkgs[*]}" '
    function names(s, out,   n, parts, i, w) {   # "a (>= 1) | b, c:any" -> out["a"], out["b"], out["c"]
      gsub(/\([^)]*\)/, "", s); gsub(/[|,]/, " ", s)
      n = split(s, parts, /[ \t]+/)
      for (i = 1; i <= n; i++) { w = parts[i]; sub(/:.*/, "", w); if (w != "") out[w] = 1 }
    }
    {
      deps[$1] = $3
      delete p; names($2, p)
      for (v in p) provider[v] = provider[v] " " $1
    }
    END {
      n = split(roots, queue, " "); head = 1
      for (i = 1; i <= n; i++) seen[queue[i]] = 1
      while (head <= n) {
        pkg = queue[head++]
        delete d; names(deps[pkg], d)
        for (x in d) {
          cand[1] = x; m = 1
          if (!(x in deps) && (x in provider)) { m = split(provider[x], cand, " ") }
          for (j = 1; j <= m; j++) if (cand[j] != "" && !(cand[j] in seen)) { seen[cand[j]] = 1; queue[++n] = cand[j] }
        }
      }
      for (pkg in seen) print pkg
    }')

# Libraries the executables load, as ldd resolves them on this host.
declare -A lib_user=()
for b in "${copied[@]}"; do
  exe="$bin_dir/$b"
  if [ ! -x "$exe" ]; then
    fail "no executable $exe (build first: swift build, or docker/stage-context.sh for a context)"
    continue
  fi
  ldd_out=$(ldd "$exe" 2>&1) || { fail "ldd $exe failed: $ldd_out"; continue; }
  while read -r line; do
    case "$line" in
      *"not found"*) fail "$b: $line (library missing on this host)" ;;
      *"=>"*) lib=$(awk '{print $3}' <<<"$line"); lib_user[$lib]=${lib_user[$lib]:-$b} ;;
      *) ;;  # vdso and the dynamic loader (libc6)
    esac
  done <<<"$ldd_out"
done

# Owner package of each library, from dpkg's file lists in one grep (dpkg-query -S costs 0.1 s a
# path). dpkg records a path as the package shipped it, /lib/… or /usr/lib/… with merged /usr, and
# ldd reports a symlink, so each library is looked up under all those spellings.
variants() {  # PATH -> the path and its target, with and without /usr
  local p
  for p in "$1" "$(readlink -f "$1")"; do echo "${p#/usr}"; echo "/usr${p#/usr}"; done
}
declare -A owner=()
dpkg_lists=(/var/lib/dpkg/info/*.list)
if [ ${#lib_user[@]} -gt 0 ]; then
  while IFS=$'\t' read -r pkg path; do
    owner[$path]=${pkg%%:*}
  done < <(
    for lib in "${!lib_user[@]}"; do variants "$lib"; done |
      grep -F -x -H -f - "${dpkg_lists[@]}" 2>/dev/null |
      sed 's|^/var/lib/dpkg/info/||; s|\.list:|\t|' || true)
fi

checked_libs=0
for lib in "${!lib_user[@]}"; do
  b=${lib_user[$lib]}
  checked_libs=$((checked_libs + 1))
  pkg=""
  while read -r cand; do
    [ -n "${owner[$cand]:-}" ] && { pkg=${owner[$cand]}; break; }
  done < <(variants "$lib")
  if [ -n "$pkg" ]; then
    grep -qxF "$pkg" <<<"$closure" || fail "$b needs $lib from package $pkg, which the Dockerfile's runtime packages do not install: add $pkg between the runtime-packages markers"
    continue
  fi
  case "$(basename "$lib")" in
    libswift*|libFoundation*|lib_Foundation*|libdispatch*|libBlocksRuntime*|libXCTest*|libTesting*)
      if [ "$static" = 1 ]; then
        fail "$b links the Swift runtime library $lib dynamically: build with --static-swift-stdlib (docker/stage-context.sh does)"
      fi ;;  # a debug build: stage-context.sh links these statically into the image's binaries
    *) fail "$b needs $lib, which belongs to no Debian package: the image cannot provide it" ;;
  esac
done
[ "$problems" -gt 0 ] || ok "$checked_libs shared libraries of ${copied[*]} ($bin_dir) come from runtime packages: ${runtime_pkgs[*]}"

# --- 3. the Slurm cluster files ------------------------------------------------------------
slurm_conf="$DOCKER_DIR/slurm/slurm.conf"
compose="$DOCKER_DIR/slurm/compose.yaml"
jwt_conf=$(sed -n 's/^AuthAltParameters=.*jwt_key=\([^,[:space:]]*\).*/\1/p' "$slurm_conf")
jwt_entry=$(sed -n 's/^jwt_key=\([^[:space:]]*\).*/\1/p' "$DOCKER_DIR/slurm/entrypoint.sh")
if [ -z "$jwt_conf" ] || [ "$jwt_conf" != "$jwt_entry" ]; then
  fail "JWT key path differs: slurm.conf says '$jwt_conf', entrypoint.sh creates '$jwt_entry'"
fi
if command -v python3 >/dev/null && python3 -c 'import yaml' 2>/dev/null; then
  if msg=$(python3 - "$compose" "$slurm_conf" <<'EOF'
import re, sys, yaml
compose, conf = sys.argv[1], sys.argv[2]
doc = yaml.safe_load(open(compose))
services = doc["services"]
def expand(spec):                       # "c[1-2],d3" -> c1 c2 d3 (Slurm hostlist, simple forms)
    out = []
    for part in re.findall(r'[^,\[]+(?:\[[^\]]*\])?', spec):
        m = re.fullmatch(r'(.*)\[(.*)\]', part)
        if not m:
            out.append(part); continue
        for rng in m.group(2).split(','):
            lo, _, hi = rng.partition('-')
            for i in range(int(lo), int(hi or lo) + 1):
                out.append(f"{m.group(1)}{i:0{len(lo)}d}")
    return out
nodes, ctld = [], None
for line in open(conf):
    line = line.split('#', 1)[0].strip()
    if line.startswith('NodeName='):
        nodes += expand(line.split()[0].split('=', 1)[1])
    if line.startswith('SlurmctldHost='):
        ctld = line.split('=', 1)[1].split('(')[0]
problems = []
roles = {name: (svc.get("command") or [None])[0] for name, svc in services.items()}
slurmd = [svc.get("hostname", name) for name, svc in services.items() if roles[name] == "slurmd"]
ctlds = [svc.get("hostname", name) for name, svc in services.items() if roles[name] == "slurmctld"]
if sorted(slurmd) != sorted(nodes):
    problems.append(f"slurmd services {sorted(slurmd)} != slurm.conf NodeNames {sorted(nodes)}")
if ctlds != [ctld]:
    problems.append(f"slurmctld service hostnames {ctlds} != SlurmctldHost {ctld}")
for name, svc in services.items():
    vols = [v.split(':')[0] for v in svc.get("volumes", [])]
    if "munge-key" not in vols:
        problems.append(f"service {name} does not mount the munge-key volume")
print("; ".join(problems) if problems else f"{len(services)} services, nodes {' '.join(nodes)}")
sys.exit(1 if problems else 0)
EOF
  ); then
    ok "docker/slurm/compose.yaml and slurm.conf agree: $msg"
  else
    fail "docker/slurm: $msg"
  fi
else
  echo "check-context: skipped: compose.yaml checks (python3 with PyYAML not available)"
fi

if [ "$problems" -gt 0 ]; then
  echo "check-context: $problems problem(s)" >&2
  exit 1
fi
echo "check-context: PASS"
