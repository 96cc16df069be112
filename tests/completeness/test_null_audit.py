"""Null injections in stage 4d (no Spark): never in completeness or false-positive rates; the audit rows
(null injections vs their matched controls, one per host); centre-masked features; an unbiased pipeline
gives null AUCs ≈ 0.5 and a leaking one does not."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.audit import (
    CENTRE_MASKED,
    FULL,
    audit_features,
    bootstrap_auc,
    centre_masked_features,
    null_audit_selection,
    radial_distance,
    roc_auc,
    shortcut_audit,
)
from dhs.completeness.surfaces import POP_COL, POP_NULL, population_code
from dhs.completeness.tables import compute_all_pandas
from dhs.config.stage4d import Stage4dConfig
from tests.completeness.fixture_tables import host_image, metrics_table, ring_image


def _with_nulls(df: pd.DataFrame, n_null: int, seed: int = 3) -> pd.DataFrame:
    """Turn ``n_null`` injection rows into null injections with recovered-looking (bright) metrics."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(np.flatnonzero(df["lens_model"].to_numpy() == "SIE"), n_null, replace=False)
    out = df.copy()
    out.loc[idx, "lens_model"] = "NULL"
    out.loc[idx, "arc_snr"] = 1000.0    # would count as recovered if a null row were ever an injection
    return out


def test_null_rows_are_in_no_rate():
    base = metrics_table(200, 100, seed=11)
    df = _with_nulls(base, 30)
    s = Stage4dConfig(snr_min=5.0, resolution_min=0.0)
    with_null = compute_all_pandas(df, s)
    without = compute_all_pandas(df[df["lens_model"] != "NULL"], s)
    comp_a = with_null["completeness"].drop(columns=[]).reset_index(drop=True)
    comp_b = without["completeness"].reset_index(drop=True)
    pd.testing.assert_frame_equal(comp_a, comp_b)
    # every row counted once: n_attempt over all populations = rows in; nulls carry population code 2
    assert with_null["counts"]["n_attempt"].sum() == len(df)
    assert with_null["counts"].loc[with_null["counts"][POP_COL] == POP_NULL, "n_attempt"].sum() == 30
    assert (population_code(df) == POP_NULL).sum() == 30
    # ... and not in false-positive rates either (a score table gives null rows high scores)
    scores = pd.DataFrame({"task_id": df["task_id"], "score": np.where(df["lens_model"] == "NULL", 0.99,
                                                                       np.linspace(0, 1, len(df)))})
    f_a = compute_all_pandas(df, s, scores)["fpr"]
    f_b = compute_all_pandas(df[df["lens_model"] != "NULL"], s, scores)["fpr"]
    pd.testing.assert_frame_equal(f_a.reset_index(drop=True), f_b.reset_index(drop=True))


def test_null_row_marked_control_is_an_error():
    df = _with_nulls(metrics_table(50, 20), 5)
    df.loc[df["lens_model"] == "NULL", "is_control"] = 1
    with pytest.raises(ValueError, match="NULL"):
        population_code(df)


def test_centre_masked_features_leave_out_the_core():
    size = 41
    core = np.stack([host_image(size, f, 1.0) for f in (1.0, 2.0, 3.0)])[None]
    ring = np.stack([ring_image(size, f, 8.0, 0.8) for f in (1.0, 2.0, 3.0)])[None]
    f_core = centre_masked_features(core, mask_radius_pix=4.0)
    f_ring = centre_masked_features(ring, mask_radius_pix=4.0)
    # a compact core (σ = 1 px) puts < 0.1 % of its light beyond 4 px; a ring at 8 px is all outside
    assert f_core["masked_total_flux"][0] < 1e-3 * 6.0
    r = radial_distance(size, size)
    ring_zone = (r >= 4.0) & (r < 0.75 * size / 2)
    for i, b in enumerate("grz"):
        assert f_ring[f"masked_flux_{b}"][0] == pytest.approx(ring[0, i][ring_zone].sum(), rel=1e-12)
    assert f_ring["masked_g_minus_r"][0] == pytest.approx(-2.5 * np.log10(1.0 / 2.0), abs=1e-3)
    feats, variants = audit_features(ring, core_radius_pix=3.0)
    assert {variants[k] for k in feats} == {FULL, CENTRE_MASKED}
    assert variants["central_flux_r"] == FULL and variants["masked_flux_r"] == CENTRE_MASKED
    with pytest.raises(ValueError, match="mask_radius_pix"):
        centre_masked_features(ring, mask_radius_pix=30.0)


def test_centre_masked_audit_separates_arcs_not_cores():
    """Injections = host + extra core light (a shortcut) + a faint ring: the full core features flag it; the
    centre-masked core-free features see only the ring."""
    df = metrics_table(300, 300, seed=2, stamps=True, size=48, extra_core_flux=3.0)
    arr = np.stack([np.frombuffer(b, dtype="<f4").reshape(3, 48, 48) for b in df["stamp"]])
    f, variants = audit_features(arr, core_radius_pix=4.0)
    pos, neg = df["is_control"].to_numpy() == 0, df["is_control"].to_numpy() == 1
    rows = {r["feature"]: r for r in shortcut_audit({k: v[pos] for k, v in f.items()},
                                                    {k: v[neg] for k, v in f.items()}, n_boot=100, variants=variants)}
    assert rows["central_flux_r"]["variant"] == FULL and rows["masked_flux_r"]["variant"] == CENTRE_MASKED
    assert rows["central_flux_r"]["flag"] in ("yellow", "red")


def _selection_rows():
    # null n1 on host A (two rows: identical stamps), n2 on host B, n3 (no matched control), n4 failed
    return pd.DataFrame({
        "task_id": ["n1a", "n1b", "n2", "n3", "n4", "c1", "c2", "c3", "c4", "c5", "c6", "i1"],
        "population": [2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 0],
        "control_of": [None, None, None, None, None, "n1a", "n1b", "n2", "i1", "n4", "n1b", None],
        "galaxy_id": ["A", "A", "B", "C", "D", "X", "X", "Y", "Z", "W", "V", "E"],
        "cutout_ok": [1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
    })


def test_null_audit_selection_pairs_one_row_per_host():
    sel = null_audit_selection(_selection_rows(), n_max=100, seed=1)
    nulls = sel[sel["population"] == 2]
    ctrls = sel[sel["population"] == 1]
    assert sorted(nulls["galaxy_id"]) == ["A", "B"]          # C has no matched control, D failed
    # Z matches an injection, W a failed null; as many control hosts as null hosts (one cell here)
    assert len(ctrls) == 2 and set(ctrls["galaxy_id"]) <= {"V", "X", "Y"}
    assert sel["task_id"].is_unique
    again = null_audit_selection(_selection_rows().sample(frac=1.0, random_state=4), n_max=100, seed=1)
    pd.testing.assert_frame_equal(sel, again)
    assert len(null_audit_selection(_selection_rows(), n_max=1, seed=1).query("population == 2")) == 1


def test_null_audit_selection_balances_cells():
    """Cell a: 3 null hosts, 1 control host; cell b: 1 null host, 3 control hosts → 1 + 1 of each class."""
    rows = pd.DataFrame({
        "task_id": ["na1", "na2", "na3", "nb1", "ca1", "ca2", "ca3", "cb1", "cb2", "cb3"],
        "population": [2, 2, 2, 2, 1, 1, 1, 1, 1, 1],
        "control_of": [None] * 4 + ["na1", "na2", "na3", "nb1", "nb1", "nb1"],
        "galaxy_id": ["A1", "A2", "A3", "B1", "P", "P", "P", "Q1", "Q2", "Q3"],
        "cutout_ok": [1] * 10,
        "region_split": ["train"] * 10,
        "psf_bin": [0, 0, 0, 1, 0, 0, 0, 1, 1, 1],
        "depth_bin": [0] * 10,
    })
    sel = null_audit_selection(rows, n_max=100, seed=3)
    cell = dict(zip(rows["galaxy_id"], rows["psf_bin"]))
    for pop in (1, 2):
        got = sel[sel["population"] == pop]
        assert sorted(cell[g] for g in got["galaxy_id"]) == [0, 1]
    capped = null_audit_selection(rows, n_max=1, seed=3)
    assert (capped["population"] == 2).sum() == 1 and (capped["population"] == 1).sum() == 1


def _host_population(n: int, rng: np.random.Generator, size: int = 32, bright: float = 0.0) -> np.ndarray:
    """Host stamps (N, 3, size, size): Gaussian hosts of random flux and width plus sky noise."""
    out = np.empty((n, 3, size, size))
    for i in range(n):
        f = rng.lognormal(np.log(10.0) + bright, 0.5)
        s = rng.uniform(1.5, 3.0)
        out[i] = np.stack([host_image(size, f * c, s) for c in (0.5, 1.0, 1.6)]) + rng.normal(0, 0.02, (3, size, size))
    return out


@pytest.mark.parametrize("leak, expect_flag", [(0.0, False), (0.6, True)])
def test_null_audit_aucs_are_half_unless_the_pipeline_leaks(leak, expect_flag):
    """Null stamps are their hosts (zero flux). Hosts of nulls and of controls drawn from one population give
    AUCs ≈ 0.5 on every feature (within 4σ of the Mann–Whitney null); a pipeline that picks brighter control
    hosts (``leak`` in ln flux) is flagged."""
    rng = np.random.default_rng(17)
    n = 400
    null_hosts = _host_population(n, rng)
    ctrl_hosts = _host_population(n, rng, bright=leak)
    fn, variants = audit_features(null_hosts)
    fc, _ = audit_features(ctrl_hosts)
    rows = shortcut_audit(fn, fc, n_boot=200, seed=5, variants=variants)
    sigma = np.sqrt((2 * n + 1) / (12.0 * n * n))
    if not expect_flag:
        for r in rows:
            assert abs(r["auc"] - 0.5) < 4 * sigma, r
            assert not r["flagged"], r
    else:
        assert any(r["flagged"] for r in rows if r["variant"] == FULL)
        assert roc_auc(fn["total_flux"], fc["total_flux"]) < 0.5 - 4 * sigma
    auc, lo, hi = bootstrap_auc(fn["central_flux_r"], fc["central_flux_r"], n_boot=200, seed=1)
    assert lo <= auc <= hi
