"""Stage 4d's counting with Spark: the per-row flags of :func:`dhs.completeness.tables.derive_batch`, summed over
population × every set of bins (grouping sets), the joint count table, the SNR histogram, the rows per outcome
and PSF provenance, the brightness-targeting summary, and the control scores behind score-based recovery."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pandas as pd

from dhs.completeness.recovery import RecoveryDefinition
from dhs.completeness.surfaces import POP_COL, count_columns
from dhs.completeness.tables import (
    bin_defs,
    derive_batch,
    key_columns,
    recovery_definitions,
    surface_groupings,
    valid_control_scores,
)
from dhs.completeness.targeting import add_summaries, injection_summary, summary_columns
from dhs.config import RunConfig
from dhs.core import SNR_METRICS
from dhs.stages.order_stats import order_statistics
from dhs.stages.stage4d_inputs import population_expr
from dhs.stages.stage4d_report import stage_joint_counts

POPULATIONS = ((0, "injection"), (1, "control"), (2, "null"))


def _spark_type(name: str) -> str:
    return "string" if name.startswith("b_") and not name.endswith("_lo") else (
        "double" if name.endswith("_lo") or name == "snr_log_bin" else "long")


def _derived_schema(settings: Any, defs: list[RecoveryDefinition]) -> str:
    cols = key_columns(bin_defs(settings)) + count_columns(defs) + ["snr_log_bin"]
    return ", ".join(f"`{c}` {_spark_type(c)}" for c in cols)


class SparkScores:
    """:class:`dhs.completeness.recovery.ScoreCounts` over a Spark column ``score`` of valid control scores
    (cached; each question is one small Spark job, the scores never reach the driver)."""

    def __init__(self, df: Any):
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        self.df = df.where(F.col("score").isNotNull() & ~F.isnan("score")).persist(StorageLevel.MEMORY_AND_DISK)
        self.n = int(self.df.count())

    def count_ge(self, threshold: float) -> int:
        from pyspark.sql import functions as F

        return int(self.df.where(F.col("score") >= F.lit(float(threshold))).count())

    def value_at_rank(self, rank: int) -> float:
        return order_statistics(self.df, "score", [int(rank)])[1][int(rank)]

    def min_above(self, value: float) -> float | None:
        from pyspark.sql import functions as F

        v = self.df.where(F.col("score") > F.lit(float(value))).agg(F.min("score")).first()[0]
        return None if v is None else float(v)

    def close(self) -> None:
        self.df.unpersist()


def recovery_definitions_of(rows: Any, cfg: RunConfig) -> list[RecoveryDefinition]:
    """The recovery definitions of the run; with a score table, the score thresholds at the target false-positive
    rates come from the valid control scores (counted by Spark, never collected)."""
    s = cfg.stage4d
    control_scores = None
    if s.scores_path:
        def ctrl_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for b in batches:
                yield pd.DataFrame({"score": valid_control_scores(b, s)})

        control_scores = SparkScores(rows.mapInPandas(ctrl_scores, "score double"))
    try:
        return recovery_definitions(s, control_scores)
    finally:
        if control_scores is not None:
            control_scores.close()


def _marginal_counts(derived: Any, bins: list, ccols: list[str]) -> dict[frozenset[str], pd.DataFrame]:
    """The count columns summed over population × each set of bins of
    :func:`dhs.completeness.tables.surface_groupings`, in one Spark job (grouping sets): a few rows per bin
    (and per region × θE / resolution bin), whatever the number of tasks."""
    from pyspark.sql import functions as F

    by = {b.name: b for b in bins}
    cols = key_columns(bins)
    groups = surface_groupings()
    sets = [[POP_COL] + [k for n in g for k in (by[n].key, by[n].key_lo)] for g in groups]
    agg = (derived.groupingSets(sets, *cols)
           .agg(*[F.sum(F.col(f"`{c}`")).alias(c) for c in ccols], F.grouping_id().alias("_gid")).toPandas())
    out: dict[frozenset[str], pd.DataFrame] = {}
    for g, keys in zip(groups, sets):
        gid = sum(1 << (len(cols) - 1 - i) for i, c in enumerate(cols) if c not in keys)
        sub = agg.loc[agg["_gid"] == gid, keys + ccols].reset_index(drop=True)
        for c in ccols:
            sub[c] = sub[c].astype("int64")
        out[frozenset(g)] = sub
    return out


def count_rows(rows: Any, cfg: RunConfig, defs: list[RecoveryDefinition], out_dir: str
               ) -> tuple[dict[frozenset[str], pd.DataFrame], str, pd.DataFrame]:
    """Derive every row's bins and 0/1 flags (``mapInPandas`` of :func:`dhs.completeness.tables.derive_batch`)
    and sum them: the marginal count tables; the joint count table (population × every bin, for users to
    re-marginalise), written by Spark next to ``out_dir``, never collected (returns its staging folder); and
    the SNR histogram of the valid injections (per θE bin and SNR log bin)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    s = cfg.stage4d

    def derive(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            yield derive_batch(b, s, defs)

    derived = rows.mapInPandas(derive, _derived_schema(s, defs)).persist(StorageLevel.MEMORY_AND_DISK)
    try:
        bins = bin_defs(s)
        ccols = count_columns(defs)
        marginals = _marginal_counts(derived, bins, ccols)
        joint = derived.groupBy(*key_columns(bins)).agg(*[F.sum(F.col(f"`{c}`")).alias(c) for c in ccols])
        joint_staged = stage_joint_counts(joint, key_columns(bins), out_dir)
        first = defs[0].name
        snr_hist = (derived.filter((F.col(POP_COL) == 0) & (F.col(f"`nv__{first}__all`") == 1))
                    .groupBy("b_theta_e_lo", "snr_log_bin").count().withColumnRenamed("count", "n").toPandas())
    finally:
        derived.unpersist()
    return marginals, joint_staged, snr_hist


def outcome_rows(m: Any) -> pd.DataFrame:
    """Metrics rows counted per population (injection / control / null), ``cutout_ok``, error kind (the
    reason's text before ':') and the PSF provenance of each band (one small Spark job)."""
    from pyspark.sql import functions as F

    pop = population_expr(m.columns)
    kind = F.when(F.col("error").isNull(), F.lit(None)).otherwise(F.substring_index(F.col("error"), ":", 1)) \
        if "error" in m.columns else F.lit(None).cast("string")
    prov_cols = [c for c in ("psf_source_g", "psf_source_r", "psf_source_z") if c in m.columns]
    return (m.withColumn("population", F.when(pop == 1, "control").when(pop == 2, "null").otherwise("injection"))
            .groupBy("population", "cutout_ok", kind.alias("error_kind"), *prov_cols).count().toPandas())


def outcome_tables(summary: pd.DataFrame) -> dict[str, Any]:
    """From :func:`outcome_rows`: ``failures`` (rows per population, cutout_ok, error kind), ``provenance``
    (rows per population and PSF sources), ``n_ok`` {population code: valid rows}, ``n_null`` (null
    injections) and ``rows_in``."""
    prov_cols = [c for c in ("psf_source_g", "psf_source_r", "psf_source_z") if c in summary.columns]
    failures = (summary.groupby(["population", "cutout_ok", "error_kind"], dropna=False)["count"].sum()
                .reset_index().sort_values(["population", "cutout_ok"]))
    provenance = (summary.groupby(["population", *prov_cols], dropna=False)["count"].sum().reset_index()
                  .sort_values(["population", *prov_cols]))
    n_ok = {p: int(failures[(failures["population"] == name) & (failures["cutout_ok"] == 1)]["count"].sum())
            for p, name in POPULATIONS}
    return {"failures": failures, "provenance": provenance, "n_ok": n_ok, "rows_in": int(summary["count"].sum()),
            "n_null": int(summary.loc[summary["population"] == "null", "count"].sum())}


def injection_mix(cfg: RunConfig, m: Any) -> tuple[dict[str, int], str]:
    """Brightness-targeting mix and resolved share of the valid injections (one small Spark job)."""
    s = cfg.stage4d
    edges = list(s.target_snr_bins.edges or [])
    thr = cfg.stage4a.resolved.theta_e_over_psf_min
    cols = [c for c in ("cutout_ok", "lens_model", "is_control", "theta_e_arcsec", "psf_fwhm_used_r", "target_snr",
                        "target_snr_metric", *SNR_METRICS) if c in m.columns]
    metric = cfg.stage4a.target_snr_metric

    def summarize(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            yield injection_summary(b, edges, metric, "psf_fwhm_used_r", thr)

    schema = ", ".join(f"`{c}` long" for c in summary_columns(len(edges)))
    parts = m.select(*cols).mapInPandas(summarize, schema).toPandas()
    if "target_snr_metric" in m.columns:
        used = [r[0] for r in m.select("target_snr_metric").where("target_snr_metric IS NOT NULL").distinct()
                .limit(5).collect()]
        metric = ", ".join(sorted(used)) or metric
    return add_summaries(parts) if len(parts) else dict.fromkeys(summary_columns(len(edges)), 0), metric
