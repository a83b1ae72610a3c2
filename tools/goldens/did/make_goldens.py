#!/usr/bin/env python3
"""End-to-end DiD goldens from the real sctrial 1.0.0 (see requirements.txt).

Writes, under OUTDIR (default: <repo>/Tests/Fixtures/did):
  did_clean.h5ad          30 participants, 3 cell types, 40 genes, X dense float64, layer counts (CSR float32)
  did_clean_f32csr.h5ad   same obs/var, X = float32 CSR copy of did_clean's X, no layers
  did_messy.h5ad          unused categories, unpaired participants, third arm, crossover columns,
                          a participant missing a cell type, tiny / skipped cell types, layer with_nan
  did_edge.h5ad           N < K (nonrobust fallback) and N == K (ZeroDivisionError) cell types
  sets.gmt                gene sets for the score_gene_sets cases
  <case>.csv              the DataFrame sctrial returns (index dropped, float_format='%.17g', NaN = empty)
  cases.json              one entry per case (input, Swift CLI flags, the sctrial call as text, ...)

Every sctrial call is made on the AnnData as read back from the written .h5ad, so obs dtypes
(categoricals, bool, nullable boolean) are exactly what a reader of the file sees.
Deterministic: fixed numpy seeds; sctrial's bootstrap seeds are given per case.
"""
from __future__ import annotations

import json
import sys
import traceback
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

import sctrial
from sctrial.design import TrialDesign
from sctrial.preprocessing import add_log1p_cpm_layer
from sctrial.scoring import score_gene_sets
from sctrial.stats.did import _prepare_did_obs, did_table, did_table_by_celltype

warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.disable(logging.CRITICAL)

VISITS = ("V1", "V2")
FLOAT_FORMAT = "%.17g"


# --------------------------------------------------------------------------------------------
# Simulated inputs
# --------------------------------------------------------------------------------------------

def make_clean() -> ad.AnnData:
    """30 paired participants (15 Treated / 15 Control), cell types B / Mono / T, 40 genes.

    counts ~ Poisson(rate * gamma noise); X = log1p(counts / libsize * 1e4) (dense float64);
    layer counts = CSR float32 (integer valued). g07 is all zero (constant). g36..g38 are low count.
    Participants P01..P08 also have a few V3 cells (dropped by the visit filter).
    """
    rng = np.random.default_rng(20240601)
    n_part, n_genes = 30, 40
    genes = [f"g{i:02d}" for i in range(n_genes)]
    cts = ["B", "Mono", "T"]
    base = rng.uniform(-0.5, 1.8, n_genes)
    base[36:39] = [-4.2, -3.8, -3.3]  # low-count genes (min_gene_counts cases)
    ct_eff = rng.normal(0.0, 0.4, (len(cts), n_genes))
    part_eff = rng.normal(0.0, 0.3, (n_part, n_genes))
    did_eff = np.zeros(n_genes)
    did_eff[[0, 1, 2, 3, 4, 5, 20]] = [0.8, -0.6, 0.45, 0.3, -0.25, 0.15, 0.5]
    time_eff = rng.normal(0.1, 0.1, n_genes)
    sexes = rng.choice(["F", "M"], n_part)
    ages = rng.integers(30, 80, n_part)

    rows, counts = [], []
    for p in range(n_part):
        arm = "Treated" if p % 2 == 0 else "Control"
        visits = ["V1", "V2"] + (["V3"] if p < 8 else [])
        for vi, v in enumerate(visits):
            for ci, ct in enumerate(cts):
                n = 2 + rng.poisson(7) if v != "V3" else 1 + rng.poisson(2)
                t = 1.0 if v != "V1" else 0.0
                lograte = base + ct_eff[ci] + part_eff[p] + t * time_eff
                if arm == "Treated" and v == "V2":
                    lograte = lograte + did_eff
                for _ in range(n):
                    mult = rng.gamma(5.0, 1.0 / 5.0, n_genes)
                    c = rng.poisson(np.exp(lograte) * mult).astype(np.float64)
                    c[7] = 0.0
                    counts.append(c)
                    rows.append(dict(participant_id=f"P{p + 1:02d}", visit=v, arm=arm, celltype=ct,
                                     qc_score=float(rng.normal(0.2 * t, 1.0)), sex=sexes[p],
                                     age=int(ages[p])))
    C = np.vstack(counts)
    obs = pd.DataFrame(rows)
    obs.index = [f"c{i:05d}" for i in range(len(obs))]
    for col in ("participant_id", "visit", "arm", "celltype", "sex"):
        obs[col] = pd.Categorical(obs[col])
    lib = C.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1.0
    X = np.log1p(C / lib * 1e4)
    a = ad.AnnData(X=X.astype(np.float64), obs=obs, var=pd.DataFrame(index=genes))
    a.layers["counts"] = sp.csr_matrix(C.astype(np.float32))
    return a


def make_messy() -> ad.AnnData:
    """Design irregularities (see README). Continuous expression, 12 genes, X dense float64."""
    rng = np.random.default_rng(7321)
    n_genes = 12
    genes = [f"m{i:02d}" for i in range(n_genes)]
    arms = {}
    for i in range(1, 28):
        arms[f"P{i:02d}"] = ("Treated" if i <= 10 else "Control" if i <= 20 else "Placebo" if i <= 24
                             else {25: "Treated", 26: "Control", 27: "Control"}[i])
    # (participant -> visits) for the B / T cell types
    bt_visits = {p: ["V1", "V2"] for p in arms}
    bt_visits["P25"] = ["V1"]          # unpaired (V1 only)
    bt_visits["P26"] = ["V2"]          # unpaired (V2 only)
    bt_visits["P27"] = ["V3"]          # only at a visit outside the pair
    for p in ("P01", "P02", "P03", "P04"):
        bt_visits[p] = ["V1", "V2", "V3"]
    groups = []  # (participant, visit, celltype, n_cells)
    for p, vs in bt_visits.items():
        for v in vs:
            groups.append((p, v, "B", 3 + rng.poisson(5)))
            if p == "P07":
                continue                                # P07 has no T cells at all
            if p == "P08" and v != "V1":
                continue                                # P08 has T cells at V1 only
            groups.append((p, v, "T", 3 + rng.poisson(5)))
    for p in ("P01", "P11", "P21"):                     # Tiny: 3 paired participants
        for v in VISITS:
            groups.append((p, v, "Tiny", 3))
    for p in ("P02", "P12"):                            # Ghost: V1 only -> skipped (ValueError)
        groups.append((p, "V1", "Ghost", 4))
    groups.append(("P03", "V3", "Late", 4))             # Late: only at V3 -> skipped (KeyError)

    ct_eff = {"B": rng.normal(0, 0.5, n_genes), "T": rng.normal(0, 0.5, n_genes),
              "Tiny": rng.normal(0, 0.5, n_genes), "Ghost": rng.normal(0, 0.5, n_genes),
              "Late": rng.normal(0, 0.5, n_genes)}
    part_eff = {p: rng.normal(0, 0.4, n_genes) for p in arms}
    did_eff = np.zeros(n_genes)
    did_eff[:4] = [0.9, -0.5, 0.35, 0.2]
    rows, X = [], []
    for p, v, ct, n in groups:
        t = 0.0 if v == "V1" else 1.0
        mu = 2.0 + ct_eff[ct] + part_eff[p] + 0.15 * t
        if arms[p] == "Treated" and v == "V2":
            mu = mu + did_eff
        for _ in range(n):
            X.append(mu + rng.normal(0, 1.0, n_genes))
            rows.append(dict(participant_id=p, visit=v, arm=arms[p], celltype=ct))
    obs = pd.DataFrame(rows)
    n = len(obs)
    pid = obs["participant_id"].to_numpy()
    vis = obs["visit"].to_numpy()
    ctv = obs["celltype"].to_numpy()

    # crossover_str: strings, lower/strip matching, NaN
    cs = np.array(["no"] * n, dtype=object)
    cs[rng.random(n) < 0.08] = "No"
    cs[rng.random(n) < 0.05] = "false"
    cs[rng.random(n) < 0.05] = "0"
    cs[(pid == "P04")] = np.nan                         # all NaN -> not crossover
    cs[rng.random(n) < 0.05] = np.nan
    cs[(pid == "P05") & (vis == "V2")] = "yes"          # P05 becomes unpaired (still counts in K)
    cs[(pid == "P12")] = " Yes "                         # P12 removed entirely (not in K)
    cs[(pid == "P14") & (vis == "V1")] = "TRUE"          # P14 unpaired
    m15 = np.flatnonzero((pid == "P15") & (vis == "V1"))
    cs[m15[::2]] = "y"                                   # P15 partly crossover, still paired
    cs[(pid == "P16") & (vis == "V2") & (ctv == "B")] = "1"
    cs[(pid == "P22")] = "t"                             # a Placebo participant removed entirely
    obs["crossover_str"] = cs

    cb = np.zeros(n, dtype=bool)
    cb[(pid == "P06") & (vis == "V1")] = True            # P06 unpaired
    cb[(pid == "P13")] = True                            # P13 removed
    cb[rng.random(n) < 0.03] = True
    obs["crossover_bool"] = cb

    nb = pd.array(np.zeros(n, dtype=bool), dtype="boolean")
    nb[rng.random(n) < 0.10] = pd.NA                     # NA -> not crossover
    nb[(pid == "P09") & (vis == "V2")] = True
    nb[(pid == "P17")] = True
    obs["crossover_nbool"] = nb

    obs["pid_int"] = np.array([int(p[1:]) for p in pid], dtype=np.int64)
    cats = ["P90"] + sorted(arms) + ["P91"]            # P90 / P91: categories with no cells
    obs["participant_id"] = pd.Categorical(obs["participant_id"], categories=cats)
    for col in ("visit", "arm", "celltype"):
        obs[col] = pd.Categorical(obs[col])
    obs.index = [f"m{i:05d}" for i in range(n)]
    Xd = np.vstack(X).astype(np.float64)
    a = ad.AnnData(X=Xd, obs=obs, var=pd.DataFrame(index=genes))
    wn = Xd.copy()
    wn[rng.random(n) < 0.15, 3] = np.nan                 # m03: 15 % NaN cells (n_cells still counts them)
    keep5 = np.isin(pid, ["P01", "P11", "P21"])
    wn[~keep5, 5] = np.nan                               # m05: finite only for 3 participants
    a.layers["with_nan"] = wn
    return a


def make_edge() -> ad.AnnData:
    """Cell type FB: 6 paired + 14 V1-only participants (N=12 < K=22 -> nonrobust fallback).
    Cell type NK: 6 paired + 4 V1-only participants (N=12 == K=12 -> ZeroDivisionError)."""
    rng = np.random.default_rng(99)
    genes = [f"e{i}" for i in range(4)]
    rows, X = [], []
    for ct, n_extra in (("FB", 14), ("NK", 4)):
        for i in range(1, 7 + n_extra):
            p = f"E{i:02d}"
            arm = "Treated" if i % 2 == 1 else "Control"
            for v in (VISITS if i <= 6 else ("V1",)):
                t = 1.0 if v == "V2" else 0.0
                for _ in range(4):
                    mu = 1.0 + 0.2 * i / 10 + 0.3 * t + (0.6 * t if arm == "Treated" else 0.0)
                    X.append(mu + rng.normal(0, 1.0, len(genes)))
                    rows.append(dict(participant_id=p, visit=v, arm=arm, celltype=ct))
    obs = pd.DataFrame(rows)
    obs.index = [f"e{i:05d}" for i in range(len(obs))]
    for col in ("participant_id", "visit", "arm", "celltype"):
        obs[col] = pd.Categorical(obs[col])
    return ad.AnnData(X=np.vstack(X), obs=obs, var=pd.DataFrame(index=genes))


def make_zero_control() -> ad.AnnData:
    """12 paired participants (6 Treated / 6 Control), 5 cells per participant-visit, 3 genes.

    z0, z1: every control participant's cells are mostly 0 at both visits, so with agg='median'
    the control arm's median is exactly 0 for everyone at V1 and V2: beta_time is 0 and its
    cluster-robust standard error is 0 (treated rows have no influence on it), so statsmodels
    gives p_time = 0/0 = NaN. Treated participants vary (z0 rises at V2, z1 does not).
    ok: an ordinary gene (every p finite), the control for the case.
    zall: 0 everywhere; unstandardized, every coefficient and standard error is exactly 0.
    """
    rng = np.random.default_rng(5150)
    rows, X = [], []
    for i in range(1, 13):
        p = f"Z{i:02d}"
        arm = "Treated" if i % 2 == 1 else "Control"
        for v in VISITS:
            post = v == "V2"
            for k in range(5):
                if arm == "Control":
                    zero = [0.0, 0.0, 0.0, float(rng.integers(1, 6)), float(rng.integers(1, 6))][k]
                    z0 = z1 = zero
                else:
                    z0 = float(rng.poisson(3.0 + (2.0 if post else 0.0)))
                    z1 = float(rng.poisson(4.0))
                ok = float(rng.poisson(5.0 + (1.0 if post else 0.0) + (1.5 if post and arm == "Treated" else 0.0)))
                X.append([z0, z1, ok, 0.0])
                rows.append(dict(participant_id=p, visit=v, arm=arm))
    obs = pd.DataFrame(rows)
    obs.index = [f"z{i:04d}" for i in range(len(obs))]
    for col in ("participant_id", "visit", "arm"):
        obs[col] = pd.Categorical(obs[col])
    return ad.AnnData(X=np.array(X, dtype=np.float64), obs=obs, var=pd.DataFrame(index=["z0", "z1", "ok", "zall"]))


GMT = [
    ("SHORT", "na", ["g01", "g02", "NOT_A_GENE"]),                      # 2 genes present < 3 -> NaN
    ("UP", "http://example.org/up", ["g00", "g01", "g02", "g03", "g00", "MISSING1"]),
    ("MIXED", "na", ["g04", "g05", "g07", "g10", "g11", "g12", "g13", "g14"]),  # g07 constant
    ("LOWEXPR", "na", ["g36", "g37", "g38", "g20"]),
]


def read_gmt(path: Path) -> dict[str, list[str]]:
    sets = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        parts = line.split("\t")
        sets[parts[0]] = [g for g in parts[2:] if g]
    return sets


# --------------------------------------------------------------------------------------------
# Cases
# --------------------------------------------------------------------------------------------

def design_text(d: TrialDesign) -> str:
    default = TrialDesign()
    args = [f"{k}={getattr(d, k)!r}" for k in ("participant_col", "visit_col", "arm_col", "arm_treated",
                                               "arm_control", "celltype_col", "crossover_col")
            if getattr(d, k) != getattr(default, k)]
    return f"TrialDesign({', '.join(args)})"


def kwargs_text(kw: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


def main() -> None:
    root = Path(__file__).resolve().parents[3]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "Tests" / "Fixtures" / "did"
    out.mkdir(parents=True, exist_ok=True)
    for f in list(out.glob("*.csv")) + list(out.glob("*.h5ad")):
        f.unlink()

    clean = make_clean()
    clean.write_h5ad(out / "did_clean.h5ad")
    f32 = ad.AnnData(X=sp.csr_matrix(clean.X.astype(np.float32)), obs=clean.obs.copy(),
                     var=clean.var.copy())
    f32.write_h5ad(out / "did_clean_f32csr.h5ad")
    make_messy().write_h5ad(out / "did_messy.h5ad")
    make_edge().write_h5ad(out / "did_edge.h5ad")
    make_zero_control().write_h5ad(out / "did_zero_control.h5ad")
    (out / "sets.gmt").write_text("".join(f"{n}\t{d}\t" + "\t".join(g) + "\n" for n, d, g in GMT))

    def load(name: str) -> ad.AnnData:
        return ad.read_h5ad(out / name)

    design = TrialDesign()
    base_cli = ["--visits", ",".join(VISITS)]
    cases: list[dict] = []

    def record(case: str, input_name: str, cli: list[str], python: str, dtype: str, notes: str,
               fn, features: list[str] | None = None, **extra) -> None:
        entry = {"case": case, "input": input_name, "cli": base_cli + cli, "python": python,
                 "dtype": dtype, "notes": notes}
        if features is not None:
            entry["features"] = features
        entry.update(extra)
        try:
            res = fn()
        except Exception as e:  # record the reference's exception instead of a CSV
            entry["raises"] = f"{type(e).__name__}: {e}"
            print(f"{case}: raises {entry['raises']}", file=sys.stderr)
        else:
            res.to_csv(out / f"{case}.csv", index=False, float_format=FLOAT_FORMAT)
            entry["csv"] = f"{case}.csv"
            entry["n_rows"] = int(len(res))
            entry["columns"] = list(res.columns)
            print(f"{case}: {len(res)} rows", file=sys.stderr)
        cases.append(entry)

    def did_case(case, input_name, cli, dtype, notes, features=None, features_text=None,
                 design_=design, prep=None, prep_text="", by_celltype=False, **kw):
        """Run did_table (or did_table_by_celltype) on the read-back file (+ optional prep)."""
        used: dict = {}

        def fn():
            a = load(input_name)
            if prep is not None:
                a = prep(a)
            feats = list(a.var_names) if features is None else features
            used["features"] = feats
            if not by_celltype:
                # participant levels C that enter K = 1 + (C - 1) + 2 + p_cov (REFERENCE-SEMANTICS 1.7.4)
                _, obs = _prepare_did_obs(a, design_, VISITS, kw.get("celltype"), True)
                pc = obs[design_.participant_col]
                used["C"] = (len(pc.cat.categories) if isinstance(pc.dtype, pd.CategoricalDtype)
                             else "non-categorical: distinct participants in the fitted rows")
            func = did_table_by_celltype if by_celltype else did_table
            return func(a, features=feats, design=design_, visits=VISITS, **kw)
        fname = "did_table_by_celltype" if by_celltype else "did_table"
        ftxt = features_text or ("list(adata.var_names)" if features is None else repr(features))
        python = (f"adata = anndata.read_h5ad({input_name!r}); {prep_text}"
                  f"{fname}(adata, features={ftxt}, design={design_text(design_)}, visits={VISITS!r}"
                  + (f", {kwargs_text(kw)}" if kw else "") + ")")
        record(case, input_name, cli, python, dtype, notes, fn)
        entry = cases[-1]
        entry["features"] = used.get("features")
        if "C" in used:
            entry["participant_levels_C"] = used["C"]

    C, F, M, E = "did_clean.h5ad", "did_clean_f32csr.h5ad", "did_messy.h5ad", "did_edge.h5ad"
    ALL = ["--features", "all"]

    # ---- clean: basics, dtypes, aggregation modes ----
    did_case("clean_default", C, ALL, "float64",
             "Default did_table, all 40 genes, X dense float64. g07 is all-zero -> SD < 1e-8 -> NaN row "
             "(no resid_sd/cov_type_used). V3 cells of P01..P08 removed by the visit filter.")
    did_case("clean_f32csr_default", F, ALL, "float32",
             "Same data as clean_default but X is CSR float32: sctrial aggregates in float32 "
             "(Kahan, float32 result), so use a float32-derived tolerance.")
    did_case("clean_f32csr_median", F, ALL + ["--agg", "median"], "float32",
             "agg='median' on float32 CSR: median rounded once to float32.", agg="median")
    did_case("clean_celltype_B", C, ALL + ["--celltype", "B"], "float64",
             "Single cell type via celltype='B'.", celltype="B")
    did_case("clean_by_celltype", C, ALL + ["--by-celltype"], "float64",
             "did_table_by_celltype over sorted cell types B, Mono, T; per-block FDR_DiD plus "
             "FDR_DiD_stratified over the concatenated table.", by_celltype=True)
    did_case("clean_pvc", C, ALL + ["--aggregate", "participant_visit_celltype"], "float64",
             "aggregate='participant_visit_celltype': one row per (participant, visit, celltype), "
             "WLS weights n_cells, FE/cluster = participant.", aggregate="participant_visit_celltype")
    did_case("clean_cell", C, ALL + ["--aggregate", "cell"], "float64",
             "aggregate='cell': cell-level OLS (no n_cells), cluster = participant.", aggregate="cell")
    did_case("clean_median", C, ALL + ["--agg", "median"], "float64", "agg='median'.", agg="median")
    did_case("clean_covariates", C, ALL + ["--covariates", "qc_score,sex"], "float64",
             "covariates: qc_score (numeric, cell level, aggregated with mean, identified) and sex "
             "(categorical, constant within participant -> 'first'; collinear with the participant FE "
             "-> rank-deficient design, pinv; its column counts in K).", covariates=["qc_score", "sex"])
    did_case("clean_nostd", C, ALL + ["--no-standardize"], "float64",
             "standardize=False: raw units. The all-zero gene g07 gives y == 0 exactly -> beta 0, "
             "se 0, p NaN -> nonrobust fallback row (se 0, p NaN, resid_sd 0).", standardize=False)
    boot_feats = [f"g{i:02d}" for i in range(12)] + ["g20"]
    did_case("clean_bootstrap_seed42", C,
             ["--features", ",".join(boot_feats), "--bootstrap", "--n-boot", "199", "--seed", "42"],
             "float64",
             "Wild cluster bootstrap, B=199, seed 42, G=30 (all-equal-sign draws: probability 2^-29). "
             "p_DiD is replaced by p_DiD_boot (multiples of 1/200) -> ties in p_DiD; sort order among "
             "ties is not specified: compare by feature. g07 is a NaN row without bootstrap keys.",
             features=boot_feats, use_bootstrap=True, n_boot=199, seed=42)
    did_case("clean_bootstrap_seed7", C,
             ["--features", ",".join(boot_feats), "--bootstrap", "--n-boot", "199", "--seed", "7"],
             "float64", "As clean_bootstrap_seed42 with seed 7.",
             features=boot_feats, use_bootstrap=True, n_boot=199, seed=7)

    # ---- gene sets ----
    gsets = read_gmt(out / "sets.gmt")
    set_feats = [f"ms_{n}" for n in gsets]

    def gs_prep(method):
        def prep(a):
            return score_gene_sets(a, gsets, method=method, prefix="ms_", min_genes=3)
        return prep

    for method, inp, dt, tag in (("zmean", C, "float64", "geneset_zmean"),
                                 ("mean", C, "float64", "geneset_mean"),
                                 ("zmean", F, "float32", "geneset_zmean_f32csr")):
        did_case(tag, inp,
                 ["--gene-sets", "sets.gmt", "--set-prefix", "ms_", "--score-method", method,
                  "--min-genes", "3"], dt,
                 f"score_gene_sets(method={method!r}, prefix='ms_', min_genes=3) over ALL cells of the "
                 "file (all visits incl. V3, all cell types), then did_table on the score columns in GMT "
                 "order (features = the ms_* columns; no --features flag). SHORT has 2 genes present -> "
                 "all-NaN column -> NaN row with n_units 0; because it is the FIRST feature, 'feature' "
                 "comes before resid_sd/cov_type_used in the column order. UP has a duplicate and a "
                 "missing gene; MIXED contains the all-zero g07 (dropped by zmean: sd 0, kept by mean)."
                 + (" Sparse float32 input: scores are computed and stored in float32, then aggregated "
                    "in float32." if dt == "float32" else ""),
                 features=set_feats, features_text=repr(set_feats), prep=gs_prep(method),
                 prep_text=(f"gene_sets = read_gmt('sets.gmt'); score_gene_sets(adata, gene_sets, "
                            f"method={method!r}, prefix='ms_', min_genes=3); "))

    # ---- log1p-CPM, min_gene_counts ----
    def cpm_prep(a):
        return add_log1p_cpm_layer(a, counts_layer="counts", out_layer="log1p_cpm")

    did_case("log1p_cpm", C, ["--log1p-cpm-from", "counts", "--features", "all"], "float64",
             "add_log1p_cpm_layer(counts CSR float32, scale 1e6) -> CSR float64 layer log1p_cpm "
             "(library sizes over all 40 genes), then did_table(layer='log1p_cpm').",
             features_text="list(adata.var_names)", prep=cpm_prep,
             prep_text="add_log1p_cpm_layer(adata, counts_layer='counts', out_layer='log1p_cpm'); ",
             layer="log1p_cpm")

    probe = load(C)
    totals = np.asarray(probe.layers["counts"].sum(axis=0)).ravel()
    MIN_COUNTS = 100
    kept = [g for g, t in zip(probe.var_names, totals) if t >= MIN_COUNTS]
    assert 0 < len(kept) < probe.n_vars - 1, (totals, kept)

    def mgc_prep(cpm: bool):
        def prep(a):
            tot = np.asarray(a.layers["counts"].sum(axis=0)).ravel()
            a = a[:, tot >= MIN_COUNTS].copy()
            if cpm:
                a = add_log1p_cpm_layer(a, counts_layer="counts", out_layer="log1p_cpm")
            return a
        return prep

    filt_txt = ("keep = np.asarray(adata.layers['counts'].sum(axis=0)).ravel() >= %d; "
                "adata = adata[:, keep].copy(); " % MIN_COUNTS)
    totals_note = {g: int(t) for g, t in zip(probe.var_names, totals) if t < MIN_COUNTS}
    did_case("min_gene_counts_counts_layer", C,
             ["--layer", "counts", "--min-gene-counts", str(MIN_COUNTS), "--features", "all"], "float32",
             f"Gene filter with sc.pp.filter_genes(min_counts={MIN_COUNTS}) semantics on the analysed matrix "
             "(layer counts): keep genes whose total over ALL cells of the file is >= N (implemented in "
             f"numpy, scanpy not installed). Removed: {totals_note}. Then did_table(layer='counts') on the "
             "kept genes; the counts layer is CSR float32 -> float32 aggregation.",
             features=kept, features_text="list(adata.var_names)", prep=mgc_prep(False),
             prep_text=filt_txt, layer="counts")
    cases[-1]["kept_genes"] = kept
    did_case("min_gene_counts_log1p_cpm", C,
             ["--log1p-cpm-from", "counts", "--min-gene-counts", str(MIN_COUNTS), "--features", "all"],
             "float64",
             f"Filter FIRST (counts layer totals over all cells >= {MIN_COUNTS}, as scanpy filter_genes "
             "before normalisation), THEN add_log1p_cpm_layer on the kept genes (library sizes over the "
             "kept genes only), then did_table(layer='log1p_cpm').",
             features=kept, features_text="list(adata.var_names)", prep=mgc_prep(True),
             prep_text=filt_txt + "add_log1p_cpm_layer(adata, counts_layer='counts', "
                                  "out_layer='log1p_cpm'); ",
             layer="log1p_cpm")
    cases[-1]["kept_genes"] = kept

    # ---- pct_pos ----
    did_case("pct_pos_reference_raises", C, ALL + ["--agg", "pct_pos"], "float64",
             "The real sctrial 1.0.0 call with agg='pct_pos' raises (pandas has no 'pct_pos' "
             "aggregation). Our tool implements it (decision 8.3); see case pct_pos.", agg="pct_pos")

    def pct_pos(x):
        return (x > 0).mean() * 100.0

    pct_pos.__name__ = "pct_pos"

    def pct_fn():
        a = load(C)
        return did_table(a, features=list(a.var_names), design=design, visits=VISITS, agg=pct_pos)

    record("pct_pos", C, ALL + ["--agg", "pct_pos"],
           "adata = anndata.read_h5ad('did_clean.h5ad'); did_table(adata, features=list(adata.var_names), "
           "design=TrialDesign(), visits=('V1', 'V2'), agg=lambda x: (x > 0).mean() * 100.0)",
           "float64",
           "pct_pos = 100 * (#cells with value > 0) / (#cells in the group), per (participant, visit, arm); "
           "a NaN value counts as not positive but stays in the denominator. Only the per-feature reducer "
           "is replaced (a callable passed as agg to sctrial's own groupby.agg); n_cells, pairing, WLS fit, "
           "sort and FDR are sctrial's. g07 (all zero) -> constant 0 -> NaN row.",
           pct_fn, features=list(probe.var_names),
           generated_by="pct_pos aggregation emulated, sctrial fit")

    # ---- messy ----
    messy_notes = ("participant_id is categorical with unused categories P90/P91 (no cells; removed by "
                   "anndata's subset) ; P27 only at V3 (removed by the visit filter, not in K); P25 (V1 "
                   "only) and P26 (V2 only) are unpaired but still categories -> counted in K; P21..P24 "
                   "are 'Placebo' (third arm -> arm_bin 0); cell types B, T, Tiny, Ghost(V1 only), Late "
                   "(V3 only); P07 has no T cells, P08 has T cells at V1 only.")
    did_case("messy_default", M, ALL, "float64", "Pooled over cell types. " + messy_notes)
    did_case("messy_int_participant", M, ALL + ["--participant-col", "pid_int"], "float64",
             "Participant column pid_int is int64 (not categorical): C(participant) levels are the "
             "distinct values in the fitted rows, so unpaired P25/P26 do NOT count in K (compare "
             "messy_default).", design_=TrialDesign(participant_col="pid_int"))
    for col, what in (("crossover_str", "strings/categorical with NaN: lower(strip(str(v))) in "
                                        "{1,true,t,yes,y}; NaN -> 'nan' -> not crossover. P05 V2 and P14 V1 "
                                        "excluded (-> unpaired, still in K), P12 and P22 fully excluded (not "
                                        "in K), half of P15's V1 cells excluded."),
                      ("crossover_bool", "bool column: P06 V1 excluded (-> unpaired, in K), P13 fully "
                                         "excluded (not in K), ~3% random cells excluded."),
                      ("crossover_nbool", "nullable boolean with NA (NA -> not crossover): P09 V2 excluded, "
                                          "P17 fully excluded.")):
        did_case(f"messy_{col}", M, ALL + ["--crossover-col", col], "float64",
                 f"exclude_crossovers=True with crossover_col={col!r}: {what}",
                 design_=TrialDesign(crossover_col=col))
    did_case("messy_celltype_T", M, ALL + ["--celltype", "T"], "float64",
             "celltype='T': P07 (no T cells) drops out of the categories; P08 (T at V1 only) is unpaired "
             "but counts in K.", celltype="T")
    did_case("messy_by_celltype_all", M, ALL + ["--by-celltype"], "float64",
             "did_table_by_celltype, all cell types of the full file in sorted order: B, Ghost, Late, T, "
             "Tiny. Ghost (V1 only) is skipped (ValueError: empty frame after pairing); Late (only V3) is "
             "skipped (no cells -> KeyError: False, raised in _ensure_paired); Tiny has 3 participants -> n_units 3 < 4 -> NaN rows "
             "(resid_sd, cov_type_used NaN).", by_celltype=True)
    did_case("messy_by_celltype_subset", M,
             ALL + ["--by-celltype", "--celltypes", "Tiny,T,Ghost", "--crossover-col", "crossover_bool"],
             "float64",
             "celltypes=['Tiny','T','Ghost'] in that order (blocks are concatenated in the given order, not "
             "sorted) with crossover_col='crossover_bool'. Tiny (first block) has only NaN rows, so its "
             "block lacks resid_sd/cov_type_used and the concatenated column order is beta_DiD, se_DiD, "
             "p_DiD, beta_time, p_time, n_units, feature, FDR_DiD, celltype, resid_sd, cov_type_used, "
             "FDR_DiD_stratified. Ghost skipped.",
             by_celltype=True, celltypes=["Tiny", "T", "Ghost"],
             design_=TrialDesign(crossover_col="crossover_bool"))
    did_case("messy_nan_layer", M, ALL + ["--layer", "with_nan"], "float64",
             "layer with_nan: m03 has ~15% NaN cells (group mean over non-NaN values, but n_cells -- the WLS "
             "weight -- still counts the NaN cells); m05 is finite only for P01, P11, P21 -> n_units 3 -> "
             "NaN row. If the Swift tool rejects NaN input by design, assert a clear error instead.",
             layer="with_nan")

    # ---- edge: fallback and N == K ----
    did_case("edge_fallback", E, ALL + ["--celltype", "FB"], "float64",
             "celltype FB: 6 paired + 14 V1-only participants (all 20 are categories) -> N=12, K=1+19+2=22 "
             "> N -> CRV1 factor negative -> se NaN -> nonrobust fallback, p from t(N-rank = 12-8 = 4); "
             "cov_type_used 'nonrobust'.", celltype="FB")
    did_case("edge_n_equals_k", E, ALL + ["--celltype", "NK"], "float64",
             "celltype NK: 6 paired + 4 V1-only participants -> N = K = 12 -> statsmodels raises "
             "ZeroDivisionError (our tool: NaN row with a reason, decision 8.2).", celltype="NK")
    did_case("edge_by_celltype", E, ALL + ["--by-celltype"], "float64",
             "did_table_by_celltype over FB, NK: the ZeroDivisionError of NK is not caught by "
             "did_table_by_celltype (only ValueError/LinAlgError/KeyError are) -> the whole call raises.",
             by_celltype=True)

    # ---- a coefficient fitted exactly: its standard error is 0, statsmodels' p is 0/0 ----
    Z = "did_zero_control.h5ad"
    # Cells where our tool deliberately differs from the golden (the Swift test checks them as such).
    ROUNDOFF_SE = [{"feature": f, "column": "p_time", "ours": "nan",
                    "why": "standard error of beta_time is roundoff: statsmodels prints a p-value from noise, "
                           "we give NaN with a reason"} for f in ("z0", "z1")]
    did_case("zero_control_median", Z, ALL + ["--agg", "median"], "float64",
             "agg='median': the control arm's median is 0 at both visits for every participant (z0, z1), "
             "so beta_time = 0 with a cluster-robust standard error of 0 -> statsmodels p_time NaN; "
             "gene ok is ordinary. Measured: statsmodels' standard error of beta_time is roundoff, not 0, so it "
             "prints beta_time ~ -3e-15 and a p_time from noise (~0.14-0.16; z1's beta_DiD too gives p_DiD 1.0 "
             "from 4e-15/0.37). Our tool gives p_time NaN with a reason (standard error 0 up to roundoff).",
             agg="median")
    cases[-1]["deliberate"] = ROUNDOFF_SE
    did_case("zero_control_median_nostd", Z, ALL + ["--agg", "median", "--no-standardize"], "float64",
             "As zero_control_median, unstandardized. zall is 0 everywhere: beta and its standard error are "
             "exactly 0, so statsmodels' z is 0/0 -> p NaN (p_DiD NaN triggers the nonrobust refit, also "
             "0/0). For z0/z1 the standard error of beta_time is roundoff (~1e-15) and statsmodels prints "
             "a p-value from it; our tool gives NaN there too (a standard error below 1e-10 of the "
             "outcome's scale counts as 0), with a reason.",
             agg="median", standardize=False)
    cases[-1]["deliberate"] = ROUNDOFF_SE

    import patsy
    import scipy
    import statsmodels
    meta = {
        "generator": "tools/goldens/did/make_goldens.py (run via regenerate.sh)",
        "versions": {"sctrial": getattr(sctrial, "__version__", "?"), "numpy": np.__version__,
                     "pandas": pd.__version__, "anndata": ad.__version__, "scipy": scipy.__version__,
                     "statsmodels": statsmodels.__version__, "patsy": patsy.__version__},
        "csv_float_format": FLOAT_FORMAT,
        "csv_nan": "empty field",
        "paths": "input, csv and gene-set file names are relative to Tests/Fixtures/did",
        "visits": list(VISITS),
        "cases": cases,
    }
    (out / "cases.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{len(cases)} cases written to {out}", file=sys.stderr)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        sys.exit(1)
