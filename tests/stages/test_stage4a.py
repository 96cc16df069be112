"""Stage 4a in local Spark: on a fake parent table (determinism across partitionings, skip/force,
_stage_config.json) and end to end on the synthetic sky after stage 3."""

from __future__ import annotations

import json
import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from dhs.config import config_from_dict
from dhs.io.stage_meta import read_stage_config, write_stage_config_file
from dhs.sampling.grids import load_grid
from dhs.sampling.manifest import build_manifest
from tests.sampling.fake_hosts import fake_parent
from tests.sampling.test_manifest import DESIGN_COLUMNS, INTERFACE_EXTRAS

pytestmark = pytest.mark.spark


def _write_parent(root: str, variant: str, table: pa.Table, n_files: int) -> str:
    parent = os.path.join(root, "phase3", variant, "parent")
    # several files per split so Spark's input partitioning differs from the host order
    for k, idx in enumerate(np.array_split(np.arange(table.num_rows), n_files)):
        part = table.take(pa.array(idx))
        for split in ("train", "val", "test"):
            sub = part.filter(pa.compute.equal(part.column("region_split"), split)).drop_columns(["region_split"])
            d = os.path.join(parent, f"region_split={split}")
            os.makedirs(d, exist_ok=True)
            pq.write_table(sub, os.path.join(d, f"part-{k:03d}.parquet"))
    write_stage_config_file(parent, {"stage": "3", "fake": True})
    return parent


def _cfg(root, **stage4a):
    data = {"survey_root": root, "output_root": root, "variant": "v2_baseline_dr10", "experiment_id": "unit",
            "seed": 2024, "stage4a": {"tier": "grid", "grid": "grid_small", "n_hosts_per_cell": 1,
                                      "control_fraction": 0.25, **stage4a}}
    return config_from_dict(data, check_inputs=False)


def _read(path: str) -> pa.Table:
    t = pq.read_table(path, partitioning="hive")
    t = t.set_column(t.schema.get_field_index("region_split"), "region_split",
                     t.column("region_split").cast(pa.string()))
    return t.take(pa.compute.sort_indices(t, [("task_id", "ascending")]))


@pytest.fixture(scope="module")
def parent_table() -> pa.Table:
    return fake_parent(400, seed=31)


def test_manifest_identical_for_1_and_8_partitions(spark, tmp_path, parent_table):
    from dhs.stages import stage4a

    old = spark.conf.get("spark.sql.shuffle.partitions")
    outs = []
    try:
        for n_part, n_files in ((1, 1), (8, 8)):
            root = str(tmp_path / f"p{n_part}")
            _write_parent(root, "v2_baseline_dr10", parent_table, n_files)
            spark.conf.set("spark.sql.shuffle.partitions", str(n_part))
            res = stage4a.run(spark, _cfg(root))
            assert not res.skipped and res.rows_out > 0
            outs.append((root, res))
    finally:
        spark.conf.set("spark.sql.shuffle.partitions", old)
    a, b = (_read(r.output_path) for _, r in outs)
    assert a.num_rows == outs[0][1].rows_out
    cols = [c for c in a.column_names]
    assert a.select(cols).equals(b.select(cols))

    # the Spark stage writes what the pure builder gives on the host rows
    flagged = parent_table.filter(parent_table.column("is_lrg_v2_baseline_dr10"))
    cfg = _cfg(outs[0][0])
    ref = build_manifest(flagged, cfg.stage4a, experiment_id="unit", seed=2024, grid=load_grid("grid_small")).table
    assert a.num_rows == ref.num_rows
    for c in ("task_id", "task_seed", "galaxy_id", "theta_e_arcsec", "src_x_arcsec", "control_of", "psf_bin"):
        assert a.column(c).to_pylist() == ref.column(c).to_pylist(), c
    listing = set(os.listdir(outs[0][1].output_path))
    assert {"_stage_config.json", "region_split=test", "region_split=train", "region_split=val"} <= listing

    # _stage_config.json: grid, priors, bin edges, seeds, counts per split and tier
    doc = read_stage_config(outs[0][1].output_path)
    assert doc["stage"] == "4a"
    assert doc["grid"]["name"] == "grid_small" and doc["grid"]["size"] == 48
    assert doc["priors"]["src_gr"] == {"dist": "normal", "mean": 1.15, "sigma": 0.3}
    assert len(doc["bin_edges"]["psfsize_r_arcsec"]) == 5 and len(doc["bin_edges"]["psfdepth_r_mag5"]) == 5
    assert doc["seeds"]["run_seed"] == 2024
    counts = doc["counts"]
    assert set(counts["per_split"]) == {"train", "val", "test"}
    assert counts["per_tier"]["grid"]["rows_positive"] + counts["per_tier"]["grid"]["rows_control"] == a.num_rows
    assert counts["parent_rows"] == parent_table.num_rows
    assert doc["config"]["stage4a"]["grid"] == "grid_small"


def test_rerun_skips_and_force_rewrites(spark, tmp_path, parent_table):
    from dhs.stages import stage4a

    root = str(tmp_path / "r")
    _write_parent(root, "v2_baseline_dr10", parent_table, 2)
    first = stage4a.run(spark, _cfg(root, tier="debug"))
    again = stage4a.run(spark, _cfg(root, tier="debug"))
    assert again.skipped and again.output_path == first.output_path
    before = _read(first.output_path)
    forced = config_from_dict({**json.loads(json.dumps(_cfg(root, tier="debug").resolved_dict())), "force": True},
                              check_inputs=False)
    res = stage4a.run(spark, forced)
    assert not res.skipped
    assert _read(res.output_path).equals(before)


def test_missing_parent_is_a_clear_error(spark, tmp_path):
    from dhs.stages import stage4a

    with pytest.raises(FileNotFoundError, match="phase3"):
        stage4a.run(spark, _cfg(str(tmp_path / "empty")))


def test_end_to_end_on_synthetic_sky(stage4a_result, debug_config):
    """`dhs run configs/debug.yaml --stage 4a` after stage 3: DESIGN columns, counts, stage config."""
    res = stage4a_result
    assert res.rows_out > 0
    t = _read(res.output_path)
    for c in DESIGN_COLUMNS + INTERFACE_EXTRAS:
        assert c in t.column_names, c
    df = t.to_pandas()
    s = debug_config.stage4a
    pos = df[df.is_control == 0]
    n_hosts = pos.galaxy_id.nunique()
    n_cells = df.groupby(["region_split", "psf_bin", "depth_bin"]).ngroups
    assert n_hosts == n_cells * s.n_hosts_per_cell or n_hosts <= n_cells * s.n_hosts_per_cell
    assert len(pos) == n_hosts * 48 * s.replicates
    assert abs((df.is_control == 1).mean() - s.control_fraction) < 0.01 + 1.0 / len(df)
    doc = read_stage_config(res.output_path)
    assert doc["counts"]["rows_out"] == len(df)
    assert set(doc["counts"]["per_split"]) == set(df.region_split)
