"""pdex() of the front against the real pdex 0.3.0 (run in python/.venv-pdex030, as pdex 0.1.28
occupies the test venv), on files generated here: pdex 0.3.0's supported modes need groups of
more than 8 cells, which the DE goldens' small groups are not."""
from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sctrial_plan as st
from conftest import DE, MODES, REPO, load

PDEX030_PYTHON = Path(os.environ.get("SCTRIAL_PDEX030_PYTHON", REPO / "python" / ".venv-pdex030" / "bin" / "python"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Counts (negative binomial, many ties and zeros) for 4 perturbations of 12-60 cells and 50
    reference cells, interleaved, labels categorical in non-alphabetical category order; written as
    float32 CSR counts, float64 dense counts and float32 CSR log1p(counts / total · 1e4)."""
    rng = np.random.default_rng(7)
    sizes = {"non-targeting": 50, "KO_B": 12, "KO_A": 40, "KO_D": 60, "KO_C": 25}
    labels = np.array([k for k, n in sizes.items() for _ in range(n)], dtype=object)
    labels = labels[rng.permutation(labels.size)]
    n_genes = 30
    mean = rng.uniform(0.2, 20, n_genes)
    counts = np.empty((labels.size, n_genes))
    for j in range(n_genes):
        mu = np.full(labels.size, mean[j])
        mu[labels == "KO_A"] *= 3.0 if j % 3 == 0 else 1.0
        mu[labels == "KO_D"] *= 0.3 if j % 4 == 1 else 1.0
        counts[:, j] = rng.negative_binomial(2, 2 / (2 + mu))
    counts[:, 5] = 0  # a gene with no counts: 0/0 fold and percent changes
    counts[labels == "KO_C", 7] = 0  # zero in one target only
    obs = pd.DataFrame({"guide": pd.Categorical(labels, categories=["KO_D", "non-targeting", "KO_A", "KO_C", "KO_B"])},
                       index=[f"c{i}" for i in range(labels.size)])
    var = pd.DataFrame(index=[f"G{j:02d}" for j in range(n_genes)])
    folder = tmp_path_factory.mktemp("pdex030")
    out = {}
    for name, x in (("counts_f32csr", sp.csr_matrix(counts.astype(np.float32))),
                    ("counts_f64", counts),
                    ("log1p_f32csr", sp.csr_matrix(np.log1p(counts / np.maximum(counts.sum(1, keepdims=True), 1) * 1e4)
                                                   .astype(np.float32)))):
        out[name] = folder / f"{name}.h5ad"
        ad.AnnData(X=x, obs=obs, var=var).write_h5ad(out[name])
    return out


SUPPORTED = [
    ("log1p_f32csr", dict(groupby="guide", mode="ref", geometric_mean=True)),           # is_log1p guessed True
    ("log1p_f32csr", dict(groupby="guide", mode="all", geometric_mean=False, is_log1p=True)),
    ("counts_f64", dict(groupby="guide", mode="all", geometric_mean=False, is_log1p=False)),
    ("counts_f32csr", dict(groupby="guide", mode="ref", geometric_mean=False, epsilon=0.0)),
    ("counts_f32csr", dict(groupby="guide", mode="ref", geometric_mean=False, cpm_filter=20000.0)),
]


@pytest.fixture(scope="module")
def references(files, tmp_path_factory) -> list[pd.DataFrame]:
    """pdex 0.3.0's frame for each SUPPORTED call, from one run of tests/reference/pdex030.py."""
    assert PDEX030_PYTHON.exists(), f"{PDEX030_PYTHON} missing (scripts/test-python.sh creates it)"
    folder = tmp_path_factory.mktemp("pdex030-out")
    jobs = [[str(files[name]), str(folder / f"{i}.pkl"), kwargs] for i, (name, kwargs) in enumerate(SUPPORTED)]
    (folder / "jobs.json").write_text(json.dumps(jobs))
    script = Path(__file__).parent / "reference" / "pdex030.py"
    env = dict(os.environ, NUMBA_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    subprocess.run([str(PDEX030_PYTHON), str(script), str(folder / "jobs.json")], check=True, env=env,
                   capture_output=True)
    return [pd.read_pickle(out) for _, out, _ in jobs]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name, kwargs", SUPPORTED, ids=[f"{n}-{k['mode']}-{i}" for i, (n, k) in enumerate(SUPPORTED)])
def test_matches_pdex030(files, references, name, kwargs, mode):
    """Same frame as pdex 0.3.0: rows, order, columns, dtypes (float32 means for a float32
    matrix), values. Tolerances: on float64 input both compute in float64: 1e-9 relative + 1e-12
    absolute (measured ≤ 2e-13 relative). On float32 input pdex 0.3.0 accumulates the means in
    float32 (measured ≤ 2.1e-6 relative from ours), and log2_fold_change and percent_change carry
    that error as an absolute one ((δt + δr)/ln 2 and |t/r|·(δt + δr), measured ≤ 4.6e-6), so
    1e-5 relative + 1e-5 absolute; the U statistics are equal and p, FDR within 6e-8 relative."""
    ref = references[SUPPORTED.index((name, kwargs))]
    ours = st.pdex(load(files[name], mode), as_pandas=True, progress=False, **kwargs)
    float64 = name == "counts_f64"
    pd.testing.assert_frame_equal(ours, ref, check_exact=False,
                                  **(dict(rtol=1e-9, atol=1e-12) if float64 else dict(rtol=1e-5, atol=1e-5)))
    pd.testing.assert_series_equal(ours["statistic"], ref["statistic"], check_exact=True)


def test_polars_by_default(files):
    pl = pytest.importorskip("polars")
    out = st.pdex(str(files["log1p_f32csr"]), groupby="guide", progress=False)
    assert isinstance(out, pl.DataFrame) and out.columns[:2] == ["target", "feature"]


@pytest.mark.parametrize("kwargs, message", [
    (dict(groupby="guide", mode="on_target", gene_col="target_gene"), "mode='on_target'"),
    (dict(groupby="guide", mode="ref", geometric_mean=True, is_log1p=False), "geometric_mean=True"),
    (dict(groupby="guide", mode="ref", geometric_mean=True, cpm_filter=1.0, is_log1p=True), "cpm_filter"),
])
def test_unsupported_raise(files, kwargs, message):
    with pytest.raises(NotImplementedError, match=message):
        st.pdex(str(files["counts_f32csr"]), as_pandas=True, progress=False, **kwargs)


def test_small_groups_raise():
    """The DE goldens' counts file has groups of 1-8 cells: exact vs asymptotic Mann-Whitney."""
    with pytest.raises(NotImplementedError, match=r"at most 8 cells.*SPI1"):
        st.pdex(str(DE / "counts_csr_f32.h5ad"), groupby="target_gene", geometric_mean=False, as_pandas=True)
