"""Shared fixtures: the project's golden inputs and cases, the three ways of passing `adata`,
and frame comparison.

The executables come from SCTRIAL_PLAN_BIN (scripts/test-python.sh points it at the build);
without them every test fails, none is skipped.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
DID = REPO / "Tests" / "Fixtures" / "did"
DE = REPO / "Tests" / "Fixtures" / "de"

warnings.filterwarnings("ignore")
logging.disable(logging.CRITICAL)


def pytest_sessionstart(session):
    import sctrial_plan._runner as runner

    try:
        path = runner.find_executable()
    except FileNotFoundError as error:
        raise pytest.UsageError(f"{error}\n(scripts/test-python.sh sets SCTRIAL_PLAN_BIN)") from None
    if not os.access(Path(path).with_name("sctrial-worker"), os.X_OK):
        raise pytest.UsageError(f"sctrial-worker is not beside {path}")


def did_cases() -> list[dict]:
    return json.loads((DID / "cases.json").read_text())["cases"]


def de_cases() -> list[dict]:
    return json.loads((DE / "cases.json").read_text())["cases"]


MODES = ("memory", "backed", "path")


def load(path: Path, mode: str):
    """The same file as an in-memory AnnData, a backed AnnData, or its path."""
    if mode == "memory":
        return ad.read_h5ad(path)
    if mode == "backed":
        return ad.read_h5ad(path, backed="r")
    return str(path)


def tolerance(float64: bool) -> dict:
    """The parity suites' tolerances (Tests/CLITests/DiDParityTests.swift,
    Tests/AnalysesTests/DEParityTests.swift): on float64 input the references compute in float64
    and we solve the same equations in another order, measured ≤ 2.7e-12 (DiD) and ≤ 4e-14 (DE)
    relative, so 1e-9 relative + 1e-12 absolute. On float32 input sctrial and pdex keep their
    arithmetic in float32 (Kahan group means, float32 ranks, z, t, p and FDR) while we compute in
    float64: re-running the references in float64 moved values by ≤ 6e-5 relative, so 1e-4
    relative + 1e-6 absolute."""
    return dict(rtol=1e-9, atol=1e-12) if float64 else dict(rtol=1e-4, atol=1e-6)


def align_rows(ours: pd.DataFrame, ref: pd.DataFrame, keys: list[str], tied: list[str]) -> pd.DataFrame:
    """Ours in the reference's row order. Where the orders differ, the rows must be ties of the
    reference's sort (equal `tied` values, or NaN: pandas' sort is not stable among them), so any
    other ordering difference fails here instead of being aligned away."""
    assert len(ours) == len(ref), (len(ours), len(ref))
    ours_keys = list(ours[keys].itertuples(index=False, name=None))
    ref_keys = list(ref[keys].itertuples(index=False, name=None))
    assert sorted(map(str, ours_keys)) == sorted(map(str, ref_keys)), "different rows"
    if ours_keys == ref_keys:
        return ours
    position = {k: i for i, k in enumerate(ours_keys)}
    ordered = ours.iloc[[position[k] for k in ref_keys]].reset_index(drop=True)
    for i in np.flatnonzero([a != b for a, b in zip(ours_keys, ref_keys)]):
        ref_values = ref.iloc[i][tied]
        got = ours.iloc[i][tied]
        same_block = all(ref.iloc[i][k] == ours.iloc[i][k] for k in keys[:-1])
        tie = all((pd.isna(a) and pd.isna(b)) or np.isclose(a, b, rtol=1e-6, atol=0) for a, b in zip(ref_values, got))
        assert same_block and tie, f"row {i}: ours {ours_keys[i]} vs reference {ref_keys[i]} (not a tie)"
    return ordered


@pytest.fixture
def run_dir(tmp_path):
    yield tmp_path / "run"
    shutil.rmtree(tmp_path / "run", ignore_errors=True)
