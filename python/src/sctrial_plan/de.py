"""pdex's perturbation DE, run by `sctrial-plan plan de` + `run` (or `submit`):
`parallel_differential_expression` with pdex 0.1.28's signature and columns, and `pdex` with
pdex 0.3.0's, where our engine's output determines pdex 0.3.0's columns exactly.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd

from ._input import first_rows, input_path, matrix_dtype, obs_frame
from ._results import read_de
from ._runner import Execution, execute

__all__ = ["parallel_differential_expression", "pdex"]

_METRICS = ("wilcoxon", "anderson", "t-test")


def _de_flags(groupby_key: str, reference: str, metric: str, tie_correct: bool, is_log1p, exp_post_agg: bool,
              clip_value, layer: str | None, groups_file: str | None) -> list[str]:
    flags = ["--groupby-key", str(groupby_key), "--reference", str(reference), "--metric", metric]
    if groups_file is not None:
        flags += ["--groups", "@" + groups_file]
    if not tie_correct:
        flags.append("--no-tie-correct")
    if is_log1p is not None:
        flags += ["--is-log1p", "true" if is_log1p else "false"]
    if not exp_post_agg:
        flags.append("--no-exp-post-agg")
    flags += ["--clip-value", "none" if clip_value is None else repr(float(clip_value))]
    if layer is not None:
        flags += ["--layer", layer]
    return flags


def _run_de(adata, flags_for, groupby_key: str, layer: str | None, groups, metric: str, execution: Execution,
            label: str):
    scratch = tempfile.mkdtemp(prefix="sctrial-plan-de-", dir=execution.scratch_parent())
    try:
        groups_file = None
        if groups is not None:
            groups_file = os.path.join(scratch, "groups.txt")
            names = [str(g) for g in groups]
            if any("\n" in g or "\r" in g for g in names):
                raise ValueError("group names cannot contain line breaks")
            Path(groups_file).write_text("\n".join(names) + "\n", encoding="utf-8")
        dtype = matrix_dtype(adata, layer)
        with input_path(adata, [groupby_key], [layer], execution.scratch_parent()) as path:
            return execute(["de"], path, flags_for(groups_file), execution,
                           lambda results: read_de(results, dtype, metric), label)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def parallel_differential_expression(adata, groups: list[str] | None = None, reference: str = "non-targeting",
                                     groupby_key: str = "target_gene", num_workers: int | None = None,
                                     batch_size: int = 100, num_threads: int | None = None,
                                     metric: str = "wilcoxon", tie_correct: bool = True, is_log1p: bool | None = None,
                                     exp_post_agg: bool = True, clip_value: float | None = 20.0,
                                     as_polars: bool = False, low_memory: bool | None = None,
                                     gene_chunk_size: int = 1000, show_progress: bool = True, *,
                                     layer: str | None = None, executor: str = "local", shards: int | None = None,
                                     threads: int | None = None, memory: float | None = None, jobs: int | None = None,
                                     run_dir: str | os.PathLike | None = None,
                                     slurm: Mapping[str, object] | None = None, **kwargs):
    """pdex 0.1.28's parallel_differential_expression: each target of `groupby_key` against
    the `reference` cells, gene by gene (wilcoxon, anderson or t-test), with pdex's columns
    target, reference, feature, target_mean, reference_mean, percent_change, fold_change,
    p_value, statistic, fdr (BH over all rows); targets in order of first appearance, genes in
    var order. For a float32 matrix target_mean, reference_mean, p_value, statistic and fdr are
    float32 columns as pdex returns them (our engine computes in float64 and rounds once).

    Always pdex's standard (in-memory) semantics, also for a backed AnnData or a path, where
    pdex itself would switch to its chunked path. `num_workers`, `batch_size`, `low_memory` and
    `gene_chunk_size` are pdex's execution knobs: accepted, and replaced by the engine's sharding
    (`shards`, `threads`, `memory`, `jobs`); `num_threads` is used for `threads` when that is not
    given; `show_progress` shows the progress bar / lines. Extra keyword arguments (pdex passes them
    to the scipy test) are refused. `reference="rest"` compares each group with all other cells
    (one-vs-rest; pdex has no such mode). `layer=` tests a layer instead of X.
    """
    if kwargs:
        raise TypeError(f"sctrial-plan cannot pass extra arguments to the scipy tests: {', '.join(sorted(kwargs))}")
    if metric not in _METRICS:
        raise ValueError(f"Unknown metric: {metric} :: Expecting: {', '.join(_METRICS)}")
    del num_workers, batch_size, low_memory, gene_chunk_size  # pdex's own parallelism; see docstring
    if threads is None and num_threads is not None and num_threads > 0:
        threads = num_threads
    execution = Execution(executor=executor, shards=shards, threads=threads, memory=memory, jobs=jobs,
                          run_dir=run_dir, slurm=dict(slurm or {}), progress=show_progress)

    def flags(groups_file):
        return _de_flags(groupby_key, reference, metric, tie_correct, is_log1p, exp_post_agg, clip_value, layer,
                         groups_file)

    frame = _run_de(adata, flags, groupby_key, layer, groups, metric, execution, "parallel_differential_expression")
    if as_polars:
        import polars as pl

        return pl.from_pandas(frame)
    return frame


# --- pdex 0.3.0 ------------------------------------------------------------------------------

_PDEX030_COLUMNS = ["target", "feature", "target_mean", "ref_mean", "target_membership", "ref_membership",
                    "log2_fold_change", "percent_change", "p_value", "statistic", "fdr"]
# Our Mann-Whitney test is exact when a group has at most this many cells and no value is tied
# (pdex 0.1.28 / scipy's "auto"); pdex 0.3.0 is always asymptotic.
_EXACT_MWU_CELLS = 8


def _bh(p: np.ndarray) -> np.ndarray:
    """Benjamini-Hochberg step-up q-values (as scipy's false_discovery_control(method="bh"))."""
    m = p.size
    if m <= 1:
        return p.astype(np.float64)
    order = np.argsort(p, kind="stable")
    ranked = p[order] * (m / np.arange(1, m + 1))
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    q = np.empty(m, dtype=np.float64)
    q[order] = np.clip(ranked, 0, 1)
    return q


def pdex(adata, groupby: str, mode: str = "ref", threads: int = 0, is_log1p: bool | None = None,
         geometric_mean: bool = True, as_pandas: bool = False, epsilon: float = 1e-9,
         cpm_filter: float | None = None, *, layer: str | None = None, executor: str = "local",
         shards: int | None = None, memory: float | None = None, jobs: int | None = None,
         run_dir: str | os.PathLike | None = None, slurm: Mapping[str, object] | None = None,
         progress: bool = True, **kwargs):
    """pdex 0.3.0's `pdex` for modes "ref" (each group against `reference=`, default
    "non-targeting") and "all" (each group against all other labelled cells), with its columns
    target, feature, target_mean, ref_mean, target_membership, ref_membership,
    log2_fold_change, percent_change, p_value, statistic, fdr (BH per group), groups in category
    order, genes in var order; a polars DataFrame unless `as_pandas=True`.

    The engine computes the means and the Mann-Whitney U statistic and p-value; the rest are
    exact functions of those computed here: log2((t + epsilon) / (r + epsilon)) and
    (t - r) / (r + epsilon) with 0/0 → 0 as pdex does, memberships from the labels, per-group BH,
    and pdex 0.3.0's log1p guess (max of the first 500 rows below 20) when `is_log1p` is None.

    Not supported (NotImplementedError), because the engine's output does not determine them:
    mode "on_target"; geometric means of counts (`geometric_mean=True` with is_log1p False:
    expm1(mean(log1p x)) is not an engine mean; use geometric_mean=False or log1p data);
    `cpm_filter` with geometric means (it needs arithmetic means); groups (or the reference) of
    at most 8 cells (our test may use the exact Mann-Whitney p there, pdex 0.3.0 never does);
    label categories without cells; mode "all" with unlabelled (NaN or "") cells.
    `threads` is the engine's threads per worker (0: its default).
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be non-negative, got {epsilon}")
    if mode == "on_target":
        raise NotImplementedError(
            "pdex(mode='on_target') is not supported by sctrial-plan: its DE has no per-group gene "
            "selection (use mode='ref' and keep each group's target-gene row)")
    if mode not in ("ref", "all"):
        raise ValueError(f"Invalid mode: {mode}")
    reference = kwargs.pop("reference", "non-targeting")
    if kwargs:
        raise TypeError(f"unexpected keyword arguments for mode={mode!r}: {', '.join(sorted(kwargs))}")

    if is_log1p is None:
        sample = first_rows(adata, layer, 500)
        values = sample.data if hasattr(sample, "data") and not isinstance(sample, np.ndarray) else np.asarray(sample)
        is_log1p = bool(float(np.max(values)) < 20.0)
    if geometric_mean and not is_log1p:
        raise NotImplementedError(
            "pdex(geometric_mean=True) on counts (is_log1p=False) reports expm1(mean(log1p(x))), which "
            "sctrial-plan's DE does not compute: pass geometric_mean=False (arithmetic means) or log1p data")
    if cpm_filter is not None and geometric_mean:
        raise NotImplementedError(
            "pdex(cpm_filter=...) needs arithmetic means in count space: pass geometric_mean=False")

    obs = obs_frame(adata, [groupby])
    if groupby not in obs.columns:
        raise ValueError(f"Missing column: {groupby}.")
    labels = pd.Categorical(obs[groupby])
    labels = labels.remove_categories([c for c in labels.categories if c == "" or pd.isna(c)])
    groups = [str(g) for g in labels.categories]
    codes = np.asarray(labels.codes)
    counts = np.bincount(codes[codes >= 0], minlength=len(groups)) if len(groups) else np.zeros(0, int)
    empty = [g for g, n in zip(groups, counts) if n == 0]
    if empty:
        raise NotImplementedError(f"label categories without cells are not supported: {', '.join(empty)} "
                                  "(remove_unused_categories() first)")
    membership = dict(zip(groups, counts.tolist()))
    if mode == "ref":
        if reference not in membership:
            raise ValueError(f"Missing reference: {reference}. Available: {', '.join(groups)}")
        compared = [g for g in groups if g != reference]
        reference_size = {g: membership[reference] for g in compared}
    else:
        if len(groups) < 2:
            raise ValueError(f"mode='all' requires at least 2 groups, found {len(groups)}")
        if (codes < 0).any():
            raise NotImplementedError("pdex(mode='all') with unlabelled (NaN or empty) cells is not supported: "
                                      "sctrial-plan's one-vs-rest counts them in the rest; drop them first")
        compared = groups
        total = int(counts.sum())
        reference_size = {g: total - membership[g] for g in compared}
    small = [g for g in compared if min(membership[g], reference_size[g]) <= _EXACT_MWU_CELLS]
    if small:
        raise NotImplementedError(
            f"groups with at most {_EXACT_MWU_CELLS} cells (or against at most {_EXACT_MWU_CELLS}): "
            f"{', '.join(small[:10])}{' …' if len(small) > 10 else ''}: pdex 0.3.0 always uses the asymptotic "
            "Mann-Whitney p-value, sctrial-plan the exact one there when no value is tied; drop these groups")

    execution = Execution(executor=executor, shards=shards, threads=threads or None, memory=memory, jobs=jobs,
                          run_dir=run_dir, slurm=dict(slurm or {}), progress=progress)

    def flags(groups_file):
        # geometric mean of log1p data = expm1(mean(x)) (exp_post_agg); arithmetic = mean(expm1(x))
        # for log1p data, mean(x) for counts. Wilcoxon with continuity, as numba-mwu's default.
        return _de_flags(groupby, "rest" if mode == "all" else reference, "wilcoxon", True, is_log1p,
                         bool(geometric_mean), None, layer, groups_file)

    ours = _run_de(adata, flags, groupby, layer, None, "wilcoxon", execution, "pdex")
    ours = ours[ours["target"].isin(set(compared))]
    position = {g: i for i, g in enumerate(groups)}
    ours = ours.assign(_order=ours["target"].map(position)).sort_values("_order", kind="stable")
    # pdex 0.3.0 keeps a float32 matrix's means in float32 (and derives the changes from them in
    # float64): report ours rounded so, and derive from what is reported.
    mean_dtype = np.float32 if matrix_dtype(adata, layer) == np.float32 else np.float64
    t = ours["target_mean"].to_numpy(np.float64).astype(mean_dtype)
    r = ours["reference_mean"].to_numpy(np.float64).astype(mean_dtype)
    t64, r64 = t.astype(np.float64), r.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        lfc = np.log2((t64 + epsilon) / (r64 + epsilon))
        pc = (t64 - r64) / (r64 + epsilon)
    lfc[np.isnan(lfc)] = 0.0
    pc[np.isnan(pc)] = 0.0
    p = np.clip(ours["p_value"].to_numpy(np.float64), 0, 1)
    frame = pd.DataFrame({
        "target": ours["target"].to_numpy(object),
        "feature": ours["feature"].to_numpy(object),
        "target_mean": t,
        "ref_mean": r,
        "target_membership": ours["target"].map(membership).to_numpy(np.int64),
        "ref_membership": ours["target"].map(reference_size).to_numpy(np.int64),
        "log2_fold_change": lfc,
        "percent_change": pc,
        "p_value": p,
        "statistic": ours["statistic"].to_numpy(np.float64),
    })
    keep = np.ones(len(frame), dtype=bool)
    if cpm_filter is not None:
        # pdex's pooled CPM: a group's arithmetic mean of a gene over the sum of its means × 1e6,
        # i.e. exactly our target_mean / reference_mean columns when geometric_mean is False.
        keep = np.zeros(len(frame), dtype=bool)
        for column in ("target_mean", "ref_mean"):
            sums = frame.groupby("target", sort=False)[column].transform("sum").to_numpy()
            keep |= frame[column].to_numpy() / np.where(sums != 0, sums, 1.0) * 1e6 > cpm_filter
    frame = frame[keep].reset_index(drop=True)
    fdr = np.empty(len(frame), dtype=np.float64)
    for _, index in frame.groupby("target", sort=False).indices.items():
        fdr[index] = _bh(frame["p_value"].to_numpy()[index])
    frame["fdr"] = fdr
    frame = frame[_PDEX030_COLUMNS]
    if as_pandas:
        return frame
    import polars as pl

    return pl.from_pandas(frame)
