"""sctrial-plan from Python: sctrial's DiD and pdex's DE on an AnnData, computed by the
`sctrial-plan` executables (locally or on Slurm), returned as pandas DataFrames.

    import sctrial_plan as st          # instead of: import sctrial as st
    res = st.did_table(adata, features=genes, design=st.TrialDesign(), visits=("pre", "post"))

The executables are found through SCTRIAL_PLAN_BIN, then `sctrial_plan.settings.bin_dir`,
then PATH.
"""
from ._runner import SctrialPlanError, settings
from .de import parallel_differential_expression, pdex
from .did import DiDConfig, TrialDesign, did_table, did_table_by_celltype, score_gene_sets
from .gsea import run_gsea_did

__version__ = "0.1.0"

__all__ = ["SctrialPlanError", "settings", "TrialDesign", "DiDConfig", "did_table", "did_table_by_celltype",
           "score_gene_sets", "run_gsea_did", "parallel_differential_expression", "pdex"]
