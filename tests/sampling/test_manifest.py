"""Manifest rows: row-count formula per tier, bins, task ids and seeds, determinism, guardrail, columns
and the physical relations between columns."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import xxhash

from dhs.config.stage4a import Stage4aConfig
from dhs.sampling.grids import load_grid
from dhs.sampling.manifest import ManifestError, ManifestTooLarge, build_manifest, expected_rows
from tests.sampling.fake_hosts import fake_parent

DESIGN_COLUMNS = [
    "task_id", "task_seed", "experiment_id", "galaxy_id", "brickname", "ra", "dec", "region_split",
    "is_control", "control_of", "config_id", "lens_model", "theta_e_arcsec", "lens_e1", "lens_e2", "gamma1",
    "gamma2", "src_x_arcsec", "src_y_arcsec", "src_reff_arcsec", "src_n_sersic", "src_e1", "src_e2", "src_dmag",
    "src_mag_r", "src_gr", "src_rz", "source_mode", "cosmos_index", "psf_bin", "depth_bin", "stamp_size"]
INTERFACE_EXTRAS = [
    "psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z", "psfdepth_r_mag5", "ebv",
    "mag_r", "type", "selection_sets", "tier", "replicate", "target_snr", "target_snr_metric", "src_mag_g",
    "src_mag_z",
    "lens_pa_rad", "cosmos_index", "src_hlr_target_arcsec"]

GRID = load_grid("grid_small")


def independent_bins(psfsize_r: np.ndarray, psfdepth_r: np.ndarray, n_psf: int, n_depth: int):
    """Quantile bins written from scratch: np.percentile edges, np.digitize on interior edges."""
    mag5 = 22.5 - 2.5 * np.log10(5.0 / np.sqrt(psfdepth_r))
    pe = np.percentile(psfsize_r, np.linspace(0, 100, n_psf + 1))
    de = np.percentile(mag5, np.linspace(0, 100, n_depth + 1))
    return np.digitize(psfsize_r, pe[1:-1]), np.digitize(mag5, de[1:-1]), mag5


@pytest.fixture(scope="module")
def hosts() -> pa.Table:
    return fake_parent(900, seed=21)


def _df(res) -> pd.DataFrame:
    return res.table.to_pandas()


@pytest.mark.parametrize("per_cell, reps", [(1, 1), (2, 3), (4, 1)])
def test_grid_tier_row_count_formula(hosts, per_cell, reps):
    s = Stage4aConfig(tier="grid", n_hosts_per_cell=per_cell, replicates=reps, control_fraction=0.2)
    res = build_manifest(hosts, s, experiment_id="g", seed=1, grid=GRID)
    df = _df(res)
    h = hosts.to_pandas()
    pb, db, _ = independent_bins(h.psfsize_r.to_numpy(), h.psfdepth_r.to_numpy(), 4, 4)
    h["pb"], h["db"] = pb, db
    n_hosts = int(h.groupby(["region_split", "pb", "db"]).size().clip(upper=per_cell).sum())
    n_pos = n_hosts * 48 * reps
    assert (df.is_control == 0).sum() == n_pos
    # every sampled host gets every config × every replicate exactly once
    pos = df[df.is_control == 0]
    assert pos.groupby("galaxy_id").size().eq(48 * reps).all()
    assert pos.groupby(["galaxy_id", "config_id"]).size().eq(reps).all()
    assert abs(len(df) - expected_rows(n_hosts, 48, reps, 0.2)) <= 3  # cumulative rounding per split
    assert res.counts["rows_out"] == len(df) and res.counts["rows_positive"] == n_pos
    # bins agree with an independent computation
    bins = h.set_index("galaxy_id")[["pb", "db"]].loc[df.galaxy_id]
    assert (bins.pb.to_numpy() == df.psf_bin.to_numpy()).all()
    assert (bins.db.to_numpy() == df.depth_bin.to_numpy()).all()


def test_train_tier_one_config_per_host_balanced(hosts):
    s = Stage4aConfig(tier="train", control_fraction=0.5, replicates=1)
    df = _df(build_manifest(hosts, s, experiment_id="t", seed=2, grid=GRID))
    pos = df[df.is_control == 0]
    assert pos.galaxy_id.is_unique
    assert len(df) == hosts.num_rows  # all hosts used: positives + reserved controls
    counts = pos.config_id.value_counts()
    assert set(counts.index) <= set(GRID.config_ids())
    # round-robin inside each cell: no config used more than (cells) times above another
    n_cells = df.groupby(["region_split", "psf_bin", "depth_bin"]).ngroups
    assert counts.max() - (counts.min() if len(counts) == 48 else 0) <= n_cells


def test_train_tier_replicates_give_distinct_configs(hosts):
    s = Stage4aConfig(tier="train", control_fraction=0.5, replicates=3)
    df = _df(build_manifest(hosts, s, experiment_id="t", seed=2, grid=GRID))
    pos = df[df.is_control == 0]
    assert pos.groupby("galaxy_id").size().eq(3).all()
    assert pos.groupby("galaxy_id").config_id.nunique().eq(3).all()
    assert (df.is_control == 1).mean() == pytest.approx(0.5, abs=0.01)


def test_task_ids_unique_and_seeds_are_xxhash64_of_task_id(hosts):
    s = Stage4aConfig(tier="grid", n_hosts_per_cell=1)
    df = _df(build_manifest(hosts, s, experiment_id="exp1", seed=777, grid=GRID))
    assert df.task_id.is_unique
    for tid, ts in zip(df.task_id[:300], df.task_seed[:300]):
        u = xxhash.xxh64_intdigest(tid.encode(), seed=777)
        assert ts == (u - (1 << 64) if u >= (1 << 63) else u)
    pos = df[df.is_control == 0].iloc[0]
    assert pos.task_id == f"exp1/{pos.galaxy_id}/{pos.config_id}/r0"
    ctl = df[df.is_control == 1].iloc[0]
    assert ctl.task_id.startswith(ctl.control_of + "/ctl")
    assert df.task_seed.dtype == np.int64


def test_deterministic_and_independent_of_input_order(hosts):
    s = Stage4aConfig(tier="grid", n_hosts_per_cell=2, control_fraction=0.3)
    a = build_manifest(hosts, s, experiment_id="d", seed=9, grid=GRID).table
    perm = np.random.default_rng(0).permutation(hosts.num_rows)
    b = build_manifest(hosts.take(pa.array(perm)), s, experiment_id="d", seed=9, grid=GRID).table
    assert a.equals(b)
    c = build_manifest(hosts, s, experiment_id="d", seed=10, grid=GRID).table
    assert not a.column("task_seed").equals(c.column("task_seed"))


def test_guardrail_refuses_large_manifest(hosts):
    s = Stage4aConfig(tier="grid", n_hosts_per_cell=5, max_rows=1000)
    with pytest.raises(ManifestTooLarge, match="stage4a.max_rows = 1000") as exc:
        build_manifest(hosts, s, experiment_id="big", seed=1, grid=load_grid("grid_full"))
    assert "3024 configs" in str(exc.value)


def test_columns_contract(hosts):
    s = Stage4aConfig(tier="debug")
    t = build_manifest(hosts, s, experiment_id="cols", seed=1, grid=GRID).table
    for c in DESIGN_COLUMNS + INTERFACE_EXTRAS:
        assert c in t.column_names, c
    assert t.schema.field("task_seed").type == pa.int64()
    assert t.schema.field("is_control").type == pa.int32()
    assert t.schema.field("replicate").type == pa.int32()
    assert t.schema.field("cosmos_index").type == pa.int64()
    df = t.to_pandas()
    assert (df.cosmos_index == -1).all() and (df.stamp_size == 64).all()
    assert set(df.lens_model) == {"SIE", "CONTROL"}
    assert df.target_snr.isna().all() and df.target_snr_metric.isna().all() and df.src_hlr_target_arcsec.isna().all()
    assert df.src_mag_g.isna().all() and df.src_mag_z.isna().all()
    assert list(df.selection_sets.iloc[0]) in (["topk_density_k100"], ["topk_density_k100", "strat_psf_weighted"])


def test_physical_relations_between_columns(hosts):
    s = Stage4aConfig(tier="grid", n_hosts_per_cell=1)
    df = _df(build_manifest(hosts, s, experiment_id="phys", seed=4, grid=GRID))
    pos = df[df.is_control == 0]
    cfg = {c.config_id: c for c in GRID.configs()}
    te = np.array([cfg[k].theta_e_arcsec for k in pos.config_id])
    np.testing.assert_allclose(pos.theta_e_arcsec, te)
    np.testing.assert_allclose(pos.src_dmag, [cfg[k].src_dmag for k in pos.config_id])
    np.testing.assert_allclose(pos.src_mag_r, pos.mag_r + pos.src_dmag, rtol=0, atol=1e-12)
    np.testing.assert_allclose(np.hypot(pos.src_e1, pos.src_e2), [cfg[k].src_e for k in pos.config_id], atol=1e-12)
    np.testing.assert_allclose(np.hypot(pos.gamma1, pos.gamma2), [cfg[k].shear for k in pos.config_id], atol=1e-12)
    np.testing.assert_allclose(pos.src_reff_arcsec, [cfg[k].src_reff_arcsec for k in pos.config_id])
    # lens ellipticity: e = |e|(cos 2φ, sin 2φ) with φ = lens_pa_rad
    mod = np.hypot(pos.lens_e1, pos.lens_e2)
    np.testing.assert_allclose(pos.lens_e1, mod * np.cos(2 * pos.lens_pa_rad), atol=1e-12)
    assert (np.hypot(pos.src_x_arcsec, pos.src_y_arcsec) <= 0.5 * pos.theta_e_arcsec + 1e-12).all()
    beta = 3.5
    fac = 4 * (beta - 1) * math.sqrt(2 ** (1 / beta) - 1) / (math.sqrt(2 * beta - 1) * 2.354820045)
    np.testing.assert_allclose(pos.psf_fwhm_r_arcsec, pos.psfsize_r * fac, rtol=1e-8)
    np.testing.assert_allclose(pos.psfdepth_r_mag5, 22.5 - 2.5 * np.log10(5 / np.sqrt(pos.psfdepth_r)), rtol=1e-12)


def test_priors_absolute_magnitude_cosmos_and_targeting(hosts):
    s = Stage4aConfig(tier="train", parameter_source="priors", src_mag_mode="absolute", source_mode="cosmos",
                      brightness_targeting=True, priors={"src_mag_r": {"dist": "uniform", "low": 23, "high": 26}})
    df = _df(build_manifest(hosts, s, experiment_id="abs", seed=4))
    pos = df[df.is_control == 0]
    assert pos.src_mag_r.between(23, 26).all()
    np.testing.assert_allclose(pos.src_dmag, pos.src_mag_r - pos.mag_r, atol=1e-12)
    assert (pos.config_id == "prior").all() and pos.grid_name.isna().all()
    assert (pos.source_mode == "cosmos").all()
    np.testing.assert_allclose(pos.src_hlr_target_arcsec, pos.src_reff_arcsec)
    assert (pos.target_snr >= 0.8).all() and (pos.target_snr_metric == "arc_snr").all()
    ctl = df[df.is_control == 1]
    assert ctl.target_snr.isna().all() and ctl.target_snr_metric.isna().all()


def test_ineligible_hosts_dropped_and_counted(hosts):
    h = hosts.to_pandas()
    h.loc[:9, "psfsize_r"] = 0.0
    h.loc[10:14, "psfdepth_r"] = np.nan
    h.loc[15:16, "mag_r"] = np.nan
    t = pa.Table.from_pandas(h, preserve_index=False)
    res = build_manifest(t, Stage4aConfig(tier="train"), experiment_id="e", seed=1, grid=GRID)
    assert res.dropped == {"bad_psfsize_r": 10, "bad_psfdepth_r": 5, "bad_mag_r": 2}
    assert not set(h.galaxy_id[:17]) & set(res.table.column("galaxy_id").to_pylist())


def test_bad_host_tables_name_the_column(hosts):
    with pytest.raises(ManifestError, match="psfsize_r"):
        build_manifest(hosts.drop_columns(["psfsize_r"]), Stage4aConfig(), experiment_id="e", seed=1, grid=GRID)
    dup = pa.concat_tables([hosts.slice(0, 3), hosts.slice(0, 1)])
    with pytest.raises(ManifestError, match="duplicate galaxy_id"):
        build_manifest(dup, Stage4aConfig(), experiment_id="e", seed=1, grid=GRID)
    with pytest.raises(ManifestError, match="grid"):
        build_manifest(hosts, Stage4aConfig(), experiment_id="e", seed=1, grid=None)


def test_known_lens_exclusion(hosts, shared_data):
    from dhs.sampling.known_lenses import near_known_lens, read_known_lenses

    ra_l, dec_l = read_known_lenses(shared_data / "lenses" / "training_lenses.tsv")
    assert len(ra_l) == 1615
    ra_s, _ = read_known_lenses(shared_data / "lenses" / "SLACS_table.cat")
    assert len(ra_s) == 59 and ra_s[0] == pytest.approx(7.282417)
    # put 5 hosts 3" (in Dec) from real lenses and 5 hosts 30" away
    h = hosts.to_pandas()
    h.loc[:4, "ra"], h.loc[:4, "dec"] = ra_l[:5], dec_l[:5] + 3.0 / 3600
    h.loc[5:9, "ra"], h.loc[5:9, "dec"] = ra_l[5:10], dec_l[5:10] + 30.0 / 3600
    mask = near_known_lens(h.ra.to_numpy(), h.dec.to_numpy(), ra_l, dec_l, 10.0)
    assert mask[:5].all() and not mask[5:10].any()
    t = pa.Table.from_pandas(h, preserve_index=False)
    res = build_manifest(t, Stage4aConfig(tier="train"), experiment_id="k", seed=1, grid=GRID, exclude=mask)
    assert res.dropped.get("near_known_lens") == int(mask.sum())
    assert not set(h.galaxy_id[:5]) & set(res.table.column("galaxy_id").to_pylist())


def test_known_lens_catalogue_errors(tmp_path):
    from dhs.sampling.known_lenses import KnownLensError, lenscat_available, lenscat_lenses, read_known_lenses

    bad = tmp_path / "lenses.csv"
    bad.write_text("name,alpha_x,delta_x\nA,1.0,2.0\n")
    with pytest.raises(KnownLensError, match="lenses.csv: no RA column"):
        read_known_lenses(bad)
    nan = tmp_path / "nan.csv"
    nan.write_text("ra,dec\n1.0,2.0\n3.0,95.0\n")
    with pytest.raises(KnownLensError, match="row 1"):
        read_known_lenses(nan)
    with pytest.raises(KnownLensError, match="not found"):
        read_known_lenses(tmp_path / "missing.fits")
    if lenscat_available():
        ra, dec = lenscat_lenses()
        assert len(ra) > 1000 and np.all(np.abs(dec) <= 90)
    else:
        with pytest.raises(KnownLensError, match="lenscat"):
            lenscat_lenses()


def test_fits_known_lens_catalogue(tmp_path):
    from astropy.table import Table

    from dhs.sampling.known_lenses import read_known_lenses

    p = tmp_path / "l.fits"
    Table({"RA": [10.0, 370.0], "DEC": [-5.0, 1.0]}).write(p)
    ra, dec = read_known_lenses(p)
    assert ra.tolist() == [10.0, 10.0] and dec.tolist() == [-5.0, 1.0]


def test_config_errors_name_stage4a_keys(tmp_path):
    from dhs.config import ConfigError, config_from_dict

    base = {"survey_root": str(tmp_path), "output_root": str(tmp_path)}
    with pytest.raises(ConfigError, match="stage4a.grid"):
        config_from_dict({**base, "stage4a": {"grid": "grid_does_not_exist"}})
    with pytest.raises(ConfigError, match="known_lenses"):
        config_from_dict({**base, "stage4a": {"known_lenses": {"enabled": True}}})
    with pytest.raises(ConfigError, match="stage4a.known_lenses.catalog"):
        config_from_dict({**base, "stage4a": {"known_lenses": {"enabled": True, "catalog": "nope.csv"}}})
    with pytest.raises(ConfigError, match="stage4a.control_fraction"):
        config_from_dict({**base, "stage4a": {"control_fraction": 1.0}})
    with pytest.raises(ConfigError, match="stage4a.tir"):
        config_from_dict({**base, "stage4a": {"tir": "grid"}})
    cfg = config_from_dict({**base, "stage4a": {}})
    assert cfg.stage4a.effective_control_fraction() == 0.25 and cfg.stage4a.effective_hosts_per_cell() == 1
    assert cfg.stage4a.model_copy(update={"tier": "train"}).effective_control_fraction() == 0.5
