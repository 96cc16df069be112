"""Completeness surfaces: NULL safety, denominators, model-score path by hand, region aggregate."""

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.intervals import jeffreys_interval, wilson_interval
from dhs.completeness.recovery import join_scores, proxy_definition, score_definitions
from dhs.completeness.surfaces import (
    BinDef,
    aggregate_counts,
    control_mask,
    derive_rows,
    rate_table,
    region_aggregate,
    validity_flags,
)
from tests.completeness.fixture_tables import metrics_table

THETA = BinDef("theta_e", "theta_e_arcsec", width=0.05)
REGION = BinDef("region", "region_id", categorical=True)
SPLIT = BinDef("split", "region_split", categorical=True)
BINS = [THETA, REGION, SPLIT]
KEYS = ["is_control_row"] + [k for b in BINS for k in (b.key, b.key_lo)]


def _surface(df, defs, group, population="injection"):
    rows = derive_rows(df, defs, BINS)
    counts = aggregate_counts(rows, KEYS, defs)
    return rate_table(counts, group, defs, population)


def test_validity_flags_null_safe():
    df = pd.DataFrame({
        "cutout_ok": pd.array([1, 1, 0, None, 1], dtype="Int64"),
        "arc_snr": pd.array([3.0, None, 3.0, 3.0, np.nan], dtype="Float64"),
        "bad_pixel_frac": [0.1, 0.1, 0.1, 0.1, None],
        "wise_brightmask_frac": [0.3, 0.0, 0.0, 0.0, 0.0],
    })
    v_all, v_clean = validity_flags(df, ["arc_snr"])
    assert v_all.tolist() == [True, False, False, False, False]
    assert v_clean.tolist() == [False, False, False, False, False]  # wise 0.3 > 0.2
    v_all, v_clean = validity_flags(df, [], max_wise_brightmask_frac=0.5)
    assert v_all.tolist() == [True, True, False, False, True]
    assert v_clean.tolist() == [True, True, False, False, False]  # null bad_pixel_frac is not clean


def test_null_rows_count_in_attempt_not_valid_and_totals_add_up():
    df = metrics_table()
    inj = df[df["lens_model"] != "CONTROL"]
    d = proxy_definition()
    t = _surface(df, [d], [THETA])
    for sel in ("all", "clean"):
        s = t[t["selection"] == sel]
        assert s["n_attempt"].sum() == len(inj)
        assert (s["n_valid"] <= s["n_attempt"]).all() and (s["n_recovered"] <= s["n_valid"]).all()
    s = t[t["selection"] == "all"]
    null_rows = inj["arc_snr"].isna() | (inj["cutout_ok"] != 1)
    assert null_rows.sum() > 10  # the fixture has failures and null metrics
    assert s["n_valid"].sum() == len(inj) - null_rows.sum()
    # by hand, per θE bin
    for theta, sub in inj.groupby("theta_e_arcsec"):
        row = s[s["bin1_lo"] == theta].iloc[0]
        ok = (sub["cutout_ok"] == 1) & sub["arc_snr"].notna()
        rec = ok & (sub["arc_snr"] >= 5) & (sub["theta_e_arcsec"] / sub["psf_fwhm_used_r"] >= 0.8)
        assert (row["n_attempt"], row["n_valid"], row["n_recovered"]) == (len(sub), ok.sum(), rec.sum())
        lo, hi = wilson_interval(rec.sum(), ok.sum(), 0.68)
        assert row["wilson_lo_68"] == pytest.approx(lo) and row["wilson_hi_68"] == pytest.approx(hi)
        lo, hi = jeffreys_interval(rec.sum(), ok.sum(), 0.95)
        assert row["jeffreys_lo_95"] == pytest.approx(lo) and row["jeffreys_hi_95"] == pytest.approx(hi)
    clean = t[t["selection"] == "clean"].set_index("bin1")
    assert (clean["n_valid"] <= s.set_index("bin1")["n_valid"]).all()


def test_controls_never_in_completeness_denominator():
    df = metrics_table()
    d = proxy_definition()
    base = _surface(df, [d], [THETA])
    # controls made to look like perfectly recovered injections must not change anything
    ctrl = df[df["lens_model"] == "CONTROL"].copy()
    ctrl["theta_e_arcsec"] = 1.0
    ctrl["arc_snr"] = 50.0
    ctrl["task_id"] = ctrl["task_id"] + "_x"
    more = pd.concat([df, ctrl], ignore_index=True)
    again = _surface(more, [d], [THETA])
    pd.testing.assert_frame_equal(base, again)
    assert 0.0 not in set(base["bin1_lo"])  # control θE = 0 never appears as an injection bin


def test_control_mask_errors_name_the_task():
    df = pd.DataFrame({"task_id": ["a", "b"], "lens_model": ["SIE", "SIE"], "is_control": [0, 1]})
    with pytest.raises(ValueError, match="task 'b'.*disagree"):
        control_mask(df)
    df = pd.DataFrame({"task_id": ["a"], "lens_model": [None], "is_control": [1]})
    assert control_mask(df).tolist() == [True]


def test_model_score_path_by_hand():
    df = metrics_table(n_pos=300, n_ctrl=200, seed=11)
    rng = np.random.default_rng(3)
    inj = df["lens_model"] != "CONTROL"
    snr = df["arc_snr"].astype("float64")
    score = np.where(inj, (snr > 10).astype(float), rng.uniform(0, 1, len(df)))
    score[~inj & (rng.uniform(size=len(df)) < 0.1)] = 1.0  # some controls score 1
    scores = pd.DataFrame({"task_id": df["task_id"], "score": score})
    scores = scores[~(inj & snr.isna())]  # injections with null SNR have no score
    j = join_scores(df, scores)
    ctrl_valid = (j["lens_model"] == "CONTROL") & (j["cutout_ok"] == 1)
    cs = j.loc[ctrl_valid, "score"].to_numpy()
    defs = score_definitions([0.5], [0.2], control_scores=cs)
    # hand threshold for FPR 0.2: smallest control score s with mean(cs >= s) <= 0.2
    srt = np.sort(cs)
    cand = [s for s in np.unique(srt) if np.mean(cs >= s) <= 0.2]
    assert defs[1].params["threshold"] == min(cand)
    rows = derive_rows(j, defs, BINS)
    counts = aggregate_counts(rows, KEYS, defs)
    comp = rate_table(counts, [THETA], defs, "injection")
    fpr = rate_table(counts, [], defs, "control")
    ji = j[j["lens_model"] != "CONTROL"]
    for theta, sub in ji.groupby("theta_e_arcsec"):
        valid = (sub["cutout_ok"] == 1) & sub["score"].notna()
        want_k = (valid & (sub["arc_snr"].astype(float) > 10)).sum()
        got = comp[(comp["recovery"] == "score_ge_0.5") & (comp["selection"] == "all") & (comp["bin1_lo"] == theta)]
        assert got["n_valid"].item() == valid.sum() and got["n_recovered"].item() == want_k
        assert got["completeness"].item() == pytest.approx(want_k / valid.sum())
    f = fpr[(fpr["recovery"] == "score_ge_0.5") & (fpr["selection"] == "all")]
    assert f["n_valid"].item() == ctrl_valid.sum()
    assert f["n_flagged"].item() == (cs >= 0.5).sum()
    f2 = fpr[(fpr["recovery"] == "fpr_0.2") & (fpr["selection"] == "all")]
    assert f2["fpr"].item() <= 0.2 and f2["fpr"].item() == pytest.approx(defs[1].params["control_fpr"])
    lo, _ = wilson_interval(f2["n_flagged"].item(), f2["n_valid"].item(), 0.95)
    assert f2["wilson_lo_95"].item() == pytest.approx(lo)
    assert "n_recovered" not in fpr.columns and "n_flagged" not in comp.columns


def test_two_dimensional_surface_sums_to_marginal():
    df = metrics_table()
    d = proxy_definition()
    one = _surface(df, [d], [THETA])
    two = _surface(df, [d], [THETA, SPLIT])
    marg = two.groupby(["selection", "bin1_lo"])[["n_attempt", "n_valid", "n_recovered"]].sum()
    ref = one.set_index(["selection", "bin1_lo"])[["n_attempt", "n_valid", "n_recovered"]]
    pd.testing.assert_frame_equal(marg.sort_index(), ref.sort_index())


def test_region_aggregate_by_hand():
    df = metrics_table(n_pos=800, n_ctrl=50, n_regions=5, seed=5)
    d = proxy_definition()
    rows = derive_rows(df, [d], BINS)
    counts = aggregate_counts(rows, KEYS, [d])
    agg = region_aggregate(counts, [THETA], REGION, [d], min_count=30)
    inj = df[(df["lens_model"] != "CONTROL")]
    valid = (inj["cutout_ok"] == 1) & inj["arc_snr"].notna()
    rec = valid & (inj["arc_snr"] >= 5) & (inj["theta_e_arcsec"] / inj["psf_fwhm_used_r"] >= 0.8)
    tab = pd.DataFrame({"theta": inj["theta_e_arcsec"], "region": inj["region_id"], "v": valid, "r": rec})
    g = tab.groupby(["theta", "region"]).agg(n=("v", "sum"), k=("r", "sum")).reset_index()
    for theta, sub in g.groupby("theta"):
        used = sub[sub["n"] >= 30]
        row = agg[(agg["selection"] == "all") & (agg["bin1_lo"] == theta)].iloc[0]
        c = used["k"] / used["n"]
        assert row["n_regions_used"] == len(used)
        assert row["region_mean"] == pytest.approx(c.mean())
        if len(used) >= 2:
            assert row["region_std"] == pytest.approx(c.std(ddof=1))
        assert row["pooled_n_valid"] == used["n"].sum() and row["pooled_n_recovered"] == used["k"].sum()
        assert row["pooled_completeness"] == pytest.approx(used["k"].sum() / used["n"].sum())
