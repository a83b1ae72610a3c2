#!/usr/bin/env python3
"""Write a corpus of damaged and odd .h5ad files, and a manifest saying what each one is.

Usage: python make_corpus.py --out DIR [--byte-mutants N] [--sample]

Bases are small trial-like AnnData files written by anndata (one per storage: CSR, gzip CSR,
CSC, dense, gzip chunked dense) from fixed seeds, so `plan did --visits pre,post` and
`plan de --groupby-key target_gene --reference non-targeting` succeed on every base.

Each mutant is a copy of a base with one defect:
  * structural mutations (h5py), each named for what it does, with the commands that must
    fail on it (`must_fail`) because they read the damaged element;
  * byte-level mutations (bit flips, truncations, zeroed 4 KiB pages) from fixed seeds. Their
    effect is classified by reading, with h5py, every object of the file (its attributes and
    values) and comparing with the base: an error there makes the file `corrupt` (validate
    --all, which reads the whole file, must fail), identical values make it `benign` (the flip hit
    padding or unused bytes: exit 0 is right), changed values without an error make it
    `undetectable` (no checksum covers raw data: only a crash or hang is a failure).

The manifest (manifest.json) lists, per file: base, mutation, kind, corrupt (yes/no/unknown),
must_fail (commands), and a note. run_corpus.py runs the commands.
"""

import argparse
import hashlib
import json
import os
import random
import shutil
import sys

import h5py
import numpy as np

COMMANDS = ["inspect", "validate", "plan-did", "run-did", "plan-de", "run-de"]
# What each command reads: inspect the metadata and category lists; validate --all every
# matrix and every obs/var column; plan and run the design columns, the index and X.
ALL = list(COMMANDS)
READS_X = ["validate", "run-did", "run-de"]
# A damaged DiD design column (visit, arm, participant_id): validate --all and plan did.
DID_COLUMN = ["validate", "plan-did"]
# A damaged obs index: what reads the names (inspect reads only the index's shape).
READS_INDEX = ["validate", "plan-did", "plan-de"]


def make_bases(out):
    """Small trial-like files from fixed seeds, one per storage layout."""
    import anndata as ad
    import pandas as pd
    import scipy.sparse as sp

    rng = np.random.default_rng(20261203)
    n_part, n_genes = 12, 40
    rows = []
    for p in range(n_part):
        arm = "Treated" if p % 2 == 0 else "Control"
        for visit in ("pre", "post"):
            for c in range(10):
                rows.append((f"P{p:02d}", visit, arm, ["T", "B", "NK"][c % 3],
                             ["non-targeting", "G1", "G2", "G3"][(p + c) % 4]))
    obs = pd.DataFrame(rows, columns=["participant_id", "visit", "arm", "celltype", "target_gene"])
    for col in obs.columns:
        obs[col] = obs[col].astype("category")
    obs["n_counts"] = rng.integers(100, 1000, len(obs)).astype(np.float64)
    obs["note"] = [f"cell note {i}" for i in range(len(obs))]
    obs.index = [f"cell{i:04d}" for i in range(len(obs))]
    var = pd.DataFrame(index=[f"gene{j:03d}" for j in range(n_genes)])
    var["highly_variable"] = rng.random(n_genes) < 0.5
    counts = rng.poisson(1.2, (len(obs), n_genes)).astype(np.float32)
    counts[rng.random(counts.shape) < 0.5] = 0
    bases = {}

    def write(name, X, **kw):
        a = ad.AnnData(X=X, obs=obs.copy(), var=var.copy())
        a.layers["counts"] = sp.csr_matrix(counts)
        path = os.path.join(out, f"base-{name}.h5ad")
        a.write_h5ad(path, **kw)
        bases[name] = path

    write("csr", sp.csr_matrix(counts))
    write("csr-gzip", sp.csr_matrix(counts), compression="gzip")
    write("csc", sp.csc_matrix(counts))
    write("dense", counts.copy())
    write("dense-gzip", counts.copy(), compression="gzip")
    return bases


# --- structural mutations: (name, applies-to-layout, must_fail, note, function(file)) ---

def _attr(path, name, value):
    def f(h):
        h[path].attrs[name] = value
    return f


def _rewrite(path, transform, dtype=None):
    """Replace a dataset by transform(old values), keeping attributes (and compression)."""
    def f(h):
        old = h[path]
        values, attrs = transform(old[()]), dict(old.attrs)
        kw = {"compression": old.compression} if old.compression and np.asarray(values).size else {}
        parent, name = path.rsplit("/", 1) if "/" in path else ("/", path)
        del h[path]
        new = h[parent or "/"].create_dataset(name, data=np.asarray(values, dtype=dtype) if dtype else values, **kw)
        for k, v in attrs.items():
            new.attrs[k] = v
    return f


def _delete(path):
    def f(h):
        del h[path]
    return f


def _set(path, index, value):
    def f(h):
        values = h[path][()]
        values[index] = np.iinfo(values.dtype).max if isinstance(value, str) else value
        h[path][...] = values
    return f


def _chain(*fs):
    def f(h):
        for g in fs:
            g(h)
    return f


def _huge_vlen_length(path):
    """Rewrite the length field of a variable-length string's heap reference to 2^31-1."""
    def f(h):
        ds = h[path]
        off = ds.id.get_offset()
        if off is None:
            raise Skip("not contiguous")
        h.flush()
        name = h.filename
        h.close()
        with open(name, "r+b") as fh:
            fh.seek(off + 16 * 3)
            fh.write((0x7FFFFFFF).to_bytes(4, "little"))
        raise Reopened()
    return f


def _vlen_heap_index(path, value):
    """Point one variable-length string at a global heap object that does not exist."""
    def f(h):
        ds = h[path]
        off = ds.id.get_offset()
        if off is None:
            raise Skip("not contiguous")
        name = h.filename
        h.close()
        with open(name, "r+b") as fh:
            fh.seek(off + 16 * 2 + 12)
            fh.write(int(value).to_bytes(4, "little"))
        raise Reopened()
    return f


class Skip(Exception):
    pass


class Reopened(Exception):
    """The mutation closed the file to patch bytes itself."""


def structural(layout):
    sparse = layout in ("csr", "csr-gzip", "csc")
    major = "indptr"
    m = []
    add = lambda name, must, note, fn: m.append((name, must, note, fn))
    if sparse:
        add("x-shape-attr-too-large", ALL, "X shape attribute rows set to 2^62", _attr("X", "shape", np.array([2**62, 40], np.int64)))
        add("x-shape-attr-negative", ALL, "X shape attribute [-5, 40]", _attr("X", "shape", np.array([-5, 40], np.int64)))
        add("x-shape-attr-int64-max", ALL, "X shape attribute [2^63-1, 2^63-1]", _attr("X", "shape", np.array([2**63 - 1, 2**63 - 1], np.int64)))
        add("x-shape-attr-three-dims", ALL, "X shape attribute with three entries", _attr("X", "shape", np.array([240, 40, 1], np.int64)))
        add("x-shape-attr-float-nan", ALL, "X shape attribute [nan, 40.0]", _attr("X", "shape", np.array([np.nan, 40.0])))
        add("x-shape-attr-string", ALL, "X shape attribute is a string", _attr("X", "shape", "240x40"))
        add("x-shape-attr-minor-too-large", ALL, "X shape attribute columns 2^40", _attr("X", "shape", np.array([240, 2**40], np.int64)))
        add("x-indptr-nonmonotone", READS_X, "indptr[10] > indptr[11]", lambda h: _set("X/indptr", 10, int(h["X/indptr"][11]) + 3)(h))
        add("x-indptr-past-nnz", READS_X, "last indptr past len(data)", lambda h: _set("X/indptr", -1, h["X/data"].shape[0] + 5)(h))
        add("x-indptr-negative", READS_X, "indptr[5] = -7", _set("X/indptr", 5, -7))
        add("x-indptr-dtype-max", READS_X, "indptr[-1] = the largest value of its dtype", _set("X/indptr", -1, "max"))
        add("x-indptr-first-nonzero", READS_X, "indptr[0] = 3", _set("X/indptr", 0, 3))
        add("x-indptr-too-short", ALL, "indptr loses its last entry", _rewrite("X/indptr", lambda v: v[:-1]))
        add("x-indptr-2d", ALL, "indptr is 2-D", _rewrite("X/indptr", lambda v: v.reshape(1, -1)))
        add("x-indptr-float", ALL, "indptr stored as float64", _rewrite("X/indptr", lambda v: v.astype(np.float64)))
        add("x-indices-out-of-range", READS_X, "indices[7] = n_minor", lambda h: _set("X/indices", 7, int(h["X"].attrs["shape"][1 if layout != "csc" else 0]))(h))
        add("x-indices-negative", READS_X, "indices[3] = -1", _set("X/indices", 3, -1))
        add("x-indices-dtype-max", READS_X, "indices[0] = the largest value of its dtype", _set("X/indices", 0, "max"))
        add("x-indices-duplicate-in-major", READS_X, "the second entry of a major repeats its first index",
            _dup_index)
        add("x-nnz-mismatch-data-short", ALL, "data shorter than indices", _rewrite("X/data", lambda v: v[:-4]))
        add("x-nnz-mismatch-indices-long", ALL, "indices longer than data", _rewrite("X/indices", lambda v: np.concatenate([v, v[:4]])))
        add("x-data-string-dtype", ALL, "data stored as strings", _rewrite("X/data", lambda v: np.array([str(x) for x in v], dtype=object), dtype=h5py.string_dtype()))
        add("x-data-bool-dtype", ALL, "data stored as bool", _rewrite("X/data", lambda v: v != 0))
        add("x-indices-float-dtype", ALL, "indices stored as float32", _rewrite("X/indices", lambda v: v.astype(np.float32)))
        add("x-missing-indptr", ALL, "X/indptr deleted", _delete("X/indptr"))
        add("x-missing-indices", ALL, "X/indices deleted", _delete("X/indices"))
        add("x-missing-data", ALL, "X/data deleted", _delete("X/data"))
        add("x-encoding-type-unknown", ALL, "X encoding-type 'coo_matrix'", _attr("X", "encoding-type", "coo_matrix"))
        add("x-data-truncated-extent", ALL, "data dataset resized to half its entries", _rewrite("X/data", lambda v: v[: len(v) // 2]))
        add("x-data-nan-values", [], "a few values NaN (valid file; validate reports them)", _set("X/data", slice(0, 3), np.nan))
        add("layer-indptr-nonmonotone", ["validate"], "layers/counts indptr decreases", lambda h: _set("layers/counts/indptr", 10, int(h["layers/counts/indptr"][11]) + 3)(h))
    else:
        add("x-dense-1d", ALL, "dense X flattened to 1-D", _rewrite("X", lambda v: v.reshape(-1)))
        add("x-dense-3d", ALL, "dense X with a third axis", _rewrite("X", lambda v: v.reshape(v.shape[0], v.shape[1], 1)))
        add("x-dense-wrong-rows", ALL, "dense X loses 5 rows", _rewrite("X", lambda v: v[:-5]))
        add("x-dense-string-dtype", ALL, "dense X stored as fixed strings", _rewrite("X", lambda v: v.astype("S8")))
        add("x-dense-bool-dtype", ALL, "dense X stored as bool", _rewrite("X", lambda v: v != 0))
        add("x-dense-missing", [], "X deleted (a file without X: inspect and validate say so; plan needs X)", _delete("X"))
        add("x-dense-encoding-unknown", ALL, "dense X encoding-type 'awkward-array'", _attr("X", "encoding-type", "awkward-array"))
        add("x-dense-nan-values", [], "a few values NaN (valid file)", lambda h: _set("X", (slice(0, 2), 0), np.nan)(h))
    # obs/var, common to every layout.
    add("obs-index-missing", ALL, "obs/_index deleted", _delete("obs/_index"))
    add("obs-index-short", ALL, "obs/_index loses 10 names", _rewrite("obs/_index", lambda v: v[:-10]))
    add("obs-index-2d", ALL, "obs/_index reshaped to 2-D", _rewrite("obs/_index", lambda v: v.reshape(2, -1)))
    add("obs-index-numeric", [], "obs/_index stored as integers (odd but readable)", _rewrite("obs/_index", lambda v: np.arange(len(v))))
    add("var-index-long", ALL, "var/_index gains 3 names", _rewrite("var/_index", lambda v: np.concatenate([v, v[:3]]), dtype=h5py.string_dtype()))
    add("obs-column-order-lists-missing", ALL, "column-order names a column that is not there",
        _attr("obs", "column-order", np.array(["participant_id", "visit", "arm", "celltype", "target_gene", "n_counts", "note", "ghost"], dtype=object)))
    add("obs-codes-out-of-range", DID_COLUMN, "obs/visit codes[4] = 9 with 2 categories", _set("obs/visit/codes", 4, 9))
    add("obs-codes-negative", DID_COLUMN, "obs/arm codes[0] = -5", _set("obs/arm/codes", 0, -5))
    add("obs-codes-short", DID_COLUMN, "obs/participant_id codes lose 7 entries", _rewrite("obs/participant_id/codes", lambda v: v[:-7]))
    add("obs-codes-float", DID_COLUMN, "obs/visit codes stored as float64", _rewrite("obs/visit/codes", lambda v: v.astype(np.float64) + 0.5))
    add("obs-categories-missing", ["inspect"] + DID_COLUMN, "obs/visit/categories deleted", _delete("obs/visit/categories"))
    add("obs-categories-empty", DID_COLUMN, "obs/visit has no categories but codes 0/1", _rewrite("obs/visit/categories", lambda v: v[:0], dtype=h5py.string_dtype()))
    add("obs-de-codes-out-of-range", ["validate", "plan-de"], "obs/target_gene codes[1] = 4 with 4 categories", _set("obs/target_gene/codes", 1, 4))
    add("obs-numeric-column-short", ["validate"], "obs/n_counts loses 3 values", _rewrite("obs/n_counts", lambda v: v[:-3]))
    add("obs-string-column-2d", ["validate"], "obs/note reshaped to 2-D", _rewrite("obs/note", lambda v: v.reshape(2, -1)))
    add("obs-note-heap-index-bad", ["validate"], "obs/note element 2 points at global heap object 60000", _vlen_heap_index("obs/note", 60000))
    add("obs-note-huge-string-length", ["validate"], "obs/note element 3 claims a 2 GiB string", _huge_vlen_length("obs/note"))
    add("obs-index-huge-string-length", READS_INDEX, "obs/_index element 3 claims a 2 GiB string", _huge_vlen_length("obs/_index"))
    add("obs-index-heap-index-bad", READS_INDEX, "obs/_index element 2 points at global heap object 60000", _vlen_heap_index("obs/_index", 60000))
    add("obs-encoding-unknown", ALL, "obs encoding-type 'dataframe-v9'", _attr("obs", "encoding-type", "dataframe-v9"))
    add("root-encoding-version-unknown", ALL, "root encoding-version '9.0.0'", _attr("/", "encoding-version", "9.0.0"))
    add("obs-missing", ALL, "obs deleted", _delete("obs"))
    add("var-bool-column-short", ["validate"], "var/highly_variable loses 2 values", _rewrite("var/highly_variable", lambda v: v[:-2]))
    return m


def _dup_index(h):
    g = h["X"]
    ptr = g["indptr"][()]
    ind = g["indices"][()]
    for k in range(len(ptr) - 1):
        if ptr[k + 1] - ptr[k] >= 2:
            ind[ptr[k] + 1] = ind[ptr[k]]
            g["indices"][...] = ind
            return
    raise Skip("no major with two entries")


# --- byte-level mutations and their classification ---

def snapshot(path):
    """Every object of the file (what validate --all reads), as a digest; raises on any read error."""
    digest = hashlib.sha256()
    with h5py.File(path, "r") as f:
        def visit(name, obj):
            digest.update(name.encode())
            for k in sorted(obj.attrs.keys()):
                digest.update(k.encode())
                digest.update(repr(obj.attrs[k]).encode())
            if isinstance(obj, h5py.Dataset):
                value = obj[()]
                digest.update(repr(obj.dtype).encode() + repr(obj.shape).encode())
                digest.update(value.tobytes() if value.dtype != object else repr(value.tolist()).encode())
        visit("/", f)
        f.visititems(visit)
    return digest.hexdigest()


def classify(path, base_digest):
    """libhdf5 (under h5py too) can crash or spin on damaged metadata: read in a child, bounded."""
    import subprocess
    try:
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--snapshot", path],
                              capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "yes", "h5py: hangs reading it (killed after 20 s)"
    if done.returncode != 0:
        lines = (done.stderr.strip().splitlines() or ["signal %d" % -done.returncode])
        return "yes", f"h5py: {lines[-1][:140]}"
    d = done.stdout.strip()
    if d == base_digest:
        return "no", "h5py reads every element unchanged"
    return "unknown", "h5py reads changed values without an error (no checksum covers them)"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out")
    p.add_argument("--byte-mutants", type=int, default=140, help="bit-flip files per base")
    p.add_argument("--truncations", type=int, default=12, help="truncated files per base")
    p.add_argument("--zeroed", type=int, default=20, help="zeroed-page files per base")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--snapshot", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.snapshot:
        print(snapshot(args.snapshot))
        return
    os.makedirs(args.out, exist_ok=True)
    bases = make_bases(args.out)
    manifest = {}

    def record(name, base, mutation, kind, corrupt, must_fail, note):
        manifest[name] = {"base": os.path.basename(bases[base]), "mutation": mutation, "kind": kind,
                          "corrupt": corrupt, "must_fail": must_fail, "note": note}

    for layout, base in bases.items():
        record(os.path.basename(base), layout, "none", "base", "no", [], "valid base file")
        for mutation, must, note, fn in structural(layout):
            name = f"s-{layout}-{mutation}.h5ad"
            path = os.path.join(args.out, name)
            shutil.copyfile(base, path)
            try:
                h = h5py.File(path, "r+")
                try:
                    fn(h)
                finally:
                    try:
                        h.close()
                    except Exception:  # noqa: BLE001
                        pass
            except Reopened:
                pass
            except Skip as why:
                os.remove(path)
                print(f"  skip {name}: {why}", file=sys.stderr)
                continue
            corrupt = "yes" if must else "no"
            if mutation in ("obs-index-numeric",):
                corrupt = "no"
            record(name, layout, mutation, "structural", corrupt, must, note)

        data = open(base, "rb").read()
        base_digest = snapshot(base)
        rng = random.Random(f"{args.seed}-{layout}")
        for k in range(args.byte_mutants):
            mutated = bytearray(data)
            flips = rng.choice([1, 1, 2, 4, 8])
            where = []
            for _ in range(flips):
                # Half the flips in the first 8 KiB (superblock, root and obs headers, B-trees).
                at = rng.randrange(min(len(data), 8192)) if rng.random() < 0.5 else rng.randrange(len(data))
                mutated[at] ^= 1 << rng.randrange(8)
                where.append(at)
            name = f"b-{layout}-flip{k:03d}.h5ad"
            _emit(args.out, name, mutated, base_digest, record, layout, f"flip x{flips}",
                  "bit flips at " + ",".join(map(str, where)))
        for k in range(args.truncations):
            cut = rng.randrange(64, len(data) - 1)
            name = f"b-{layout}-trunc{k:02d}.h5ad"
            with open(os.path.join(args.out, name), "wb") as fh:
                fh.write(data[:cut])
            # libhdf5 compares the superblock's end-of-file address with the file's size.
            record(name, layout, "truncate", "byte", "yes", ALL, f"first {cut} of {len(data)} bytes")
        for k in range(args.zeroed):
            page = rng.randrange(len(data) // 4096 + 1)
            mutated = bytearray(data)
            mutated[page * 4096:(page + 1) * 4096] = bytes(len(mutated[page * 4096:(page + 1) * 4096]))
            name = f"b-{layout}-zero{k:02d}.h5ad"
            _emit(args.out, name, mutated, base_digest, record, layout, "zero page", f"4 KiB page {page} zeroed")

    with open(os.path.join(args.out, "manifest.json"), "w") as fh:
        json.dump({"commands": COMMANDS, "files": manifest}, fh, indent=1, sort_keys=True)
    kinds = {}
    for e in manifest.values():
        kinds[(e["kind"], e["corrupt"])] = kinds.get((e["kind"], e["corrupt"]), 0) + 1
    print(f"{len(manifest)} files in {args.out}: " + ", ".join(f"{k[0]}/{k[1]} {v}" for k, v in sorted(kinds.items())))


def _emit(out, name, mutated, base_digest, record, layout, mutation, note):
    path = os.path.join(out, name)
    with open(path, "wb") as fh:
        fh.write(mutated)
    corrupt, why = classify(path, base_digest)
    # Only validate --all reads every object; the other commands may or may not meet the damage.
    must = ["validate"] if corrupt == "yes" else []
    record(name, layout, mutation, "byte", corrupt, must, f"{note}; {why}")


if __name__ == "__main__":
    main()
