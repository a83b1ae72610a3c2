#!/usr/bin/env python3
"""Gene-set score and log1p-CPM goldens from the real sctrial 1.0.0 (see requirements.txt).

Reads the DiD inputs in Tests/Fixtures/did (did_clean.h5ad, did_clean_f32csr.h5ad, did_messy.h5ad,
sets.gmt; written by tools/goldens/did) and writes, under OUTDIR (default Tests/Fixtures/genesets):

  genesets_edge.h5ad  200 cells x 146 genes (gzip) built for the edge rules: X = CSC float64 with NaN/+-inf,
                      a constant, an all-zero, a near-constant (sd ~1e-13) and a single-finite-value
                      gene, and a var name "dup" on two columns; layers dense_f64 / csr_f64 (= X),
                      counts_dense / counts_csr / counts_csc (float64 non-integer "counts" with two
                      empty cells), counts_negative (CSR float32, one -1), counts_nan (dense, one NaN)
  edge_sets.gmt       gene sets over genesets_edge.h5ad
  messy_sets.gmt      gene sets over did_messy.h5ad (layer with_nan)
  scores.json         per case: input, element, gmt, method, min_genes, dtype and, per set in set
                      order, sctrial's obs column (n_obs values, NaN as null)
  log1p_cpm.json      per counts element: library sizes of all cells (as sctrial computes them),
                      the real add_log1p_cpm_layer output for a few whole cells, the per-cell sums of
                      the output layer (numpy pairwise over the dense row), and the cases that raise

Every sctrial call is made on the AnnData as read back from the written .h5ad. Floats are written
with Python's repr (shortest round-trip: exact). Deterministic: fixed numpy seeds.
"""
from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from sctrial.preprocessing import add_log1p_cpm_layer
from sctrial.scoring import score_gene_sets

warnings.filterwarnings("ignore")
import logging  # noqa: E402

logging.disable(logging.CRITICAL)


def read_gmt(path: Path) -> dict[str, list[str]]:
    """name<TAB>description<TAB>genes..., blank and '#' lines skipped, empty fields ignored."""
    sets: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        parts = [p.strip() for p in line.split("\t")]
        sets[parts[0]] = [g for g in parts[2:] if g]
    return sets


def num(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x


# --------------------------------------------------------------------------------------------
# Edge input
# --------------------------------------------------------------------------------------------

N_CELLS = 200
N_RANDOM = 140


def make_edge() -> ad.AnnData:
    rng = np.random.default_rng(20250107)
    rate = np.exp(rng.uniform(-1.5, 2.0, N_RANDOM))
    R = np.log1p(rng.poisson(rate * rng.gamma(4.0, 0.25, (N_CELLS, N_RANDOM)))) * rng.uniform(0.5, 1.5, N_RANDOM)
    R[:, 1][[0, 5, 17]] = np.nan
    R[:, 2][[0, 7]] = np.inf
    R[:, 3][[0]] = -np.inf
    R[:, 3][[9, 11]] = np.nan
    const = np.full(N_CELLS, 5.0)
    zero = np.zeros(N_CELLS)
    tiny = np.ones(N_CELLS)
    tiny[13] = 1.0 + 2.0 ** -40                      # sd ~ 5e-14: below 1e-12
    single = np.full(N_CELLS, np.nan)
    single[4] = 2.5                                  # one finite value: sd NaN
    dup_a = rng.gamma(2.0, 1.0, N_CELLS)
    dup_b = rng.gamma(3.0, 0.5, N_CELLS) * (rng.random(N_CELLS) < 0.6)
    X = np.column_stack([R[:, :70], const, zero, dup_a, R[:, 70:], tiny, single, dup_b])
    names = ([f"g{i:03d}" for i in range(70)] + ["c_const", "c_zero", "dup"]
             + [f"g{i:03d}" for i in range(70, N_RANDOM)] + ["c_tiny", "c_single", "dup"])
    obs = pd.DataFrame(index=[f"cell{i:03d}" for i in range(N_CELLS)])
    var = pd.DataFrame(index=names)
    a = ad.AnnData(X=sp.csc_matrix(X), obs=obs, var=var)
    a.layers["dense_f64"] = X.copy()
    a.layers["csr_f64"] = sp.csr_matrix(X)

    C = rng.gamma(0.6, 3.0, X.shape) * (rng.random(X.shape) < 0.45)   # non-integer "counts"
    C[3, :] = 0.0
    C[170, :] = 0.0
    a.layers["counts_dense"] = C.copy()
    a.layers["counts_csr"] = sp.csr_matrix(C)
    a.layers["counts_csc"] = sp.csc_matrix(C)
    neg = sp.csr_matrix(np.round(C).astype(np.float32))
    neg.data[neg.data.size // 2] = -1.0
    a.layers["counts_negative"] = neg
    bad = np.round(C)
    bad[150, 20] = np.nan
    a.layers["counts_nan"] = bad
    return a


EDGE_SETS = [
    ("ONE", "single present gene (scored only with min_genes 1: numpy reduces one column pairwise)",
     ["g004", "NOT_HERE"]),
    ("PAIR", "two genes", ["g005", "g140x", "g006"]),
    ("BIG", "18 valid genes: pairwise across genes with 8 accumulators",
     [f"g{i:03d}" for i in range(4, 22)] + ["c_tiny"]),
    ("ALL", "every gene: more than 128 valid genes (pairwise recursion)",
     [f"g{i:03d}" for i in range(N_RANDOM)] + ["c_const", "c_zero", "c_tiny", "c_single", "dup"]),
    ("NONFINITE", "NaN and +-inf entries; cell 0 has no finite value", ["g001", "g002", "g003"]),
    ("NONFINITE_PLUS", "non-finite genes and a clean one", ["g001", "g002", "g003", "g030"]),
    ("CONSTANT", "no valid gene for zmean (constant, all zero, tiny sd, one finite value)",
     ["c_const", "c_zero", "c_tiny", "c_single"]),
    ("PARTIAL", "constant genes mixed with valid ones", ["c_const", "g090", "c_zero", "g091", "g092"]),
    ("DUPS", "duplicates, missing genes, a repeated var name (last column wins)",
     ["g120", "g120", "MISSING", "g121", "dup", "g122", "g121"]),
    ("NONE", "nothing present", ["MISSING1", "MISSING2", "MISSING3"]),
]

MESSY_SETS = [
    ("MS_NAN", "m03 partly NaN, m05 mostly NaN", ["m03", "m04", "m05", "m06"]),
    ("MS_ALL", "all 12 genes", [f"m{i:02d}" for i in range(12)]),
    ("MS_MOSTLYNAN", "m05 mostly NaN", ["m05", "m01", "m02"]),
]


def write_gmt(path: Path, sets) -> None:
    path.write_text("".join(f"{n}\t{d}\t" + "\t".join(g) + "\n" for n, d, g in sets))


# --------------------------------------------------------------------------------------------
# Goldens
# --------------------------------------------------------------------------------------------

def main() -> None:
    root = Path(__file__).resolve().parents[3]
    fixtures = root / "Tests" / "Fixtures"
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else fixtures / "genesets"
    did = fixtures / "did"
    out.mkdir(parents=True, exist_ok=True)

    make_edge().write_h5ad(out / "genesets_edge.h5ad", compression="gzip")
    write_gmt(out / "edge_sets.gmt", EDGE_SETS)
    write_gmt(out / "messy_sets.gmt", MESSY_SETS)

    def rel(p: Path) -> str:
        return str(p.relative_to(fixtures))

    score_cases = []

    def score_case(name, h5ad: Path, gmt: Path, method, min_genes, layer=None, notes=""):
        a = ad.read_h5ad(h5ad)
        sets = read_gmt(gmt)
        M = a.layers[layer] if layer else a.X
        dtype = ("dense " if isinstance(M, np.ndarray) else f"{M.format} ") + str(M.dtype)
        score_gene_sets(a, sets, layer=layer, method=method, prefix="s_", min_genes=min_genes)
        score_cases.append(dict(
            case=name, input=rel(h5ad), element=f"layers/{layer}" if layer else "X", gmt=rel(gmt),
            method=method, min_genes=min_genes, dtype=dtype, n_obs=a.n_obs, notes=notes,
            sets=list(sets),
            obs_dtypes={s: str(a.obs["s_" + s].dtype) for s in sets},
            scores={s: [num(v) for v in a.obs["s_" + s].to_numpy()] for s in sets}))

    clean, f32 = did / "did_clean.h5ad", did / "did_clean_f32csr.h5ad"
    messy, edge = did / "did_messy.h5ad", out / "genesets_edge.h5ad"
    for method in ("zmean", "mean"):
        score_case(f"clean_{method}", clean, did / "sets.gmt", method, 3, notes="X dense float64")
        score_case(f"f32csr_{method}", f32, did / "sets.gmt", method, 3,
                   notes="X CSR float32: sctrial computes and stores the scores in float32")
        score_case(f"messy_nan_{method}", messy, out / "messy_sets.gmt", method, 3, layer="with_nan",
                   notes="dense float64 layer with NaN")
        for min_genes in (3, 1):
            score_case(f"edge_csc_{method}_min{min_genes}", edge, out / "edge_sets.gmt", method, min_genes,
                       notes="X CSC float64 (sctrial converts to CSR)")
        score_case(f"edge_dense_{method}_min1", edge, out / "edge_sets.gmt", method, 1, layer="dense_f64")
        score_case(f"edge_csr_{method}_min1", edge, out / "edge_sets.gmt", method, 1, layer="csr_f64")
    score_case("clean_zmean_min1", clean, did / "sets.gmt", "zmean", 1, notes="SHORT scored with 2 genes")
    score_case("f32csr_zmean_min1", f32, did / "sets.gmt", "zmean", 1, notes="SHORT scored with 2 genes")

    (out / "scores.json").write_text(json.dumps(dict(
        generated_by="tools/goldens/genesets/make_goldens.py, sctrial 1.0.0 score_gene_sets(prefix='s_')",
        cases=score_cases), separators=(",", ":")) + "\n")

    # ---- log1p-CPM ----
    cpm_cases, raises = [], []

    def cpm_case(name, h5ad: Path, layer: str, cells: list[int]):
        a = ad.read_h5ad(h5ad)
        X = a.layers[layer]
        # Library sizes exactly as add_log1p_cpm_layer computes them (sparse: CSR row sums via
        # scipy's reduceat in the input dtype; dense: numpy's pairwise row sums), then float64.
        if sp.issparse(X):
            lib = np.asarray(X.tocsr().sum(axis=1)).reshape(-1).astype(float)
        else:
            lib = np.asarray(X).sum(axis=1).astype(float)
        add_log1p_cpm_layer(a, counts_layer=layer, out_layer="log1p_cpm")
        L = a.layers["log1p_cpm"]
        D = L.toarray() if sp.issparse(L) else np.asarray(L)
        cpm_cases.append(dict(
            case=name, input=rel(h5ad), element=f"layers/{layer}",
            dtype=("dense " if isinstance(X, np.ndarray) else f"{X.format} ") + str(X.dtype),
            output_dtype=str(D.dtype), scale=1e6, n_obs=a.n_obs,
            library_sizes=[float(v) for v in lib],
            cells=cells, values=[[float(v) for v in D[c]] for c in cells],
            row_sums=[float(v) for v in D.sum(axis=1)]))

    cpm_case("clean_counts", clean, "counts", [0, 1, 2, 100, 500, 1000, 1500, 1711])
    for layer in ("counts_dense", "counts_csr", "counts_csc"):
        cpm_case(f"edge_{layer}", edge, layer, [0, 3, 4, 57, 150, 170, 199])
    for layer in ("counts_negative", "counts_nan"):
        a = ad.read_h5ad(edge)
        try:
            add_log1p_cpm_layer(a, counts_layer=layer, out_layer="log1p_cpm")
            raise SystemExit(f"{layer}: expected sctrial to raise")
        except ValueError as e:
            raises.append(dict(case=f"edge_{layer}", input=rel(edge), element=f"layers/{layer}",
                               raises=f"ValueError: {e}"))

    (out / "log1p_cpm.json").write_text(json.dumps(dict(
        generated_by="tools/goldens/genesets/make_goldens.py, sctrial 1.0.0 add_log1p_cpm_layer(scale=1e6)",
        cases=cpm_cases, raises=raises), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
