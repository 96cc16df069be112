"""Matched controls: counts, matching arithmetic, and on whole manifests: disjoint hosts, same split and
PSF × depth bin as their positive, control fraction per tier, paired mode."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dhs.config.stage4a import Stage4aConfig
from dhs.sampling.controls import (
    control_ratio,
    controls_per_cell,
    cumulative_round,
    match_controls,
    reserved_control_hosts,
)
from dhs.sampling.grids import load_grid
from dhs.sampling.manifest import build_manifest
from tests.sampling.fake_hosts import fake_parent


def test_cumulative_round_keeps_totals():
    a = np.full(37, 1.0 / 3.0)
    n = cumulative_round(a)
    assert n.sum() == round(37 / 3)
    assert np.all(np.abs(np.cumsum(n) - np.cumsum(a)) <= 0.5 + 1e-12)
    assert set(n.tolist()) <= {0, 1}


def test_controls_per_cell_hits_fraction():
    pos = np.array([48, 96, 0, 48, 144])
    c = controls_per_cell(pos, 0.25)
    assert c.sum() == round(pos.sum() / 3)
    assert c[2] == 0 or c[2] == 1
    assert control_ratio(0.5) == 1.0
    with pytest.raises(ValueError):
        control_ratio(1.0)


def test_reserved_hosts_train_fraction():
    n = np.array([7, 9, 1, 30, 4])
    c = reserved_control_hosts(n, 0.5, 1)
    assert abs(c.sum() - n.sum() / 2) <= 1 and np.all(c <= np.maximum(n - 1, 0))
    assert reserved_control_hosts(np.array([1, 1, 1]), 0.5, 1).tolist() == [0, 0, 0]
    c3 = reserved_control_hosts(n, 0.5, 3)  # 3 rows per positive host: c ≈ 3(n − c), i.e. c ≈ 0.75 n
    # within ½ of the exact total, plus the 0.75 the single-host cell cannot give (it keeps its positive)
    assert abs(c3.sum() - 0.75 * n.sum()) <= 0.5 + 0.75 and c3[2] == 0


def test_match_controls_cycles_positives_and_pool():
    m = match_controls(5, np.array([4, 2, 3]), np.arange(10), np.array([7, 8]))
    assert m.positive.tolist() == [4, 2, 3, 4, 2]
    assert m.host.tolist() == [7, 8, 7, 8, 7]
    assert m.j.tolist() == [0, 0, 0, 1, 1]
    p = match_controls(2, np.array([1, 0]), np.array([11, 12]), np.array([], dtype=int), paired=True)
    assert p.host.tolist() == [12, 11]
    assert len(match_controls(3, np.array([0]), np.array([1]), np.array([], dtype=int)).host) == 0


def _frame(table) -> pd.DataFrame:
    return table.to_pandas()


def _check_matched(df: pd.DataFrame, paired: bool = False) -> None:
    pos = df[df.is_control == 0].set_index("task_id")
    ctl = df[df.is_control == 1]
    assert len(ctl) > 0
    assert ctl.control_of.notna().all() and ctl.control_of.isin(pos.index).all()
    matched = pos.loc[ctl.control_of.to_numpy()]
    # same split and the same PSF × depth bin as the positive each control matches
    assert (matched.region_split.to_numpy() == ctl.region_split.to_numpy()).all()
    assert (matched.psf_bin.to_numpy() == ctl.psf_bin.to_numpy()).all()
    assert (matched.depth_bin.to_numpy() == ctl.depth_bin.to_numpy()).all()
    # the bin histograms per split therefore agree exactly
    for s in df.region_split.unique():
        hc = ctl[ctl.region_split == s].groupby(["psf_bin", "depth_bin"]).size()
        hp = matched[matched.region_split == s].groupby(["psf_bin", "depth_bin"]).size()
        pd.testing.assert_series_equal(hc, hp)
    if paired:
        assert (matched.galaxy_id.to_numpy() == ctl.galaxy_id.to_numpy()).all()
    else:
        assert not set(ctl.galaxy_id) & set(pos.galaxy_id)
    assert (ctl.theta_e_arcsec == 0).all() and (ctl.lens_model == "CONTROL").all()
    assert ctl.src_mag_r.isna().all() and ctl.src_x_arcsec.isna().all() and ctl.lens_e1.isna().all()
    assert (pos.lens_model == "SIE").all() and pos.control_of.isna().all()


@pytest.mark.parametrize("tier, fraction, per_cell", [
    ("train", 0.5, None), ("train", 0.3, None), ("train", 0.5, 3), ("grid", 0.1, 3), ("debug", 0.25, 1), ("grid", 0.5, 2),
])
def test_unpaired_controls_matched_and_fraction(tier, fraction, per_cell):
    hosts = fake_parent(3000, seed=11)
    s = Stage4aConfig(tier=tier, control_fraction=fraction, n_hosts_per_cell=per_cell)
    res = build_manifest(hosts, s, experiment_id="c", seed=3, grid=load_grid("grid_small"))
    df = _frame(res.table)
    _check_matched(df)
    for split, g in df.groupby("region_split"):
        frac = (g.is_control == 1).mean()
        assert frac == pytest.approx(fraction, abs=0.01), (split, frac)
        assert res.counts["per_split"][split]["controls_missing"] == 0
    assert res.counts["rows_control"] == int((df.is_control == 1).sum())


def test_train_tier_controls_are_distinct_hosts():
    hosts = fake_parent(3000, seed=12)
    s = Stage4aConfig(tier="train", parameter_source="priors", control_fraction=0.5)
    df = _frame(build_manifest(hosts, s, experiment_id="c", seed=4).table)
    ctl = df[df.is_control == 1]
    assert ctl.galaxy_id.is_unique
    assert df.galaxy_id.is_unique  # train: one row per host (one draw per positive host, one per control)


def test_paired_mode_uses_the_positive_host():
    hosts = fake_parent(800, seed=13)
    s = Stage4aConfig(tier="grid", control_mode="paired", control_fraction=0.2, n_hosts_per_cell=2)
    df = _frame(build_manifest(hosts, s, experiment_id="p", seed=5, grid=load_grid("grid_small")).table)
    _check_matched(df, paired=True)
    assert (df.is_control == 1).mean() == pytest.approx(0.2, abs=0.01)


def test_zero_control_fraction_gives_no_controls():
    hosts = fake_parent(500, seed=14)
    s = Stage4aConfig(tier="grid", control_fraction=0.0, n_hosts_per_cell=1)
    df = _frame(build_manifest(hosts, s, experiment_id="z", seed=5, grid=load_grid("grid_small")).table)
    assert (df.is_control == 0).all()
