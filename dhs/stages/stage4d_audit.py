"""Stage 4d's audits with Spark: the shortcut audit (valid injections vs valid controls) and the null-injection
audit (null injections vs their matched controls), both on the full and the centre-masked stamp features
(:mod:`dhs.completeness.audit`), computed in one pass over a deterministic xxhash64 sample of the stamps."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pandas as pd

from dhs.completeness.audit import (
    FULL,
    NULL_AUDIT_CELL_COLUMNS,
    audit_features,
    null_audit_selection,
    shortcut_audit,
)
from dhs.completeness.surfaces import POP_COL
from dhs.completeness.tables import prepare_columns
from dhs.config import RunConfig
from dhs.io.paths import to_spark_path
from dhs.io.stamps import decode
from dhs.sampling.hashing import stable_hash64
from dhs.stages.stage4d_inputs import population_expr

AUDIT_SAMPLE_COLUMNS = ("task_id", "stamp", "stamp_size", "psfsize_r", "psfdepth_r", "psfdepth_r_mag5",
                        "region_split", "theta_e_arcsec", "psf_fwhm_used_r")


def hash_unit(seed: int) -> Any:
    """Spark column: xxhash64(run seed, task_id) mapped to [0, 1) — the deterministic audit sampling key."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(F.lit(str(seed)), F.col("task_id")), F.lit(1 << 40)).cast("double") / float(1 << 40)


def _sample_fraction(n_per_class: int, n_rows: int) -> float:
    """Share of ``n_rows`` kept by hash so that a little more than ``n_per_class`` rows survive."""
    return min(1.0, (n_per_class + 5 * np.sqrt(n_per_class) + 20) / max(n_rows, 1))


def _null_audit_ids(cfg: RunConfig, m: Any, n_null: int) -> pd.DataFrame:
    """Task ids of the null-injection audit (valid null rows with a matched control, and those controls;
    one per host), chosen from the metrics table by :func:`dhs.completeness.audit.null_audit_selection`.
    The null rows are first thinned by hash to about ``audit.n_per_class`` (of ``n_null`` valid ones), so
    the driver receives a bounded number of rows whatever the size of the run."""
    from pyspark.sql import functions as F

    empty = pd.DataFrame({"task_id": pd.Series([], dtype=str), "population": pd.Series([], dtype="int64"),
                          "galaxy_id": pd.Series([], dtype=str)})
    if any(c not in m.columns for c in ("task_id", "control_of", "galaxy_id", "cutout_ok", "lens_model")):
        return empty
    pop = population_expr(m.columns)
    frac = _sample_fraction(cfg.stage4d.audit.n_per_class, n_null)
    nulls = (m.filter((pop == 2) & (F.col("cutout_ok") == 1) & (hash_unit(cfg.seed) < F.lit(frac)))
             .select(F.col("task_id").alias("_null_id")))
    rows = (m.withColumn("population", pop)
            .filter(F.col("population").isin(1, 2) & (F.col("cutout_ok") == 1))
            .join(F.broadcast(nulls), F.coalesce(F.col("control_of"), F.col("task_id")) == F.col("_null_id"),
                  "left_semi")
            .select("task_id", "population", "control_of", "galaxy_id", "cutout_ok",
                    *[c for c in NULL_AUDIT_CELL_COLUMNS if c in m.columns]).toPandas())
    if rows.empty:
        return empty
    return null_audit_selection(rows, cfg.stage4d.audit.n_per_class, cfg.seed)


def _audit_sample(spark: Any, cfg: RunConfig, stamps_dir: str, n_ok: dict[int, int], null_ids: pd.DataFrame) -> Any:
    """The valid stamps kept for the audits: per class of the shortcut audit (0 injection, 1 control) a little
    more than ``audit.n_per_class`` by hash (``_in_main``), and the rows of ``null_ids`` (``_in_null_audit``),
    with the population and the hash ``_u``."""
    from pyspark.sql import functions as F

    a = cfg.stage4d.audit
    st = spark.read.parquet(to_spark_path(stamps_dir))
    pop = population_expr(st.columns)
    u = hash_unit(cfg.seed)
    # keep a little more than n_per_class by hash, then exactly the n_per_class smallest hashes per class:
    # the driver receives at most n_per_class feature rows per class, whatever the number of stamps
    frac = {k: _sample_fraction(a.n_per_class, v) for k, v in n_ok.items()}
    keep = [c for c in AUDIT_SAMPLE_COLUMNS if c in st.columns]
    ids = spark.createDataFrame(pd.DataFrame({"task_id": null_ids["task_id"].astype(str).tolist(),
                                              "_in_null_audit": [1] * len(null_ids)}),
                                "task_id string, _in_null_audit long")
    main = (((F.col(POP_COL) == 1) & (u < F.lit(frac.get(1, 0.0))))
            | ((F.col(POP_COL) == 0) & (u < F.lit(frac.get(0, 0.0)))))
    return (st.filter((F.col("cutout_ok") == 1) & F.col("stamp").isNotNull())
            .withColumn(POP_COL, pop)
            .join(F.broadcast(ids), "task_id", "left")
            .withColumn("_u", u)
            .withColumn("_in_main", main.cast("long"))
            .filter((F.col("_in_main") == 1) | F.col("_in_null_audit").isNotNull())
            .select(POP_COL, "_u", "_in_main", "_in_null_audit", *keep))


def feature_variants(a: Any) -> dict[str, str]:
    """The audit's feature names and their variant (full or centre-masked) for the settings ``a``."""
    _, variants = audit_features(np.zeros((1, 3, 64, 64)), core_radius_pix=a.core_radius_pix,
                                 annulus_inner_frac=a.annulus_inner_frac, mask_radius_pix=a.mask_radius_pix)
    return variants


def _features_of(a: Any, names: list[str]) -> Callable[[Iterator[pd.DataFrame]], Iterator[pd.DataFrame]]:
    """The ``mapInPandas`` function: decoded stamps → audit features, PSF size and 5σ depth per row."""
    core, ann, mask = a.core_radius_pix, a.annulus_inner_frac, a.mask_radius_pix

    def features(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for b in batches:
            out = pd.DataFrame({"task_id": b["task_id"], POP_COL: b[POP_COL].astype("int64"),
                                "_u": b["_u"], "_in_main": b["_in_main"].astype("int64"),
                                "_in_null_audit": b["_in_null_audit"].fillna(0).astype("int64")})
            for n in names:
                out[n] = np.nan
            if len(b):
                sizes = b["stamp_size"] if "stamp_size" in b.columns else pd.Series([None] * len(b), index=b.index)
                for size, idx in b.groupby(sizes.fillna(-1).astype(int)).groups.items():
                    arr = np.stack([decode(blob, size=None if size < 0 else int(size)) for blob in b.loc[idx, "stamp"]])
                    f, _ = audit_features(arr, core_radius_pix=core, annulus_inner_frac=ann, mask_radius_pix=mask)
                    for n in names:
                        out.loc[idx, n] = f[n]
            prep = prepare_columns(b.drop(columns=["stamp"]).assign(region_id=0), region_column="region_id")
            out["psfsize_r"] = pd.to_numeric(b["psfsize_r"], errors="coerce") if "psfsize_r" in b.columns else np.nan
            out["depth_r_mag5"] = prep["depth_r_mag5"].to_numpy()
            yield out

    return features


def _feature_rows(sample: Any, a: Any, names: list[str]) -> pd.DataFrame:
    """The features of the sample on the driver: exactly the ``n_per_class`` smallest hashes per class of the
    shortcut audit, and every null-audit row; sorted by task_id."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    schema = ", ".join(["task_id string", f"{POP_COL} long", "_u double", "_in_main long", "_in_null_audit long"]
                       + [f"{n} double" for n in names + ["psfsize_r", "depth_r_mag5"]])
    rank = F.row_number().over(Window.partitionBy(POP_COL, "_in_main").orderBy("_u", "task_id"))
    capped = F.when((F.col("_in_main") == 1) & (F.col("_r") > a.n_per_class), F.lit(0)).otherwise(F.col("_in_main"))
    return (sample.mapInPandas(_features_of(a, names), schema).withColumn("_r", rank).withColumn("_in_main", capped)
            .filter((F.col("_in_main") == 1) | (F.col("_in_null_audit") == 1)).drop("_r", "_u")
            .toPandas().sort_values("task_id", kind="stable"))


def compare_classes(pos: pd.DataFrame, neg: pd.DataFrame, a: Any, variants: dict[str, str], seed: int) -> list[dict]:
    """:func:`dhs.completeness.audit.shortcut_audit` of two classes' feature rows (none when one is empty)."""
    if not len(pos) or not len(neg):
        return []
    cols = list(variants)
    return shortcut_audit({c: pos[c].to_numpy(float) for c in cols}, {c: neg[c].to_numpy(float) for c in cols},
                          n_boot=a.n_boot, seed=seed, cl=a.confidence,
                          limit=a.auc_limit, red_limit=a.auc_red, variants=variants)


def _audit(spark: Any, cfg: RunConfig, stamps_dir: str, n_ok: dict[int, int],
           null_ids: pd.DataFrame) -> tuple[list[dict], list[dict], dict]:
    """Shortcut audit (valid injections vs valid controls, on a deterministic xxhash64 sample of each class)
    and null-injection audit (the rows of ``null_ids``), both on the full and the centre-masked features, in
    one pass over the stamps. The shortcut audit keeps, per class, the ``audit.n_per_class`` stamps with the
    smallest xxhash64(run seed, task_id), so the driver never holds more. Returns (shortcut rows, null-audit
    rows, counts)."""
    a = cfg.stage4d.audit
    variants = feature_variants(a)
    feats = _feature_rows(_audit_sample(spark, cfg, stamps_dir, n_ok, null_ids), a, list(variants))
    variants = {**variants, "psfsize_r": FULL, "depth_r_mag5": FULL}
    mf = feats[feats["_in_main"] == 1]
    pos, neg = mf[mf[POP_COL] == 0], mf[mf[POP_COL] == 1]
    nf = feats[feats["_in_null_audit"] == 1]
    npos, nneg = nf[nf[POP_COL] == 2], nf[nf[POP_COL] == 1]
    counts = {"audit_n_pos": len(pos), "audit_n_neg": len(neg), "null_audit_n_null_hosts": len(npos),
              "null_audit_n_control_hosts": len(nneg)}
    return (compare_classes(pos, neg, a, variants, cfg.seed),
            compare_classes(npos, nneg, a, variants, stable_hash64(cfg.seed, "null_audit")), counts)


def audits(spark: Any, cfg: RunConfig, m: Any, stamps_dir: str, n_ok: dict[int, int]
           ) -> tuple[list[dict], list[dict], dict] | None:
    """Both audits when they are enabled and there is something to audit (valid injections and controls, or
    valid null injections); None otherwise. ``n_ok``: valid rows per population (0, 1, 2)."""
    s = cfg.stage4d
    if not (s.audit.enabled and (min(n_ok[0], n_ok[1]) > 0 or n_ok[2] > 0)):
        return None
    null_ids = _null_audit_ids(cfg, m, n_ok[2]) if (s.audit.null_audit and n_ok[2] > 0) else \
        pd.DataFrame({"task_id": pd.Series([], dtype=str)})
    return _audit(spark, cfg, stamps_dir, {0: n_ok[0], 1: n_ok[1]}, null_ids)
