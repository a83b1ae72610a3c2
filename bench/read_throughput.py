"""Full-pass read benchmark: sctrial-plan validate vs h5py over the same CSR X.

The file is written with h5py in anndata's on-disk layout (csr_matrix 0.1.0, float32 data, int32
indices, int64 indptr), streamed in slices so writing it needs little memory. Each reader runs in
its own process so its peak RSS (from wait4) is its own. Runs alternate (ours, h5py) three times
and the median is reported, so both see the same page-cache state.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import h5py
import numpy as np

ENTRIES_PER_BLOCK = (256 << 20) // 16  # sctrial-plan's default budget / bytes per held entry


def write_file(path, gigabytes):
    n_obs, n_vars = 400_000, 20_000
    nnz_total = int(gigabytes * 1e9 / 8)  # float32 data + int32 indices
    per_row = nnz_total // n_obs
    rng = np.random.default_rng(0)
    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        for name, n, prefix in (("obs", n_obs, "cell"), ("var", n_vars, "gene")):
            g = f.create_group(name)
            g.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
            g.attrs["column-order"] = np.array([], dtype="float64")
            ds = g.create_dataset("_index", data=np.array([f"{prefix}{i}" for i in range(n)], dtype=object),
                                  dtype=h5py.string_dtype())
            ds.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})
        x = f.create_group("X")
        x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_obs, n_vars)})
        counts = rng.poisson(per_row, n_obs).clip(1, n_vars)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        x.create_dataset("indptr", data=indptr)
        data = x.create_dataset("data", shape=(indptr[-1],), dtype=np.float32)
        indices = x.create_dataset("indices", shape=(indptr[-1],), dtype=np.int32)
        rows_per_slice = 20_000
        for start in range(0, n_obs, rows_per_slice):
            stop = min(n_obs, start + rows_per_slice)
            a, b = indptr[start], indptr[stop]
            cols = np.concatenate([np.sort(rng.choice(n_vars, c, replace=False)) for c in counts[start:stop]])
            indices[a:b] = cols.astype(np.int32)
            data[a:b] = rng.gamma(1.5, 1.0, b - a).astype(np.float32)
    os.replace(tmp, path)


def h5py_pass(path):
    """What a careful Python user writes: indptr once, then indices/data in row blocks."""
    total = 0.0
    with h5py.File(path, "r") as f:
        x = f["X"]
        indptr = x["indptr"][:]
        start_row = 0
        n = len(indptr) - 1
        while start_row < n:
            stop_row = int(np.searchsorted(indptr, indptr[start_row] + ENTRIES_PER_BLOCK, side="right")) - 1
            stop_row = max(stop_row, start_row + 1)
            stop_row = min(stop_row, n)
            a, b = indptr[start_row], indptr[stop_row]
            idx = x["indices"][a:b]
            if idx.size and (idx.min() < 0 or idx.max() >= x.attrs["shape"][1]):
                raise SystemExit("index out of range")
            total += float(np.sum(x["data"][a:b], dtype=np.float64))
            start_row = stop_row
    print(json.dumps({"sum": total}))


def timed(cmd):
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {cmd}")
    return seconds, usage.ru_maxrss / 1024, out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary")
    parser.add_argument("--gigabytes", type=float, default=1.2)
    parser.add_argument("--h5py-pass")
    args = parser.parse_args()
    if args.h5py_pass:
        return h5py_pass(args.h5py_pass)
    os.makedirs("bench/data", exist_ok=True)
    path = f"bench/data/csr_{args.gigabytes:g}GB.h5ad"
    if not os.path.exists(path):
        print(f"writing {path} ...", file=sys.stderr)
        write_file(path, args.gigabytes)
    size = os.path.getsize(path)
    ours, theirs = [], []
    for _ in range(3):
        ours.append(timed([args.binary, "validate", path, "--json"]))
        theirs.append(timed([sys.executable, __file__, "--h5py-pass", path]))
    our_sum = json.loads(ours[-1][2])[0]["scan"]["sum"]
    their_sum = json.loads(theirs[-1][2])["sum"]
    assert abs(our_sum - their_sum) <= 1e-9 * abs(their_sum), (our_sum, their_sum)
    o = statistics.median(t for t, _, _ in ours)
    h = statistics.median(t for t, _, _ in theirs)
    print(f"file: {path}, {size / 1e9:.2f} GB on disk; sums agree ({our_sum:.6g})")
    print(f"{'reader':<28}{'seconds':>9}{'MB/s':>9}{'peak RSS MB':>13}")
    print(f"{'sctrial-plan validate':<28}{o:>9.2f}{size / 1e6 / o:>9.0f}{max(r for _, r, _ in ours):>13.0f}")
    print(f"{'h5py (blocks, same size)':<28}{h:>9.2f}{size / 1e6 / h:>9.0f}{max(r for _, r, _ in theirs):>13.0f}")
    print(f"ratio h5py/sctrial-plan time: {h / o:.2f}x (median of 3 alternating runs, warm page cache)")


if __name__ == "__main__":
    main()
