"""Turning the `adata` argument into an .h5ad path the tool can read.

A path or a backed AnnData is used in place (nothing copied). An in-memory AnnData is written
once, per call, to a temporary .h5ad holding only what the call reads (the obs columns named,
var names, and X or the one layer), and removed afterwards: writing the whole object (every
layer, obsm, uns) would cost time for nothing.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from ._runner import SctrialPlanError

__all__ = ["input_path", "obs_frame", "matrix_dtype", "IN_MEMORY"]

IN_MEMORY = "in-memory AnnData"


def _is_anndata(value) -> bool:
    try:
        import anndata
    except ImportError:  # pragma: no cover - anndata is a dependency
        return False
    return isinstance(value, anndata.AnnData)


def _backed_file(adata) -> str | None:
    """The file of a backed AnnData that is not a view (a view's rows are not the file's)."""
    if getattr(adata, "isbacked", False) and not adata.is_view:
        return str(Path(adata.filename).resolve())
    return None


@contextlib.contextmanager
def input_path(adata, obs_columns: Iterable[str], matrices: Iterable[str | None],
               scratch_parent: str | None = None) -> Iterator[str]:
    """Yields a path to read. `obs_columns`: the obs columns the call needs (missing ones are
    left for the tool to report); `matrices`: None for X, else layer names."""
    if isinstance(adata, (str, os.PathLike)):
        path = Path(adata)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such .h5ad file")
        yield str(path.resolve())
        return
    if not _is_anndata(adata):
        raise TypeError(f"adata must be an AnnData or a path to an .h5ad file, got {type(adata).__name__}")
    backed = _backed_file(adata)
    if backed is not None:
        yield backed
        return
    folder = tempfile.mkdtemp(prefix="sctrial-plan-input-", dir=scratch_parent)
    try:
        path = os.path.join(folder, "input.h5ad")
        _write_minimal(adata, path, obs_columns, matrices)
        try:
            yield path
        except SctrialPlanError as error:
            # The temporary file means nothing to the caller: name their object instead. (It holds
            # only the obs columns the call reads, so a "columns:" list in a message is that subset.)
            error.message = error.message.replace(path, IN_MEMORY)
            error.args = (error.message,)
            raise
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _write_minimal(adata, path: str, obs_columns: Iterable[str], matrices: Iterable[str | None]) -> None:
    import anndata

    if adata.isbacked:  # a view of a backed object: bring just its rows into memory
        adata = adata.to_memory()
    columns = [c for c in dict.fromkeys(obs_columns) if c in adata.obs.columns]
    obs = adata.obs[columns].copy() if columns else pd.DataFrame(index=adata.obs_names.copy())
    var = pd.DataFrame(index=adata.var_names.copy())
    wanted = list(dict.fromkeys(matrices))
    layers = {}
    for name in wanted:
        if name is not None and name in adata.layers:
            layers[name] = adata.layers[name]
    x = adata.X if None in wanted else None
    anndata.AnnData(X=x, obs=obs, var=var, layers=layers).write_h5ad(path)


def obs_frame(adata, columns: Iterable[str]) -> pd.DataFrame:
    """The obs columns (those present) of an AnnData or .h5ad path, read without the matrix."""
    columns = list(dict.fromkeys(columns))
    if _is_anndata(adata):
        return adata.obs[[c for c in columns if c in adata.obs.columns]]
    import anndata

    with _h5(adata) as f:
        obs = anndata.io.read_elem(f["obs"])
    return obs[[c for c in columns if c in obs.columns]]


@contextlib.contextmanager
def _h5(path):
    import h5py

    with h5py.File(path, "r") as f:
        yield f


def matrix_dtype(adata, layer: str | None) -> np.dtype:
    """The stored dtype of X or a layer (float32 decides pdex's float32 output columns)."""
    if _is_anndata(adata) and not _backed_file(adata):
        m = adata.X if layer is None else adata.layers[layer]
        return np.dtype(m.dtype)
    path = _backed_file(adata) if _is_anndata(adata) else str(adata)
    with _h5(path) as f:
        name = "X" if layer is None else f"layers/{layer}"
        if name not in f:
            raise KeyError(f"{path}: no matrix {name}")
        element = f[name]
        return np.dtype(element.dtype if hasattr(element, "dtype") else element["data"].dtype)


def first_rows(adata, layer: str | None, n: int):
    """The first `n` rows of X or a layer (dense or CSR/CSC), for pdex 0.3.0's log1p guess."""
    if _is_anndata(adata):
        m = adata.X if layer is None else adata.layers[layer]
        return m[: min(n, adata.n_obs)]
    import anndata

    path = str(adata)
    with _h5(path) as f:
        name = "X" if layer is None else f"layers/{layer}"
        element = anndata.io.sparse_dataset(f[name]) if not hasattr(f[name], "dtype") else f[name]
        rows = min(n, element.shape[0])
        return element[:rows]


def is_every_gene(adata, features) -> bool:
    """True when `features` is var_names in order and none of them is also an obs column (which
    would take precedence over the gene). The tool then reads "every gene" instead of resolving a
    named list, which costs it ~0.1 s more per 500 names at planning."""
    if _is_anndata(adata):
        names, obs_columns = adata.var_names, set(adata.obs.columns)
    elif not Path(adata).is_file():
        return False  # input_path reports the missing file
    else:
        import anndata

        with _h5(adata) as f:
            names = anndata.io.read_elem(f["var"]).index
            order = f["obs"].attrs.get("column-order")
            obs_columns = set(order if order is not None else f["obs"].keys())
    return len(names) == len(features) and list(names) == list(features) and not obs_columns.intersection(features)
