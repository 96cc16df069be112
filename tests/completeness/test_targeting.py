"""Stage 4d's brightness-targeting mix and resolved share (dhs.completeness.targeting), and the text of the
clean selection."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.surfaces import clean_selection_text
from dhs.completeness.targeting import add_summaries, bin_counts, injection_summary, mix_table

EDGES = [0.8, 2.0, 8.0, 20.0]


def test_bin_counts_open_ended_and_nan_free():
    v = np.array([0.1, 0.8, 1.99, 2.0, 7.9, 8.0, 19.9, 20.0, 500.0, np.nan])
    np.testing.assert_array_equal(bin_counts(v, EDGES), [1, 2, 2, 2, 2])


def _rows():
    rng = np.random.default_rng(1)
    n = 1000
    target = np.exp(rng.uniform(np.log(0.5), np.log(50.0), n))
    df = pd.DataFrame({
        "task_id": [f"t{i}" for i in range(n)],
        "cutout_ok": np.where(np.arange(n) % 50 == 0, 0, 1),
        "lens_model": np.where(np.arange(n) % 10 == 0, "CONTROL", "SIE"),
        "is_control": (np.arange(n) % 10 == 0).astype(int),
        "theta_e_arcsec": rng.uniform(0.5, 2.5, n),
        "psf_fwhm_used_r": rng.uniform(0.9, 1.3, n),
        "target_snr": target,
        "target_snr_metric": "arc_snr",
        "arc_snr": target * 1.5,        # achieved differs from the target: the table must show it
        "arc_snr_sum": target * 0.2,
    })
    df.loc[df.index % 7 == 0, "lens_model"] = "NULL"      # null injections are not injections
    df.loc[df.index % 7 == 0, "is_control"] = 0
    return df


def test_injection_summary_counts_valid_injections_only():
    df = _rows()
    parts = [injection_summary(df.iloc[i:i + 137], EDGES) for i in range(0, len(df), 137)]
    got = add_summaries(parts)
    inj = (df.cutout_ok == 1) & (df.lens_model == "SIE")
    assert got["n_valid"] == inj.sum() == got["n_targeted"]
    ratio = df.theta_e_arcsec / df.psf_fwhm_used_r
    assert got["n_resolved"] == int((inj & (ratio >= 1.0)).sum())
    np.testing.assert_array_equal([got[f"target_{k}"] for k in range(5)], bin_counts(df.target_snr[inj], EDGES))
    np.testing.assert_array_equal([got[f"achieved_{k}"] for k in range(5)], bin_counts(1.5 * df.target_snr[inj], EDGES))
    table = mix_table(got, EDGES, "arc_snr")
    assert list(table["bin"]) == ["<0.8", "0.8-2", "2-8", "8-20", ">=20"]
    assert table["frac_target"].sum() == pytest.approx(1.0) and table["frac_achieved"].sum() == pytest.approx(1.0)
    np.testing.assert_allclose(table["frac_diff"], table["frac_achieved"] - table["frac_target"])


def test_achieved_uses_each_rows_metric():
    df = _rows()
    df["target_snr_metric"] = np.where(df.index % 2 == 0, "arc_snr", "arc_snr_sum")
    got = injection_summary(df, EDGES).iloc[0]
    inj = (df.cutout_ok == 1) & (df.lens_model == "SIE")
    achieved = np.where(df.index % 2 == 0, df.arc_snr, df.arc_snr_sum)[inj]
    np.testing.assert_array_equal([got[f"achieved_{k}"] for k in range(5)], bin_counts(achieved, EDGES))


def test_untargeted_runs_give_an_empty_mix():
    df = _rows().drop(columns=["target_snr", "target_snr_metric"])
    got = add_summaries([injection_summary(df, EDGES)])
    assert got["n_targeted"] == 0 and got["n_valid"] > 0
    assert mix_table(got, EDGES, "arc_snr").empty


def test_clean_selection_text_says_what_4d_adds():
    same = clean_selection_text(0.2, 0.2, 0.2)
    assert "stage 4c's clean flag (bad_pixel_frac <= 0.2)" in same and "added by stage 4d, wise_brightmask_frac <= 0.2" in same
    other = clean_selection_text(0.1, 0.3, 0.2)
    assert "bad_pixel_frac <= 0.1" in other and "uses 0.2" in other and "wise_brightmask_frac <= 0.3" in other
