#!/usr/bin/env bash
# Builds the libFuzzer harness over the reader (tools/fuzz/FuzzReader.swift + Sources/AnnData,
# swiftc -sanitize=fuzzer) and runs it for a fixed budget from the corpus's valid and damaged
# files. Crash inputs (libhdf5-internal crashes included) land in tools/fuzz/crashes/ and are
# packed into Tests/Fixtures/fuzz/corpus.tar.xz (add_crashes.py), where the corpus test runs
# them through the product.
#   bash tools/fuzz/libfuzzer.sh [SECONDS (default 600)] [extra libFuzzer flags...]
set -euo pipefail
cd "$(dirname "$0")/../.."
budget="${1:-600}"; shift || true
out=.build-fuzz
mkdir -p "$out" tools/fuzz/crashes "$out/corpus"
# -sanitize=fuzzer instruments our Swift code for coverage; libhdf5 (Debian's build) is not
# instrumented, so coverage counts our checks' branches, which is what the harness exercises.
swiftc -O -sanitize=fuzzer -parse-as-library -module-name FuzzReader \
  -I Sources/CHDF5 -I Sources/CLZF -Xcc -I/usr/include/hdf5/serial -Xcc -I/usr/include/liblzf -L/usr/lib/x86_64-linux-gnu/hdf5/serial \
  Sources/AnnData/*.swift tools/fuzz/FuzzReader.swift -o "$out/fuzz-reader"
# Seeds: the packed corpus (valid bases and their mutants).
if [[ ! -f "$out/corpus/.seeded" ]]; then
  tar -xJf Tests/Fixtures/fuzz/corpus.tar.xz -C "$out/corpus" --wildcards '*.h5ad'
  touch "$out/corpus/.seeded"
fi
# -fork keeps going past a crash (libhdf5's own are expected: the probe contains them in the
# product); each crash input is written to tools/fuzz/crashes/.
"$out/fuzz-reader" "$out/corpus" -fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
  -timeout=10 -rss_limit_mb=4096 -max_len=262144 -max_total_time="$budget" \
  -artifact_prefix=tools/fuzz/crashes/ -print_final_stats=1 "$@" 2>&1 | tee "$out/fuzz.log" | grep -E "^#|INFO: |crash|DONE|stat::" | tail -40 || true  # libFuzzer exits non-zero when it met crashes or timeouts
ls tools/fuzz/crashes | wc -l | xargs echo "crash inputs in tools/fuzz/crashes:"
python3 tools/fuzz/add_crashes.py
