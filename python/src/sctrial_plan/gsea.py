"""sctrial 1.0.0's `run_gsea_did`, run by `sctrial-plan plan gsea` + `run` (or `submit`).

Kept apart from did.py: `plan gsea` is newer than the rest of the CLI, and this module is its
only user. The CLI contract: `plan gsea DATA --out RUN --visits PRE,POST [DiD design options]
--gene-sets FILE.gmt [--rank-by signed-logp|beta|tstat] [--min-units N] [--permutations N]
[--min-size N] [--max-size N] [--weight W] [--seed S]`; RUN/results.csv has the columns
Term, ES, NES, NOM p-val, FDR q-val, FWER p-val, Tag %, Gene %, Lead_genes.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ._input import input_path
from ._runner import Execution, execute
from .did import _field, _write_gmt

__all__ = ["run_gsea_did"]

_RANK_BY = {"signed_confidence": "signed-logp", "beta": "beta", "tstat": "tstat"}
# gseapy.prerank keyword -> CLI option (the only prerank settings the engine has)
_PRERANK = {"permutation_num": "--permutations", "min_size": "--min-size", "max_size": "--max-size",
            "weight": "--weight", "seed": "--seed"}
# prerank keywords about gseapy's own output and threads: no effect on the table, accepted.
_PRERANK_IGNORED = {"outdir", "threads", "no_plot", "verbose", "format", "figsize", "graph_num"}
_TEXT = ("Term", "Lead_genes")


def _read_gsea(path: Path) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False, float_precision="round_trip",
                        dtype={c: str for c in _TEXT},
                        na_values={c: [""] for c in ("ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val")})
    for column in ("ES", "NES", "NOM p-val", "FDR q-val", "FWER p-val"):
        frame[column] = frame[column].astype(np.float64)
    for column in _TEXT + ("Tag %", "Gene %"):
        frame[column] = frame[column].astype(object)
    if "Name" not in frame.columns:
        # gseapy's res2d (what sctrial returns) starts with the run's name, "prerank".
        frame.insert(0, "Name", pd.Series(["prerank"] * len(frame), dtype=object))
    return frame


def run_gsea_did(adata, gene_sets, design, visits: tuple[str, str], layer: str | None = None,
                 exclude_crossovers: bool = True, celltype: str | None = None, rank_by: str = "signed_confidence",
                 use_bootstrap: bool = False, n_boot: int = 999, min_units: int = 4, return_obj: bool = False, *,
                 executor: str = "local", shards: int | None = None, threads: int | None = None,
                 memory: float | None = None, jobs: int | None = None, run_dir: str | os.PathLike | None = None,
                 slurm: Mapping[str, object] | None = None, progress: bool = True, **kwargs) -> pd.DataFrame:
    """sctrial.run_gsea_did: DiD of every gene, genes ranked by `rank_by`, then a prerank GSEA
    over `gene_sets` (a GMT path, or a dict of name -> genes written to a temporary GMT; gseapy
    library names are not available). gseapy.prerank's `permutation_num`, `min_size`,
    `max_size`, `weight` and `seed` are passed on; `return_obj=True` (a gseapy object) is not
    available. Running options as in did_table."""
    if return_obj:
        raise NotImplementedError("run_gsea_did(return_obj=True): sctrial-plan returns the results table only")
    if rank_by not in _RANK_BY:
        raise ValueError(f"rank_by must be one of {', '.join(_RANK_BY)}, got {rank_by!r}")
    unknown = set(kwargs) - set(_PRERANK) - _PRERANK_IGNORED
    if unknown:
        raise TypeError(f"prerank options sctrial-plan does not have: {', '.join(sorted(unknown))}")
    arm_col = _field(design, "arm_col", "arm")
    if arm_col is None:
        raise ValueError("run_gsea_did needs design.arm_col (a treated and a control arm)")
    celltype_col = _field(design, "celltype_col", "celltype")
    crossover_col = _field(design, "crossover_col") if exclude_crossovers else None
    flags = ["--visits", ",".join(str(v) for v in visits),
             "--participant-col", _field(design, "participant_col", "participant_id"),
             "--visit-col", _field(design, "visit_col", "visit"), "--arm-col", arm_col,
             "--treated", str(_field(design, "arm_treated", "Treated")),
             "--rank-by", _RANK_BY[rank_by], "--min-units", str(int(min_units))]
    if celltype_col is not None:
        flags += ["--celltype-col", celltype_col]
        if celltype is not None:
            flags += ["--celltype", str(celltype)]
    if crossover_col is not None:
        flags += ["--crossover-col", crossover_col]
    if layer is not None:
        flags += ["--layer", layer]
    if use_bootstrap:
        flags += ["--bootstrap", "--n-boot", str(int(n_boot))]
    for name, option in _PRERANK.items():
        if kwargs.get(name) is not None:
            flags += [option, str(kwargs[name])]
    execution = Execution(executor=executor, shards=shards, threads=threads, memory=memory, jobs=jobs,
                          run_dir=run_dir, slurm=dict(slurm or {}), progress=progress)
    scratch = tempfile.mkdtemp(prefix="sctrial-plan-gsea-", dir=execution.scratch_parent())
    try:
        if isinstance(gene_sets, dict):
            gmt = os.path.join(scratch, "sets.gmt")
            _write_gmt([{"name": str(n), "genes": [str(g) for g in genes]} for n, genes in gene_sets.items()], gmt)
        elif isinstance(gene_sets, (str, os.PathLike)) and Path(gene_sets).is_file():
            gmt = str(Path(gene_sets).resolve())
        else:
            raise ValueError(f"gene_sets must be a GMT file or a dict of name -> genes; {gene_sets!r} is neither "
                             "(gseapy library names need gseapy's download, which sctrial-plan does not do)")
        obs_needed = [c for c in (_field(design, "participant_col", "participant_id"),
                                  _field(design, "visit_col", "visit"), arm_col, celltype_col, crossover_col) if c]
        with input_path(adata, obs_needed, [layer], execution.scratch_parent()) as path:
            return execute(["gsea"], path, flags + ["--gene-sets", gmt], execution, _read_gsea, "run_gsea_did")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
