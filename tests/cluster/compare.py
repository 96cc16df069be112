"""Compare stage outputs written by two runs (tests only): same rows, same values, same stamp bytes."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds

KEYS = {"parent": "galaxy_id", "regions": "region_id", "manifests": "task_id", "stamps": "task_id",
        "metrics": "task_id"}


def read_output(path: Path) -> pa.Table:
    """All Parquet under ``path`` (hive partitions become columns), columns sorted by name."""
    table = ds.dataset(str(path), format="parquet", partitioning="hive").to_table()
    table = table.select(sorted(table.column_names))
    cols = []
    for col in table.columns:  # hive partition columns come back dictionary-encoded in file order
        col = col.combine_chunks()
        cols.append(col.dictionary_decode() if pa.types.is_dictionary(col.type) else col)
    return pa.table(cols, names=table.column_names)


def sorted_by(table: pa.Table, key: str | None) -> pa.Table:
    if key is None:
        sortable = [c for c in table.column_names
                    if not pa.types.is_binary(table.schema.field(c).type)
                    and not pa.types.is_list(table.schema.field(c).type)]
        return table.sort_by([(c, "ascending") for c in sortable])
    return table.sort_by([(key, "ascending")])


def assert_same_output(a: Path, b: Path, kind: str) -> int:
    """Assert two output folders hold the same rows; returns the row count."""
    ta, tb = read_output(a), read_output(b)
    assert ta.column_names == tb.column_names, (kind, set(ta.column_names) ^ set(tb.column_names))
    assert ta.num_rows == tb.num_rows, (kind, ta.num_rows, tb.num_rows)
    ta, tb = sorted_by(ta, KEYS.get(kind)), sorted_by(tb, KEYS.get(kind))
    for col in ta.column_names:
        ca, cb = ta.column(col).combine_chunks(), tb.column(col).combine_chunks()
        if ca.type != cb.type:
            cb = cb.cast(ca.type)
        assert ca.equals(cb), f"{kind}.{col} differs between {a} and {b}"
    return ta.num_rows
