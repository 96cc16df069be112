"""Stage 6 validation with Spark: shortcut audit of the good cutouts (positives vs negatives, capped per class),
split proportions per class, HEALPix disjointness and cross-split neighbours of the sample; written to
``validation/`` (audit table, ``_validation.json``, ``_report.md``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import join, to_spark_path, write_bytes
from dhs.reallens.validation import (
    audit,
    cap_per_class,
    disjointness_summary,
    report_markdown,
    sky_cell_keys,
    split_proportions_from_counts,
)
from dhs.sampling.hashing import stable_hash64
from dhs.stages.common import spark_schema, write_parquet_atomically


def cross_split_pairs(samp: Any, radius_arcsec: float) -> dict[str, Any]:
    """:func:`dhs.reallens.validation.cross_split_neighbours` computed by Spark: positions are keyed by the
    cells of :func:`dhs.reallens.validation.sky_cell_keys`, each row is joined to the rows of its own and
    adjacent cells, and pairs in different splits closer than the radius are counted once."""
    from pyspark.sql import functions as F

    if radius_arcsec <= 0:
        return {"radius_arcsec": radius_arcsec, "pairs": 0}
    fields = [pa.field("galaxy_id", pa.string()), pa.field("region_split", pa.string()),
              pa.field("ra", pa.float64()), pa.field("dec", pa.float64())]
    schema = pa.schema([*fields, pa.field("cell", pa.int64()), pa.field("own", pa.bool_())])

    def cells(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        for b in batches:
            t = pa.Table.from_batches([b])
            ra = t.column("ra").to_numpy(zero_copy_only=False).astype(np.float64)
            dec = t.column("dec").to_numpy(zero_copy_only=False).astype(np.float64)
            own, row, key = sky_cell_keys(ra, dec, radius_arcsec)
            for idx, cell, is_own in ((np.arange(t.num_rows), own, True), (row, key, False)):
                part = t.take(pa.array(idx))
                yield pa.RecordBatch.from_arrays(
                    [*(part.column(f.name).combine_chunks().cast(f.type) for f in fields),
                     pa.array(cell, pa.int64()), pa.array(np.full(len(idx), is_own))], schema=schema)

    keyed = (samp.select("galaxy_id", "region_split", "ra", "dec").where(F.col("ra").isNotNull() & F.col("dec").isNotNull())
             .mapInArrow(cells, spark_schema(schema)))
    a = keyed.where(~F.col("own")).select(*[F.col(c).alias(f"a_{c}") for c in ("galaxy_id", "region_split", "ra", "dec", "cell")])
    b = keyed.where(F.col("own")).select(*[F.col(c).alias(f"b_{c}") for c in ("galaxy_id", "region_split", "ra", "dec", "cell")])
    rad = F.lit(np.pi / 180.0)
    hav = (F.sin((F.col("b_dec") - F.col("a_dec")) * rad / 2) ** 2
           + F.cos(F.col("a_dec") * rad) * F.cos(F.col("b_dec") * rad) * F.sin((F.col("b_ra") - F.col("a_ra")) * rad / 2) ** 2)
    sep_arcsec = F.degrees(F.asin(F.sqrt(F.least(hav, F.lit(1.0)))) * 2) * 3600.0
    n = (a.join(b, F.col("a_cell") == F.col("b_cell"))
         .where((F.col("a_galaxy_id") < F.col("b_galaxy_id"))
                & ~F.col("a_region_split").eqNullSafe(F.col("b_region_split")) & (sep_arcsec < radius_arcsec))
         .count())
    return {"radius_arcsec": radius_arcsec, "pairs": int(n)}


def validate(spark: Any, cfg: RunConfig, cut_dir: str, samp: Any) -> dict[str, Any]:
    """Shortcut audit of the good cutouts (positives vs negatives, capped per class), split proportions per
    class, HEALPix disjointness and cross-split neighbours of the sample (module docstring, step 6)."""
    from pyspark.sql import functions as F

    v = cfg.stage6.validation
    cut = spark.read.parquet(to_spark_path(cut_dir))
    feat_cols = [c for c in cut.columns if c.startswith("feat_")] + [
        c for c in cut.columns if c.startswith(("core_flux_", "annulus_median_", "outer_median_"))]
    good = cut.where(F.col("cutout_ok") == 1)
    per_label = {int(r["label"]): int(r["count"]) for r in good.groupBy("label").count().collect()}
    # thin each class in Spark (every stride-th 64-bit hash residue) before the exact cap on the driver
    keep = F.lit(False)
    for lab, n in per_label.items():
        stride = max(1, n // v.max_per_class)
        keep = keep | ((F.col("label") == lab) & (F.pmod(F.col("sample_hash"), F.lit(stride)) == 0))
    rows = good.where(keep).select("galaxy_id", "label", *feat_cols).collect()
    seed = stable_hash64("stage6-validation", int(cfg.seed))
    by_cls: dict[int, dict[str, np.ndarray]] = {}
    for lab in (0, 1):
        rs = [r for r in rows if int(r["label"]) == lab]
        capped = cap_per_class([r["galaxy_id"] for r in rs], v.max_per_class, seed)
        rs = [r for r, k in zip(rs, capped.tolist()) if k]
        by_cls[lab] = {c.removeprefix("feat_"): np.array([np.nan if r[c] is None else r[c] for r in rs],
                                                          dtype=np.float64) for c in feat_cols}
    audit_rows = audit(by_cls[1], by_cls[0], v, seed) if rows else []
    # split shares, pixel disjointness and cross-split pairs are aggregated by Spark: the driver receives
    # counts, never the sample
    per = {(int(r["label"]), str(r["region_split"])): int(r["count"])
           for r in samp.groupBy("label", "region_split").count().collect()}
    fr = cfg.stage6.split_fractions
    splits = {name: split_proportions_from_counts({s: c for (lb, s), c in per.items() if lb == lab}, fr,
                                                  v.split_tolerance) for name, lab in (("positives", 1), ("negatives", 0))}
    pix = samp.groupBy("healpix").agg(F.countDistinct(F.coalesce(F.col("region_split"), F.lit("None"))).alias("k"))
    shared = pix.where(F.col("k") > 1)
    disj = disjointness_summary(pix.count(), shared.count(),
                                [int(r[0]) for r in shared.orderBy("healpix").limit(10).collect()])
    neigh = cross_split_pairs(samp, v.neighbour_radius_arcsec)
    n_used = {name: len(next(iter(by_cls[lab].values()), [])) for name, lab in (("positives", 1), ("negatives", 0))}
    return {"audit": audit_rows, "audit_rows_in": sum(per_label.values()), "audit_stamps": n_used,
            "splits": splits, "disjointness": disj,
            "neighbours": neigh}


def write_validation(spark: Any, cfg: RunConfig, summary: dict[str, Any], out_dir: str) -> None:
    """Write the audit rows of ``summary`` as Parquet (one file) and ``_validation.json`` / ``_report.md``
    into ``out_dir``."""
    audit_rows = summary["audit"] or [{"feature": "", "n_pos": 0, "n_neg": 0}]
    write_parquet_atomically(spark.createDataFrame(pa.Table.from_pylist(audit_rows)).coalesce(1), out_dir,
                             partition_by=())
    write_bytes(join(out_dir, "_validation.json"),
                json.dumps(summary, indent=2, sort_keys=True, default=str).encode(), cfg.s3.options())
    write_bytes(join(out_dir, "_report.md"), report_markdown(summary).encode(), cfg.s3.options())
