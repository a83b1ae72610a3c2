"""Wilcoxon DE benchmark: pdex 0.1.28, illico 0.6.0 and sctrial-plan side by side, in one run.

Every tool runs in its own subprocess on the same synthetic .h5ad file with two threads (started by a
tiny fork-and-exec launcher that reads the tool's wall time and peak RSS with os.wait4; see LAUNCHER).
The parent also samples the summed PSS of the tool's whole process tree (pdex forks a multiprocessing
pool, and wait4's ru_maxrss is the maximum over the processes, not their sum) and the CPU that other
processes on the machine used meanwhile. Afterwards the results are cross-checked row by row (keyed by
target x feature): our p-values against pdex's and against scipy on float64 for a random sample, our
statistic against illico's U; results.csv is also checked for malformed, duplicate or missing rows.

pdex runs its standard in-memory path (num_workers=2) when the dense copies fit in memory, else its
low-memory chunked path. Unless --pdex-targets is given, a probe on the first 20 targets predicts the
full run; beyond --pdex-budget-min the probe is extrapolated (proportionally, with a second half-size
run giving an affine fixed + per-target estimate as well), clearly labelled.

Timing. Python tools: from spawn to the result DataFrame in memory (interpreter start, imports,
numba compilation, anndata.read_h5ad, the DE call); the DE call alone is shown separately. Writing
the results for the cross-check happens afterwards and is not timed. Ours: `plan de` + `run`, end
to end, including writing RUN/results.csv.

Data. Negative-binomial counts (per-gene mean lognormal, per-gene dispersion, per-cell size factor)
stored as CSR float32 integers, ~10% non-zero; obs `target_gene` categorical with a
"non-targeting" reference and one group per perturbed gene (cells assigned uniformly at random and
shuffled); each perturbation knocks its own gene down to 10% and shifts 10 random genes by a fold
in [0.5, 2]. Written with h5py in anndata's layout (int32 indices; int32 indptr while nnz < 2^31, as
scipy/anndata would store it), streamed in row slices, fixed seed.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np

SIZES = {  # name: (cells, genes, perturbations, reference cells)
    "quick": (6_000, 500, 20, 1_000),
    "60k": (60_000, 2_000, 200, 5_000),
    "k562": (300_000, 8_000, 2_000, 10_000),
}
REFERENCE = "non-targeting"
KEY = "target_gene"
SEED = 20_240_601
THREADS = 2
THREAD_ENV = {
    "OMP_NUM_THREADS": "2", "OPENBLAS_NUM_THREADS": "2", "MKL_NUM_THREADS": "2",
    "NUMEXPR_NUM_THREADS": "2", "VECLIB_MAXIMUM_THREADS": "2", "NUMBA_NUM_THREADS": "2",
    "RAYON_NUM_THREADS": "2", "POLARS_MAX_THREADS": "2",
}


def mono():
    return time.clock_gettime(time.CLOCK_MONOTONIC)


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------

def write_file(path, n_obs, n_vars, n_perts, n_ref, seed=SEED):
    import h5py

    rng = np.random.default_rng(seed)
    genes = np.array([f"GENE{i:05d}" for i in range(n_vars)], dtype=object)
    pert_genes = np.sort(rng.choice(n_vars, n_perts, replace=False))
    categories = sorted([REFERENCE] + [genes[g] for g in pert_genes])
    ref_code = categories.index(REFERENCE)
    pert_codes = np.array([categories.index(genes[g]) for g in pert_genes])
    # labels: n_ref reference cells, the rest uniformly over perturbations, shuffled
    labels = np.concatenate([np.full(n_ref, ref_code), pert_codes[rng.integers(0, n_perts, n_obs - n_ref)]])
    rng.shuffle(labels)
    code_dtype = np.int8 if len(categories) <= 127 else np.int16

    mu = np.exp(rng.normal(-2.8, 1.5, n_vars))  # per-gene mean, ~10% non-zero overall
    disp = np.exp(rng.normal(np.log(0.6), 0.3, n_vars))  # NB size parameter per gene
    size_factor = np.exp(rng.normal(0.0, 0.3, n_obs))
    effect = np.ones((len(categories), n_vars))  # per category (code) x gene multiplier
    for code, g in zip(pert_codes, pert_genes):
        effect[code, g] = 0.1
        other = rng.choice(n_vars, 10, replace=False)
        effect[code, other] *= np.exp(rng.uniform(np.log(0.5), np.log(2.0), 10))

    tmp = path + ".tmp"
    with h5py.File(tmp, "w") as f:
        f.attrs["encoding-type"] = "anndata"
        f.attrs["encoding-version"] = "0.1.0"
        strs = h5py.string_dtype()

        def string_array(group, name, values):
            ds = group.create_dataset(name, data=np.asarray(values, dtype=object), dtype=strs)
            ds.attrs.update({"encoding-type": "string-array", "encoding-version": "0.2.0"})

        obs = f.create_group("obs")
        obs.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
        obs.attrs["column-order"] = np.array([KEY], dtype=object).astype(strs)
        string_array(obs, "_index", [f"cell{i}" for i in range(n_obs)])
        cat = obs.create_group(KEY)
        cat.attrs.update({"encoding-type": "categorical", "encoding-version": "0.2.0", "ordered": False})
        cat.create_dataset("codes", data=labels.astype(code_dtype))
        string_array(cat, "categories", categories)

        var = f.create_group("var")
        var.attrs.update({"encoding-type": "dataframe", "encoding-version": "0.2.0", "_index": "_index"})
        var.attrs["column-order"] = np.array([], dtype="float64")
        string_array(var, "_index", genes)
        for name in ("obsm", "varm", "obsp", "varp", "layers", "uns"):
            f.create_group(name).attrs.update({"encoding-type": "dict", "encoding-version": "0.1.0"})

        x = f.create_group("X")
        x.attrs.update({"encoding-type": "csr_matrix", "encoding-version": "0.1.0", "shape": (n_obs, n_vars)})
        data = x.create_dataset("data", shape=(0,), maxshape=(None,), dtype=np.float32, chunks=(1 << 20,))
        indices = x.create_dataset("indices", shape=(0,), maxshape=(None,), dtype=np.int32, chunks=(1 << 20,))
        indptr = np.zeros(n_obs + 1, dtype=np.int64)
        rows_per_slice = max(1, (32 << 20) // n_vars)
        nnz = 0
        for start in range(0, n_obs, rows_per_slice):
            stop = min(n_obs, start + rows_per_slice)
            lam = size_factor[start:stop, None] * mu[None, :] * effect[labels[start:stop]]
            counts = rng.negative_binomial(disp[None, :], disp[None, :] / (disp[None, :] + lam))
            rows, cols = np.nonzero(counts)
            vals = counts[rows, cols].astype(np.float32)
            indptr[start + 1:stop + 1] = nnz + np.cumsum(np.bincount(rows, minlength=stop - start))
            data.resize((nnz + len(vals),))
            indices.resize((nnz + len(vals),))
            data[nnz:] = vals
            indices[nnz:] = cols.astype(np.int32)
            nnz += len(vals)
            print(f"  rows {stop}/{n_obs}, nnz {nnz}", file=sys.stderr, end="\r")
        # int32 indptr when it fits, as scipy (and so anndata) stores it; illico's Rust CSR kernel
        # rejects int32 indices with int64 indptr ("'ndarray' object is not an instance of 'ndarray'")
        x.create_dataset("indptr", data=indptr.astype(np.int32) if nnz < 2**31 else indptr)
        print(file=sys.stderr)
    os.replace(tmp, path)


def ensure_file(size):
    n_obs, n_vars, n_perts, n_ref = SIZES[size]
    os.makedirs("bench/data", exist_ok=True)
    path = f"bench/data/de_{n_obs}x{n_vars}x{n_perts}.h5ad"
    if not os.path.exists(path):
        print(f"writing {path} (seed {SEED}) ...", file=sys.stderr)
        t = mono()
        write_file(path, n_obs, n_vars, n_perts, n_ref)
        print(f"  written in {mono() - t:.0f} s, {os.path.getsize(path) / 1e6:.0f} MB", file=sys.stderr)
    return path


# ---------------------------------------------------------------------------------------------
# Children (one tool per process)
# ---------------------------------------------------------------------------------------------

def save_frame(out, targets, features, frame, columns):
    t = pd_categorical(targets)
    g = pd_categorical(features)
    arrays = {c: np.asarray(frame[c], dtype=np.float64) for c in columns}
    np.savez(out, target_codes=t[0], target_levels=np.array(t[1], dtype=str),
             feature_codes=g[0], feature_levels=np.array(g[1], dtype=str), **arrays)


def warm(path):
    """Read the file once so every tool starts from the same (warm) page cache."""
    with open(path, "rb") as f:
        while f.read(64 << 20):
            pass


def pd_categorical(values):
    import pandas as pd
    c = pd.Categorical(values)
    return c.codes.astype(np.int32), list(c.categories.astype(str))


def child(tool, path, out, n_targets, chunked):
    import anndata as ad
    if tool == "pdex":
        import pdex
    else:
        import illico
    t_import = mono()
    adata = ad.read_h5ad(path, backed="r" if chunked else None)
    t_loaded = mono()
    info = {}
    if tool == "pdex":
        groups = None
        if n_targets:
            codes = adata.obs[KEY].cat.codes.to_numpy()
            cats = list(adata.obs[KEY].cat.categories)
            order = [cats[c] for c in codes[np.sort(np.unique(codes, return_index=True)[1])]]
            groups = [t for t in order if t != REFERENCE][:n_targets]
        kwargs = dict(reference=REFERENCE, groupby_key=KEY, metric="wilcoxon", groups=groups,
                      num_workers=THREADS)
        if chunked:  # pdex's own default on 2 cores: 1 target worker, numba threads = NUMBA_NUM_THREADS
            kwargs.update(low_memory=True, num_workers=1, num_threads=THREADS, show_progress=False)
        df = pdex.parallel_differential_expression(adata, **kwargs)
        t_de = mono()
        info["targets_run"] = int(df["target"].nunique())
        save_frame(out, df["target"].astype(str), df["feature"].astype(str), df,
                   ["p_value", "statistic", "fdr", "target_mean", "reference_mean", "fold_change"])
    else:
        df = illico.asymptotic_wilcoxon(adata, is_log1p=False, group_keys=KEY, reference=REFERENCE,
                                        n_threads=THREADS)
        t_de = mono()
        idx = df.index
        info["targets_run"] = int(len(idx.levels[0]) - 1)
        np.savez(out, target_codes=idx.codes[0].astype(np.int32),
                 target_levels=np.array(idx.levels[0].astype(str), dtype=str),
                 feature_codes=idx.codes[1].astype(np.int32),
                 feature_levels=np.array(idx.levels[1].astype(str), dtype=str),
                 p_value=df["p_value"].to_numpy(np.float64), statistic=df["statistic"].to_numpy(np.float64),
                 fold_change=df["fold_change"].to_numpy(np.float64))
    info.update(import_done=t_import, loaded=t_loaded, de_done=t_de, rows=int(len(df)))
    print(json.dumps(info))


# ---------------------------------------------------------------------------------------------
# Measurement
# ---------------------------------------------------------------------------------------------

def tree_pss_kb(root, include_root=True):
    """Summed PSS (kB) of root's descendants (and root), from /proc."""
    parent = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    s = f.read()
                parent[int(d)] = int(s[s.rindex(")") + 2:].split()[1])
            except OSError:
                pass
    tree, frontier = {root}, [root]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p and c not in tree:
                tree.add(c)
                frontier.append(c)
    if not include_root:
        tree.discard(root)
    total = 0
    for p in tree:
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def cpu_busy_seconds():
    """System-wide busy CPU time (all cores) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    busy = v[0] + v[1] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)  # user nice system irq softirq steal
    return busy / os.sysconf("SC_CLK_TCK")


def wait_for_quiet(max_minutes, threshold=0.3, window=3.0):
    """Wait (at most max_minutes) until other processes use < threshold cores over a window."""
    deadline = mono() + max_minutes * 60
    while True:
        b0, t0 = cpu_busy_seconds(), mono()
        time.sleep(window)
        load = (cpu_busy_seconds() - b0) / (mono() - t0)
        if load < threshold or mono() > deadline:
            return load
        print(f"  machine busy ({load:.1f} cores used by others), waiting ...", file=sys.stderr, flush=True)


QUIET_MINUTES = [3.0]
OTHERS = []  # per timed run: CPU seconds used by other processes on the machine / wall seconds


# Tools are started through this tiny launcher (python -S, ~10 MB) which forks and execs the tool
# and reads its rusage with os.wait4. Linux keeps a process's ru_maxrss across exec and seeds it with
# the RSS of the memory image being replaced; subprocess's vfork+exec from this (large) parent would
# therefore report the parent's peak RSS for every tool. A fork from the small launcher does not.
LAUNCHER = """
import json, os, sys, time
out, cmd = sys.argv[1], sys.argv[2:]
t0 = time.clock_gettime(time.CLOCK_MONOTONIC)
pid = os.fork()
if pid == 0:
    try:
        os.execvp(cmd[0], cmd)
    finally:
        os._exit(127)
_, status, ru = os.wait4(pid, 0)
t1 = time.clock_gettime(time.CLOCK_MONOTONIC)
with open(out, "w") as f:
    json.dump({"start": t0, "end": t1, "maxrss_kb": ru.ru_maxrss, "cpu": ru.ru_utime + ru.ru_stime,
               "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def timed(cmd, env, log):
    """Run cmd; return (wall seconds, start, peak RSS MB from wait4, sampled tree PSS MB, stdout)."""
    if QUIET_MINUTES[0] > 0:
        wait_for_quiet(QUIET_MINUTES[0])
    usage_path = log + ".rusage.json"
    busy0 = cpu_busy_seconds()
    with open(log, "ab") as err:
        proc = subprocess.Popen([sys.executable, "-S", "-c", LAUNCHER, usage_path] + cmd,
                                stdout=subprocess.PIPE, stderr=err, env=env)
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            try:
                peak[0] = max(peak[0], tree_pss_kb(proc.pid, include_root=False))
            except Exception:
                pass
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out = proc.stdout.read()
    proc.wait()
    done.set()
    sampler.join()
    with open(usage_path) as f:
        u = json.load(f)
    wall = u["end"] - u["start"]
    others = cpu_busy_seconds() - busy0 - u["cpu"]
    OTHERS.append(max(0.0, others) / wall if wall > 0 else 0.0)
    if proc.returncode != 0 or u["exit"] != 0:
        raise RuntimeError(f"exit {u['exit']}: {' '.join(cmd)} (see {log})")
    return wall, u["start"], u["maxrss_kb"] / 1024, peak[0] / 1024, out


def run_python_tool(tool, path, out, n_targets, env, log, chunked=False):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", tool, "--file", path, "--out", out,
           "--child-targets", str(n_targets)] + (["--child-chunked"] if chunked else [])
    wall, start, rss, pss, stdout = timed(cmd, env, log)
    info = json.loads(stdout.decode().strip().splitlines()[-1])
    return dict(seconds=info["de_done"] - start, call=info["de_done"] - info["loaded"],
                load=info["loaded"] - info["import_done"], rss=rss, pss=pss, rows=info["rows"],
                targets_run=info["targets_run"], wall=wall, others=OTHERS[-1])


def ours_available(binary):
    try:
        r = subprocess.run([binary, "plan", "de", "--help"], capture_output=True, text=True, timeout=60)
    except OSError:
        return False
    return r.returncode == 0 and "--groupby-key" in (r.stdout + r.stderr)


def run_ours(binary, path, run_dir, env, log):
    shutil.rmtree(run_dir, ignore_errors=True)
    plan = timed([binary, "plan", "de", path, "--out", run_dir, "--groupby-key", KEY, "--reference", REFERENCE,
                  "--metric", "wilcoxon", "--threads", str(THREADS)], env, log)
    run = timed([binary, "run", run_dir], env, log)
    others = (OTHERS[-2] * plan[0] + OTHERS[-1] * run[0]) / (plan[0] + run[0])
    return dict(seconds=plan[0] + run[0], call=run[0], load=plan[0], rss=max(plan[2], run[2]),
                pss=max(plan[3], run[3]), plan=plan[0], others=others)


# ---------------------------------------------------------------------------------------------
# Cross-check
# ---------------------------------------------------------------------------------------------

def load_ours(run_dir, targets_wanted=None):
    """results.csv as a DataFrame, plus a list of integrity problems found while reading it."""
    import pandas as pd
    numeric = ["target_mean", "reference_mean", "fold_change", "p_value", "statistic", "fdr"]
    cols = ["target", "feature"] + numeric
    path = os.path.join(run_dir, "results.csv")
    problems = []
    parts = []
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", pd.errors.DtypeWarning)
        for chunk in pd.read_csv(path, usecols=cols, chunksize=2_000_000, dtype={"target": str, "feature": str},
                                 on_bad_lines="warn"):
            if targets_wanted is not None:
                chunk = chunk[chunk["target"].isin(targets_wanted)]
            for c in numeric:
                if chunk[c].dtype == object:  # a malformed line: keep going, count it below
                    chunk[c] = pd.to_numeric(chunk[c], errors="coerce")
            parts.append(chunk)
    table = pd.concat(parts, ignore_index=True)
    with open(path, "rb") as f:
        header = f.readline().decode().strip().split(",")
        repeated = sum(line.count(b"target,reference,feature,") for line in f)
    if repeated:
        problems.append(f"the header line appears {repeated} more time(s) inside the file")
    return table, problems


def align(ours, npz):
    """Rows of npz (excluding the reference) matched to ours by (target, feature), as integer keys."""
    import pandas as pd
    t_levels, f_levels = npz["target_levels"], npz["feature_levels"]
    targets = pd.Index(np.union1d(t_levels, ours["target"].unique().astype(str)))
    features = pd.Index(np.union1d(f_levels, ours["feature"].unique().astype(str)))
    nf = len(features)
    t = targets.get_indexer(t_levels)[npz["target_codes"]]
    keep = t_levels[npz["target_codes"]] != REFERENCE
    their = t[keep].astype(np.int64) * nf + features.get_indexer(f_levels)[npz["feature_codes"]][keep]
    mine = targets.get_indexer(ours["target"]).astype(np.int64) * nf + features.get_indexer(ours["feature"])
    order = np.argsort(mine, kind="stable")
    pos = np.clip(np.searchsorted(mine, their, sorter=order), 0, len(mine) - 1)
    idx = order[pos]
    found = mine[idx] == their
    return keep, idx, found


def rel_diff(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    both_nan = np.isnan(a) & np.isnan(b)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    d[(a == b) | both_nan] = 0.0
    d[np.isnan(d)] = np.inf
    return d


def crosscheck_pdex(ours, npz, all_targets, chunked=False):
    keep, idx, found = align(ours, npz)
    lines = [f"rows compared {int(found.sum())} of pdex's {int(keep.sum())}"
             + ("" if found.all() else f"  ({int((~found).sum())} pdex rows missing from ours!)")]
    idx = idx[found]
    sel = lambda c: npz[c][keep][found]  # noqa: E731
    o = lambda c: ours[c].to_numpy(np.float64)[idx]  # noqa: E731
    p_theirs, p_ours = sel("p_value"), o("p_value")
    normal = p_theirs >= 1e-30  # pdex computes p in float32 on float32 X: below ~1e-38 it flushes
    d = rel_diff(p_ours[normal], p_theirs[normal])
    worst = int(np.argmax(d)) if d.size else 0
    lines.append(f"p_value max rel diff {d.max() if d.size else float('nan'):.3g} (median {np.median(d) if d.size else 0:.2g}) "
                 f"over {int(normal.sum())} rows with pdex p >= 1e-30"
                 + (f"; worst: ours {p_ours[normal][worst]:.9g} vs pdex {p_theirs[normal][worst]:.9g}" if d.size else ""))
    small = ~normal
    if small.any():
        lines.append(f"  {int(small.sum())} rows with pdex p < 1e-30 ({int((p_theirs[small] == 0).sum())} of them "
                     f"flushed to 0 in float32): ours in [{p_ours[small].min():.3g}, {p_ours[small].max():.3g}], "
                     f"pdex in [{p_theirs[small].min():.3g}, {p_theirs[small].max():.3g}]")
    du = np.abs(o("statistic") - sel("statistic"))
    lines.append(f"statistic (U) max abs diff {np.nanmax(du):.3g}; NaN mismatches "
                 f"{int((np.isnan(o('statistic')) != np.isnan(sel('statistic'))).sum())}")
    for c in ("target_mean", "reference_mean", "fold_change"):
        lines.append(f"{c} max rel diff {rel_diff(o(c), sel(c)).max():.3g}")
    if chunked:
        lines.append("  (pdex chunked path: its numba kernel omits the continuity correction, so p differs "
                     "by up to ~1e-2 relative by design; U and means must still agree)")
    if all_targets:
        d = rel_diff(o("fdr")[normal], sel("fdr")[normal])
        lines.append(f"fdr max rel diff {d.max():.3g} over the same rows (pdex BH in float32)")
    else:
        lines.append("fdr not compared (pdex ran on a subset of targets, its BH covers only those rows)")
    return lines


def group_sizes(path):
    import h5py
    with h5py.File(path, "r") as f:
        cats = [c.decode() if isinstance(c, bytes) else c for c in f["obs"][KEY]["categories"][:]]
        counts = np.bincount(f["obs"][KEY]["codes"][:].astype(np.int64), minlength=len(cats))
    return dict(zip(cats, counts.tolist()))


def crosscheck_illico(ours, npz, sizes):
    keep, idx, found = align(ours, npz)
    lines = [f"rows compared {int(found.sum())} of illico's {int(keep.sum())} non-reference rows; ours has {len(ours)}"
             + ("" if found.all() else f"  ({int((~found).sum())} illico rows missing from ours!)")]
    idx = idx[found]
    u_ours = ours["statistic"].to_numpy(np.float64)[idx]
    u_theirs = npz["statistic"][keep][found]
    equal = u_ours == u_theirs
    lines.append(f"statistic == illico U: {int(equal.sum())}/{equal.size} rows identical; max abs diff "
                 f"{np.nanmax(np.abs(u_ours - u_theirs)):.3g}"
                 + (f"; {int(np.isnan(u_ours).sum())} NaN in ours" if np.isnan(u_ours).any() else ""))
    p_ours = ours["p_value"].to_numpy(np.float64)[idx]
    p_theirs = npz["p_value"][keep][found]
    n_t = ours["target"].map(sizes).to_numpy(np.float64)[idx]
    centred = u_ours == n_t * sizes[REFERENCE] / 2  # delta = U - n_t n_r / 2 = 0
    d = rel_diff(p_ours, p_theirs)
    d[np.isnan(p_ours)] = 0.0  # unparsable rows are reported separately
    lines.append(f"p_value max rel diff vs illico {d[~centred].max():.3g} (median {np.median(d):.2g}) over "
                 f"{int((~centred).sum())} rows with U != n_t*n_r/2; smallest p ours {p_ours.min():.3g}, "
                 f"illico {p_theirs.min():.3g}")
    if centred.any():
        lines.append(f"  {int(centred.sum())} rows with U == n_t*n_r/2 exactly: ours p in "
                     f"[{p_ours[centred].min():.6g}, {p_ours[centred].max():.6g}] (scipy/pdex give 1), illico in "
                     f"[{p_theirs[centred].min():.6g}, {p_theirs[centred].max():.6g}]")
    return lines


def crosscheck_scipy(path, ours, pdex_npz, chunked=False, n=300, seed=1):
    """Recompute a random sample of rows with scipy.stats.mannwhitneyu on float64 data."""
    import anndata as ad
    from scipy.stats import mannwhitneyu
    rng = np.random.default_rng(seed)
    rows = ours.iloc[np.sort(rng.choice(len(ours), min(n, len(ours)), replace=False))]
    adata = ad.read_h5ad(path)
    labels = adata.obs[KEY].to_numpy()
    genes = {g: i for i, g in enumerate(adata.var_names)}
    feats = sorted({genes[f] for f in rows["feature"]})
    cols = adata.X[:, feats].toarray()
    col = {g: k for k, g in enumerate(feats)}
    ref = labels == REFERENCE
    p_ref = np.empty(len(rows))
    u_ref = np.empty(len(rows))
    for k, (t, f) in enumerate(zip(rows["target"], rows["feature"])):
        x = cols[:, col[genes[f]]].astype(np.float64)
        r = mannwhitneyu(x[labels == t], x[ref], use_continuity=True)
        p_ref[k], u_ref[k] = r.pvalue, r.statistic
    d = rel_diff(rows["p_value"].to_numpy(np.float64), p_ref)
    lines = [f"ours vs scipy mannwhitneyu on float64 ({len(rows)} random rows): p max rel diff {d.max():.3g}, "
             f"U max abs diff {np.abs(rows['statistic'].to_numpy(np.float64) - u_ref).max():.3g}"]
    if pdex_npz is not None:
        sub = rows[["target", "feature"]].assign(p_value=p_ref)
        keep, idx, found = align(sub, pdex_npz)
        if found.any():
            dp = rel_diff(pdex_npz["p_value"][keep][found], p_ref[idx[found]])
            ok = pdex_npz["p_value"][keep][found] >= 1e-30
            why = ("its chunked numba kernel has no continuity correction" if chunked
                   else "pdex works in float32 on float32 X")
            lines.append(f"pdex vs the same scipy float64 ({int(ok.sum())} of these rows): p max rel diff "
                         f"{dp[ok].max() if ok.any() else float('nan'):.3g} ({why})")
    return lines


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = ap.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="6K x 500 x 20 (fast check)")
    size.add_argument("--k562", action="store_true", help="300K x 8K x 2K (K562 scale; large)")
    ap.add_argument("--binary", help="sctrial-plan executable")
    ap.add_argument("--pdex-targets", type=int, default=-1,
                    help="run pdex on the first N targets and extrapolate (0 = all; default: all when a "
                         "probe predicts it fits --pdex-budget-min)")
    ap.add_argument("--pdex-budget-min", type=float, default=20.0)
    ap.add_argument("--pdex-probe", type=int, default=20, help="targets in the pdex probe run")
    ap.add_argument("--quiet-wait-min", type=float, default=3.0,
                    help="before each tool, wait up to this long for other processes to go quiet (0 = don't)")
    ap.add_argument("--repeat", type=int, default=1,
                    help="alternate N runs of ours and illico and report each tool's median run (on this VM the "
                         "first large allocation after other work pays for fresh host pages, so a single run can "
                         "favour whichever tool runs second)")
    ap.add_argument("--skip", action="append", default=[], choices=["pdex", "illico", "ours"])
    # internal
    ap.add_argument("--child", choices=["pdex", "illico"])
    ap.add_argument("--file")
    ap.add_argument("--out")
    ap.add_argument("--child-targets", type=int, default=0)
    ap.add_argument("--child-chunked", action="store_true")
    args = ap.parse_args()
    if args.child:
        return child(args.child, args.file, args.out, args.child_targets, args.child_chunked)

    QUIET_MINUTES[0] = args.quiet_wait_min
    name = "quick" if args.quick else "k562" if args.k562 else "60k"
    n_obs, n_vars, n_perts, _ = SIZES[name]
    path = ensure_file(name)
    work = f"bench/data/de_runs_{name}"
    os.makedirs(work, exist_ok=True)
    log = os.path.join(work, "tools.log")
    open(log, "wb").close()
    env = dict(os.environ, **THREAD_ENV, PYTHONUNBUFFERED="1")
    shape = f"{n_obs // 1000}K x {n_vars:,} x {n_perts:,}"
    print(f"file {path}: {n_obs:,} cells x {n_vars:,} genes x {n_perts:,} perturbations, "
          f"{os.path.getsize(path) / 1e6:.0f} MB; {THREADS} threads per tool; logs {log}", flush=True)

    rows, notes, results = [], [], {}

    # Both tools start from the same (warm) page cache: the file is read once first.
    warm(path)

    # ours first (it only needs the file), then illico, alternating --repeat times; then pdex
    run_ours_now = "ours" not in args.skip and args.binary and ours_available(args.binary)
    if "ours" not in args.skip and not run_ours_now:
        notes.append("sctrial-plan: `plan de` is not available in this build; ours was not run")
    ours_runs, illico_runs = [], []
    illico_out = os.path.join(work, "illico.npz")
    for attempt in range(args.repeat):
        suffix = f" ({attempt + 1} of {args.repeat})" if args.repeat > 1 else ""
        if run_ours_now:
            print(f"running sctrial-plan plan de + run{suffix} ...", flush=True)
            ours_runs.append(run_ours(args.binary, path, os.path.join(work, "ours_run"), env, log))
        if "illico" not in args.skip:
            print(f"running illico{suffix} ...", flush=True)
            illico_runs.append(run_python_tool("illico", path, illico_out, 0, env, log))

    def median_run(runs, name):
        if len(runs) > 1:
            notes.append(f"{name}: median of {len(runs)} alternating runs: "
                         + ", ".join(f"{r['seconds']:.1f}" for r in runs) + " s")
        return sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]

    ours = median_run(ours_runs, "ours") if ours_runs else None
    if ours:
        rows.append(("sctrial-plan (plan de + run)", shape, ours, ""))
    illico_npz = None
    if illico_runs:
        rows.append(("illico 0.6.0 asymptotic_wilcoxon", shape, median_run(illico_runs, "illico"), ""))
        illico_npz = np.load(illico_out)

    pdex_npz, pdex_all, pdex_chunked = None, False, False
    if "pdex" not in args.skip:
        out = os.path.join(work, "pdex.npz")
        dense_gb = n_obs * n_vars * 4 / 1e9
        avail_gb = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1e9
        chunked = pdex_chunked = 2 * dense_gb > 0.8 * avail_gb
        if chunked:
            notes.append(f"pdex: standard path needs a dense copy plus a shared-memory copy (~{2 * dense_gb:.0f} GB, "
                         f"{avail_gb:.0f} GB available): ran its low-memory chunked path (backed, numba kernel, "
                         f"no continuity correction) instead")
        n = args.pdex_targets
        label = "pdex 0.1.28 standard (num_workers=2)" if not chunked else "pdex 0.1.28 chunked (1 worker, 2 numba threads)"
        if n < 0:  # probe, then decide
            probe_n = min(args.pdex_probe, n_perts)
            print(f"running pdex probe on {probe_n} targets ...", flush=True)
            probe = run_python_tool("pdex", path, out, probe_n if probe_n < n_perts else 0, env, log, chunked)
            predicted = probe["seconds"] - probe["call"] + probe["call"] * n_perts / probe_n
            if probe_n == n_perts:
                r, n = probe, 0
            elif predicted <= args.pdex_budget_min * 60:
                print(f"pdex predicted {predicted:.0f} s for all targets: running all ...", flush=True)
                r, n = run_python_tool("pdex", path, out, 0, env, log, chunked), 0
            else:
                r, n = probe, probe_n
        else:
            print(f"running pdex on {n or n_perts} targets ...", flush=True)
            r = run_python_tool("pdex", path, out, n, env, log, chunked)
        pdex_all = n == 0
        if not pdex_all:
            factor = n_perts / r["targets_run"]
            measured = dict(r)
            # a second, half-size run separates the fixed cost (reading, densifying, FDR) from the
            # per-target cost; shown as a cross-check of the proportional extrapolation
            half_n = max(1, r["targets_run"] // 2)
            print(f"running pdex on {half_n} targets (for the fixed-cost estimate) ...", flush=True)
            half = run_python_tool("pdex", path, os.path.join(work, "pdex_half.npz"), half_n, env, log, chunked)
            per_target = (r["call"] - half["call"]) / (r["targets_run"] - half["targets_run"])
            fixed = max(0.0, r["call"] - per_target * r["targets_run"])
            affine = fixed + per_target * n_perts
            r = dict(r, seconds=r["seconds"] - r["call"] + r["call"] * factor, call=r["call"] * factor)
            label += f" EXTRAPOLATED from {r['targets_run']} targets"
            notes.append(f"pdex measured on the first {measured['targets_run']} targets: {measured['seconds']:.1f} s "
                         f"end to end, DE call {measured['call']:.1f} s; DE call scaled x{factor:g} "
                         f"(proportional to targets); RSS/PSS are from the subset run")
            notes.append(f"pdex on {half['targets_run']} targets: DE call {half['call']:.1f} s -> fixed cost "
                         f"~{fixed:.1f} s + {per_target:.2f} s/target; affine estimate for {n_perts} targets: "
                         f"DE call {affine:.0f} s, end to end {measured['seconds'] - measured['call'] + affine:.0f} s")
        rows.append((label, shape, r, ""))
        pdex_npz = np.load(out)

    # table
    base = ours["seconds"] if ours else None
    print()
    print(f"{'tool':<70}{'cells x genes x perts':>24}{'seconds':>10}{'DE s':>9}{'ratio':>8}"
          f"{'peak RSS MB':>13}{'tree PSS MB':>13}{'others CPU':>12}")
    for label, shp, r, _ in rows:
        ratio = f"{r['seconds'] / base:.2f}" if base else "n/a"
        print(f"{label:<70}{shp:>24}{r['seconds']:>10.1f}{r['call']:>9.1f}{ratio:>8}{r['rss']:>13.0f}{r['pss']:>13.0f}{r['others']:>12.2f}")
    print("seconds = end to end (Python: spawn, imports, read_h5ad, DE call; ours: plan + run incl. writing "
          "results.csv); DE s = the DE call alone (ours: `run`); ratio = tool seconds / ours; peak RSS = "
          "os.wait4 ru_maxrss (largest single process of the tool's tree); tree PSS = sampled every 0.2 s, summed "
          "over the process tree; others CPU = cores' worth of CPU used by other processes on the machine "
          "during the tool's run (from /proc/stat; 0 = quiet machine, 2 = both cores busy elsewhere)")
    if ours:
        print(f"ours: plan {ours['plan']:.2f} s, run {ours['call']:.2f} s")
    for n in notes:
        print("note:", n)

    if ours:
        wanted = None
        if pdex_npz is not None and not pdex_all and illico_npz is None:
            wanted = set(pdex_npz["target_levels"])
        table, problems = load_ours(os.path.join(work, "ours_run"), wanted)
        expected = n_perts * n_vars
        print(f"\ncross-check (ours results.csv: {len(table):,} rows, expected {expected:,})")
        import pandas as pd
        dup = int(table.duplicated(["target", "feature"]).sum())
        if dup:
            problems.append(f"{dup:,} duplicate (target, feature) rows")
        bad = int(table[["p_value", "statistic"]].isna().any(axis=1).sum())
        if bad:
            problems.append(f"{bad:,} rows with an unparsable/NaN p_value or statistic")
        for prob in problems:
            print(f"  OURS RESULTS.CSV IS MALFORMED: {prob}")
        if pdex_npz is not None:
            print("vs pdex:")
            for line in crosscheck_pdex(table, pdex_npz, pdex_all, pdex_chunked):
                print("  " + line)
        print("vs scipy (float64 reference):")
        for line in crosscheck_scipy(path, table, pdex_npz, pdex_chunked):
            print("  " + line)
        if illico_npz is not None:
            print("vs illico:")
            for line in crosscheck_illico(table, illico_npz, group_sizes(path)):
                print("  " + line)
    elif pdex_npz is not None and illico_npz is not None:
        # without ours, still check the two references against each other (statistic = U1 in both)
        import pandas as pd
        t = pdex_npz["target_levels"][pdex_npz["target_codes"]]
        g = pdex_npz["feature_levels"][pdex_npz["feature_codes"]]
        fake = pd.DataFrame({"target": t, "feature": g, "statistic": pdex_npz["statistic"],
                             "p_value": pdex_npz["p_value"]})
        keep, idx, found = align(fake, illico_npz)
        u = fake["statistic"].to_numpy()[idx[found]]
        ui = illico_npz["statistic"][keep][found]
        pp = fake["p_value"].to_numpy()[idx[found]]
        pi = illico_npz["p_value"][keep][found]
        m = pp >= 1e-30
        print(f"\ncross-check pdex vs illico ({int(found.sum())} rows): U max abs diff {np.abs(u - ui).max():.3g}; "
              f"p max rel diff {rel_diff(pp[m], pi[m]).max():.3g} (pdex float32)")


if __name__ == "__main__":
    main()
