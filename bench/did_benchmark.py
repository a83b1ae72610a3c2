"""DiD benchmark: sctrial 1.0.0's did_table against sctrial-plan (`plan did` + `run`), in one run.

Both tools read the same synthetic .h5ad file, each in its own subprocess with two threads; the parent
measures wall time and takes each child's peak RSS from os.wait4.

Timing.
  ours     `sctrial-plan plan did FILE --out RUN --visits pre,post --features all` followed by
           `sctrial-plan run RUN`: the two process wall times added up (end to end, including writing
           RUN/results.csv). Peak RSS is the larger of the two processes'.
  sctrial  anndata.read_h5ad + did_table (all var_names, or a gene subset, see below), timed inside the
           child with perf_counter. The child's whole wall time (interpreter start and imports
           included) is printed alongside. Writing the result for the cross-check is not timed.
  ratio    sctrial seconds / ours.

Extrapolation. When sctrial would take too long (or need more memory than the machine has: did_table
densifies the cells x features matrix), it runs on two gene subsets N1 < N2 (the first genes of
var_names) and its time at G genes is extrapolated on the line through the two points:
read_h5ad (measured) + did(N1) + (did(N2) - did(N1)) * (G - N1) / (N2 - N1). The row is labelled
"extrapolated from N1/N2 genes"; its peak RSS is the N2 run's, measured, not extrapolated.

Cross-check. Rows are matched by feature name over the features both tools computed (finite
beta_DiD and p_DiD in both); the maximum relative difference |ours - sctrial| / max(|sctrial|, 1e-300)
of beta_DiD and of p_DiD is printed with the count of features compared. sctrial averages the float32 X
with pandas' groupby, whose means stay float32, while sctrial-plan accumulates in float64: on float32
files the two differ by float32 rounding of the group means (amplified where beta_DiD is near 0).
--f64-check reruns sctrial (untimed) on X cast to float64, where the two agree to ~1e-12.

Data. CSR float32 X with log-normalised-like values (softplus of participant, cell-type, visit and
DiD effects plus noise) at a fixed density (Bernoulli per entry, drawn as geometric gaps, so every
row's columns come out sorted without duplicates); obs categoricals participant_id (half the
participants Treated), visit pre/post, arm Treated/Control, celltype (5 types), cells in random order.
Written with h5py in anndata's on-disk layout (dataframe 0.2.0, categorical 0.2.0, string-array
0.2.0, csr_matrix 0.1.0; int32 indices, int32 indptr while nnz < 2^31 as scipy would store it),
streamed in row slices (two passes: row counts, then values), fixed seed, cached under bench/data/.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import time

import numpy as np

SIZES = {  # name: (cells, genes, density, participants)
    "tiny": (5_000, 50, 0.10, 20),  # smoke test
    "100k": (100_000, 500, 0.10, 60),
    "500k": (500_000, 2_000, 0.10, 120),
    "1m": (1_000_000, 20_000, 0.03, 200),
}
CELLTYPES = ["B", "Mono", "NK", "T_CD4", "T_CD8"]
VISITS = ["pre", "post"]
ARMS = ["Control", "Treated"]
SEED = 20_250_101
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")


# ------------------------------------------------------------------------------------------------
# Synthetic file (h5py, anndata layout, streamed)
# ------------------------------------------------------------------------------------------------

def _chunk_positions(rng, n_entries, density):
    """Sorted flat positions < n_entries of a Bernoulli(density) process, via geometric gaps."""
    expected = n_entries * density
    m = int(expected + 8 * math.sqrt(expected + 1) + 64)
    pos = np.cumsum(rng.geometric(density, m), dtype=np.int64) - 1
    while pos[-1] < n_entries - 1:  # practically never
        more = np.cumsum(rng.geometric(density, m), dtype=np.int64) + pos[-1]
        pos = np.concatenate([pos, more])
    return pos[: np.searchsorted(pos, n_entries)]


def _string_array(group, name, values):
    import h5py

    ds = group.create_dataset(name, data=np.array(values, dtype=object), dtype=h5py.string_dtype())
    ds.attrs["encoding-type"] = "string-array"
    ds.attrs["encoding-version"] = "0.2.0"


def _categorical(group, name, codes, categories):
    g = group.create_group(name)
    g.attrs["encoding-type"] = "categorical"
    g.attrs["encoding-version"] = "0.2.0"
    g.attrs["ordered"] = False
    g.create_dataset("codes", data=codes.astype(np.int8 if len(categories) < 128 else np.int16))
    _string_array(g, "categories", categories)


def write_file(path, n_cells, n_genes, density, n_part):
    import h5py

    rng = np.random.default_rng(SEED)
    # design: participant-level arm, cells assigned at random (so the file is not sorted by group)
    part_arm = np.arange(n_part) % 2  # 1 = Treated
    participant = rng.integers(0, n_part, n_cells)
    visit = rng.integers(0, 2, n_cells)  # 1 = post
    celltype = rng.choice(len(CELLTYPES), n_cells, p=[0.15, 0.2, 0.1, 0.35, 0.2])
    treated = part_arm[participant]
    # effects
    base = rng.normal(0.0, 0.8, n_genes).astype(np.float32)
    ct_eff = rng.normal(0.0, 0.3, (len(CELLTYPES), n_genes)).astype(np.float32)
    part_eff = rng.normal(0.0, 0.2, (n_part, n_genes)).astype(np.float32)
    time_eff = rng.normal(0.05, 0.1, n_genes).astype(np.float32)
    did_eff = np.where(rng.random(n_genes) < 0.1, rng.normal(0.0, 0.4, n_genes), 0.0).astype(np.float32)

    rows_per_chunk = max(1, int(16e6 / (n_genes * density)))
    chunks = [(a, min(n_cells, a + rows_per_chunk)) for a in range(0, n_cells, rows_per_chunk)]

    def positions(ci, a, b):
        return _chunk_positions(np.random.default_rng([SEED, ci, 0]), (b - a) * n_genes, density)

    # pass 1: row counts -> indptr
    counts = np.zeros(n_cells, dtype=np.int64)
    for ci, (a, b) in enumerate(chunks):
        counts[a:b] = np.bincount(positions(ci, a, b) // n_genes, minlength=b - a)
    indptr = np.zeros(n_cells + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    nnz = int(indptr[-1])
    ptr_dtype = np.int32 if nnz < 2**31 else np.int64

    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        obs = f.create_group("obs")
        obs.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
        obs.attrs["column-order"] = np.array(["participant_id", "visit", "arm", "celltype"], dtype=object)
        _string_array(obs, "_index", [f"c{i:07d}" for i in range(n_cells)])
        _categorical(obs, "participant_id", participant, [f"P{i:03d}" for i in range(n_part)])
        _categorical(obs, "visit", visit, VISITS)
        _categorical(obs, "arm", treated, ARMS)
        _categorical(obs, "celltype", celltype, CELLTYPES)
        var = f.create_group("var")
        var.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
        var.attrs["column-order"] = np.array([], dtype="float64")
        _string_array(var, "_index", [f"G{i:05d}" for i in range(n_genes)])
        for name in ("layers", "obsm", "obsp", "varm", "varp", "uns"):
            g = f.create_group(name)
            g.attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})
        x = f.create_group("X")
        x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0",
                        "shape": np.array([n_cells, n_genes], dtype=np.int64)})
        x.create_dataset("indptr", data=indptr.astype(ptr_dtype))
        data = x.create_dataset("data", shape=(nnz,), dtype=np.float32)
        indices = x.create_dataset("indices", shape=(nnz,), dtype=np.int32)
        # pass 2: columns (same streams as pass 1) and values
        for ci, (a, b) in enumerate(chunks):
            pos = positions(ci, a, b)
            row = a + pos // n_genes
            col = (pos % n_genes).astype(np.int32)
            vrng = np.random.default_rng([SEED, ci, 1])
            eta = (base[col] + ct_eff[celltype[row], col] + part_eff[participant[row], col]
                   + visit[row] * (time_eff[col] + treated[row] * did_eff[col])
                   + vrng.normal(0.0, 0.5, len(pos)).astype(np.float32))
            vals = np.logaddexp(np.float32(0.0), eta).astype(np.float32)  # softplus > 0
            lo, hi = indptr[a], indptr[b]
            indices[lo:hi] = col
            data[lo:hi] = vals
            print(f"  rows {b:,}/{n_cells:,}", end="\r", file=sys.stderr, flush=True)
        print(file=sys.stderr)
    os.replace(tmp, path)
    return nnz


def ensure_file(size):
    n_cells, n_genes, density, n_part = SIZES[size]
    path = os.path.join(DATA, f"did_{size}_{n_cells}x{n_genes}_d{int(density * 100)}.h5ad")
    if not os.path.exists(path):
        os.makedirs(DATA, exist_ok=True)
        print(f"generating {path} ...", file=sys.stderr, flush=True)
        t = time.perf_counter()
        write_file(path, n_cells, n_genes, density, n_part)
        print(f"  done in {time.perf_counter() - t:.1f} s, {os.path.getsize(path) / 1e9:.2f} GB",
              file=sys.stderr, flush=True)
    return path


def warm(path):
    """Read the file once so both tools start from the same (warm) page cache."""
    with open(path, "rb") as fh:
        while fh.read(64 << 20):
            pass


# ------------------------------------------------------------------------------------------------
# Children
# ------------------------------------------------------------------------------------------------

def run_child(cmd, log_path, env=None):
    """Run cmd; return (wall seconds, peak RSS bytes, returncode, CPU seconds)."""
    with open(log_path, "ab") as log:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
        _, status, ru = os.wait4(p.pid, 0)
        wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    return wall, ru.ru_maxrss * 1024, p.returncode, ru.ru_utime + ru.ru_stime


def run_ours(binary, path, run_dir, log):
    shutil.rmtree(run_dir, ignore_errors=True)
    cmd_plan = [binary, "plan", "did", path, "--out", run_dir, "--visits", "pre,post", "--features", "all"]
    cmd_run = [binary, "run", run_dir]
    wp, rp, cp, up = run_child(cmd_plan, log)
    if cp != 0:
        raise SystemExit(f"ours: plan failed ({cp}); see {log}")
    wr, rr, cr, ur = run_child(cmd_run, log)
    if cr != 0:
        raise SystemExit(f"ours: run failed ({cr}); see {log}")
    return {"seconds": wp + wr, "plan_s": wp, "run_s": wr, "rss": max(rp, rr), "cpu": up + ur,
            "csv": os.path.join(run_dir, "results.csv")}


SCTRIAL_THREADS = None  # --sctrial-threads: BLAS/OpenMP threads of the sctrial child (None: inherit)


def run_sctrial(python, path, n_genes, out_csv, info_json, log, f64=False):
    cmd = [python, os.path.abspath(__file__), "--sctrial-child", path, "--child-genes", str(n_genes),
           "--child-out", out_csv, "--child-info", info_json] + (["--child-f64"] if f64 else [])
    env = None
    if SCTRIAL_THREADS:
        env = dict(os.environ, **{k: str(SCTRIAL_THREADS) for k in
                                  ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS")})
    wall, rss, rc, cpu = run_child(cmd, log, env)
    if rc != 0:
        raise SystemExit(f"sctrial child failed ({rc}); see {log}")
    with open(info_json) as fh:
        info = json.load(fh)
    return {"wall": wall, "rss": rss, "cpu": cpu, "read_s": info["read_s"], "did_s": info["did_s"],
            "seconds": info["read_s"] + info["did_s"], "genes": n_genes, "csv": out_csv}


def sctrial_child(args):
    t0 = time.perf_counter()
    import anndata as ad
    from sctrial.design import TrialDesign
    from sctrial.stats.did import did_table

    t1 = time.perf_counter()
    adata = ad.read_h5ad(args.sctrial_child)
    if args.child_f64:  # cross-check only (not timed in the table): X as float64
        adata.X = adata.X.astype(np.float64)
    t2 = time.perf_counter()
    features = list(adata.var_names)
    if args.child_genes > 0:
        features = features[: args.child_genes]
    design = TrialDesign(participant_col="participant_id", visit_col="visit", arm_col="arm",
                         arm_treated="Treated", celltype_col="celltype")
    res = did_table(adata, features=features, design=design, visits=("pre", "post"))
    t3 = time.perf_counter()
    res.to_csv(args.child_out, index=False, float_format="%.17g")
    with open(args.child_info, "w") as fh:
        json.dump({"import_s": t1 - t0, "read_s": t2 - t1, "did_s": t3 - t2, "features": len(features)}, fh)


# ------------------------------------------------------------------------------------------------
# Cross-check and report
# ------------------------------------------------------------------------------------------------

def cross_check(ours_csv, theirs_csv):
    import csv

    def load(p):
        out = {}
        with open(p, newline="") as fh:
            for r in csv.DictReader(fh):
                def num(k):
                    try:
                        return float(r[k])
                    except (KeyError, ValueError):
                        return float("nan")
                out[r["feature"]] = (num("beta_DiD"), num("p_DiD"))
        return out

    ours, theirs = load(ours_csv), load(theirs_csv)
    common = [f for f in theirs if f in ours
              and all(math.isfinite(v) for v in ours[f] + theirs[f])]
    nan_mismatch = sum(1 for f in theirs if f in ours
                       and [math.isfinite(v) for v in ours[f]] != [math.isfinite(v) for v in theirs[f]])
    rel = lambda a, b: abs(a - b) / max(abs(b), 1e-300)
    worst_b = max((rel(ours[f][0], theirs[f][0]), f) for f in common) if common else (float("nan"), "")
    worst_p = max((rel(ours[f][1], theirs[f][1]), f) for f in common) if common else (float("nan"), "")
    beta_abs = max((abs(ours[f][0] - theirs[f][0]) for f in common), default=float("nan"))
    return {"compared": len(common), "beta_abs": beta_abs, "sctrial_rows": len(theirs), "ours_rows": len(ours),
            "finite_mismatch": nan_mismatch, "beta_rel": worst_b[0], "beta_worst": worst_b[1],
            "p_rel": worst_p[0], "p_worst": worst_p[1]}


def median_run(runs):
    """The run with the median seconds (lower middle for an even count), with every run's seconds."""
    r = dict(sorted(runs, key=lambda x: x["seconds"])[(len(runs) - 1) // 2])
    r["all_seconds"] = [x["seconds"] for x in runs]
    return r


def gb(b):
    return f"{b / 1e9:.2f} GB"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", help="sctrial-plan binary")
    ap.add_argument("--python", default=sys.executable, help="python of the sctrial venv")
    ap.add_argument("--sizes", default="100k,500k", help=f"comma list of {','.join(SIZES)}")
    ap.add_argument("--big", action="store_true", help="also run 1m (1M cells x 20K genes, ~4.9 GB file)")
    ap.add_argument("--sctrial-genes", action="append", default=[],
                    help="SIZE=all | SIZE=N1/N2 (extrapolate from two gene subsets) | SIZE=skip; "
                         "defaults: 100k=all 500k=all 1m=100/400")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs of each tool (alternating) on fully measured sizes; the median is reported")
    ap.add_argument("--sctrial-threads", type=int,
                    help="OMP/OPENBLAS/MKL threads of the sctrial child only (default: as the environment, 2 "
                         "from did_benchmark.sh). sctrial's per-feature fits are tiny, and a 2-thread OpenBLAS "
                         "that shares the 2 cores with other work spins and can make did_table several times "
                         "slower; 1 gives sctrial's best, stable time")
    ap.add_argument("--out", default=os.path.join(DATA, "did_runs"), help="run directories and logs")
    ap.add_argument("--sctrial-child", help=argparse.SUPPRESS)
    ap.add_argument("--child-genes", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", help=argparse.SUPPRESS)
    ap.add_argument("--child-info", help=argparse.SUPPRESS)
    ap.add_argument("--child-f64", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--f64-check", default="tiny,100k",
                    help="sizes on which sctrial is also run (untimed) with X cast to float64, to show how "
                         "much of the difference is pandas' float32 group means (default: tiny,100k)")
    args = ap.parse_args()
    if args.sctrial_child:
        return sctrial_child(args)

    global SCTRIAL_THREADS
    SCTRIAL_THREADS = args.sctrial_threads
    sizes = [s for s in args.sizes.split(",") if s]
    if args.big and "1m" not in sizes:
        sizes.append("1m")
    plan = {"100k": "all", "500k": "all", "1m": "100/400"}
    for item in args.sctrial_genes:
        k, v = item.split("=", 1)
        plan[k] = v
    os.makedirs(args.out, exist_ok=True)
    print(f"threads: OMP={os.environ.get('OMP_NUM_THREADS')} OPENBLAS={os.environ.get('OPENBLAS_NUM_THREADS')} "
          f"MKL={os.environ.get('MKL_NUM_THREADS')}; sctrial child BLAS threads {SCTRIAL_THREADS or 'as env'}; "
          f"ours --threads 2 (default); cores: {os.cpu_count()}; "
          f"load average now {os.getloadavg()[0]:.2f} (other work on the machine skews wall times)")
    rows = []
    for size in sizes:
        n_cells, n_genes, density, n_part = SIZES[size]
        path = ensure_file(size)
        warm(path)
        log = os.path.join(args.out, f"{size}.log")
        open(log, "w").close()
        print(f"\n== {size}: {n_cells:,} cells x {n_genes:,} genes, {density:.0%} dense, {n_part} participants "
              f"({os.path.getsize(path) / 1e9:.2f} GB)", flush=True)
        mode = plan.get(size, "all")
        repeat = args.repeat if mode == "all" else 1
        ours_runs, sct_runs = [], []
        for _ in range(repeat):  # alternate, so both see the same machine load
            ours = run_ours(args.binary, path, os.path.join(args.out, f"{size}_ours"), log)
            print(f"  ours     {ours['seconds']:8.2f} s  (plan {ours['plan_s']:.2f} + run {ours['run_s']:.2f})  "
                  f"peak RSS {gb(ours['rss'])}, CPU {ours['cpu']:.2f} s", flush=True)
            ours_runs.append(ours)
            if mode == "all":
                s = run_sctrial(args.python, path, 0, os.path.join(args.out, f"{size}_sctrial.csv"),
                                os.path.join(args.out, f"{size}_sctrial.json"), log)
                s["label"] = "measured" if repeat == 1 else f"median of {repeat}"
                print(f"  sctrial  {s['seconds']:8.2f} s  (read_h5ad {s['read_s']:.2f} + did_table {s['did_s']:.2f}; "
                      f"process wall {s['wall']:.2f})  peak RSS {gb(s['rss'])}, CPU {s['cpu']:.1f} s", flush=True)
                sct_runs.append(s)
        ours = median_run(ours_runs)
        row = {"size": size, "cells": n_cells, "genes": n_genes, "ours": ours}
        if mode == "skip":
            row["sctrial"] = None
        elif mode == "all":
            row["sctrial"] = median_run(sct_runs)
        else:
            n1, n2 = (int(v) for v in mode.split("/"))
            s1 = run_sctrial(args.python, path, n1, os.path.join(args.out, f"{size}_sctrial_{n1}.csv"),
                             os.path.join(args.out, f"{size}_sctrial_{n1}.json"), log)
            s2 = run_sctrial(args.python, path, n2, os.path.join(args.out, f"{size}_sctrial_{n2}.csv"),
                             os.path.join(args.out, f"{size}_sctrial_{n2}.json"), log)
            slope = (s2["did_s"] - s1["did_s"]) / (n2 - n1)
            did_at_g = s1["did_s"] + slope * (n_genes - n1)
            s = dict(s2)
            s["seconds"] = s2["read_s"] + did_at_g
            s["label"] = f"extrapolated from {n1}/{n2} genes"
            s["points"] = {n1: s1["did_s"], n2: s2["did_s"]}
            print(f"  sctrial  {n1} genes: read_h5ad {s1['read_s']:.2f} + did_table {s1['did_s']:.2f} s, "
                  f"peak RSS {gb(s1['rss'])}", flush=True)
            print(f"  sctrial  {n2} genes: read_h5ad {s2['read_s']:.2f} + did_table {s2['did_s']:.2f} s, "
                  f"peak RSS {gb(s2['rss'])}", flush=True)
            print(f"  sctrial  {s['seconds']:8.2f} s at {n_genes} genes ({s['label']}: "
                  f"{slope * 1e3:.1f} ms/gene + {s1['did_s'] - slope * n1:.2f} s fixed + read)", flush=True)
            row["sctrial"] = s
        if row["sctrial"]:
            cc = cross_check(ours["csv"], row["sctrial"]["csv"])
            row["check"] = cc
            print(f"  check    {cc['compared']} features compared (sctrial rows {cc['sctrial_rows']}, ours "
                  f"{cc['ours_rows']}, finite/NaN mismatches {cc['finite_mismatch']}): max rel diff "
                  f"beta_DiD {cc['beta_rel']:.2e} ({cc['beta_worst']}), p_DiD {cc['p_rel']:.2e} ({cc['p_worst']}); "
                  f"max abs diff beta_DiD {cc['beta_abs']:.1e}", flush=True)
            if size in args.f64_check.split(",") and not row["sctrial"]["label"].startswith("extrapolated"):
                f = run_sctrial(args.python, path, 0, os.path.join(args.out, f"{size}_sctrial_f64.csv"),
                                os.path.join(args.out, f"{size}_sctrial_f64.json"), log, f64=True)
                c64 = cross_check(ours["csv"], f["csv"])
                row["check_f64"] = c64
                print(f"  check    vs sctrial on X cast to float64 (untimed): max rel diff beta_DiD "
                      f"{c64['beta_rel']:.2e}, p_DiD {c64['p_rel']:.2e} ({c64['compared']} features)", flush=True)
        rows.append(row)

    print("\n| size | cells x genes | ours s (plan+run) | ours peak RSS | sctrial s | sctrial peak RSS | "
          "ratio | CPU s ours / sctrial | max rel diff beta / p (n) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        o, s, c = r["ours"], r.get("sctrial"), r.get("check")
        runs = lambda x, fmt: ("" if len(x.get("all_seconds", [])) < 2 else
                               " (median; runs " + ", ".join(fmt % v for v in x["all_seconds"]) + ")")
        srow = (f"{s['seconds']:.1f}" + ("" if not s["label"].startswith("extrapolated") else f" ({s['label']})")
                + runs(s, "%.1f"),
                gb(s["rss"]) + ("" if not s["label"].startswith("extrapolated") else f" (at {s['genes']} genes)"),
                f"{s['seconds'] / o['seconds']:.1f}x") if s else ("skipped", "-", "-")
        crow = f"{c['beta_rel']:.1e} / {c['p_rel']:.1e} ({c['compared']})" if c else "-"
        cpu = f"{o['cpu']:.2f} / " + (f"{s['cpu']:.1f}" + ("" if not s["label"].startswith("extrapolated") else f" (at {s['genes']} genes)")
                                       if s else "-")
        print(f"| {r['size']} | {r['cells']:,} x {r['genes']:,} | {o['seconds']:.2f} ({o['plan_s']:.2f}+"
              f"{o['run_s']:.2f}){runs(o, '%.2f')} | {gb(o['rss'])} | {srow[0]} | {srow[1]} | {srow[2]} | {cpu} | {crow} |")
    with open(os.path.join(args.out, "summary.json"), "w") as fh:
        json.dump(rows, fh, indent=1, default=str)


if __name__ == "__main__":
    main()
