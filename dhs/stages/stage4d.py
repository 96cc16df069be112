"""Stage 4d — selection function (completeness surfaces), shortcut audit and the HTML report.

Input: ``phase4c/<variant>/metrics/<experiment_id>/`` (and ``stamps/`` for the audit and the gallery).
Output: ``phase4d/<variant>/completeness/<experiment_id>/`` holding

* ``counts.parquet`` — per-task 0/1 flags summed over population × every bin (re-marginalise it freely);
* ``completeness.parquet`` — every surface, recovery definition, selection (all/clean), with counts
  (n_attempt, n_valid, n_recovered), completeness, Wilson and Jeffreys 68/95 % bounds (injections only);
* ``fpr.parquet`` — false-positive rates on valid controls (only with a score table);
* ``region_aggregate.parquet``, ``snr_hist.parquet``, ``shortcut_audit.parquet``, ``psf_provenance.parquet``,
  ``failures.parquet``, ``recovery_definitions.json``;
* ``brightness_targeting.parquet`` — per SNR bin, the share of targeted injections asked for (``target_snr``)
  and achieved (the measured ``target_snr_metric``), see :mod:`dhs.completeness.targeting`;
* ``report/index.html`` with its PNGs; ``_stage_config.json`` (written last: marks the folder complete).

Spark does the per-row work (one ``mapInPandas`` calling :func:`dhs.completeness.tables.derive_batch`) and
the aggregation; everything after aggregation is pandas on small tables. The tables are small, so they are
single Parquet files rather than ``region_split`` partitions (split is a dimension of the tables).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from dhs.completeness.audit import shortcut_audit, shortcut_features
from dhs.completeness.recovery import RecoveryDefinition
from dhs.completeness.surfaces import POP_COL, clean_selection_text, count_columns
from dhs.completeness.tables import (
    bin_defs,
    derive_batch,
    key_columns,
    prepare_columns,
    recovery_definitions,
    surface_tables,
    valid_control_scores,
)
from dhs.completeness.targeting import add_summaries, injection_summary, mix_table, summary_columns
from dhs.config import RunConfig
from dhs.core import SNR_METRICS
from dhs.io.paths import exists, is_s3, join, to_spark_path, write_bytes
from dhs.io.stamps import decode
from dhs.logs import StageSteps
from dhs.stages.common import StageResult, finish_stage, should_skip, skipped_result, stage_output_dir

STAGE = "4d"

#: Metrics columns stage 4d cannot work without.
REQUIRED_COLUMNS: tuple[str, ...] = ("task_id", "cutout_ok", "theta_e_arcsec", "bad_pixel_frac",
                                     "wise_brightmask_frac", "region_split")
#: Optional columns shipped to the per-row function when present.
OPTIONAL_COLUMNS: tuple[str, ...] = ("lens_model", "is_control", "psfdepth_r_mag5", "psfdepth_r", "src_mag_r_used",
                                     "src_mag_r", "target_snr", "psfsize_r", "score")


def _check_columns(columns: list[str], path: str, settings: Any) -> None:
    need = list(REQUIRED_COLUMNS) + [settings.psf_column, settings.snr_column]
    missing = [c for c in need if c not in columns]
    if "lens_model" not in columns and "is_control" not in columns:
        missing.append("lens_model (or is_control)")
    if missing:
        raise ValueError(f"stage 4d: {path} lacks column(s) {missing} (expected the stage 4c metrics of DESIGN §5)")


def _spark_type(name: str) -> str:
    return "string" if name.startswith("b_") and not name.endswith("_lo") else (
        "double" if name.endswith("_lo") or name == "snr_log_bin" else "long")


def _derived_schema(settings: Any, defs: list[RecoveryDefinition]) -> str:
    cols = key_columns(bin_defs(settings)) + count_columns(defs) + ["snr_log_bin"]
    return ", ".join(f"`{c}` {_spark_type(c)}" for c in cols)


def _with_region(spark: Any, cfg: RunConfig, m: Any) -> tuple[Any, list[str]]:
    """The metrics with the region column; joined from phase3 parent (galaxy_id) when 4c lacks it."""
    col = cfg.stage4d.region_column
    if col in m.columns:
        return m, []
    parent = stage_output_dir(cfg, "3", "parent")
    if "galaxy_id" not in m.columns or not exists(parent, cfg.s3.options()):
        raise ValueError(f"stage 4d: the 4c metrics lack the region column {col!r} and it cannot be joined from "
                         f"{parent} via galaxy_id (set stage4d.region_column to a column that exists)")
    p = spark.read.parquet(to_spark_path(parent))
    if col not in p.columns:
        raise ValueError(f"stage 4d: region column {col!r} is neither in the 4c metrics nor in {parent}")
    return m.join(p.select("galaxy_id", col).dropDuplicates(["galaxy_id"]), "galaxy_id", "left"), [parent]


def _with_scores(spark: Any, cfg: RunConfig, m: Any) -> Any:
    from pyspark.sql import functions as F

    path = cfg.stage4d.scores_path
    sc = spark.read.parquet(to_spark_path(path))
    for c in ("task_id", "score"):
        if c not in sc.columns:
            raise ValueError(f"stage 4d: score table {path} lacks column {c!r} (has {sc.columns})")
    dup = sc.groupBy("task_id").count().filter("count > 1").limit(1).collect()
    if dup:
        raise ValueError(f"stage 4d: score table {path}: task_id {dup[0]['task_id']!r} appears {dup[0]['count']} times")
    return m.drop("score").join(sc.select("task_id", F.col("score").cast("double")), "task_id", "left")


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    bio = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False), bio, compression="zstd")
    return bio.getvalue()


def _audit(spark: Any, cfg: RunConfig, stamps_dir: str, n_ok: dict[int, int]) -> tuple[list[dict], dict]:
    """Shortcut audit on a deterministic sample of valid stamps (xxhash64 of task_id and the run seed)."""
    from pyspark.sql import functions as F

    a = cfg.stage4d.audit
    st = spark.read.parquet(to_spark_path(stamps_dir))
    pop = _pop_expr(st.columns)
    u = (F.pmod(F.xxhash64(F.lit(str(cfg.seed)), F.col("task_id")), F.lit(1 << 40)).cast("double") / float(1 << 40))
    frac = {k: min(1.0, a.n_per_class / max(v, 1)) for k, v in n_ok.items()}
    keep = [c for c in ("task_id", "stamp", "stamp_size", "psfsize_r", "psfdepth_r", "psfdepth_r_mag5",
                        "region_split", "theta_e_arcsec", "psf_fwhm_used_r") if c in st.columns]
    sample = (st.filter((F.col("cutout_ok") == 1) & F.col("stamp").isNotNull())
              .withColumn(POP_COL, pop)
              .filter(u < F.when(F.col(POP_COL) == 1, F.lit(frac.get(1, 0.0))).otherwise(F.lit(frac.get(0, 0.0))))
              .select(POP_COL, *keep))
    names = ["central_flux_g", "central_flux_r", "central_flux_z", "total_flux", "central_g_minus_r",
             "outer_noise_mad_r"]
    core, ann = a.core_radius_pix, a.annulus_inner_frac

    def features(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            out = pd.DataFrame({"task_id": b["task_id"], POP_COL: b[POP_COL].astype("int64")})
            for n in names:
                out[n] = np.nan
            if len(b):
                sizes = b["stamp_size"] if "stamp_size" in b.columns else pd.Series([None] * len(b), index=b.index)
                for size, idx in b.groupby(sizes.fillna(-1).astype(int)).groups.items():
                    arr = np.stack([decode(blob, size=None if size < 0 else int(size)) for blob in b.loc[idx, "stamp"]])
                    f = shortcut_features(arr, core_radius_pix=core, annulus_inner_frac=ann)
                    for n in names:
                        out.loc[idx, n] = f[n]
            prep = prepare_columns(b.drop(columns=["stamp"]).assign(region_id=0), region_column="region_id")
            out["psfsize_r"] = pd.to_numeric(b["psfsize_r"], errors="coerce") if "psfsize_r" in b.columns else np.nan
            out["depth_r_mag5"] = prep["depth_r_mag5"].to_numpy()
            yield out

    schema = ", ".join(["task_id string", f"{POP_COL} long"] + [f"{n} double" for n in names + ["psfsize_r", "depth_r_mag5"]])
    feats = sample.mapInPandas(features, schema).toPandas()
    pos, neg = feats[feats[POP_COL] == 0], feats[feats[POP_COL] == 1]
    cols = names + ["psfsize_r", "depth_r_mag5"]
    rows = shortcut_audit({c: pos[c].to_numpy(float) for c in cols}, {c: neg[c].to_numpy(float) for c in cols},
                          n_boot=a.n_boot, seed=cfg.seed, cl=a.confidence, limit=a.auc_limit, red_limit=a.auc_red)
    return rows, {"audit_n_pos": len(pos), "audit_n_neg": len(neg)}


def _injection_summary(cfg: RunConfig, m: Any) -> tuple[dict[str, int], str]:
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


def _pop_expr(columns: list[str]) -> Any:
    from pyspark.sql import functions as F

    if "lens_model" in columns and "is_control" in columns:
        return F.when((F.col("lens_model") == "CONTROL") | (F.col("is_control") == 1), 1).otherwise(0).cast("long")
    if "lens_model" in columns:
        return F.when(F.col("lens_model") == "CONTROL", 1).otherwise(0).cast("long")
    return F.when(F.col("is_control") == 1, 1).otherwise(0).cast("long")


def _gallery(spark: Any, cfg: RunConfig, m: Any, stamps_dir: str) -> list[dict]:
    """Injections spread across θE with their matched controls (control_of), chosen by xxhash64 order."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    g = cfg.stage4d.gallery
    pop = _pop_expr(m.columns)
    h = F.xxhash64(F.lit(str(cfg.seed)), F.lit("gallery"), F.col("task_id"))
    inj = m.filter((pop == 0) & (F.col("cutout_ok") == 1) & (F.col("theta_e_arcsec") > 0))
    thetas = sorted(r[0] for r in inj.select("theta_e_arcsec").distinct().collect())
    if not thetas:
        return []
    pick = sorted({thetas[int(np.rint(i))] for i in np.linspace(0, len(thetas) - 1, min(g.n_theta, len(thetas)))})
    inj = inj.filter(F.col("theta_e_arcsec").isin(pick)).select("task_id", "theta_e_arcsec", cfg.stage4d.snr_column)
    if "control_of" in m.columns:
        ctrl = (m.filter((pop == 1) & (F.col("cutout_ok") == 1) & F.col("control_of").isNotNull())
                .select(F.col("control_of").alias("task_id"), F.col("task_id").alias("control_id"), h.alias("ch")))
        ctrl = (ctrl.withColumn("r", F.row_number().over(Window.partitionBy("task_id").orderBy("ch", "control_id")))
                .filter("r = 1").drop("r", "ch"))
        inj = inj.join(ctrl, "task_id", "left")
    else:
        inj = inj.withColumn("control_id", F.lit(None).cast("string"))
    w = Window.partitionBy("theta_e_arcsec").orderBy(F.col("control_id").isNull(), h, "task_id")
    chosen = inj.withColumn("r", F.row_number().over(w)).filter(F.col("r") <= g.per_theta).collect()
    ids = [r["task_id"] for r in chosen] + [r["control_id"] for r in chosen if r["control_id"]]
    st = spark.read.parquet(to_spark_path(stamps_dir))
    size_col = "stamp_size" if "stamp_size" in st.columns else None
    blobs = {r["task_id"]: decode(r["stamp"], size=r[size_col] if size_col else None)
             for r in st.filter(F.col("task_id").isin(ids)).select("task_id", "stamp", *( [size_col] if size_col else [])).collect()
             if r["stamp"] is not None}
    pairs = []
    for r in sorted(chosen, key=lambda r: (r["theta_e_arcsec"], r["task_id"])):
        if r["task_id"] not in blobs:
            continue
        snr = r[cfg.stage4d.snr_column]
        pairs.append({
            "theta_e": float(r["theta_e_arcsec"]),
            "injection": blobs[r["task_id"]],
            "control": blobs.get(r["control_id"]) if r["control_id"] else None,
            "label": f"{cfg.stage4d.snr_column}={snr:.1f}" if snr is not None else "",
            "control_label": "",
            "injection_id": r["task_id"],
            "control_id": r["control_id"],
        })
    return pairs


def run(spark: Any, cfg: RunConfig) -> StageResult:
    """Run stage 4d: surfaces, FPRs, region aggregate, shortcut audit, report; returns the StageResult
    (``extra["report"]`` is the path of ``report/index.html``)."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    s = cfg.stage4d
    out_dir = stage_output_dir(cfg, STAGE, "completeness")
    if should_skip(cfg, [out_dir]):
        r = skipped_result(STAGE, out_dir)
        r.extra["report"] = join(out_dir, "report", "index.html")
        return r
    started = time.time()
    steps = StageSteps(STAGE, spark)
    opts = cfg.s3.options()
    metrics_dir = stage_output_dir(cfg, "4c", "metrics")
    stamps_dir = stage_output_dir(cfg, "4c", "stamps")
    if not exists(metrics_dir, opts):
        raise FileNotFoundError(f"stage 4d: 4c metrics not found at {metrics_dir} (run stage 4c first)")
    m = spark.read.parquet(to_spark_path(metrics_dir))
    _check_columns(m.columns, metrics_dir, s)
    m, extra_inputs = _with_region(spark, cfg, m)
    inputs = [metrics_dir] + extra_inputs
    if s.scores_path:
        m = _with_scores(spark, cfg, m)
        inputs.append(s.scores_path)
    ship = [c for c in dict.fromkeys(list(REQUIRED_COLUMNS) + [s.psf_column, s.snr_column, s.region_column]
                                     + list(OPTIONAL_COLUMNS)) if c in m.columns]
    rows = m.select(*ship)

    control_scores = None
    if s.scores_path:
        def ctrl_scores(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for b in batches:
                yield pd.DataFrame({"score": valid_control_scores(b, s)})

        control_scores = rows.mapInPandas(ctrl_scores, "score double").toPandas()["score"].to_numpy()
    defs = recovery_definitions(s, control_scores)

    def derive(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            yield derive_batch(b, s, defs)

    derived = rows.mapInPandas(derive, _derived_schema(s, defs)).persist(StorageLevel.MEMORY_AND_DISK)
    bins = bin_defs(s)
    ccols = count_columns(defs)
    counts = derived.groupBy(*key_columns(bins)).agg(*[F.sum(F.col(f"`{c}`")).alias(c) for c in ccols]).toPandas()
    for c in ccols:
        counts[c] = counts[c].astype("int64")
    first = defs[0].name
    snr_hist = (derived.filter((F.col(POP_COL) == 0) & (F.col(f"`nv__{first}__all`") == 1))
                .groupBy("b_theta_e_lo", "snr_log_bin").count().withColumnRenamed("count", "n").toPandas())
    derived.unpersist()
    steps.done("counts", rows=int(counts["n_attempt"].sum()), cells=len(counts))

    rows_out = int(counts["n_attempt"].sum())
    tables = surface_tables(counts, bins, defs, tuple(s.confidence_levels), s.region_min_count)

    pop = _pop_expr(m.columns)
    kind = F.when(F.col("error").isNull(), F.lit(None)).otherwise(F.substring_index(F.col("error"), ":", 1)) \
        if "error" in m.columns else F.lit(None).cast("string")
    prov_cols = [c for c in ("psf_source_g", "psf_source_r", "psf_source_z") if c in m.columns]
    summary = (m.withColumn("population", F.when(pop == 1, "control").otherwise("injection"))
               .groupBy("population", "cutout_ok", kind.alias("error_kind"), *prov_cols).count().toPandas())
    rows_in = int(summary["count"].sum())
    if rows_out != rows_in:
        raise RuntimeError(f"stage 4d: {rows_in} metrics rows in {metrics_dir} but {rows_out} counted")
    failures = (summary.groupby(["population", "cutout_ok", "error_kind"], dropna=False)["count"].sum()
                .reset_index().sort_values(["population", "cutout_ok"]))
    provenance = (summary.groupby(["population", *prov_cols], dropna=False)["count"].sum().reset_index()
                  .sort_values(["population", *prov_cols]))
    n_ok = {p: int(failures[(failures["population"] == name) & (failures["cutout_ok"] == 1)]["count"].sum())
            for p, name in ((0, "injection"), (1, "control"))}

    have_stamps = exists(stamps_dir, opts)
    audit_rows: list[dict] = []
    audit_counts: dict = {}
    if s.audit.enabled and have_stamps and min(n_ok.values()) > 0:
        audit_rows, audit_counts = _audit(spark, cfg, stamps_dir, n_ok)
        inputs.append(stamps_dir)
    pairs = _gallery(spark, cfg, m, stamps_dir) if (s.gallery.enabled and have_stamps) else []
    steps.done("audit and gallery", audit_rows=len(audit_rows), gallery_pairs=len(pairs))

    inj_sum, target_metric = _injection_summary(cfg, m)
    targeting = mix_table(inj_sum, s.target_snr_bins.edges or [], target_metric)
    thr = cfg.stage4a.resolved.theta_e_over_psf_min
    n_inj = int(counts.loc[counts[POP_COL] == 0, "n_attempt"].sum())
    meta = {
        "variant": cfg.variant, "experiment_id": cfg.experiment_id, "input (4c metrics)": metrics_dir,
        "tasks": rows_in, "injections": n_inj, "controls": rows_in - n_inj,
        "valid injections (proxy inputs, all)": int(counts.loc[counts[POP_COL] == 0, f"nv__{first}__all"].sum()),
        "score table": s.scores_path or "none (proxy only)",
        f"resolved injections (θE / psf_fwhm_used_r ≥ {thr:g})": (
            f"{inj_sum['n_resolved'] / inj_sum['n_valid']:.1%} ({inj_sum['n_resolved']} of {inj_sum['n_valid']} "
            "valid injections)" if inj_sum["n_valid"] else "no valid injection"),
        "brightness targeting": (f"{inj_sum['n_targeted']} injections targeted on r-band {target_metric}"
                                 if inj_sum["n_targeted"] else "off (source magnitudes from the manifest)"),
        "clean selection": clean_selection_text(s.max_bad_pixel_frac, s.max_wise_brightmask_frac,
                                                cfg.stage4c.clean_max_bad_pixel_frac),
    }
    files: dict[str, bytes] = {
        "counts.parquet": _parquet_bytes(counts),
        "completeness.parquet": _parquet_bytes(tables["completeness"]),
        "region_aggregate.parquet": _parquet_bytes(tables["region_aggregate"]),
        "snr_hist.parquet": _parquet_bytes(snr_hist),
        "psf_provenance.parquet": _parquet_bytes(provenance),
        "failures.parquet": _parquet_bytes(failures),
        "shortcut_audit.parquet": _parquet_bytes(pd.DataFrame(audit_rows)),
        "brightness_targeting.parquet": _parquet_bytes(targeting),
        "recovery_definitions.json": json.dumps(
            [{"name": d.name, "kind": d.kind, "required": list(d.required), "params": d.params,
              "description": d.description} for d in defs], indent=2).encode(),
    }
    if len(tables["fpr"]):
        files["fpr.parquet"] = _parquet_bytes(tables["fpr"])

    with tempfile.TemporaryDirectory(prefix="dhs4d-") as tmp:
        if s.report:
            from dhs.report.html import build_report

            build_report(os.path.join(tmp, "report"), meta=meta, definitions=defs, tables=tables, snr_hist=snr_hist,
                         audit_rows=audit_rows, audit_limit=s.audit.auc_limit, provenance=provenance,
                         failures=failures, gallery_pairs=pairs, gallery_options=s.gallery.model_dump(),
                         snr_column=s.snr_column, snr_hist_width_dex=s.snr_hist_width_dex,
                         targeting=targeting)
        for name, data in files.items():
            with open(os.path.join(tmp, name), "wb") as fh:
                fh.write(data)
        _publish(tmp, out_dir, opts)
    steps.done("tables and report", files=len(files))

    report = join(out_dir, "report", "index.html") if s.report else None
    flagged = [r["feature"] for r in audit_rows if r["flagged"]]
    result = StageResult(stage=STAGE, output_path=out_dir, rows_in=rows_in, rows_out=rows_out, failures={},
                         extra={"report": report, "audit_flagged": flagged})
    counts_doc = {"rows_in": rows_in, "rows_counted": rows_out, "injections": n_inj, "controls": rows_in - n_inj,
                  "valid_ok_by_population": {"injection": n_ok[0], "control": n_ok[1]},
                  "recovery_definitions": [d.name for d in defs], "audit_flagged": flagged, **audit_counts,
                  "injections_resolved": inj_sum["n_resolved"], "injections_targeted": inj_sum["n_targeted"],
                  "gallery_pairs": len(pairs)}
    return finish_stage(cfg, result, [out_dir], inputs=inputs, counts=counts_doc, started=started,
                        extra={"thresholds": {d.name: d.params for d in defs},
                               "clean_selection": meta["clean selection"]})


def _publish(tmp: str, out_dir: str, opts: Any) -> None:
    """Move the finished local folder into place (rename locally; upload file by file to S3)."""
    if is_s3(out_dir):
        for root, _, names in os.walk(tmp):
            for n in names:
                p = os.path.join(root, n)
                rel = os.path.relpath(p, tmp).replace(os.sep, "/")
                with open(p, "rb") as fh:
                    write_bytes(join(out_dir, rel), fh.read(), opts)
        return
    final = os.path.abspath(out_dir)
    os.makedirs(os.path.dirname(final), exist_ok=True)
    staging = f"{final}._tmp-{uuid.uuid4().hex[:12]}"
    shutil.copytree(tmp, staging)
    if os.path.exists(final):
        shutil.rmtree(final)
    os.replace(staging, final)
