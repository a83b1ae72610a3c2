"""Reading RUN/results.csv back into the DataFrames the Python references return."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

# sctrial's string columns; every other DiD column but n_units is float64.
_DID_TEXT = ("cov_type_used", "feature", "celltype")
_DE_TEXT = ("target", "reference", "feature")


def _read(path: Path, text_columns) -> pd.DataFrame:
    """Strings stay strings ("NA", "nan", "None" are gene and label names, not missing values);
    an empty field is NaN; numbers are parsed with correct rounding (the tool writes 17
    significant digits, so float64 values come back bit for bit)."""
    header = pd.read_csv(path, nrows=0).columns
    converters = {c: str for c in header if c in text_columns}
    frame = pd.read_csv(path, keep_default_na=False, na_values={c: [""] for c in header if c not in text_columns},
                        dtype=converters, float_precision="round_trip")
    return frame


def read_did(path: Path) -> pd.DataFrame:
    """sctrial's did_table / did_table_by_celltype frame: same columns in the same order (the
    tool writes them so), float64 statistics, int64 n_units, object strings with NaN where a
    row has no value (cov_type_used of a NaN row), a fresh RangeIndex. The tool's extra
    `reason` column (why a row is NaN) goes to `frame.attrs["reason"]` as {key: reason}."""
    frame = _read(Path(path), _DID_TEXT + ("reason",))
    if frame.empty and "feature" not in frame.columns:
        return pd.DataFrame()
    reasons = {}
    if "reason" in frame.columns:
        keys = ["celltype", "feature"] if "celltype" in frame.columns else ["feature"]
        for key, reason in zip(frame[keys].itertuples(index=False, name=None), frame["reason"]):
            if reason:
                reasons[key if len(keys) > 1 else key[0]] = reason
        frame = frame.drop(columns="reason")
    if frame.empty:
        # sctrial returns an empty frame without columns when nothing was fitted.
        return pd.DataFrame()
    for column in frame.columns:
        if column in _DID_TEXT:
            frame[column] = frame[column].replace("", np.nan).astype(object)
        elif column == "n_units":
            frame[column] = frame[column].astype(np.int64)
        else:
            frame[column] = frame[column].astype(np.float64)
    frame.attrs["reason"] = reasons
    return frame


def read_de(path: Path, matrix_dtype: np.dtype, metric: str) -> pd.DataFrame:
    """pdex 0.1.28's frame. Its standard path keeps a float32 matrix's arithmetic in float32 and
    pandas infers each column's dtype from the values pdex put in it, so for a float32 matrix:
    the means are float32; p_value, statistic and fdr too, except for anderson (scipy computes
    it in float64); fold_change is float32 unless some row took one of pdex's Python constants
    (a zero mean: 1, clip, 1/clip, 0, NaN), percent_change unless some reference mean is zero
    (Python NaN) -- a mix of float32 and Python floats makes float64. A float64 (or integer)
    matrix gives float64 everywhere. Our engine computes in float64; values are rounded once."""
    frame = _read(Path(path), _DE_TEXT)
    for column in frame.columns:
        frame[column] = frame[column].astype(object) if column in _DE_TEXT else frame[column].astype(np.float64)
    if np.dtype(matrix_dtype) != np.float32:
        return frame
    narrow = ["target_mean", "reference_mean"]
    if metric != "anderson":
        narrow += ["p_value", "statistic", "fdr"]
    t, r = frame["target_mean"], frame["reference_mean"]
    if not ((t == 0) | (r == 0)).any():
        narrow.append("fold_change")
    if not (r == 0).any():
        narrow.append("percent_change")
    for column in narrow:
        frame[column] = frame[column].astype(np.float32)
    return frame
