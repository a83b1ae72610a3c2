#!/usr/bin/env python3
"""Add libFuzzer's crash and timeout inputs (tools/fuzz/crashes/) to the packed corpus.

Usage: python3 tools/fuzz/add_crashes.py [--crashes DIR] [--corpus Tests/Fixtures/fuzz/corpus.tar.xz]

Each input becomes lf-<name>.h5ad with kind 'libfuzzer', corrupt 'unknown' and no must_fail:
whatever it is, no command may crash or hang on it (exit 0 is allowed: some are valid files the
in-process harness only hung on). Standard library only.
"""

import argparse
import io
import json
import os
import tarfile


def main():
    p = argparse.ArgumentParser(description=__doc__)
    here = os.path.dirname(os.path.abspath(__file__))
    p.add_argument("--crashes", default=os.path.join(here, "crashes"))
    p.add_argument("--corpus", default=os.path.join(here, "..", "..", "Tests", "Fixtures", "fuzz", "corpus.tar.xz"))
    args = p.parse_args()
    with tarfile.open(args.corpus, "r:xz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    manifest = json.loads(members["manifest.json"])
    added = 0
    for name in sorted(os.listdir(args.crashes)):
        kind = "timeout" if name.startswith("timeout-") else "crash" if name.startswith("crash-") else None
        if kind is None or f"lf-{name}.h5ad" in members:
            continue
        members[f"lf-{name}.h5ad"] = open(os.path.join(args.crashes, name), "rb").read()
        manifest["files"][f"lf-{name}.h5ad"] = {
            "base": "libfuzzer", "mutation": f"libfuzzer {kind} input", "kind": "libfuzzer", "corrupt": "unknown",
            "must_fail": [], "note": f"made the in-process harness {'time out' if kind == 'timeout' else 'crash'}; the product must contain it"}
        added += 1
    members["manifest.json"] = json.dumps(manifest, indent=1, sort_keys=True).encode()
    with tarfile.open(args.corpus, "w:xz") as tar:
        for name in sorted(members):
            info = tarfile.TarInfo(name)
            info.size = len(members[name])
            tar.addfile(info, io.BytesIO(members[name]))
    print(f"added {added} inputs; {len(manifest['files'])} files in {args.corpus}")


if __name__ == "__main__":
    main()
