"""Runs the real pdex 0.3.0 `pdex` (in its own venv: python/.venv-pdex030) and pickles its pandas
frames, for tests/test_pdex030.py. Usage: pdex030.py JOBS.json, a list of [input.h5ad, out.pkl,
kwargs]; one process for all of them, so numba compiles once."""
import json
import sys

import anndata as ad

from pdex import pdex

for source, out, kwargs in json.loads(open(sys.argv[1]).read()):
    pdex(ad.read_h5ad(source), as_pandas=True, threads=1, **kwargs).to_pickle(out)
