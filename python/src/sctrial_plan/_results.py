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


# pdex 0.1.28 computes these in the matrix's dtype (float32 for a float32 matrix: its standard
# path never upcasts); percent_change and fold_change mix Python floats in and are float64.
PDEX_MATRIX_DTYPE_COLUMNS = ("target_mean", "reference_mean", "p_value", "statistic", "fdr")


def read_de(path: Path, matrix_dtype: np.dtype) -> pd.DataFrame:
    frame = _read(Path(path), _DE_TEXT)
    narrow = np.dtype(np.float32) if np.dtype(matrix_dtype) == np.float32 else np.dtype(np.float64)
    for column in frame.columns:
        if column in _DE_TEXT:
            frame[column] = frame[column].astype(object)
        elif column in PDEX_MATRIX_DTYPE_COLUMNS:
            frame[column] = frame[column].astype(np.float64).astype(narrow)
        else:
            frame[column] = frame[column].astype(np.float64)
    return frame
