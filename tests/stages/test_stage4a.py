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


def test_rerun_skips_and_force_rewrites_with_known_lens_exclusion(spark, tmp_path, parent_table, shared_data):
    from dhs.sampling.known_lenses import read_known_lenses
    from dhs.stages import stage4a

    root = str(tmp_path / "r")
    # move 6 flagged hosts to 2" from real known lenses
    lens_file = shared_data / "lenses" / "training_lenses.tsv"
    ra_l, dec_l = read_known_lenses(lens_file)
    h = parent_table.to_pandas()
    near = h.index[h.is_lrg_v2_baseline_dr10][:6]
    h.loc[near, "ra"], h.loc[near, "dec"] = ra_l[:6], dec_l[:6] + 2.0 / 3600
    _write_parent(root, "v2_baseline_dr10", pa.Table.from_pandas(h, preserve_index=False), 2)
    first = stage4a.run(spark, _cfg(root, tier="debug"))
    again = stage4a.run(spark, _cfg(root, tier="debug"))
    assert again.skipped and again.output_path == first.output_path

    data = json.loads(json.dumps(_cfg(root, tier="debug").resolved_dict()))
    data["force"] = True
    data["stage4a"]["tier"] = "train"
    data["stage4a"]["n_hosts_per_cell"] = None
    data["stage4a"]["control_fraction"] = 0.5
    data["stage4a"]["known_lenses"] = {"enabled": True, "catalog": str(lens_file), "radius_arcsec": 5.0}
    res = stage4a.run(spark, config_from_dict(data, check_inputs=False))
    assert not res.skipped
    out = _read(res.output_path)
    assert not set(h.galaxy_id[near]) & set(out.column("galaxy_id").to_pylist())
    doc = read_stage_config(res.output_path)
    assert doc["counts"]["hosts_dropped"] == {"near_known_lens": 6}
    assert doc["known_lenses"]["hosts_excluded"] == 6
    assert doc["counts"]["per_tier"]["train"]["rows_control"] == int(np.sum(out.column("is_control").to_numpy()))
    # train tier: every eligible flagged host is used exactly once
    assert out.num_rows == int(h.is_lrg_v2_baseline_dr10.sum()) - 6


def test_missing_parent_is_a_clear_error(spark, tmp_path):
    from dhs.stages import stage4a

    with pytest.raises(FileNotFoundError, match="phase3"):
        stage4a.run(spark, _cfg(str(tmp_path / "empty")))


def test_end_to_end_on_synthetic_sky(stage4a_result, debug_config):
    """`dhs run configs/debug.yaml --stage 4a` after stage 3: DESIGN columns, row-count formula, controls,
    stage config."""
    from dhs.stages.common import stage_output_dir
    from tests.sampling.test_manifest import independent_bins

    res = stage4a_result
    t = _read(res.output_path)
    assert t.num_rows == res.rows_out > 0
    for c in DESIGN_COLUMNS + INTERFACE_EXTRAS:
        assert c in t.column_names, c
    df = t.to_pandas()
    s = debug_config.stage4a
    grid = load_grid(s.grid) if s.parameter_source == "grid" else None
    n_cfg = grid.size if grid is not None else 1
    # independent expectation from the stage 3 parent table
    parent = pq.read_table(stage_output_dir(debug_config, "3", "parent"), partitioning="hive").to_pandas()
    parent["region_split"] = parent.region_split.astype(str)
    hosts = parent[parent[f"is_lrg_{debug_config.variant}"] & (parent.psfsize_r > 0) & (parent.psfdepth_r > 0)
                   & np.isfinite(parent.mag_r)].copy()
    hosts["pb"], hosts["db"], _ = independent_bins(hosts.psfsize_r.to_numpy(), hosts.psfdepth_r.to_numpy(),
                                                   s.psf_bins, s.depth_bins)
    n_hosts = int(hosts.groupby(["region_split", "pb", "db"]).size().clip(upper=s.n_hosts_per_cell).sum())
    pos, ctl = df[df.is_control == 0], df[df.is_control == 1]
    assert pos.galaxy_id.nunique() == n_hosts
    assert len(pos) == n_hosts * n_cfg * s.replicates
    assert set(pos.config_id) == (set(grid.config_ids()) if grid is not None else {"prior"})
    assert not set(ctl.galaxy_id) & set(pos.galaxy_id)
    for split, g in df.groupby("region_split"):
        assert (g.is_control == 1).mean() == pytest.approx(s.control_fraction, abs=0.01), split
    matched = pos.set_index("task_id").loc[ctl.control_of]
    assert (matched.psf_bin.to_numpy() == ctl.psf_bin.to_numpy()).all()
    assert (matched.depth_bin.to_numpy() == ctl.depth_bin.to_numpy()).all()
    assert (matched.region_split.to_numpy() == ctl.region_split.to_numpy()).all()
    doc = read_stage_config(res.output_path)
    assert doc["counts"]["rows_out"] == len(df)
    assert set(doc["counts"]["per_split"]) == set(df.region_split)
    assert (doc["grid"]["name"] == s.grid) if grid is not None else doc["grid"] is None
    assert "bin_edges" in doc and "priors" in doc and "seeds" in doc
    # the shipped debug configuration draws θE against each host's PSF: ≥ 90 % resolved
    ratio = pos.theta_e_arcsec / pos.psf_fwhm_r_arcsec
    assert doc["counts"]["resolved_fraction"] == pytest.approx(float(np.mean(ratio >= 1.0)))
    assert doc["counts"]["resolved_fraction"] >= 0.9
