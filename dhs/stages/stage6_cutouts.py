"""Stage 6 cutouts: every row of a sample (or of the hard negatives) cut from the coadds or the cutout service,
with quality metrics and shortcut features (:func:`dhs.reallens.cutouts.cutout_row`); a row that cannot be cut
is a row with ``cutout_ok = 0`` and an ``error`` reason."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa

from dhs.config import RunConfig
from dhs.io.paths import to_spark_path
from dhs.reallens.cutouts import CutoutServiceClient, cutout_columns, cutout_row
from dhs.stages.common import spark_schema, write_parquet_atomically
from dhs.stages.executor_state import executor_store
from dhs.stages.outcome_counts import outcome_counts


def cutout_arrow_schema(sample_schema: pa.Schema) -> pa.Schema:
    """Sample columns + the cutout columns (:func:`dhs.reallens.cutouts.cutout_columns`)."""
    kinds = {"int": pa.int32(), "float": pa.float64(), "str": pa.string(), "binary": pa.binary()}
    fields = list(sample_schema) + [pa.field(n, kinds[k]) for n, k in cutout_columns()]
    return pa.schema(fields)


def write_cutouts(spark: Any, cfg: RunConfig, samp: Any, out_dir: str, rows_in: int) -> dict[str, Any]:
    """Cut every sample row (``rows_in`` of them) into ``out_dir``; returns the counts (rows out must equal
    rows in; failures by kind and by reason)."""
    from pyspark.sql.pandas.types import to_arrow_type

    c = cfg.stage6.cutouts
    root, endpoint, region = cfg.survey_root, cfg.s3.endpoint_url, cfg.s3.region
    in_schema = pa.schema([pa.field(f.name, to_arrow_type(f.dataType)) for f in samp.schema.fields])
    schema = cutout_arrow_schema(in_schema)

    def mapper(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        store = executor_store(root, c.cache_bytes, endpoint, region) if c.source == "coadd" else None
        client = None if store is not None else CutoutServiceClient(
            c.service_url, c.service_layer, c.service_retries, c.service_timeout_s, c.service_backoff_s)
        for batch in batches:
            rows = batch.to_pylist()
            out = []
            for r in rows:
                r.update(cutout_row(r["ra"], r["dec"], r.get("brickname"), c.size, store=store, client=client,
                                    keep_invvar=c.keep_invvar, keep_maskbits=c.keep_maskbits,
                                    core_radius_pix=c.core_radius_pix, annulus_pix=tuple(c.annulus_pix),
                                    central_box_pix=c.central_box_pix))
                out.append(r)
            yield pa.RecordBatch.from_pylist(out, schema=schema)

    n_part = c.partitions or cfg.spark.shuffle_partitions
    # range partitions: a brick's rows stay together but a crowded brick is split over several tasks
    df = (samp.repartitionByRange(max(1, n_part), "brickname", "galaxy_id").sortWithinPartitions("brickname", "galaxy_id")
          .mapInArrow(mapper, spark_schema(schema)))
    write_parquet_atomically(df, out_dir, partition_by=("region_split",))
    written = spark.read.parquet(to_spark_path(out_dir))
    groups = written.groupBy("cutout_ok", "error").count().collect()
    counts = outcome_counts(groups)
    if counts["rows_out"] != rows_in:
        raise RuntimeError(f"stage 6: cutout rows out ({counts['rows_out']}) != rows in ({rows_in})")
    return {"rows_in": rows_in, **counts, "source": c.source, "size": c.size}
