"""Overhead of the Python front (python/, `sctrial_plan.did_table`) over the bare CLI.

For one .h5ad file (a DiD of every gene between visits pre and post, default design), measures in
one process, alternating the variants round by round, the wall time of:
  cli      `sctrial-plan plan did FILE --out RUN --visits pre,post` then `sctrial-plan run RUN`
           (subprocesses, as a shell would run them), then reading nothing back;
  path     sctrial_plan.did_table(FILE, ...) -> DataFrame (the file used in place);
  backed   the same on anndata.read_h5ad(FILE, backed="r") (opened once, outside the timing);
  memory   the same on anndata.read_h5ad(FILE) (read once, outside the timing): the call writes a
           temporary .h5ad with X and the design columns, runs, and removes it.
Prints the median and the range of each over --repeat rounds, and the median overhead over cli.
Interpreter start-up and imports are not in these figures (time the whole process for those).

Usage: python bench/python_front.py FILE.h5ad [--repeat 5]   (SCTRIAL_PLAN_BIN as for the front)
"""
import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import anndata as ad

import sctrial_plan as st
from sctrial_plan._runner import find_executable


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tool = find_executable()
    path = os.path.abspath(args.file)
    backed = ad.read_h5ad(path, backed="r")
    features = list(backed.var_names)
    memory = ad.read_h5ad(path)
    design = st.TrialDesign()

    def cli():
        with tempfile.TemporaryDirectory() as scratch:
            run = os.path.join(scratch, "run")
            for command in ([tool, "plan", "did", path, "--out", run, "--visits", "pre,post"], [tool, "run", run]):
                subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def front(adata):
        return lambda: st.did_table(adata, features, design, ("pre", "post"), progress=False)

    variants = {"cli": cli, "path": front(path), "backed": front(backed), "memory": front(memory)}
    times = {name: [] for name in variants}
    for name, call in variants.items():  # warm-up: page cache, imports inside the call
        call()
    for _ in range(args.repeat):
        for name, call in variants.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    base = statistics.median(times["cli"])
    print(f"{path}: {memory.n_obs} cells x {memory.n_vars} genes, {args.repeat} rounds")
    for name, values in times.items():
        median = statistics.median(values)
        extra = "" if name == "cli" else f"  overhead {median - base:+.3f} s ({median / base:.2f}x)"
        print(f"  {name:7s} median {median:.3f} s  (min {min(values):.3f}, max {max(values):.3f}){extra}")


if __name__ == "__main__":
    sys.exit(main())
