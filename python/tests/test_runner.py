"""Running the tool: errors become exceptions with its one-line message, shards do not change the
table, the executor options map onto plan / run / submit, progress lines become a bar, and the
executable is found through SCTRIAL_PLAN_BIN, settings.bin_dir, then PATH."""
from __future__ import annotations

import io
import os
import stat
import sys
from pathlib import Path

import anndata as ad
import pandas as pd
import pytest

import sctrial_plan as st
from sctrial_plan import _runner
from conftest import DE, DID


def test_bad_column_raises_the_tools_message():
    adata = ad.read_h5ad(DID / "did_clean.h5ad")
    with pytest.raises(st.SctrialPlanError) as caught:
        st.did_table(adata, ["g00"], st.TrialDesign(participant_col="donor"), ("V1", "V2"), progress=False)
    error = caught.value
    assert error.returncode == 2
    # The tool's own line, the temporary copy's path replaced by what the caller passed (the copy
    # holds only the obs columns the call reads, hence the short list).
    assert str(error) == ("in-memory AnnData: obs has no column 'donor' (--participant-col); "
                          "columns: visit, arm, celltype"), str(error)
    # The same error on the file itself is the tool's line verbatim, prefix dropped.
    path = DID / "did_clean.h5ad"
    with pytest.raises(st.SctrialPlanError) as caught:
        st.did_table(str(path), ["g00"], st.TrialDesign(participant_col="donor"), ("V1", "V2"), progress=False)
    assert str(caught.value) == (f"{path}: obs has no column 'donor' (--participant-col); "
                                 "columns: participant_id, visit, arm, celltype, qc_score, sex, age")
    assert f"sctrial-plan: error: {caught.value}" in caught.value.stderr.splitlines()


def test_bad_groupby_key_on_a_path():
    path = DE / "tiny_n3_f64.h5ad"
    with pytest.raises(st.SctrialPlanError) as caught:
        st.parallel_differential_expression(str(path), groupby_key="guide", show_progress=False)
    assert str(caught.value) == f"{path}: /obs/guide: no such column (columns: target_gene)"
    assert caught.value.returncode == 2


def test_unknown_visit():
    with pytest.raises(st.SctrialPlanError, match=r"visit 'V9' has no cells in obs column 'visit'"):
        st.did_table(str(DID / "did_clean.h5ad"), ["g00"], st.TrialDesign(), ("V1", "V9"), progress=False)


def test_missing_file():
    with pytest.raises(FileNotFoundError, match="no such .h5ad file"):
        st.did_table("/nonexistent/x.h5ad", ["g00"], st.TrialDesign(), ("V1", "V2"))


def test_three_shards_equal_one(run_dir):
    """Byte-identical tables whatever the shard count (the reducer recomputes FDR and the sort)."""
    adata = ad.read_h5ad(DID / "did_clean.h5ad")
    features = list(adata.var_names)
    one = st.did_table_by_celltype(adata, features, st.TrialDesign(), ("V1", "V2"), shards=1, progress=False)
    three = st.did_table_by_celltype(adata, features, st.TrialDesign(), ("V1", "V2"), shards=3, jobs=2,
                                     run_dir=run_dir, progress=False)
    pd.testing.assert_frame_equal(one, three, check_exact=True)
    assert len(list((run_dir / "parts").glob("*.part"))) == 3  # a kept run directory holds 3 parts
    de_one = st.parallel_differential_expression(str(DE / "counts_csr_f32.h5ad"), shards=1, show_progress=False)
    de_three = st.parallel_differential_expression(str(DE / "counts_csr_f32.h5ad"), shards=3, show_progress=False)
    pd.testing.assert_frame_equal(de_one, de_three, check_exact=True)


def test_in_memory_input_is_removed_afterwards(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)
    adata = ad.read_h5ad(DID / "did_clean.h5ad")
    st.did_table(adata, ["g00", "g01"], st.TrialDesign(), ("V1", "V2"), progress=False)
    assert list(tmp_path.iterdir()) == []


# --- argument mapping -----------------------------------------------------------------------

def test_local_mapping():
    e = _runner.Execution(shards=4, threads=2, memory=1.5, jobs=3)
    assert e.plan_flags() == ["--shards", "4", "--threads", "2", "--memory", "1.5"]
    assert e.execute_arguments("/r") == ["run", "/r", "-j", "3"]
    assert _runner.Execution().plan_flags() == []
    assert _runner.Execution(memory=4).plan_flags() == ["--memory", "4"]


def test_slurm_mapping(tmp_path):
    e = _runner.Execution(executor="slurm", run_dir=tmp_path / "run", shards=20, threads=4, memory=8,
                          slurm=dict(partition="short", account="lab", qos="normal", time="01:00:00", mem="16G",
                                     cpus_per_task=4, max_concurrent=5, via="rest", pilot=True))
    assert e.plan_flags() == ["--shards", "20", "--threads", "4", "--memory", "8"]
    assert e.execute_arguments("/shared/run") == [
        "submit", "/shared/run", "--wait", "--via", "rest", "--partition", "short", "--account", "lab",
        "--qos", "normal", "--time", "01:00:00", "--mem", "16G", "--cpus-per-task", "4", "--max-concurrent", "5",
        "--pilot"]
    assert e.scratch_parent() == str(tmp_path)


@pytest.mark.parametrize("kwargs, message", [
    (dict(executor="pbs"), "executor must be 'local' or 'slurm'"),
    (dict(executor="slurm"), "needs run_dir="),
    (dict(shards=0), "shards must be a positive integer"),
    (dict(memory=-1), "memory must be a positive number"),
    (dict(executor="slurm", run_dir="/tmp/x", slurm={"nodes": 2}), "unknown slurm option"),
    (dict(slurm={"partition": "a"}), "slurm= options need executor='slurm'"),
])
def test_bad_execution_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _runner.Execution(**kwargs)


def fake_tool(folder: Path, log: Path) -> Path:
    """A stand-in `sctrial-plan` that records its arguments, prints Slurm-style progress and
    writes results.csv where `submit` is pointed, so the slurm path runs without a cluster."""
    tool = folder / "sctrial-plan"
    tool.write_text(f"""#!{sys.executable}
import sys, pathlib
args = sys.argv[1:]
with open({str(log)!r}, "a") as f:
    f.write(" ".join(args) + "\\n")
if args[0] == "plan":
    pathlib.Path(args[args.index("--out") + 1]).mkdir(parents=True, exist_ok=True)
elif args[0] == "submit":
    for k in (0, 1, 2):
        print(f"sctrial-plan: {{k}}/2 shard tasks finished", file=sys.stderr, flush=True)
    run = pathlib.Path(args[1])
    (run / "results.csv").write_text("target,reference,feature,target_mean,reference_mean,percent_change,"
        "fold_change,p_value,statistic,fdr\\nA,non-targeting,G1,2.0,1.0,1.0,2.0,0.5,3.0,0.5\\n")
""")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    (folder / "sctrial-worker").write_text("")
    return tool


def test_slurm_executor_runs_plan_then_submit_wait(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls.txt"
    fake_tool(bin_dir, log)
    monkeypatch.setenv("SCTRIAL_PLAN_BIN", str(bin_dir))
    run = tmp_path / "shared" / "run"
    frame = st.parallel_differential_expression(str(DE / "tiny_n3_f64.h5ad"), executor="slurm", run_dir=run,
                                                shards=2, slurm={"partition": "short"}, show_progress=False)
    calls = log.read_text().splitlines()
    assert calls[0].startswith(f"plan de {DE / 'tiny_n3_f64.h5ad'} --out {run} --groupby-key target_gene")
    assert calls[0].endswith("--shards 2")
    assert calls[1] == f"submit {run} --wait --partition short"
    assert len(calls) == 2
    assert frame.loc[0, "fold_change"] == 2.0 and list(frame["target"]) == ["A"]


def test_progress_bar_in_a_notebook():
    out = io.StringIO()
    progress = _runner.Progress(True, "did_table", notebook=True)
    progress._bar(3, 0).fp = out
    for line in ["sctrial-plan: running 3 of 3 shards", "sctrial-plan: shard 0 done (1/3, 0.1 s)",
                 "sctrial-plan: shard 2 done (2/3, 0.2 s)", "sctrial-plan: shard 1 done (3/3, 0.3 s)"]:
        progress.line(line)
    assert (progress.bar.n, progress.bar.total) == (3, 3)
    progress.close()


def test_progress_lines_in_a_terminal(capsys):
    progress = _runner.Progress(True, "did_table", notebook=False)
    progress.line("sctrial-plan: shard 0 done (1/3, 0.1 s)")
    assert capsys.readouterr().err == "sctrial-plan: shard 0 done (1/3, 0.1 s)\n"
    _runner.Progress(False, "x", notebook=False).line("quiet")
    assert capsys.readouterr().err == ""


def test_executable_lookup_order(tmp_path, monkeypatch):
    env_dir, setting_dir, path_dir = (tmp_path / n for n in ("env", "setting", "path"))
    for d in (env_dir, setting_dir, path_dir):
        d.mkdir()
        tool = d / "sctrial-plan"
        tool.write_text("#!/bin/sh\n")
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", str(path_dir))
    monkeypatch.setattr(_runner.settings, "bin_dir", str(setting_dir))
    monkeypatch.setenv("SCTRIAL_PLAN_BIN", str(env_dir))
    assert _runner.find_executable() == str(env_dir / "sctrial-plan")
    monkeypatch.delenv("SCTRIAL_PLAN_BIN")
    assert _runner.find_executable() == str(setting_dir / "sctrial-plan")
    monkeypatch.setattr(_runner.settings, "bin_dir", None)
    assert _runner.find_executable() == str(path_dir / "sctrial-plan")
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="SCTRIAL_PLAN_BIN"):
        _runner.find_executable()


def test_interrupt_stops_the_tool(tmp_path, monkeypatch):
    """A KeyboardInterrupt while the tool runs terminates it instead of leaving it running."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pid_file = tmp_path / "pid"
    tool = bin_dir / "sctrial-plan"
    tool.write_text(f"""#!{sys.executable}
import os, sys, time
open({str(pid_file)!r}, "w").write(str(os.getpid()))
print("sctrial-plan: running 1 of 1 shards", file=sys.stderr, flush=True)
time.sleep(60)
""")
    tool.chmod(0o755)
    monkeypatch.setenv("SCTRIAL_PLAN_BIN", str(bin_dir))

    class Interrupting(_runner.Progress):
        def line(self, text):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _runner.run_command(["run", "x"], Interrupting(True, "x", notebook=False))
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
