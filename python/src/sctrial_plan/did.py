"""sctrial 1.0.0's `did_table`, `did_table_by_celltype` and `score_gene_sets`, run by
`sctrial-plan plan did` + `run` (or `submit`).

Same names, arguments, defaults and result columns as sctrial, so `import sctrial_plan as st`
replaces `import sctrial as st` for these calls. The keyword-only arguments after sctrial's say
how to run (executor, shards, threads, memory, jobs, run_dir, slurm, progress).
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from ._input import input_path, is_every_gene
from ._results import read_did
from ._runner import Execution, execute

__all__ = ["TrialDesign", "DiDConfig", "did_table", "did_table_by_celltype", "score_gene_sets"]


@dataclass(frozen=True)
class TrialDesign:
    """sctrial's TrialDesign: the obs columns and labels of the trial. sctrial's own
    TrialDesign objects are accepted too (read by field name)."""

    participant_col: str = "participant_id"
    visit_col: str = "visit"
    arm_col: str | None = "arm"
    arm_treated: str = "Treated"
    arm_control: str = "Control"
    celltype_col: str | None = "celltype"
    crossover_col: str | None = None
    baseline_visit: str | None = None
    followup_visit: str | None = None

    def primary_visits(self, baseline: str | None = None, followup: str | None = None) -> tuple[str, str]:
        b = baseline if baseline is not None else self.baseline_visit
        f = followup if followup is not None else self.followup_visit
        if b is None or f is None:
            raise ValueError("Primary visits not specified. Provide baseline/followup or set "
                             "TrialDesign(baseline_visit=..., followup_visit=...).")
        return (b, f)


@dataclass
class DiDConfig:
    """sctrial's DiDConfig: when passed to did_table it overrides these arguments."""

    aggregate: str = "participant_visit"
    layer: str | None = None
    standardize: bool = True
    agg: str = "mean"
    covariates: list[str] | None = None
    use_bootstrap: bool = False
    n_boot: int = 999
    seed: int = 42
    exclude_crossovers: bool = True


_AGGREGATES = ("participant_visit", "participant_visit_celltype", "cell")
_AGGS = ("mean", "median", "pct_pos")
_GENE_SETS_KEY = "sctrial_plan_gene_sets"


def _toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, except that DEL must be escaped too."""
    return json.dumps(str(value), ensure_ascii=False).replace("\x7f", "\\u007f")


def _toml(values: Mapping[str, object]) -> str:
    lines = []
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, (int, np.integer)):
            text = str(int(value))
        elif isinstance(value, (list, tuple)):
            text = "[" + ", ".join(_toml_string(v) for v in value) + "]"
        else:
            text = _toml_string(value)
        lines.append(f"{key} = {text}")
    return "\n".join(lines) + "\n"


def _field(design, name, default=None):
    return getattr(design, name, default)


def _execution(executor, shards, threads, memory, jobs, run_dir, slurm, progress) -> Execution:
    return Execution(executor=executor, shards=shards, threads=threads, memory=memory, jobs=jobs,
                     run_dir=run_dir, slurm=dict(slurm or {}), progress=progress)


def _pending_sets(adata) -> list[dict]:
    uns = getattr(adata, "uns", None)
    if uns is None or _GENE_SETS_KEY not in uns:
        return []
    return json.loads(uns[_GENE_SETS_KEY])


def _obs_fingerprint(adata) -> list:
    names = adata.obs_names
    return [int(adata.n_obs), str(names[0]) if len(names) else "", str(names[-1]) if len(names) else ""]


def score_gene_sets(adata, gene_sets: dict[str, list[str]], *, layer: str | None = None, method: str = "zmean",
                    prefix: str = "", min_genes: int = 3, overwrite: bool = True):
    """sctrial's score_gene_sets, deferred: the scores are computed by the engine, over all cells
    of the AnnData, when a did_table / did_table_by_celltype call names a score column
    (`prefix + set name`) as a feature (`plan did --gene-sets`), as sctrial computes them over
    the whole AnnData before did_table subsets it. Nothing is added to `adata.obs`: the request
    is kept in `adata.uns["sctrial_plan_gene_sets"]`. Same validation and errors as sctrial.
    Returns `adata`."""
    if method not in ("zmean", "mean"):
        raise ValueError(f"Unknown method '{method}'. Use 'zmean' or 'mean'.")
    if not isinstance(gene_sets, dict) or len(gene_sets) == 0:
        raise ValueError("gene_sets must be a non-empty dict of name -> gene list.")
    if not isinstance(prefix, str):
        raise ValueError("prefix must be a string.")
    if min_genes < 1:
        raise ValueError("min_genes must be >= 1.")
    if not hasattr(adata, "uns") or not hasattr(adata, "obs_names"):
        raise TypeError("score_gene_sets needs an AnnData (the request is recorded on it)")
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"Layer '{layer}' not found in adata.layers.")
    for name, gset in gene_sets.items():
        if not isinstance(gset, (list, tuple, set, frozenset)):
            raise TypeError(f"Gene set '{name}' must be a list of gene names, got {type(gset).__name__}.")
    pending = _pending_sets(adata)
    existing = {entry["column"] for entry in pending}
    for name, gset in gene_sets.items():
        column = f"{prefix}{name}"
        if not overwrite and (column in adata.obs.columns or column in existing):
            continue
        pending = [entry for entry in pending if entry["column"] != column]
        pending.append({"column": column, "name": str(name), "genes": [str(g) for g in gset],
                        "prefix": prefix, "method": method, "min_genes": int(min_genes), "layer": layer,
                        "cells": _obs_fingerprint(adata)})
    adata.uns[_GENE_SETS_KEY] = json.dumps(pending)
    return adata


def _set_features(adata, features: Sequence[str]) -> list[dict]:
    """The pending gene-set scores among `features` (see score_gene_sets)."""
    if isinstance(adata, (str, os.PathLike)):
        return []
    by_column = {entry["column"]: entry for entry in _pending_sets(adata)}
    chosen = [by_column[f] for f in features if f in by_column]
    if not chosen:
        return []
    settings = {(e["prefix"], e["method"], e["min_genes"], e["layer"]) for e in chosen}
    if len(settings) > 1:
        raise NotImplementedError(
            "these features are gene-set scores from score_gene_sets calls with different prefix, method, "
            "min_genes or layer; sctrial-plan scores one collection per call: test them in separate calls")
    if any(e["cells"] != _obs_fingerprint(adata) for e in chosen):
        raise ValueError(
            "the cells changed since score_gene_sets (scores are computed over the cells present when "
            "scoring): call score_gene_sets again on this AnnData")
    return chosen


def _write_gmt(entries: list[dict], path: str) -> None:
    lines = []
    for e in entries:
        fields = [e["name"], "sctrial_plan"] + e["genes"]
        if any(("\t" in f or "\n" in f or "\r" in f) for f in fields):
            raise ValueError(f"gene set '{e['name']}': names and genes cannot contain tabs or line breaks")
        if not e["genes"]:
            raise ValueError(f"gene set '{e['name']}' has no genes")
        lines.append("\t".join(fields))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _did(adata, features, design, visits, *, by_celltype: bool, celltypes, exclude_crossovers, celltype, aggregate,
         layer, standardize, agg, covariates, use_bootstrap, n_boot, seed, execution: Execution, label: str):
    if isinstance(features, str):
        features = [features]
    features = [str(f) for f in features]
    if len(tuple(visits)) != 2:
        raise ValueError(f"visits must be two labels (pre, post), got {visits!r}")
    if aggregate not in _AGGREGATES:
        raise ValueError(f"aggregate must be one of {', '.join(_AGGREGATES)}, got {aggregate!r}")
    if callable(agg) or agg not in _AGGS:
        raise TypeError(f"agg must be one of {', '.join(_AGGS)} (the engine cannot run a Python callable), got {agg!r}")
    arm_col = _field(design, "arm_col", "arm")
    if arm_col is None:
        raise ValueError("did_table needs design.arm_col (a treated and a control arm)")
    celltype_col = _field(design, "celltype_col", "celltype")
    if by_celltype and celltype_col is None:
        raise ValueError("did_table_by_celltype requires design.celltype_col.")
    if aggregate == "participant_visit_celltype" and celltype_col is None:
        raise ValueError("aggregate='participant_visit_celltype' requires design.celltype_col.")
    crossover_col = _field(design, "crossover_col") if exclude_crossovers else None
    covariates = [str(c) for c in (covariates or [])]
    if use_bootstrap and n_boot < 1:
        raise ValueError("n_boot must be >= 1")

    sets = _set_features(adata, features)
    set_columns = {e["column"] for e in sets}
    if sets:
        set_layer = sets[0]["layer"]
        gene_features = [f for f in features if f not in set_columns and not _is_obs_column(adata, f)]
        if gene_features and set_layer != layer:
            raise NotImplementedError(
                f"gene-set scores on layer {set_layer!r} and genes on layer {layer!r} in one call: sctrial-plan "
                "reads both from one matrix; test them in separate calls")
        layer = set_layer if not gene_features else layer

    design_values = {
        "visits": [str(v) for v in visits],
        "participant_col": _field(design, "participant_col", "participant_id"),
        "visit_col": _field(design, "visit_col", "visit"),
        "arm_col": arm_col,
        "treated": str(_field(design, "arm_treated", "Treated")),
        "control": str(_field(design, "arm_control", "Control")),
        "celltype_col": celltype_col,
        "crossover_col": crossover_col,
        # sctrial ignores `celltype` when the design has no cell-type column.
        "celltype": str(celltype) if (celltype is not None and celltype_col is not None and not by_celltype) else None,
        "by_celltype": True if by_celltype else None,
        "celltypes": [str(c) for c in celltypes] if (by_celltype and celltypes is not None) else None,
        "features": "all" if (not sets and is_every_gene(adata, features)) else features,
        "layer": layer,
        "aggregate": aggregate,
        "agg": agg,
        "covariates": covariates or None,
        "standardize": bool(standardize),
        "bootstrap": True if use_bootstrap else None,
        "n_boot": int(n_boot) if use_bootstrap else None,
        "seed": int(seed) if use_bootstrap else None,
    }
    obs_needed = [design_values["participant_col"], design_values["visit_col"], arm_col, celltype_col, crossover_col,
                  *covariates, *[f for f in features if f not in set_columns]]
    scratch = tempfile.mkdtemp(prefix="sctrial-plan-design-", dir=execution.scratch_parent())
    try:
        if sets:
            gmt = os.path.join(scratch, "sets.gmt")
            _write_gmt(sets, gmt)
            design_values.update(gene_sets=gmt, set_prefix=sets[0]["prefix"], score_method=sets[0]["method"],
                                 min_genes=sets[0]["min_genes"])
        config = os.path.join(scratch, "design.toml")
        Path(config).write_text(_toml(design_values), encoding="utf-8")
        with input_path(adata, [c for c in obs_needed if c], [layer], execution.scratch_parent()) as path:
            return execute(["did"], path, ["--config", config], execution, read_did, label)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _is_obs_column(adata, name: str) -> bool:
    obs = getattr(adata, "obs", None)
    return obs is not None and name in obs.columns


def did_table(adata, features: Sequence[str], design, visits: tuple[str, str], exclude_crossovers: bool = True,
              celltype: str | None = None, aggregate: str = "participant_visit", layer: str | None = None,
              standardize: bool = True, agg: str = "mean", covariates: list[str] | None = None,
              use_bootstrap: bool = False, n_boot: int = 999, seed: int = 42, config: DiDConfig | None = None, *,
              executor: str = "local", shards: int | None = None, threads: int | None = None,
              memory: float | None = None, jobs: int | None = None, run_dir: str | os.PathLike | None = None,
              slurm: Mapping[str, object] | None = None, progress: bool = True) -> pd.DataFrame:
    """sctrial.did_table: one fixed-effects DiD per feature (genes, numeric obs columns, or
    gene-set scores recorded by score_gene_sets), sorted by p_DiD, with FDR_DiD.

    `adata`: an in-memory AnnData (written once to a temporary .h5ad with only what the call
    reads), a backed AnnData or an .h5ad path (read in place). `config` (a DiDConfig) overrides
    aggregate, layer, standardize, agg, covariates, use_bootstrap, n_boot, seed and
    exclude_crossovers, as in sctrial. Differences from sctrial: agg="pct_pos" works; where
    statsmodels divides by zero (N = K) the feature gets a NaN row, and why any row is NaN is in
    `result.attrs["reason"]`.

    Running: `executor` "local" (`sctrial-plan run`) or "slurm" (`sctrial-plan submit --wait`,
    needs `run_dir` on a shared filesystem; `slurm={"partition": ..., "time": ..., ...}` gives
    submit's options); `shards`, `threads` (per worker), `memory` (GB per worker) go to the plan,
    `jobs` (workers at once) to `run -j`; `run_dir` keeps the run directory; `progress=False`
    hides the progress bar / lines. Errors of the tool raise SctrialPlanError with its message.
    """
    if config is not None:
        aggregate, layer, standardize, agg = config.aggregate, config.layer, config.standardize, config.agg
        covariates, use_bootstrap, n_boot, seed = config.covariates, config.use_bootstrap, config.n_boot, config.seed
        exclude_crossovers = config.exclude_crossovers
    return _did(adata, features, design, visits, by_celltype=False, celltypes=None,
                exclude_crossovers=exclude_crossovers, celltype=celltype, aggregate=aggregate, layer=layer,
                standardize=standardize, agg=agg, covariates=covariates, use_bootstrap=use_bootstrap, n_boot=n_boot,
                seed=seed, execution=_execution(executor, shards, threads, memory, jobs, run_dir, slurm, progress),
                label="did_table")


def did_table_by_celltype(adata, features: Sequence[str], design, visits: tuple[str, str],
                          celltypes: Sequence[str] | None = None, exclude_crossovers: bool = True,
                          aggregate: str = "participant_visit", layer: str | None = None, standardize: bool = True,
                          agg: str = "mean", covariates: list[str] | None = None, use_bootstrap: bool = False,
                          n_boot: int = 999, seed: int = 42, *, executor: str = "local", shards: int | None = None,
                          threads: int | None = None, memory: float | None = None, jobs: int | None = None,
                          run_dir: str | os.PathLike | None = None, slurm: Mapping[str, object] | None = None,
                          progress: bool = True) -> pd.DataFrame:
    """sctrial.did_table_by_celltype: did_table per cell type (all of them, sorted, or
    `celltypes` in the given order), blocks concatenated, with FDR_DiD per block and
    FDR_DiD_stratified over all. Cell types without paired participants are skipped as in
    sctrial. Running options as in did_table."""
    return _did(adata, features, design, visits, by_celltype=True, celltypes=celltypes,
                exclude_crossovers=exclude_crossovers, celltype=None, aggregate=aggregate, layer=layer,
                standardize=standardize, agg=agg, covariates=covariates, use_bootstrap=use_bootstrap, n_boot=n_boot,
                seed=seed, execution=_execution(executor, shards, threads, memory, jobs, run_dir, slurm, progress),
                label="did_table_by_celltype")
