"""Stage 4d — selection function (completeness surfaces), shortcut audit and the HTML report.

Input: ``phase4c/<variant>/metrics/<experiment_id>/`` (and ``stamps/`` for the audit and the gallery).
Output: ``phase4d/<variant>/completeness/<experiment_id>/`` holding

* ``counts.parquet`` — per-task 0/1 flags summed over population × every bin (re-marginalise it freely);
* ``completeness.parquet`` — every surface, recovery definition, selection (all/clean/no_fallback), with counts
  (n_attempt, n_valid, n_recovered), completeness, Wilson and Jeffreys 68/95 % bounds (injections only);
* ``fpr.parquet`` — false-positive rates on valid controls (only with a score table);
* ``region_aggregate.parquet``, ``snr_hist.parquet``, ``shortcut_audit.parquet`` (injections vs controls),
  ``null_audit.parquet`` (null injections vs their matched controls; both audits on the full and the
  centre-masked features, column ``variant``), ``psf_provenance.parquet``, ``failures.parquet``,
  ``recovery_definitions.json``, ``dimensions.json`` (what every binned axis is, with its unit);
* ``brightness_targeting.parquet`` — per SNR bin, the share of targeted injections asked for (``target_snr``)
  and achieved (the measured ``target_snr_metric``), see :mod:`dhs.completeness.targeting`;
* ``report/index.html`` with its PNGs; ``_stage_config.json`` (written last: marks the folder complete).

Spark does the per-row work (one ``mapInPandas`` calling :func:`dhs.completeness.tables.derive_batch`) and
the aggregation; everything after aggregation is pandas on small tables. The tables are small, so they are
single Parquet files rather than ``region_split`` partitions (split is a dimension of the tables).

Modules: :mod:`~dhs.stages.stage4d_inputs` (metrics, region and score joins), :mod:`~dhs.stages.stage4d_counts`
(per-row flags and their sums), :mod:`~dhs.stages.stage4d_audit` (shortcut and null audits),
:mod:`~dhs.stages.stage4d_gallery` (report examples), :mod:`~dhs.stages.stage4d_report` (files and report).
"""

from __future__ import annotations

import time
from typing import Any

from dhs.completeness.tables import bin_defs, dimension_descriptions, surface_tables
from dhs.completeness.targeting import mix_table
from dhs.config import RunConfig
from dhs.io.paths import exists, join
from dhs.logs import StageSteps
from dhs.stages.common import StageResult, finish_stage, should_skip, skipped_result, stage_output_dir
from dhs.stages.stage4d_audit import audits
from dhs.stages.stage4d_counts import (
    count_rows,
    injection_mix,
    outcome_rows,
    outcome_tables,
    recovery_definitions_of,
)
from dhs.stages.stage4d_gallery import gallery_pairs
from dhs.stages.stage4d_inputs import OPTIONAL_COLUMNS, REQUIRED_COLUMNS, read_metrics, shipped_columns
from dhs.stages.stage4d_report import (
    output_files,
    place_joint_counts,
    population_total,
    report_meta,
    write_outputs,
)

__all__ = ["OPTIONAL_COLUMNS", "REQUIRED_COLUMNS", "run"]

STAGE = "4d"


def stage4d_counts(outcomes: dict[str, Any], rows_out: int, total: Any, defs: list, audit_rows: list[dict],
                   null_rows: list[dict], audit_counts: dict, inj_sum: dict[str, int], n_pairs: int) -> dict[str, Any]:
    """The ``counts`` of ``_stage_config.json``."""
    n_ok = outcomes["n_ok"]
    return {"rows_in": outcomes["rows_in"], "rows_counted": rows_out,
            "injections": population_total(total, 0, "n_attempt"), "controls": population_total(total, 1, "n_attempt"),
            "null_injections": outcomes["n_null"],
            "valid_ok_by_population": {"injection": n_ok[0], "control": n_ok[1], "null": n_ok[2]},
            "recovery_definitions": [d.name for d in defs],
            "audit_flagged": [r["feature"] for r in audit_rows if r["flagged"]],
            "null_audit_flagged": [r["feature"] for r in null_rows if r["flagged"]], **audit_counts,
            "injections_resolved": inj_sum["n_resolved"], "injections_targeted": inj_sum["n_targeted"],
            "gallery_pairs": n_pairs}


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 4d: surfaces, FPRs, region aggregate, shortcut audit, report; returns the StageResult
    (``extra["report"]`` is the path of ``report/index.html``)."""
    s = cfg.stage4d
    out_dir = stage_output_dir(cfg, STAGE, "completeness")
    if should_skip(cfg, [out_dir]):
        r = skipped_result(STAGE, out_dir)
        r.extra["report"] = join(out_dir, "report", "index.html")
        return r
    started = time.time()
    steps = StageSteps(STAGE, spark)
    metrics_dir, stamps_dir = stage_output_dir(cfg, "4c", "metrics"), stage_output_dir(cfg, "4c", "stamps")
    m, inputs = read_metrics(spark, cfg)
    rows = m.select(*shipped_columns(cfg, m.columns))
    defs = recovery_definitions_of(rows, cfg)
    marginals, joint_staged, snr_hist = count_rows(rows, cfg, defs, out_dir)
    total = marginals[frozenset()]
    rows_out = int(total["n_attempt"].sum())
    steps.done("counts", rows=rows_out, cells=sum(len(t) for t in marginals.values()))
    bins = bin_defs(s)
    tables = surface_tables(marginals, bins, defs, tuple(s.confidence_levels), s.region_min_count)
    outcomes = outcome_tables(outcome_rows(m))
    if rows_out != outcomes["rows_in"]:
        raise RuntimeError(f"stage 4d: {outcomes['rows_in']} metrics rows in {metrics_dir} but {rows_out} counted")

    have_stamps = exists(stamps_dir, cfg.s3.options())
    audited = audits(spark, cfg, m, stamps_dir, outcomes["n_ok"]) if have_stamps else None
    audit_rows, null_rows, audit_counts = audited or ([], [], {})
    if audited is not None:
        inputs.append(stamps_dir)
    pairs = gallery_pairs(spark, cfg, m, stamps_dir) if (s.gallery.enabled and have_stamps) else []
    steps.done("audit and gallery", audit_rows=len(audit_rows), gallery_pairs=len(pairs))

    inj_sum, target_metric = injection_mix(cfg, m)
    targeting = mix_table(inj_sum, s.target_snr_bins.edges or [], target_metric)
    dims = dimension_descriptions(s)
    meta = report_meta(cfg, metrics_dir, total, outcomes, dims, defs[0].name, inj_sum, target_metric)
    files = output_files(tables, snr_hist, outcomes, audit_rows, null_rows, targeting, bins, dims, defs)
    report = dict(meta=meta, definitions=defs, tables=tables, snr_hist=snr_hist, audit_rows=audit_rows,
                  audit_limit=s.audit.auc_limit, provenance=outcomes["provenance"], null_audit_rows=null_rows,
                  dimensions=dims, failures=outcomes["failures"], gallery_pairs=pairs,
                  gallery_options=s.gallery.model_dump(), snr_column=s.snr_column,
                  snr_hist_width_dex=s.snr_hist_width_dex, targeting=targeting) if s.report else None
    write_outputs(cfg, out_dir, files, report)
    place_joint_counts(joint_staged, join(out_dir, "counts.parquet"), cfg.s3.options())
    steps.done("tables and report", files=len(files))

    counts = stage4d_counts(outcomes, rows_out, total, defs, audit_rows, null_rows, audit_counts, inj_sum, len(pairs))
    result = StageResult(stage=STAGE, output_path=out_dir, rows_in=outcomes["rows_in"], rows_out=rows_out, failures={},
                         extra={"report": join(out_dir, "report", "index.html") if s.report else None,
                                "audit_flagged": counts["audit_flagged"],
                                "null_audit_flagged": counts["null_audit_flagged"]})
    return finish_stage(cfg, result, [out_dir], inputs=inputs, counts=counts, started=started,
                        extra={"thresholds": {d.name: d.params for d in defs}, "dimensions": dims,
                               "resolution_psf_column": s.psf_column, "clean_selection": meta["clean selection"]})
