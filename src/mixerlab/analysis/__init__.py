"""Analysis: functions that take the study tables and return DataFrames or figures."""

from mixerlab.analysis.aggregate import aggregate, bootstrap_interval, factors_varied, t_interval
from mixerlab.analysis.effects import factor_effects, interaction_table
from mixerlab.analysis.load import (
    load_history,
    load_provenance,
    load_spec,
    load_studies,
    load_study,
)
from mixerlab.analysis.pareto import pareto_front
from mixerlab.analysis.report import markdown_table, write_report
from mixerlab.analysis.stats import anova, early_vs_final, holm, pairwise, welch

__all__ = [
    "aggregate", "anova", "bootstrap_interval", "early_vs_final", "factor_effects",
    "factors_varied", "holm", "interaction_table", "load_history", "load_provenance",
    "load_spec", "load_studies", "load_study", "markdown_table", "pairwise", "pareto_front", "t_interval",
    "welch", "write_report",
]
