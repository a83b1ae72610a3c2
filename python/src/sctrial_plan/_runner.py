"""Finding and driving the `sctrial-plan` executable: plan, run or submit, progress, errors.

Every front function builds the flags of one `sctrial-plan plan ...` call and hands them to
`execute`, which plans into a run directory, runs it (locally or on Slurm) and returns the path of
RUN/results.csv. Nothing here knows about DiD or DE.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

__all__ = ["SctrialPlanError", "settings", "find_executable", "Execution", "execute", "run_command"]


class SctrialPlanError(RuntimeError):
    """The tool failed: `message` is its one-line error (exit code `returncode`).

    `stderr` keeps everything the tool wrote, and `command` the argument list, for reports.
    """

    def __init__(self, message: str, returncode: int, command: Sequence[str], stderr: str):
        super().__init__(message)
        self.message = message
        self.returncode = returncode
        self.command = list(command)
        self.stderr = stderr


@dataclass
class Settings:
    """Process-wide settings. `bin_dir`: the folder holding `sctrial-plan` and `sctrial-worker`,
    consulted after the SCTRIAL_PLAN_BIN environment variable and before PATH."""

    bin_dir: str | os.PathLike | None = None


settings = Settings()


def find_executable() -> str:
    """`sctrial-plan`, from SCTRIAL_PLAN_BIN (a folder, or the executable itself), then
    `settings.bin_dir`, then PATH. The worker is found by `sctrial-plan` beside itself."""
    env = os.environ.get("SCTRIAL_PLAN_BIN")
    tried = []
    for where in (env, settings.bin_dir):
        if not where:
            continue
        candidate = Path(where)
        if candidate.is_dir():
            candidate = candidate / "sctrial-plan"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
        tried.append(str(candidate))
    found = shutil.which("sctrial-plan")
    if found:
        return found
    detail = f" (not executable or missing: {', '.join(tried)})" if tried else ""
    raise FileNotFoundError(
        "sctrial-plan not found: set SCTRIAL_PLAN_BIN to the folder holding sctrial-plan and "
        "sctrial-worker, or sctrial_plan.settings.bin_dir, or put them on PATH" + detail)


# --- progress -------------------------------------------------------------------------------

_RUNNING = re.compile(r"^sctrial-plan: running (\d+) of (\d+) shards(?: \((\d+) already done\))?$")
_SHARD_DONE = re.compile(r"^sctrial-plan: shard (\d+) done \((\d+)/(\d+),")
_SLURM_TASKS = re.compile(r"^sctrial-plan: (\d+)/(\d+) shard tasks finished$")
_ERROR = re.compile(r"^sctrial-plan: error: (.*)$")
_ARGUMENT_ERROR = re.compile(r"^Error: (.*)$")


def _in_notebook() -> bool:
    """True inside a Jupyter kernel (where a widget bar renders); a plain IPython terminal is not."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


class Progress:
    """Shows the CLI's stderr lines: in a notebook a tqdm bar over shards (and the other lines
    under it), elsewhere the lines themselves, as `sctrial-plan run` prints them off a terminal.
    `show=False` keeps everything quiet (the lines are still collected for error reports)."""

    def __init__(self, show: bool, label: str, notebook: bool | None = None):
        self.show = show
        self.label = label
        self.notebook = _in_notebook() if notebook is None else notebook
        self.bar = None

    def _bar(self, total: int, done: int):
        if self.bar is None:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=done, desc=self.label, unit="shard")
        return self.bar

    def line(self, text: str) -> None:
        if not self.show:
            return
        if not self.notebook:
            print(text, file=sys.stderr, flush=True)
            return
        if m := _RUNNING.match(text):
            self._bar(int(m.group(2)), int(m.group(3) or 0))
        elif m := _SHARD_DONE.match(text):
            bar = self._bar(int(m.group(3)), 0)
            bar.update(int(m.group(2)) - bar.n)
        elif m := _SLURM_TASKS.match(text):
            bar = self._bar(int(m.group(2)), 0)
            bar.total = int(m.group(2))
            bar.update(int(m.group(1)) - bar.n)
        elif self.bar is not None:
            self.bar.write(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def run_command(arguments: Sequence[str], progress: Progress | None = None) -> str:
    """Runs `sctrial-plan ARGUMENTS`; stderr lines go to `progress` as they come; stdout (the
    plan's text) is returned. A non-zero exit raises SctrialPlanError with the tool's one-line
    error (`sctrial-plan: error: ...`, or the argument parser's `Error: ...`)."""
    command = [find_executable(), *arguments]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               stdin=subprocess.DEVNULL, text=True, bufsize=1)
    lines: list[str] = []
    # stdout is small (the plan's summary) and read after stderr is drained, so no deadlock:
    # the tool writes it at the end, well within the pipe buffer.
    assert process.stderr is not None and process.stdout is not None
    try:
        for raw in process.stderr:
            text = raw.rstrip("\n")
            lines.append(text)
            if progress is not None and not _ERROR.match(text):
                progress.line(text)
        stdout = process.stdout.read()
        code = process.wait()
    except BaseException:
        # Interrupted (a notebook's stop button is a KeyboardInterrupt here): SIGTERM makes `run`
        # stop its workers and leave a resumable run; Slurm jobs of `submit` keep running
        # (`sctrial-plan cancel RUN` stops them).
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise
    if code != 0:
        raise SctrialPlanError(_one_line(lines, code), code, command, "\n".join(lines))
    return stdout


def _one_line(lines: Iterable[str], code: int) -> str:
    lines = list(lines)
    for pattern in (_ERROR, _ARGUMENT_ERROR):
        for text in lines:
            if m := pattern.match(text):
                return m.group(1)
    last = next((t for t in reversed(lines) if t.strip()), "")
    return last or f"sctrial-plan exited with status {code}"


# --- plan + run / submit --------------------------------------------------------------------

_SLURM_FLAGS = ("via", "rest_url", "token_file", "partition", "account", "qos", "time", "mem",
                "cpus_per_task", "max_concurrent", "container")


@dataclass
class Execution:
    """How a call runs: `executor` "local" (`sctrial-plan run`) or "slurm" (`sctrial-plan submit
    --wait`); `shards`, `threads`, `memory` (GB per worker) go to `plan`; `jobs` (workers at once)
    to `run -j`; `slurm` holds submit's options by their long names with underscores
    (partition, account, qos, time, mem, cpus_per_task, max_concurrent, container, via, rest_url,
    token_file; `pilot=True`); `run_dir` keeps the run directory (else a temporary one)."""

    executor: str = "local"
    shards: int | None = None
    threads: int | None = None
    memory: float | None = None
    jobs: int | None = None
    run_dir: str | os.PathLike | None = None
    slurm: Mapping[str, object] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self):
        if self.executor not in ("local", "slurm"):
            raise ValueError(f"executor must be 'local' or 'slurm', got {self.executor!r}")
        for name, value in (("shards", self.shards), ("threads", self.threads), ("jobs", self.jobs)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.memory is not None and not (float(self.memory) > 0):
            raise ValueError(f"memory must be a positive number of GB, got {self.memory!r}")
        unknown = set(self.slurm) - set(_SLURM_FLAGS) - {"pilot"}
        if unknown:
            raise ValueError(f"unknown slurm option(s) {sorted(unknown)}; known: {', '.join(_SLURM_FLAGS)}, pilot")
        if self.executor == "slurm" and self.run_dir is None:
            raise ValueError("executor='slurm' needs run_dir= on a filesystem the compute nodes see "
                             "(the input copy of an in-memory AnnData is written beside it)")
        if self.executor == "local" and self.slurm:
            raise ValueError("slurm= options need executor='slurm'")

    def plan_flags(self) -> list[str]:
        flags: list[str] = []
        if self.shards is not None:
            flags += ["--shards", str(self.shards)]
        if self.threads is not None:
            flags += ["--threads", str(self.threads)]
        if self.memory is not None:
            flags += ["--memory", _number(self.memory)]
        return flags

    def execute_arguments(self, run: str) -> list[str]:
        """The command after planning: `run RUN [-j N]` or `submit RUN --wait [options]`."""
        if self.executor == "local":
            return ["run", run] + (["-j", str(self.jobs)] if self.jobs is not None else [])
        arguments = ["submit", run, "--wait"]
        for name in _SLURM_FLAGS:
            value = self.slurm.get(name)
            if value is not None:
                arguments += ["--" + name.replace("_", "-"), _number(value) if isinstance(value, float) else str(value)]
        if self.slurm.get("pilot"):
            arguments.append("--pilot")
        return arguments

    def scratch_parent(self) -> str | None:
        """Where temporary inputs go: beside run_dir (visible to Slurm nodes), else the system's."""
        if self.run_dir is None:
            return None
        parent = Path(self.run_dir).resolve().parent
        parent.mkdir(parents=True, exist_ok=True)
        return str(parent)


def _number(value) -> str:
    text = repr(float(value)) if isinstance(value, float) else str(value)
    return text[:-2] if text.endswith(".0") else text


def execute(analysis: Sequence[str], input_path: str, flags: Sequence[str], execution: Execution,
            read: Callable[[Path], object], label: str):
    """`plan ANALYSIS INPUT --out RUN FLAGS`, then run or submit, then `read(RUN/results.csv)`.
    A temporary run directory is removed afterwards; a given `run_dir` is kept."""
    keep = execution.run_dir is not None
    scratch = None
    if keep:
        run = str(Path(execution.run_dir).resolve())
    else:
        scratch = tempfile.mkdtemp(prefix="sctrial-plan-run-")
        run = os.path.join(scratch, "run")
    progress = Progress(execution.progress, label)
    try:
        run_command(["plan", *analysis, input_path, "--out", run, *flags, *execution.plan_flags()], progress)
        run_command(execution.execute_arguments(run), progress)
        results = Path(run) / "results.csv"
        if not results.exists() and execution.executor == "slurm":
            # The reduce job normally writes it; reducing here covers a reducer that was lost.
            run_command(["reduce", run], progress)
        return read(results)
    finally:
        progress.close()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)
