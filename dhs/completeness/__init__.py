"""Selection-function tools (pure numpy/pandas, no Spark): binomial intervals, binning, recovery
definitions, completeness surfaces and the shortcut audit. Used by stage 4d and stage 6."""

from dhs.completeness.audit import (
    audit_features,
    bootstrap_auc,
    centre_masked_features,
    flag_level,
    null_audit_selection,
    roc_auc,
    shortcut_audit,
    shortcut_features,
)
from dhs.completeness.binning import edge_bin, edge_bin_index, edge_bin_labels, floor_bin
from dhs.completeness.intervals import binomial_interval, jeffreys_interval, wilson_interval
from dhs.completeness.recovery import (
    RecoveryDefinition,
    join_scores,
    proxy_definition,
    score_definitions,
    threshold_for_fpr,
)
from dhs.completeness.surfaces import (
    BinDef,
    aggregate_counts,
    control_mask,
    derive_rows,
    no_fallback_mask,
    null_mask,
    population_code,
    rate_table,
    region_aggregate,
    selection_flags,
    validity_flags,
)

__all__ = [
    "BinDef",
    "audit_features",
    "centre_masked_features",
    "no_fallback_mask",
    "null_audit_selection",
    "null_mask",
    "population_code",
    "selection_flags",
    "RecoveryDefinition",
    "aggregate_counts",
    "binomial_interval",
    "bootstrap_auc",
    "control_mask",
    "derive_rows",
    "edge_bin",
    "edge_bin_index",
    "edge_bin_labels",
    "flag_level",
    "floor_bin",
    "jeffreys_interval",
    "join_scores",
    "proxy_definition",
    "rate_table",
    "region_aggregate",
    "roc_auc",
    "score_definitions",
    "shortcut_audit",
    "shortcut_features",
    "threshold_for_fpr",
    "validity_flags",
    "wilson_interval",
]
