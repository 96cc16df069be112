"""Stage 4c helpers without Spark: row processing with a failing store, reason kinds, manifest checks."""

from __future__ import annotations

import pyarrow as pa
import pytest

from dhs.config.stage4c import Stage4cConfig
from dhs.injection.schema import output_schema
from dhs.stages.stage4c import check_manifest_columns, executor_store, process_rows, reason_kind
from tests.injection import tiny_sky


class _Exploding:
    def cutout(self, *a, **k):
        raise MemoryError("out of memory reading a plane")


def test_store_exception_becomes_failure_row(tmp_path):
    wcs = tiny_sky.write_brick(tmp_path / "sky")
    settings = Stage4cConfig()
    rows = [tiny_sky.make_row(wcs, task_id=f"t{i}") for i in range(3)]
    out = process_rows(rows, _Exploding(), None, settings)
    assert [r["task_id"] for r in out] == ["t0", "t1", "t2"]
    assert all(r["cutout_ok"] == 0 and r["error"].startswith("read_error:MemoryError") for r in out)
    t = pa.Table.from_pylist(out, schema=output_schema(tiny_sky.MANIFEST_SCHEMA, settings.keep_arrays))
    assert t.num_rows == 3


def test_process_rows_with_real_store_and_timings(tmp_path):
    wcs = tiny_sky.write_brick(tmp_path / "sky")
    store = executor_store(str(tmp_path / "sky"), 10**8, None, None)
    assert executor_store(str(tmp_path / "sky"), 10**8, None, None) is store          # one per worker
    timings: dict[str, float] = {}
    out = process_rows([tiny_sky.make_row(wcs), tiny_sky.make_row(wcs, is_control=1, lens_model="CONTROL")],
                       store, None, Stage4cConfig(), timings)
    assert [r["cutout_ok"] for r in out] == [1, 1]
    assert {"cutout", "render", "metrics", "encode"} <= set(timings)


def test_reason_kind():
    assert reason_kind("read_error:/x/y.fits.fz: OSError: bad") == "read_error"
    assert reason_kind("off_image") == "off_image"
    assert reason_kind(None) == ""


def test_manifest_columns_checked():
    with pytest.raises(ValueError, match=r"manifest /m lacks required columns \['task_seed'"):
        check_manifest_columns(["task_id", "brickname", "ra", "dec"], "/m")


class _RecordingWriter:
    """Stands in for Spark's DataFrameWriter: records the options and creates the output folder."""

    def __init__(self):
        self.options = {}

    def mode(self, _):
        return self

    def option(self, key, value):
        self.options[key] = value
        return self

    def partitionBy(self, *_):
        return self

    def parquet(self, path):
        import os

        os.makedirs(path)


class _FakeFrame:
    def __init__(self):
        self.write = _RecordingWriter()


@pytest.mark.parametrize("level", [1, 19])
def test_stamp_files_take_the_configured_zstd_level_and_plain_array_columns(tmp_path, level):
    from dhs.stages.common import write_parquet_atomically

    frame = _FakeFrame()
    write_parquet_atomically(frame, str(tmp_path / "stamps"), zstd_level=level, plain_columns=["stamp", "arc"])
    assert frame.write.options["compression"] == "zstd"
    assert frame.write.options["parquet.compression.codec.zstd.level"] == str(level)
    assert frame.write.options["parquet.enable.dictionary#stamp"] == "false"
    assert frame.write.options["parquet.enable.dictionary#arc"] == "false"
    assert not any(k.startswith("parquet.enable.dictionary#") and k[26:] not in ("stamp", "arc")
                   for k in frame.write.options)
    assert (tmp_path / "stamps").is_dir()
    assert Stage4cConfig().zstd_level == 1
    with pytest.raises(ValueError, match="zstd_level"):
        Stage4cConfig(zstd_level=0)
