#!/usr/bin/env python3
"""Write Tests/StatsTests/Goldens/did_goldens.json for the Swift `Stats` DiD, bootstrap, sign and
percentile tests.

Every DiD expectation comes from sctrial 1.0.0's own `did_fit` (sctrial/stats/did.py), which fits
statsmodels' `smf.wls` / `smf.ols` with the patsy formula
`outcome_std ~ visit_num + visit_num:arm_bin + C(participant) [+ covs]`, `.fit()` (method "pinv")
with `cov_type="cluster", cov_kwds={"groups": participant}`, falls back to the nonrobust `.fit()`
when the cluster SE or p is not finite, and runs `wild_cluster_bootstrap_t` when asked. Each case
is a small DataFrame shaped like did_table's aggregated frame; the Swift side receives the same
rows as integer-coded arrays.

Usage: regenerate.sh (creates the pinned venv, then runs this script).
"""

import json
import math
import os
import sys
import warnings

import numpy as np
import pandas as pd

from sctrial.stats.did import did_fit  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "..", "Tests", "StatsTests", "Goldens", "did_goldens.json")


def num(x):
    """JSON number, or null for NaN (JSON has no NaN)."""
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        raise ValueError("infinite values are not stored in the goldens")
    return x


def make_panel(rng, n_part, arms, n_features, cells_per_group=None, n_rows_per_visit=1,
               effect=0.6):
    """Participant × visit (× repeat) rows with n_cells weights and features with participant
    effects, a time effect and a treated-arm change."""
    rows = []
    for p in range(n_part):
        base = rng.normal(0, 1.5, n_features)
        for v in (0.0, 1.0):
            for _ in range(n_rows_per_visit):
                y = base + 0.3 * v + effect * v * arms[p] + rng.normal(0, 1, n_features)
                row = {"participant": f"P{p:02d}", "visit_num": v, "arm_bin": int(arms[p])}
                if cells_per_group is not None:
                    row["n_cells"] = int(rng.integers(*cells_per_group))
                for k in range(n_features):
                    row[f"f{k}"] = y[k]
                rows.append(row)
    return pd.DataFrame(rows)


def classify_nan(df, feature, covariates, standardize):
    """Reason did_fit returned its short all-NaN dict (it does not say which)."""
    cols = ["participant", "visit_num", "arm_bin", feature] + list(covariates)
    if "n_cells" in df.columns:
        cols.append("n_cells")
    tmp = df[cols].dropna()
    if tmp["participant"].nunique() < 4:
        return "fewerThanFourUnits"
    sd = tmp[feature].astype(float).std(ddof=1)
    if not np.isfinite(sd):
        return "nonFiniteStandardDeviation"
    assert standardize and sd < 1e-8
    return "zeroVariance"


def case(name, df, features, covariates=(), standardize=True, participant_levels=None,
         cov_specs=(), bootstrap=None, note=""):
    """Run did_fit on every feature and describe the case for Swift."""
    labels = df["participant"].astype(str).to_numpy()
    if participant_levels is None:
        order = sorted(set(labels))
    else:
        order = sorted(participant_levels)
    code = {lab: i for i, lab in enumerate(order)}
    if participant_levels is not None:
        df = df.copy()
        df["participant"] = pd.Categorical(labels, categories=order)

    covs_json = []
    for spec in cov_specs:
        col = spec["column"]
        if spec["kind"] == "numeric":
            covs_json.append({"kind": "numeric", "values": [num(v) for v in df[col]]})
        else:
            levels = sorted(spec["levels"]) if spec.get("levels") else sorted(
                set(df[col].dropna().astype(str)))
            lc = {lab: i for i, lab in enumerate(levels)}
            codes = [-1 if pd.isna(v) else lc[str(v)] for v in df[col]]
            if spec.get("levels"):
                df = df.copy()
                df[col] = pd.Categorical(df[col], categories=levels)
            covs_json.append({"kind": "categorical", "codes": codes,
                              "levels": len(levels) if spec.get("levels") else None})

    expected = []
    for feat in features:
        kwargs = dict(covariates=list(covariates) or None, standardize=standardize)
        if bootstrap:
            kwargs.update(use_bootstrap=True, n_boot=bootstrap["draws"], seed=bootstrap["seed"])
        try:
            res = did_fit(df, feat, "participant", "visit_num", "arm_bin", **kwargs)
        except ZeroDivisionError:
            # N == K: statsmodels' CRV1 factor divides by zero.
            rows = df[["participant", feat] + list(covariates)].dropna()
            expected.append({"reason": "saturated", "n_units": int(rows["participant"].nunique())})
            continue
        out = {k: (num(v) if k != "cov_type_used" else v) for k, v in res.items()}
        out["n_units"] = int(res["n_units"])
        if "resid_sd" not in res:
            out["reason"] = classify_nan(df, feat, covariates, standardize)
        expected.append(out)

    n = len(df)
    outcomes = []
    for feat in features:
        outcomes.extend(num(v) for v in df[feat])
    return {
        "name": name,
        "note": note,
        "participant": [code[lab] for lab in labels],
        "participantLevels": len(order) if participant_levels is not None else None,
        "visit": [float(v) for v in df["visit_num"]],
        "arm": [float(v) for v in df["arm_bin"]],
        "weights": [float(v) for v in df["n_cells"]] if "n_cells" in df.columns else None,
        "covariates": covs_json,
        "standardize": standardize,
        "rows": n,
        "features": len(features),
        "outcomes": outcomes,
        "bootstrap": bootstrap,
        "expected": expected,
    }


def p_boot_counting_all_ties(df, feature, draws, seed):
    """The bootstrap p-value with every exact tie counted as "≥", and the number of ties.

    Re-runs the draws of §1.12 with statsmodels (WLS refits of y_b = r + e_r·s on the same design,
    cluster-robust SE, signs from default_rng(seed)) and calls |t_b| a tie when it is within
    1e-12 relative of |t_obs|: exact ties land a few ulps away, genuine draws ~1e-2 away here.
    did_fit's own p counts an arbitrary subset of the ties, so it lies between the two counts.
    """
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    tmp = df[["participant", "visit_num", "arm_bin", feature, "n_cells"]].dropna().reset_index(drop=True)
    y = tmp[feature].astype(float)
    tmp["outcome_std"] = (y - y.mean()) / y.std(ddof=1)
    model = smf.wls("outcome_std ~ visit_num + visit_num:arm_bin + C(participant)", data=tmp,
                    weights=tmp["n_cells"].to_numpy(float))
    fit = model.fit(cov_type="cluster", cov_kwds={"groups": tmp["participant"]})
    x = fit.model.exog
    j = fit.model.exog_names.index("visit_num:arm_bin")
    beta, se = fit.params.iloc[j], fit.bse.iloc[j]
    restricted = fit.fittedvalues - beta * x[:, j]
    resid = fit.model.endog - restricted
    groups = tmp["participant"].to_numpy()
    labels = np.unique(groups)
    rng = np.random.default_rng(seed)
    t_obs, t = abs(beta / se), []
    for _ in range(draws):
        sign = dict(zip(labels, rng.choice([-1, 1], size=len(labels))))
        y_b = restricted + resid * np.array([sign[g] for g in groups])
        refit = sm.WLS(y_b, x, weights=tmp["n_cells"].to_numpy(float)).fit(
            cov_type="cluster", cov_kwds={"groups": groups})
        t.append(refit.params.iloc[j] / refit.bse.iloc[j])
    t = np.abs(np.array(t))
    ties = np.abs(t / t_obs - 1) < 1e-12
    return float((np.sum((t >= t_obs) | ties) + 1) / (len(t) + 1)), int(ties.sum())


def did_cases():
    rng = np.random.default_rng(20240611)
    cases = []

    # 1. Balanced paired data, string participant ids (levels = participants present).
    arms = np.array([0, 1] * 6)
    df = make_panel(rng, 12, arms, 6, cells_per_group=(20, 400))
    df["f5"] = 3.25  # constant feature: SD 0 → NaN row
    cases.append(case("balanced", df, [f"f{k}" for k in range(6)],
                      note="12 participants x 2 visits, WLS on n_cells; f5 constant"))

    # 2. Categorical participant with unused categories: K counts all 16 levels.
    df = make_panel(rng, 12, arms, 3, cells_per_group=(20, 400))
    cats = [f"P{p:02d}" for p in range(16)]
    cases.append(case("categorical_levels", df, ["f0", "f1", "f2"], participant_levels=cats,
                      note="16 categories, 12 participants present"))

    # 3. NaN rows: a singleton participant, a participant gone entirely, shared NaN pattern.
    df = make_panel(rng, 14, np.array([0, 1] * 7), 5, cells_per_group=(20, 400))
    df.loc[3, "f0"] = np.nan              # P01 post missing → singleton
    df.loc[[3, 8, 9], "f1"] = np.nan      # singleton + P04 gone
    df.loc[[3, 8, 9], "f2"] = np.nan      # same pattern as f1
    df.loc[[0, 5, 10, 15], "f3"] = np.nan
    cats = [f"P{p:02d}" for p in range(15)]
    cases.append(case("nan_rows", df, [f"f{k}" for k in range(5)], participant_levels=cats,
                      note="per-feature NaN rows, singleton participants, categorical ids"))

    # 4. Numeric covariates: one varying within participant, one time-invariant (collinear
    #    with the fixed effects, rank-deficient, still counted in K), one with a NaN row.
    df = make_panel(rng, 12, arms, 4, cells_per_group=(20, 400))
    df["pct_mito"] = rng.normal(5, 2, len(df))
    age = {f"P{p:02d}": float(rng.integers(20, 80)) + 0.1 for p in range(12)}
    df["age"] = df["participant"].map(age)
    df["score"] = rng.normal(0, 1, len(df))
    df.loc[6, "score"] = np.nan
    cases.append(case("numeric_covariates", df, ["f0", "f1", "f2", "f3"],
                      covariates=["pct_mito", "age", "score"],
                      cov_specs=[{"kind": "numeric", "column": c}
                                 for c in ("pct_mito", "age", "score")],
                      note="within-varying, time-invariant and NaN-holding numeric covariates"))

    # 5. Categorical covariates constant within participant (rank-deficient): an object column
    #    (levels observed) and a pandas Categorical with an unused level (all levels count).
    df = make_panel(rng, 12, arms, 3, cells_per_group=(20, 400))
    sex = {f"P{p:02d}": ("F" if p % 3 else "M") for p in range(12)}
    site = {f"P{p:02d}": ["s1", "s2", "s3"][p % 3] for p in range(12)}
    df["sex"] = df["participant"].map(sex)
    df["site"] = df["participant"].map(site)
    cases.append(case("categorical_covariates", df, ["f0", "f1", "f2"],
                      covariates=["sex", "site"],
                      cov_specs=[{"kind": "categorical", "column": "sex"},
                                 {"kind": "categorical", "column": "site",
                                  "levels": ["s1", "s2", "s3", "s4"]}],
                      note="time-invariant categorical covariates"))

    # 6. standardize=False.
    df = make_panel(rng, 10, np.array([0, 1] * 5), 3, cells_per_group=(20, 400))
    df["f2"] = df["f2"] * 40 + 100
    cases.append(case("unstandardized", df, ["f0", "f1", "f2"], standardize=False))

    # 7. Cell-level OLS (no n_cells column), several cells per participant-visit.
    df = make_panel(rng, 8, np.array([0, 1] * 4), 3, n_rows_per_visit=5)
    df = df.drop(index=[1, 2, 17]).reset_index(drop=True)
    cases.append(case("cell_level_ols", df, ["f0", "f1", "f2"], note="OLS, weights 1"))

    # 8. Several rows per participant-visit with weights (participant_visit_celltype shape).
    df = make_panel(rng, 9, np.array([0, 1] * 4 + [1]), 3, cells_per_group=(5, 80),
                    n_rows_per_visit=3)
    cases.append(case("celltype_rows", df, ["f0", "f1", "f2"]))

    # 9. n_units < 4 (with and without NaN) and an all-NaN-but-three feature.
    df = make_panel(rng, 5, np.array([0, 1, 0, 1, 1]), 2, cells_per_group=(20, 400))
    df.loc[[0, 1, 2, 3], "f1"] = np.nan
    df5 = df.iloc[:6].copy()
    cases.append(case("few_units", df5, ["f0"], note="3 participants"))
    cases.append(case("few_units_after_nan", df, ["f0", "f1"]))

    # 10. N < K (many unused categories) → nonrobust fallback with t(N - rank) p-values;
    #     N == K → statsmodels raises ZeroDivisionError (Swift: NaN row "saturated").
    df = make_panel(rng, 6, np.array([0, 1] * 3), 3, cells_per_group=(20, 400))
    cats = [f"P{p:02d}" for p in range(12)]
    cases.append(case("fallback_nonrobust", df, ["f0", "f1", "f2"], participant_levels=cats,
                      note="N=12, K=14"))
    cats = [f"P{p:02d}" for p in range(10)]
    cases.append(case("saturated", df, ["f0"], participant_levels=cats, note="N=K=12"))

    # 11. Arm absent (DiD column zero) and all treated (DiD collinear with visit).
    df = make_panel(rng, 8, np.zeros(8, dtype=int), 2, cells_per_group=(20, 400))
    cases.append(case("arm_absent", df, ["f0", "f1"]))
    df = make_panel(rng, 8, np.ones(8, dtype=int), 2, cells_per_group=(20, 400))
    cases.append(case("all_treated", df, ["f0", "f1"]))

    # 12. Wild cluster bootstrap, G = 20, B = 199, two seeds; a NaN-row feature changes N only.
    for seed in (42, 2024):
        df = make_panel(rng, 20, np.array([0, 1] * 10), 4, cells_per_group=(20, 400))
        df.loc[7, "f3"] = np.nan
        cases.append(case(f"bootstrap_seed{seed}", df, ["f0", "f1", "f2", "f3"],
                          bootstrap={"draws": 199, "seed": seed}))
    # Bootstrap after the nonrobust fallback (N = 40 < K = 42).
    df = make_panel(rng, 20, np.array([0, 1] * 10), 2, cells_per_group=(20, 400))
    cats = [f"P{p:02d}" for p in range(40)]
    cases.append(case("bootstrap_nonrobust", df, ["f0", "f1"], participant_levels=cats,
                      bootstrap={"draws": 199, "seed": 7}))
    # Bootstrap on unbalanced cell-level OLS rows with a numeric covariate.
    df = make_panel(rng, 20, np.array([0, 1] * 10), 2, n_rows_per_visit=3)
    df = df.drop(index=[4, 5, 30]).reset_index(drop=True)
    df["pct_mito"] = rng.normal(5, 2, len(df))
    cases.append(case("bootstrap_ols_covariate", df, ["f0", "f1"], covariates=["pct_mito"],
                      cov_specs=[{"kind": "numeric", "column": "pct_mito"}],
                      bootstrap={"draws": 199, "seed": 42}))
    # G = 6: about 1 draw in 32 has all signs equal, where |t_b| = |t_obs| exactly and statsmodels'
    # rounding decides (REFERENCE-SEMANTICS §1.12); the Swift test bounds the difference.
    df = make_panel(rng, 6, np.array([0, 1] * 3), 3, cells_per_group=(20, 400))
    small = case("bootstrap_small_g", df, ["f0", "f1", "f2"], bootstrap={"draws": 999, "seed": 42})
    for k, out in enumerate(small["expected"]):
        out["p_boot_all_ties"], out["exact_ties"] = p_boot_counting_all_ties(df, f"f{k}", 999, 42)
    cases.append(small)
    return cases


def did_cases_quiet():
    # Small-cluster and singular-design warnings are expected here; statsmodels re-enables its
    # own warning classes at import, so the filter is set at call time.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return did_cases()


def sign_goldens():
    out = []
    for seed in (42, 0, 12345, 2**40 + 3):
        sizes = [5, 20, 7, 1, 8, 3, 12]
        rng = np.random.default_rng(seed)
        draws = [rng.choice([-1, 1], size=g).astype(int).tolist() for g in sizes]
        raw = np.random.default_rng(seed).bit_generator.random_raw(4)
        out.append({"seed": seed, "sizes": sizes, "signs": draws,
                    "raw64": [str(int(v)) for v in raw]})
    return out


def percentile_goldens():
    rng = np.random.default_rng(5)
    alpha = 1.0 - 0.95
    out = []
    for n in (1, 2, 3, 10, 199, 998):
        v = rng.normal(0, 1, n)
        v[rng.integers(0, n, n // 4)] = 0.5  # ties
        qs = [0.0, 0.025, 0.5, 0.9, 0.975, 1.0]
        vals = [float(np.quantile(v, q)) for q in qs]
        # did_fit's bootstrap-t bounds: np.percentile(t, 100 * alpha / 2) and its upper twin.
        boot = [float(np.percentile(v, 100 * alpha / 2)),
                float(np.percentile(v, 100 * (1 - alpha / 2)))]
        out.append({"values": v.tolist(), "q": qs, "expected": vals, "bootstrapBounds": boot})
    return out


def main():
    data = {
        "generator": "tools/goldens/stats_did/make_goldens.py",
        "versions": {m.__name__: m.__version__ for m in (np, pd)} | {
            "statsmodels": __import__("statsmodels").__version__,
            "scipy": __import__("scipy").__version__,
            "patsy": __import__("patsy").__version__,
            "sctrial": __import__("importlib.metadata").metadata.version("sctrial")},
        "did": did_cases_quiet(),
        "signs": sign_goldens(),
        "percentiles": percentile_goldens(),
    }
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as fh:
        json.dump(data, fh, separators=(",", ":"), allow_nan=False)
        fh.write("\n")
    print(f"wrote {os.path.relpath(OUT)} ({os.path.getsize(OUT)} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
