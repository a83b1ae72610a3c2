#!/usr/bin/env python3
"""End-to-end golden outputs from the real pdex 0.1.28 for the Swift DE parity tests.

Writes small deterministic .h5ad inputs (anndata 0.12.19) and, per case, pdex's
`parallel_differential_expression` result as CSV, plus cases.json, into OUT_DIR
(default: Tests/Fixtures/de next to this repository's root).

pdex is always called on its STANDARD (in-memory, shared-memory) path:
the .h5ad is read back fully into memory (not backed) and pdex gets
low_memory=False, num_workers=1, num_threads=1, show_progress=False, so the numba
chunked kernel is never used. The returned DataFrame is written as returned
(row order, values); only the float columns are written as float64 text with
'%.17g' (float32 values widen to float64 exactly, so nothing is lost). NaN is
written as the literal `nan`, infinities as `inf` / `-inf`.

Also writes a one-vs-rest reference (`<case>-rest.csv`) computed by a scipy loop
that mirrors pdex's standard code path with reference = all other cells, and, for
information, illico 0.6.0's asymptotic_wilcoxon OVR output (`<case>-rest-illico.csv`).

Usage: make_goldens.py [OUT_DIR]
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

from importlib.metadata import version

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import anderson_ksamp, false_discovery_control, mannwhitneyu, ttest_ind

from pdex import parallel_differential_expression
from pdex._single_cell import _fold_change, _percent_change, _sample_mean
from pdex._utils import guess_is_log

warnings.filterwarnings("ignore")
logging.getLogger("pdex").setLevel(logging.WARNING)
logging.getLogger("pdex._single_cell").setLevel(logging.WARNING)

COLUMNS = [
    "target", "reference", "feature", "target_mean", "reference_mean",
    "percent_change", "fold_change", "p_value", "statistic", "fdr",
]
FLOAT_COLUMNS = COLUMNS[3:]
FLOAT_FORMAT = "%.17g"
NA_REP = "nan"

REF = "non-targeting"
# perturbation -> number of cells (reference has N_REF cells)
TARGET_SIZES = {
    "STAT1": 100, "IRF1": 40, "JAK2": 25, "MYC": 8,
    "TP53": 5, "GATA1": 3, "SPI1": 2, "CEBPA": 1,
}
N_REF = 120


# --------------------------------------------------------------------------- data


def _nb(rng, mean, size, r=2.0):
    """Negative-binomial counts with the given mean and dispersion r."""
    mean = np.maximum(mean, 1e-9)
    p = r / (r + mean)
    return rng.negative_binomial(r, p, size=size).astype(np.float64)


def make_base_counts(seed=20240601):
    """Integer-valued counts matrix (cells x genes) + obs/var for the main cases."""
    rng = np.random.default_rng(seed)
    labels = np.array([REF] * N_REF + [t for t, n in TARGET_SIZES.items() for _ in range(n)],
                      dtype=object)
    while True:  # deterministic: first shuffle whose first label is not the reference
        shuffled = labels[rng.permutation(labels.size)]
        if shuffled[0] != REF:
            break
    labels = shuffled
    first = list(pd.unique(labels))
    assert first != sorted(first), "first-appearance order should not be sorted"
    n = labels.size
    targets = list(TARGET_SIZES)

    cols, names = [], []
    # 20 ordinary count genes with ties (NB), per-target effects on a few genes
    base_means = np.logspace(-1, 1.5, 20)
    effects = {t: dict(zip(rng.choice(20, 4, replace=False),
                           rng.choice([0.25, 0.5, 2.0, 4.0], 4))) for t in targets}
    for g in range(20):
        mu = np.full(n, base_means[g])
        for t in targets:
            if g in effects[t]:
                mu[labels == t] *= effects[t][g]
        cols.append(_nb(rng, mu, n))
        names.append(f"G{g + 1:02d}")
    # 8 wide integer genes (log-normal, huge range): tie-free with overwhelming
    # probability, so the exact Mann-Whitney test runs for groups of <= 8 cells.
    for g in range(8):
        loc = np.full(n, 11.0)
        for i, t in enumerate(targets):
            if (g + i) % 3 == 0:
                loc[labels == t] += (1.0 if (g + i) % 2 == 0 else -0.8)
        v = np.round(np.exp(rng.normal(loc, 1.2)))
        v = np.clip(v, 1, 2**24 - 1)  # exactly representable in float32
        cols.append(v)
        names.append(f"W{g + 1:02d}")
    is_ref = labels == REF
    # special genes
    cols.append(np.zeros(n)); names.append("ZERO_ALL")
    v = rng.poisson(3.0, n).astype(float); v[is_ref] = 0; v[labels == "SPI1"] = 0
    cols.append(v); names.append("ZERO_IN_REF")          # mu_r = 0 (and both 0 for SPI1)
    v = rng.poisson(4.0, n).astype(float) + 1; v[labels == "MYC"] = 0; v[labels == "CEBPA"] = 0
    cols.append(v); names.append("ZERO_IN_TGT")          # mu_t = 0 for MYC, CEBPA
    cols.append(np.full(n, 5.0)); names.append("CONST_5")  # all tied, nonzero
    v = np.full(n, 2.0)
    for i, t in enumerate(targets):
        v[labels == t] = 2.0 if t == "JAK2" else 3.0 + i   # each group constant
    cols.append(v); names.append("GROUP_CONST")
    cols.append(rng.integers(0, 2, n).astype(float)); names.append("BINARY")
    v = np.zeros(n); v[np.flatnonzero(labels == "TP53")[0]] = 7
    cols.append(v); names.append("ONE_CELL_TGT")
    v = np.zeros(n); v[np.flatnonzero(is_ref)[0]] = 3
    cols.append(v); names.append("ONE_CELL_REF")

    X = np.column_stack(cols)
    assert np.all(X == np.round(X)) and X.max() < 2**24
    obs = pd.DataFrame(
        {
            "target_gene": pd.Categorical(labels),
            "batch": pd.Categorical(rng.choice(["b1", "b2", "b3"], n)),
            "n_counts": X.sum(axis=1),
        },
        index=[f"cell{i:04d}" for i in range(n)],
    )
    var = pd.DataFrame({"kind": pd.Categorical(["count"] * 20 + ["wide"] * 8 + ["special"] * 8)},
                       index=names)
    return X, obs, var


def log1p_normalize(X):
    tot = X.sum(axis=1, keepdims=True)
    assert np.all(tot > 0)
    return np.log1p(X / tot * 1e4)


def make_guide(seed=7):
    """Dense float32 log1p data, groupby 'guide', reference 'control', interleaved cells
    with first-appearance order KO_M, control, KO_Z, KO_Q, KO_B, KO_A (not sorted)."""
    rng = np.random.default_rng(seed)
    sizes = {"KO_M": 30, "control": 40, "KO_Z": 1, "KO_Q": 60, "KO_B": 3, "KO_A": 6}
    head = list(sizes)
    rest = np.array([k for k, m in sizes.items() for _ in range(m - 1)], dtype=object)
    labels = np.concatenate([np.array(head, dtype=object), rest[rng.permutation(rest.size)]])
    n = labels.size
    cols, names = [], []
    for g in range(12):
        mu = np.full(n, np.logspace(-0.5, 1.2, 12)[g])
        for i, k in enumerate(head):
            if (g + i) % 4 == 0 and k != "control":
                mu[labels == k] *= 3.0 if g % 2 else 0.3
        cols.append(_nb(rng, mu, n)); names.append(f"C{g + 1:02d}")
    for g in range(8):
        loc = np.full(n, 6.0)
        for i, k in enumerate(head):
            if (g + i) % 3 == 0 and k != "control":
                loc[labels == k] += 0.7
        cols.append(np.round(np.exp(rng.normal(loc, 1.0)))); names.append(f"L{g + 1:02d}")
    cols.append(np.zeros(n)); names.append("ZERO_ALL")
    v = rng.poisson(2.0, n).astype(float); v[labels == "control"] = 0
    cols.append(v); names.append("ZERO_IN_CONTROL")
    v = rng.poisson(2.0, n).astype(float) + 1; v[labels == "KO_B"] = 0
    cols.append(v); names.append("ZERO_IN_KO_B")
    counts = np.column_stack(cols)
    X = log1p_normalize(counts).astype(np.float32)
    obs = pd.DataFrame(
        {"guide": pd.Categorical(labels), "donor": pd.Categorical(rng.choice(["d1", "d2"], n))},
        index=[f"c{i:03d}" for i in range(n)],
    )
    var = pd.DataFrame(index=names)
    return X, obs, var


def make_tiny(sizes, seed):
    """Tiny dense float64 file: continuous genes + a constant and an all-zero gene."""
    rng = np.random.default_rng(seed)
    labels = np.array([k for k, m in sizes.items() for _ in range(m)], dtype=object)
    n = labels.size
    X = np.column_stack([
        np.round(rng.lognormal(1.0, 0.8, n), 3),
        np.round(rng.lognormal(0.0, 0.5, n), 3),
        np.round(rng.normal(5.0, 2.0, n), 3),
        rng.poisson(2.0, n).astype(float),
        np.full(n, 1.5),
        np.zeros(n),
    ])
    obs = pd.DataFrame({"target_gene": pd.Categorical(labels)},
                       index=[f"t{i:02d}" for i in range(n)])
    var = pd.DataFrame(index=["CONT_A", "CONT_B", "NORMAL", "POIS", "CONST", "ZERO"])
    return X, obs, var


def make_missing_label(seed=99):
    """Dense float32 counts where some cells have a missing (NaN) target_gene."""
    rng = np.random.default_rng(seed)
    labels = np.array([REF] * 12 + ["A"] * 6 + ["B"] * 4 + [None] * 3, dtype=object)
    labels = labels[rng.permutation(labels.size)]
    n = labels.size
    X = rng.poisson(3.0, (n, 6)).astype(np.float32)
    obs = pd.DataFrame({"target_gene": pd.Categorical(labels, categories=[REF, "A", "B"])},
                       index=[f"m{i:02d}" for i in range(n)])
    var = pd.DataFrame(index=[f"M{i}" for i in range(1, 7)])
    return X, obs, var


# --------------------------------------------------------------------------- running


def write_h5ad(path: Path, X, obs, var, layers=None):
    adata = ad.AnnData(X=X, obs=obs, var=var, layers=layers or {})
    adata.write_h5ad(path)


def load(path: Path, layer=None) -> ad.AnnData:
    adata = ad.read_h5ad(path)  # fully in memory, not backed
    if layer is not None:
        # pdex has no `layer` argument: the equivalent is running it on X := layers[layer]
        adata = ad.AnnData(X=adata.layers[layer], obs=adata.obs, var=adata.var)
    return adata


def run_pdex(adata, args):
    return parallel_differential_expression(
        adata,
        groups=args["groups"],
        reference=args["reference"],
        groupby_key=args["groupby_key"],
        metric=args["metric"],
        tie_correct=args["tie_correct"],
        is_log1p=args["is_log1p"],
        exp_post_agg=args["exp_post_agg"],
        clip_value=args["clip_value"],
        low_memory=False,
        num_workers=1,
        num_threads=1,
        show_progress=False,
    )


def write_csv(df: pd.DataFrame, path: Path):
    out = df[COLUMNS].copy()
    for c in FLOAT_COLUMNS:
        # object columns (mixed np.float32 / Python numbers) and float32 columns are
        # widened to float64 exactly; float_format only applies to float columns.
        out[c] = pd.to_numeric(out[c]).astype(np.float64)
    out.to_csv(path, index=False, float_format=FLOAT_FORMAT, na_rep=NA_REP, lineterminator="\n")


def x_dense(adata):
    X = adata.X
    return np.asarray(X.toarray() if sp.issparse(X) else X)


def count_exact_mwu(adata, key, pairs):
    """Number of (target, gene) rows where scipy's MWU 'auto' picks the exact test."""
    X = x_dense(adata)
    lab = adata.obs[key].to_numpy()
    n_exact = 0
    for t, ref_mask in pairs:
        tm = lab == t
        if min(tm.sum(), ref_mask.sum()) > 8:
            continue
        for j in range(X.shape[1]):
            pooled = np.concatenate([X[tm, j], X[ref_mask, j]])
            if np.unique(pooled).size == pooled.size:
                n_exact += 1
    return n_exact


def _test(metric, x_t, x_r, tie_correct):
    """The metric dispatch of pdex's _process_target_batch_shm, called directly."""
    pval, stat = 1.0, np.nan
    try:
        if metric == "wilcoxon":
            res = mannwhitneyu(x_t, x_r, use_continuity=bool(tie_correct))
        elif metric == "anderson":
            res = anderson_ksamp([x_t, x_r])
        elif metric == "t-test":
            res = ttest_ind(x_t, x_r)
        else:
            raise KeyError(metric)
        pval, stat = res.pvalue, res.statistic
    except ValueError:
        pass
    return pval, stat


def scipy_loop(adata, args, rest: bool):
    """pdex standard-path semantics computed by an explicit loop.

    rest=False: reference = the reference group (used to validate the loop against pdex).
    rest=True : every group (first-appearance order) vs all other cells; reference label 'rest'.
    """
    key = args["groupby_key"]
    X = x_dense(adata)  # dtype kept, as pdex's shared matrix
    lab = adata.obs[key]
    targets = list(np.array(lab.unique()))
    is_log1p = args["is_log1p"]
    if is_log1p is None:
        is_log1p = guess_is_log(adata)
    rows = []
    for t in targets:
        if not rest and t == args["reference"]:
            continue
        tmask = (lab == t).to_numpy()
        rmask = ~tmask if rest else (lab == args["reference"]).to_numpy()
        for j, feat in enumerate(adata.var.index):
            x_t, x_r = X[tmask, j], X[rmask, j]
            mu_t = _sample_mean(x_t, is_log1p=is_log1p, exp_post_agg=args["exp_post_agg"])
            mu_r = _sample_mean(x_r, is_log1p=is_log1p, exp_post_agg=args["exp_post_agg"])
            pval, stat = _test(args["metric"], x_t, x_r, args["tie_correct"])
            rows.append({
                "target": t, "reference": "rest" if rest else args["reference"], "feature": feat,
                "target_mean": mu_t, "reference_mean": mu_r,
                "percent_change": _percent_change(mu_t, mu_r),
                "fold_change": _fold_change(mu_t, mu_r, clip_value=args["clip_value"]),
                "p_value": pval, "statistic": stat,
            })
    df = pd.DataFrame(rows)
    df["p_value"] = df["p_value"].fillna(1.0)
    try:
        df["fdr"] = false_discovery_control(df["p_value"].values, method="bh")
    except ValueError:
        df["fdr"] = df["p_value"].copy()
    return df


def assert_same(a: pd.DataFrame, b: pd.DataFrame, what: str):
    assert list(a.columns) == list(b.columns), what
    assert len(a) == len(b), what
    for c in COLUMNS:
        if c in ("target", "reference", "feature"):
            assert (a[c].astype(str).to_numpy() == b[c].astype(str).to_numpy()).all(), (what, c)
        else:
            x = pd.to_numeric(a[c]).to_numpy(np.float64)
            y = pd.to_numeric(b[c]).to_numpy(np.float64)
            assert np.array_equal(x, y, equal_nan=True), (what, c, np.nanmax(np.abs(x - y)))


def default_args(**kw):
    args = {
        "groupby_key": "target_gene", "reference": REF, "groups": None, "metric": "wilcoxon",
        "tie_correct": True, "is_log1p": None, "exp_post_agg": True, "clip_value": 20.0,
        "layer": None,
    }
    args.update(kw)
    return args


def main():
    root = Path(__file__).resolve().parents[3]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "Tests" / "Fixtures" / "de"
    out.mkdir(parents=True, exist_ok=True)

    # ---------------------------------------------------------------- inputs
    Xc, obs, var = make_base_counts()
    files = {}
    files["counts_csr_f32.h5ad"] = ("float32 CSR, integer-valued counts",
                                    dict(X=sp.csr_matrix(Xc.astype(np.float32)), obs=obs, var=var))
    files["counts_dense_f64.h5ad"] = ("float64 dense, same values as counts_csr_f32",
                                      dict(X=Xc.astype(np.float64), obs=obs, var=var))
    files["counts_csc_f32.h5ad"] = ("float32 CSC, same values as counts_csr_f32",
                                    dict(X=sp.csc_matrix(Xc.astype(np.float32)), obs=obs, var=var))
    Xl = log1p_normalize(Xc).astype(np.float32)
    files["log1p_csr_f32.h5ad"] = (
        "float32 CSR log1p(counts/total*1e4) in X; layers/counts = float32 CSR counts of counts_csr_f32",
        dict(X=sp.csr_matrix(Xl), obs=obs, var=var,
             layers={"counts": sp.csr_matrix(Xc.astype(np.float32))}))
    # z-scored log1p data, as sc.pp.scale(max_value=10) leaves X: every gene centred (so about
    # half the values are negative) and divided by its SD (ddof 1; 1 where the SD is 0).
    sd = Xl.astype(np.float64).std(axis=0, ddof=1)
    Xz = np.clip((Xl.astype(np.float64) - Xl.astype(np.float64).mean(axis=0)) / np.where(sd > 0, sd, 1.0), None, 10.0)
    files["scaled_dense_f64.h5ad"] = ("float64 dense z-scored log1p_csr_f32 X (sc.pp.scale-like, max 10): "
                                      "negative values", dict(X=Xz, obs=obs, var=var))
    Xg, obsg, varg = make_guide()
    files["guide_dense_f32.h5ad"] = ("float32 dense log1p data; obs 'guide' with reference 'control'",
                                     dict(X=Xg, obs=obsg, var=varg))
    files["tiny_n3_f64.h5ad"] = ("float64 dense; reference 2 cells, targets of 1, 2, 4 cells",
                                 dict(zip(("X", "obs", "var"),
                                          make_tiny({"A": 1, REF: 2, "B": 2, "C": 4}, seed=3))))
    files["tiny_n2_f64.h5ad"] = ("float64 dense; reference 1 cell, targets of 1 and 3 cells",
                                 dict(zip(("X", "obs", "var"),
                                          make_tiny({REF: 1, "A": 1, "B": 3}, seed=4))))
    files["missing_label_f32.h5ad"] = ("float32 dense counts; 3 cells have a missing target_gene",
                                       dict(zip(("X", "obs", "var"), make_missing_label())))
    for name, (_, kw) in files.items():
        write_h5ad(out / name, kw["X"], kw["obs"], kw["var"], kw.get("layers"))

    # ---------------------------------------------------------------- cases
    cases = []

    def case(name, input_file, dtype, notes, **kw):
        cases.append((name, input_file, dtype, notes, default_args(**kw)))

    C, D, S, L = ("counts_csr_f32.h5ad", "counts_dense_f64.h5ad",
                  "counts_csc_f32.h5ad", "log1p_csr_f32.h5ad")
    base_note = ("8 perturbations (1,2,3,5,8,25,40,100 cells) vs 120 reference cells, non-sorted "
                 "first-appearance order; W* genes tie-free (exact MWU for groups <= 8); special "
                 "genes ZERO_ALL, ZERO_IN_REF (SPI1 both zero), ZERO_IN_TGT (MYC, CEBPA), CONST_5, "
                 "GROUP_CONST (JAK2 equal to reference), BINARY, ONE_CELL_TGT, ONE_CELL_REF")
    case("counts_csr_f32_wilcoxon", C, "float32 csr", base_note + ". Float32 arithmetic in pdex.")
    case("counts_csr_f32_wilcoxon_nocc", C, "float32 csr", "tie_correct=False (no continuity).",
         tie_correct=False)
    case("counts_csr_f32_anderson", C, "float32 csr", "Anderson-Darling k-sample, midrank.",
         metric="anderson")
    case("counts_csr_f32_ttest", C, "float32 csr", "Student t (equal_var).", metric="t-test")
    case("counts_dense_f64_wilcoxon", D, "float64 dense", "float64 parity.")
    case("counts_dense_f64_wilcoxon_nocc", D, "float64 dense", "float64 parity, no continuity.",
         tie_correct=False)
    case("counts_dense_f64_anderson", D, "float64 dense", "float64 parity.", metric="anderson")
    case("counts_dense_f64_ttest", D, "float64 dense", "float64 parity.", metric="t-test")
    case("counts_csc_f32_wilcoxon", S, "float32 csc", "Must equal counts_csr_f32_wilcoxon.")
    case("log1p_layer_counts_wilcoxon", L, "float32 csr (layer)",
         "layer='counts': pdex has no layer argument, so pdex ran on AnnData(X=layers['counts']); "
         "auto is_log1p is decided on the layer (False). Must equal counts_csr_f32_wilcoxon.",
         layer="counts")
    case("log1p_wilcoxon", L, "float32 csr", "is_log1p auto-detected True; exp_post_agg=True, clip 20.")
    case("log1p_wilcoxon_expfirst", L, "float32 csr", "exp_post_agg=False: mean(expm1(x)).",
         exp_post_agg=False)
    case("log1p_wilcoxon_noclip", L, "float32 csr", "clip_value=None: mu_r=0 -> NaN, mu_t=0 -> 0.",
         clip_value=None)
    case("log1p_ttest_expfirst_noclip", L, "float32 csr", "t-test, exp_post_agg=False, clip None.",
         metric="t-test", exp_post_agg=False, clip_value=None)
    case("log1p_anderson", L, "float32 csr", "anderson on continuous data.", metric="anderson")
    case("log1p_forced_linear", L, "float32 csr",
         "is_log1p=False forced on log data: plain means.", is_log1p=False)
    case("counts_groups_subset", C, "float32 csr",
         "groups=['TP53','STAT1','NOT_A_GROUP','CEBPA']: absent name silently ignored; rows keep "
         "first-appearance order, not the groups order.",
         groups=["TP53", "STAT1", "NOT_A_GROUP", "CEBPA"])
    Z = "scaled_dense_f64.h5ad"
    scaled_note = ("z-scored data with negative values: pdex computes the tests and the (meaningless) "
                   "fold and percent changes of ")
    case("scaled_wilcoxon", Z, "float64 dense", scaled_note + "expm1(mean) (auto is_log1p True: positive "
         "fractions).")
    case("scaled_ttest", Z, "float64 dense", scaled_note + "expm1(mean) (auto is_log1p True).", metric="t-test")
    case("scaled_wilcoxon_linear", Z, "float64 dense", scaled_note + "plain means (is_log1p=False): "
         "negative means, negative ratios.", is_log1p=False)
    G = "guide_dense_f32.h5ad"
    gkw = dict(groupby_key="guide", reference="control")
    guide_note = ("groupby 'guide', reference 'control', cells interleaved, first appearance "
                  "KO_M, control, KO_Z, KO_Q, KO_B, KO_A (reference 2nd, not sorted); groups of 1, 3, "
                  "6, 30, 60 cells; auto is_log1p True.")
    case("guide_wilcoxon", G, "float32 dense", guide_note, **gkw)
    case("guide_ttest", G, "float32 dense", guide_note, metric="t-test", **gkw)
    case("guide_anderson", G, "float32 dense", guide_note, metric="anderson", **gkw)
    T3, T2 = "tiny_n3_f64.h5ad", "tiny_n2_f64.h5ad"
    case("tiny_n3_anderson", T3, "float64 dense",
         "A: 1 vs 2 cells (N=3: sigma^2 0/0 -> stat NaN, p 1.0); B: N=4; C: N=6.", metric="anderson")
    case("tiny_n3_wilcoxon", T3, "float64 dense", "exact MWU with tiny groups.")
    case("tiny_n3_ttest", T3, "float64 dense", "A has 1 cell (variance 0).", metric="t-test")
    case("tiny_n2_anderson", T2, "float64 dense", "A: 1 vs 1 cell (N=2).", metric="anderson")
    case("tiny_n2_wilcoxon", T2, "float64 dense", "1 vs 1 cell.")
    case("tiny_n2_ttest", T2, "float64 dense", "1 vs 1 cell: df=0.", metric="t-test")
    case("missing_label_wilcoxon", "missing_label_f32.h5ad", "float32 dense",
         "3 cells with NaN target_gene: pdex's unique() includes NaN as a target whose mask "
         "(== NaN) is empty: rows with target NaN (written 'nan'), target_mean NaN, p 1.0, "
         "statistic NaN, and these rows count in the BH m. Recorded for information (Swift may "
         "deliberately skip NaN labels).")

    manifest = []
    results = {}
    for name, input_file, dtype, notes, args in cases:
        adata = load(out / input_file, layer=args["layer"])
        assert not adata.isbacked
        entry = {"case": name, "input": input_file, "args": args, "dtype": dtype, "notes": notes}
        try:
            df = run_pdex(adata, args)
        except Exception as e:  # recorded, not fatal
            entry["raises"] = f"{type(e).__name__}: {e}"
            print(f"{name}: raises {entry['raises']}", flush=True)
            manifest.append(entry)
            continue
        assert list(df.columns) == COLUMNS, list(df.columns)
        results[name] = df
        write_csv(df, out / f"{name}.csv")
        entry["csv"] = f"{name}.csv"
        entry["n_rows"] = int(len(df))
        entry["pdex_dtypes"] = {c: str(df[c].dtype) for c in FLOAT_COLUMNS}
        entry["is_log1p_detected"] = bool(guess_is_log(adata)) if args["is_log1p"] is None else None
        if args["metric"] == "wilcoxon":
            lab = adata.obs[args["groupby_key"]].to_numpy()
            refm = lab == args["reference"]
            pairs = [(t, refm) for t in pd.unique(df["target"])]
            entry["n_rows_exact_mwu"] = count_exact_mwu(adata, args["groupby_key"], pairs)
        manifest.append(entry)
        print(f"{name}: {len(df)} rows", flush=True)

    # cross-checks documented in cases.json
    assert_same(results["counts_csr_f32_wilcoxon"], results["counts_csc_f32_wilcoxon"], "csc")
    assert_same(results["counts_csr_f32_wilcoxon"], results["log1p_layer_counts_wilcoxon"], "layer")

    # ------------------------------------------------------------ one-vs-rest
    for metric, base in (("wilcoxon", "guide_wilcoxon"), ("anderson", "guide_anderson"),
                         ("t-test", "guide_ttest")):
        args = default_args(metric=metric, **gkw)
        adata = load(out / G)
        # validate the loop: with the real reference it must reproduce pdex bit for bit
        assert_same(results[base], scipy_loop(adata, args, rest=False), f"loop vs pdex {base}")
        df = scipy_loop(adata, args, rest=True)
        rest_args = dict(args, reference="rest")
        write_csv(df, out / f"{base}-rest.csv")
        manifest.append({
            "case": f"{base}-rest", "input": G, "args": rest_args, "dtype": "float32 dense",
            "reference": "rest", "generated_by": "scipy loop mirroring pdex",
            "csv": f"{base}-rest.csv", "n_rows": int(len(df)),
            "notes": ("every group in first-appearance order (including 'control') vs all other "
                      "cells; pdex's own _sample_mean/_fold_change/_percent_change, scipy test "
                      "called as pdex does, ValueError -> (1.0, NaN), NaN p -> 1.0, BH over all "
                      "rows. The same loop with reference='control' reproduced pdex's "
                      f"{base}.csv bit for bit."),
        })
        print(f"{base}-rest: {len(df)} rows", flush=True)

    try:
        from illico import asymptotic_wilcoxon

        adata = load(out / G)
        res = asymptotic_wilcoxon(adata, is_log1p=True, group_keys="guide", reference=None,
                                  n_threads=1, exp_post_agg=True)
        res = res.reset_index()
        res.columns = ["target", "feature"] + list(res.columns[2:])
        res.to_csv(out / "guide_wilcoxon-rest-illico.csv", index=False, float_format=FLOAT_FORMAT,
                   na_rep=NA_REP, lineterminator="\n")
        manifest.append({
            "case": "guide_wilcoxon-rest-illico", "input": G, "reference": "rest",
            "generated_by": f"illico {version('illico')} asymptotic_wilcoxon OVR (information only)",
            "args": dict(default_args(**gkw), reference="rest", is_log1p=True),
            "dtype": "float32 dense", "csv": "guide_wilcoxon-rest-illico.csv",
            "n_rows": int(len(res)),
            "notes": ("illico columns: target, feature, p_value, statistic, z_score, fold_change; "
                      "always asymptotic (no exact test), continuity on, float64; fold_change = "
                      "(expm1(mean)+1e-9)/(expm1(mean_rest)+1e-9), no clipping, no FDR."),
        })
        print("illico OVR written", flush=True)
    except ImportError:
        print("illico not installed: skipping", flush=True)

    meta = {
        "generator": "tools/goldens/de/make_goldens.py",
        "versions": {p: version(p) for p in ("pdex", "numpy", "scipy", "pandas", "anndata",
                                              "numba", "h5py")},
        "csv_float_format": FLOAT_FORMAT,
        "csv_nan": NA_REP,
        "csv_columns": COLUMNS,
        "pdex_call": ("parallel_differential_expression(adata_in_memory, ..., low_memory=False, "
                      "num_workers=1, num_threads=1, show_progress=False)"),
        "inputs": {k: v[0] for k, v in files.items()},
        "cases": manifest,
    }
    (out / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")


if __name__ == "__main__":
    main()
