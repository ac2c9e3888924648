"""Analysis: functions that take the study tables and return DataFrames or figures."""

from mixerlab.analysis.aggregate import (
    aggregate,
    bootstrap_interval,
    design_factors,
    factors_varied,
    t_interval,
)
from mixerlab.analysis.comparison import Comparison, Stratum, compare
from mixerlab.analysis.effects import factor_effects, interaction_table
from mixerlab.analysis.load import (
    load_history,
    load_provenance,
    load_studies,
    load_study,
    study_spec,
)
from mixerlab.analysis.nuisance import (
    choose_nuisance,
    edge_warnings,
    isolation_table,
    nuisance_grid,
)
from mixerlab.analysis.pareto import pareto_front
from mixerlab.analysis.report import markdown_table, write_report
from mixerlab.analysis.stats import (
    anova,
    early_vs_final,
    eta_sq_interval,
    factor_pairs,
    holm,
    paired,
    pairwise,
    welch,
)

__all__ = [
    "Comparison", "Stratum", "compare", "aggregate", "anova", "bootstrap_interval", "choose_nuisance", "design_factors",
    "early_vs_final", "edge_warnings", "eta_sq_interval", "factor_effects", "factor_pairs", "factors_varied", "holm",
    "interaction_table", "isolation_table", "load_history", "load_provenance", "study_spec",
    "load_studies", "load_study", "markdown_table", "nuisance_grid", "paired", "pairwise",
    "pareto_front", "t_interval", "welch", "write_report",
]
