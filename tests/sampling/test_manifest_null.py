"""Null injections in the stage 4a manifest (no Spark): share, columns, θE as for injections, zero source
flux, matched controls, determinism; and the selection_set_id every row carries."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from dhs.config.stage4a import Stage4aConfig
from dhs.sampling.grids import load_grid
from dhs.sampling.manifest import build_manifest
from tests.sampling.fake_hosts import fake_parent

GRID = load_grid("grid_small")


@pytest.fixture(scope="module")
def hosts() -> pa.Table:
    return fake_parent(900, seed=5)


def _build(hosts, **kw):
    s = Stage4aConfig(**kw)
    return build_manifest(hosts, s, experiment_id="n", seed=3, grid=GRID if s.parameter_source == "grid" else None)


@pytest.mark.parametrize("tier, kw", [("grid", {"n_hosts_per_cell": 2, "control_fraction": 0.2}),
                                      ("train", {"parameter_source": "priors", "replicates": 2})])
def test_null_share_columns_and_controls(hosts, tier, kw):
    res = _build(hosts, tier=tier, null_fraction=0.1, **kw)
    df = res.table.to_pandas()
    pos = df[df.is_control == 0]
    null = df[df.lens_model == "NULL"]
    # the configured share of the non-control rows, per split within half a row (cumulative rounding)
    for split, grp in pos.groupby("region_split"):
        assert abs((grp.lens_model == "NULL").sum() - 0.1 * len(grp)) <= 0.5 + 1e-9
    assert res.counts["rows_null"] == len(null) and res.counts["rows_injection"] == len(pos) - len(null)
    assert (null.is_control == 0).all() and null.control_of.isna().all()
    assert set(df.lens_model) == {"SIE", "NULL", "CONTROL"}
    # source flux 0: magnitude +inf, no brightness target; θE and the other parameters drawn as for injections
    assert np.isinf(null.src_mag_r).all() and np.isinf(null.src_dmag).all()
    target = "target_snr" if "target_snr" in df.columns else "target_arc_snr_sum"
    assert null[target].isna().all()
    assert (null.theta_e_arcsec > 0).all() and null.src_reff_arcsec.notna().all() and null.lens_e1.notna().all()
    inj = pos[pos.lens_model == "SIE"]
    assert np.isfinite(inj.src_mag_r).all()
    if tier == "grid":
        assert set(null.theta_e_arcsec) <= set(GRID.as_dict()["theta_e_arcsec"])
        # a null row has exactly the parameters of its grid config
        cfg_theta = dict(zip(inj.config_id, inj.theta_e_arcsec))
        assert all(cfg_theta[c] == t for c, t in zip(null.config_id, null.theta_e_arcsec) if c in cfg_theta)
    # every null row has a matched control whenever its cell has at least as many controls as null rows
    ctl = df[df.is_control == 1]
    matched = set(ctl.control_of)
    cells = df.groupby(["region_split", "psf_bin", "depth_bin"])
    for _, c in cells:
        n_null, n_ctl = (c.lens_model == "NULL").sum(), (c.is_control == 1).sum()
        if n_ctl >= n_null:
            assert set(c.task_id[c.lens_model == "NULL"]) <= matched
    assert len(set(null.task_id) & matched) > 0
    # no null row in completeness bookkeeping: controls match hosts of the same cell, never a null host
    assert not set(ctl.galaxy_id) & set(pos.galaxy_id) or kw.get("control_mode") == "paired"


def test_theta_e_of_null_rows_is_drawn_like_injections(hosts):
    """Priors tier, θE against the host PSF: the null rows' θE/PSF follows the injections' distribution."""
    res = _build(hosts, tier="train", parameter_source="priors", theta_e_mode="psf_ratio", replicates=4,
                 null_fraction=0.3)
    df = res.table.to_pandas()
    null, inj = df[df.lens_model == "NULL"], df[df.lens_model == "SIE"]
    assert len(null) > 200
    # same distribution: means and quartiles agree within 4 standard errors of the difference
    a, b = null.theta_e_over_psf.to_numpy(), inj.theta_e_over_psf.to_numpy()
    se = np.sqrt(a.var() / len(a) + b.var() / len(b))
    assert abs(a.mean() - b.mean()) < 4 * se
    for q in (0.25, 0.5, 0.75):
        assert abs(np.quantile(a, q) - np.quantile(b, q)) < 4 * se * 1.6   # quantile s.e. ≈ 1.25–1.6 × mean's
    assert (a > 0).all() and np.allclose(null.theta_e_arcsec.to_numpy(), a * null.psf_fwhm_r_arcsec.to_numpy(), rtol=1e-12)


def test_null_rows_are_deterministic_and_zero_by_default(hosts):
    a = _build(hosts, tier="grid", n_hosts_per_cell=1, null_fraction=0.05).table
    b = _build(hosts.take(pa.array(np.random.default_rng(1).permutation(hosts.num_rows))), tier="grid",
               n_hosts_per_cell=1, null_fraction=0.05).table
    assert a.equals(b)
    off = _build(hosts, tier="grid", n_hosts_per_cell=1).table.to_pandas()
    assert (off.lens_model != "NULL").all()
    # turning the audit on changes which positive rows are null (and which positive each control matches),
    # not the positive task ids, their seeds and hosts, nor the control hosts
    on = a.to_pandas()
    p_on, p_off = on[on.is_control == 0], off[off.is_control == 0]
    assert list(p_on.task_id) == list(p_off.task_id) and list(p_on.task_seed) == list(p_off.task_seed)
    assert list(p_on.galaxy_id) == list(p_off.galaxy_id)
    assert sorted(on.galaxy_id[on.is_control == 1]) == sorted(off.galaxy_id[off.is_control == 1])


def test_every_row_carries_a_selection_set_id(hosts):
    df = _build(hosts, tier="grid", n_hosts_per_cell=1).table.to_pandas()
    assert (df.selection_set_id == "all").all()
    # hosts tagged with two sets give one manifest per set, rows told apart by set id and task id
    h = hosts.to_pandas()
    t1 = pa.Table.from_pandas(h.assign(selection_set_id="setA"), preserve_index=False)
    t2 = pa.Table.from_pandas(h.iloc[::2].assign(selection_set_id="setB"), preserve_index=False)
    res = build_manifest(pa.concat_tables([t1, t2]), Stage4aConfig(tier="grid", n_hosts_per_cell=1,
                                                                    null_fraction=0.1),
                         experiment_id="n", seed=3, grid=GRID)
    df2 = res.table.to_pandas()
    assert set(df2.selection_set_id) == {"setA", "setB"} and df2.task_id.is_unique
    assert all(t.startswith(f"n/{s}/") for t, s in zip(df2.task_id, df2.selection_set_id))
    ctl = df2[df2.is_control == 1]
    set_of = dict(zip(df2.task_id, df2.selection_set_id))
    assert all(set_of[p] == s for p, s in zip(ctl.control_of, ctl.selection_set_id))
    assert set(res.counts["per_selection_set"]) == {"setA", "setB"}
    # one PSF × depth binning for the experiment: a host has the same bins in every set
    both = df2.groupby("galaxy_id")[["psf_bin", "depth_bin"]].nunique()
    assert (both.max(axis=1) == 1).all()
