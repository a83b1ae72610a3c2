"""parallel_differential_expression of the front against the real pdex 0.1.28 on the DE golden
fixtures (Tests/Fixtures/de), each input as an in-memory AnnData, a backed AnnData and a path.

pdex runs on its standard path (the file read into memory, low_memory=False, one worker and one
thread), as the goldens were made; the front gives that path's semantics for every kind of input.
"""
from __future__ import annotations

import functools

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from pdex import parallel_differential_expression as pdex_pde

import sctrial_plan as st
from conftest import DE, MODES, de_cases, load, tolerance

# Left out: cases where pdex raises (tiny_n2_anderson: IndexError on 1 vs 1 cell; the front
# returns p = 1 rows, checked by the Swift suite), the one-vs-rest goldens (pdex has no such mode;
# they come from a scipy loop), and missing_label_wilcoxon (pdex makes NaN labels a target whose
# label is the float NaN, the CSV cannot tell it from the string "nan").
CASES = [c for c in de_cases() if c.get("csv") and c["args"]["reference"] != "rest"
         and c["case"] != "missing_label_wilcoxon"]


def arguments(case: dict) -> dict:
    a = case["args"]
    return dict(groups=a["groups"], reference=a["reference"], groupby_key=a["groupby_key"], metric=a["metric"],
                tie_correct=a["tie_correct"], is_log1p=a["is_log1p"], exp_post_agg=a["exp_post_agg"],
                clip_value=a["clip_value"])


@functools.lru_cache(maxsize=None)
def reference(name: str) -> pd.DataFrame:
    case = next(c for c in CASES if c["case"] == name)
    adata = ad.read_h5ad(DE / case["input"])
    layer = case["args"]["layer"]
    if layer is not None:  # pdex has no layer argument: it runs on X := the layer
        adata = ad.AnnData(X=adata.layers[layer], obs=adata.obs, var=adata.var)
    return pdex_pde(adata, **arguments(case), low_memory=False, num_workers=1, num_threads=1, show_progress=False)


def assert_same(ours: pd.DataFrame, ref: pd.DataFrame, float64: bool, metric: str):
    """assert_frame_equal with the DE parity suite's tolerances. On float32 input two columns
    subtract nearly equal float32 numbers in pdex and lose relative accuracy in proportion, so the
    suite bounds them separately: percent_change by 1e-5·(|μt| + |μr|)/|μr|, the t statistic by
    1e-4·(1 + |t|); they are checked that way here and everything else by assert_frame_equal."""
    separate = [] if float64 else ["percent_change"] + (["statistic"] if metric == "t-test" else [])
    pd.testing.assert_frame_equal(ours.drop(columns=separate), ref.drop(columns=separate), check_exact=False,
                                  **tolerance(float64))
    for column in separate:
        assert ours[column].dtype == ref[column].dtype, column
        got, want = ours[column].to_numpy(np.float64), ref[column].to_numpy(np.float64)
        if column == "percent_change":
            mt, mr = ref["target_mean"].to_numpy(np.float64), ref["reference_mean"].to_numpy(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                bound = np.maximum(1e-4 * np.abs(want) + 1e-6, 1e-5 * (np.abs(mt) + np.abs(mr)) / np.abs(mr))
        else:
            bound = np.maximum(1e-4 * np.abs(want) + 1e-6, 1e-4 * (1 + np.abs(want)))
        same_special = (np.isnan(got) & np.isnan(want)) | (np.isinf(want) & (got == want))
        finite = ~same_special
        assert (same_special | finite).all()
        assert (np.abs(got[finite] - want[finite]) <= bound[finite]).all(), column


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES, ids=[c["case"] for c in CASES])
def test_matches_pdex(case, mode):
    ref = reference(case["case"])
    adata = load(DE / case["input"], mode)
    ours = st.parallel_differential_expression(adata, **arguments(case), layer=case["args"]["layer"],
                                               show_progress=False)
    assert_same(ours, ref, case["dtype"].startswith("float64"), case["args"]["metric"])


def test_float32_columns_are_pdex_dtypes():
    """pdex keeps means, p, statistic and FDR in float32 for a float32 matrix (cases.json records
    them); the front returns the same dtypes."""
    case = next(c for c in CASES if c["case"] == "counts_csr_f32_wilcoxon")
    ours = st.parallel_differential_expression(str(DE / case["input"]), **arguments(case), show_progress=False)
    assert {c: str(ours[c].dtype) for c in case["pdex_dtypes"]} == case["pdex_dtypes"]


def test_as_polars():
    pl = pytest.importorskip("polars")
    case = next(c for c in CASES if c["case"] == "guide_ttest")
    ours = st.parallel_differential_expression(str(DE / case["input"]), **arguments(case), as_polars=True,
                                               show_progress=False)
    assert isinstance(ours, pl.DataFrame)
    pd.testing.assert_frame_equal(ours.to_pandas(), reference("guide_ttest").astype({"fdr": np.float32}),
                                  check_exact=False, **tolerance(False))


def test_extra_scipy_arguments_are_refused():
    with pytest.raises(TypeError, match="alternative"):
        st.parallel_differential_expression(str(DE / "tiny_n3_f64.h5ad"), alternative="less")
    with pytest.raises(ValueError, match="Unknown metric"):
        st.parallel_differential_expression(str(DE / "tiny_n3_f64.h5ad"), metric="kruskal")
