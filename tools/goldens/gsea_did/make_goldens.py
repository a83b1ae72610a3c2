#!/usr/bin/env python3
"""End-to-end GSEA goldens from the real sctrial 1.0.0 `run_gsea_did` (gseapy 1.3.1 prerank).

Writes, under OUTDIR (default: <repo>/Tests/Fixtures/gsea):
  trial.h5ad        24 participants (12 Treated / 12 Control), visits V1/V2, cell types B / T,
                    300 genes, X dense float64 (log1p-normalised Poisson counts). Genes z000-z004 are
                    all zero (their DiD fit is NaN: rank -0.0, a tie block that stays in the list);
                    g000-g002 get a huge DiD effect (p below 1e-28: rank capped at exactly 12.0, a tie).
  sets.gmt          24 gene sets of 6-90 genes (some hold tie-block genes; a few are too small).
  <case>.csv        pre.res2d as sctrial returns it (float_format %.17g), plus for every case
  <case>.ranking.csv  gseapy's final ranking (pre.ranking): gene and value, in its order.
  cases.json        one entry per case: the CLI flags, the sctrial call as text.

Every sctrial call is made on the AnnData as read back from the written .h5ad.
"""
from __future__ import annotations

import json
import logging
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from sctrial.design import TrialDesign
from sctrial.stats.gsea import run_gsea_did, run_gsea_did_by_celltype

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)

VISITS = ("V1", "V2")
FLOAT_FORMAT = "%.17g"


def make_trial() -> ad.AnnData:
    rng = np.random.default_rng(20261203)
    n_part, n_genes = 24, 300
    genes = [f"z{i:03d}" for i in range(5)] + [f"g{i:03d}" for i in range(n_genes - 5)]
    base = rng.uniform(-0.5, 2.0, n_genes)
    part_eff = rng.normal(0.0, 0.3, (n_part, n_genes))
    ct_eff = rng.normal(0.0, 0.3, (2, n_genes))
    did_eff = np.zeros(n_genes)
    did_eff[5:8] = [3.0, 2.8, -3.2]                   # g000-g002: huge effects
    did_eff[8:60] = rng.normal(0.0, 0.35, 52)         # moderate effects
    rows, counts = [], []
    for p in range(n_part):
        arm = "Treated" if p % 2 == 0 else "Control"
        for v in VISITS:
            for ci, ct in enumerate(("B", "T")):
                lograte = base + part_eff[p] + ct_eff[ci]
                if arm == "Treated" and v == "V2":
                    lograte = lograte + did_eff
                for _ in range(4 + rng.poisson(3)):
                    c = rng.poisson(np.exp(lograte) * rng.gamma(8.0, 1 / 8.0, n_genes)).astype(np.float64)
                    c[:5] = 0.0
                    counts.append(c)
                    rows.append(dict(participant_id=f"P{p + 1:02d}", visit=v, arm=arm, celltype=ct))
    C = np.vstack(counts)
    obs = pd.DataFrame(rows)
    obs.index = [f"c{i:05d}" for i in range(len(obs))]
    for col in ("participant_id", "visit", "arm", "celltype"):
        obs[col] = pd.Categorical(obs[col])
    lib = C.sum(axis=1, keepdims=True)
    lib[lib == 0] = 1.0
    # The huge effects: a clean shift with tiny within-group noise, so p underflows below 1e-28.
    X = np.log1p(C / lib * 1e4)
    treated_post = ((obs["arm"] == "Treated") & (obs["visit"] == "V2")).to_numpy()
    for j, shift in zip(range(5, 8), (6.0, 5.5, -6.5)):
        X[:, j] = 3.0 + rng.normal(0.0, 0.01, X.shape[0]) + np.where(treated_post, shift, 0.0)
    return ad.AnnData(X=X.astype(np.float64), obs=obs, var=pd.DataFrame(index=genes))


def make_sets(genes: list[str]) -> str:
    rng = np.random.default_rng(7)
    lines = []
    sizes = [15, 18, 20, 22, 25, 28, 30, 35, 40, 45, 50, 55, 60, 70, 80, 90, 16, 24, 33, 47, 6, 10, 14, 30]
    for i, k in enumerate(sizes):
        if i < 4:      # enriched in the moderate-effect genes
            pool = genes[8:80]
        elif i < 6:    # include the all-zero tie block and the capped genes
            pool = genes[:40]
        else:
            pool = genes
        members = list(rng.choice(pool, size=min(k, len(pool)), replace=False))
        lines.append("\t".join([f"SET{i:02d}", "na"] + members))
    return "\n".join(lines) + "\n"


def write_case(out: Path, name: str, result, ranking: pd.Series | None) -> None:
    result.to_csv(out / f"{name}.csv", index=False, float_format=FLOAT_FORMAT)
    if ranking is not None:
        frame = pd.DataFrame({"gene": ranking.index, "value": ranking.to_numpy()})
        frame.to_csv(out / f"{name}.ranking.csv", index=False, float_format=FLOAT_FORMAT)


def main() -> None:
    root = Path(__file__).resolve().parents[3]
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else root / "Tests" / "Fixtures" / "gsea"
    out.mkdir(parents=True, exist_ok=True)
    make_trial().write_h5ad(out / "trial.h5ad")
    adata = ad.read_h5ad(out / "trial.h5ad")
    (out / "sets.gmt").write_text(make_sets(list(adata.var_names)))
    gmt = str(out / "sets.gmt")
    design = TrialDesign()
    cases = []

    def single(name: str, cli: list[str], **kwargs) -> None:
        pre = run_gsea_did(adata, gene_sets=gmt, design=design, visits=VISITS, return_obj=True, **kwargs)
        write_case(out, name, pre.res2d, pre.ranking)
        cases.append({"case": name, "input": "trial.h5ad", "cli": cli, "csv": f"{name}.csv",
                      "ranking": f"{name}.ranking.csv",
                      "python": f"run_gsea_did(adata, gene_sets='sets.gmt', design=TrialDesign(), visits={VISITS!r}, "
                                + ", ".join(f"{k}={v!r}" for k, v in kwargs.items()) + ")"})

    single("default_p200", ["--permutations", "200"], permutation_num=200)
    single("tstat_w2_seed0_p100", ["--rank-by", "tstat", "--weight", "2", "--seed", "0", "--permutations", "100"],
           rank_by="tstat", weight=2.0, seed=0, permutation_num=100)
    single("beta_minsize20_p100", ["--rank-by", "beta", "--min-size", "20", "--max-size", "60", "--permutations", "100"],
           rank_by="beta", min_size=20, max_size=60, permutation_num=100)

    by_ct = run_gsea_did_by_celltype(adata, gene_sets=gmt, design=design, visits=VISITS, permutation_num=100)
    frames = []
    for ct in sorted(by_ct):
        frame = by_ct[ct].copy()
        frame.insert(0, "celltype", ct)
        frames.append(frame)
    write_case(out, "by_celltype_p100", pd.concat(frames, ignore_index=True), None)
    cases.append({"case": "by_celltype_p100", "input": "trial.h5ad", "cli": ["--by-celltype", "--permutations", "100"],
                  "csv": "by_celltype_p100.csv", "ranking": None,
                  "python": "run_gsea_did_by_celltype(adata, gene_sets='sets.gmt', design=TrialDesign(), "
                            f"visits={VISITS!r}, permutation_num=100), frames concatenated with a celltype column"})
    (out / "cases.json").write_text(json.dumps({"generated_by": "tools/goldens/gsea_did/make_goldens.py",
                                                "cases": cases}, indent=1) + "\n")


if __name__ == "__main__":
    main()
