"""Derived columns and the full pandas path of stage 4d."""

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.tables import SURFACES, compute_all_pandas, prepare_columns
from dhs.config.stage4d import Stage4dConfig
from tests.completeness.fixture_tables import metrics_table


def test_prepare_columns_units_and_fallbacks():
    df = pd.DataFrame({
        "theta_e_arcsec": [1.0, 1.0, 0.5],
        "psf_fwhm_used_r": [1.25, 0.0, np.nan],
        "psfdepth_r": [2500.0, -1.0, np.nan],
        "src_mag_r": [24.0, 25.0, 26.0],
        "src_mag_r_used": [23.5, np.nan, None],
        "region_id": [3, 4, 5],
        "region_split": ["train", "val", "test"],
    })
    p = prepare_columns(df)
    assert p["theta_e_over_psf"].iloc[0] == pytest.approx(0.8)
    assert np.isnan(p["theta_e_over_psf"].iloc[1]) and np.isnan(p["theta_e_over_psf"].iloc[2])
    # 5 sigma depth: 22.5 - 2.5 log10(5 / sqrt(2500)) = 22.5 + 2.5 = 25.0 mag
    assert p["depth_r_mag5"].iloc[0] == pytest.approx(25.0)
    assert np.isnan(p["depth_r_mag5"].iloc[1])
    assert p["src_mag_bin_value"].tolist() == [23.5, 25.0, 26.0]
    assert p["region_key"].tolist() == ["3", "4", "5"]
    # integer ids that arrive as floats because of a null keep their integer labels
    p3 = prepare_columns(df.assign(region_id=[3.0, np.nan, 5.0]))
    assert p3["region_key"].iloc[0] == "3" and p3["region_key"].isna().iloc[1]
    p2 = prepare_columns(df.assign(psfdepth_r_mag5=[24.0, 24.1, 24.2]))
    assert p2["depth_r_mag5"].tolist() == [24.0, 24.1, 24.2]
    with pytest.raises(KeyError, match="region column 'region'"):
        prepare_columns(df, region_column="region")


def test_every_surface_accounts_for_every_injection():
    df = metrics_table(n_pos=300, n_ctrl=100, seed=9)
    n_inj = int((df["lens_model"] != "CONTROL").sum())
    r = compute_all_pandas(df, Stage4dConfig())
    comp = r["completeness"]
    assert set(comp["surface"]) == {"total"} | {"_by_".join(s) for s in SURFACES}
    for (surface, sel), sub in comp.groupby(["surface", "selection"]):
        assert sub["n_attempt"].sum() == n_inj, surface
        tot = comp[(comp["surface"] == "total") & (comp["selection"] == sel)]
        assert sub["n_valid"].sum() == tot["n_valid"].item() and sub["n_recovered"].sum() == tot["n_recovered"].item()
    # target_snr is absent in this table: every injection sits in the "nan" bin, none is lost
    ts = comp[(comp["surface"] == "target_snr") & (comp["selection"] == "all")]
    assert list(ts["bin1"]) == ["nan"]
    # the numeric order of bins follows the lower edges (resolution "<0.4" first)
    res = comp[(comp["surface"] == "resolution") & (comp["selection"] == "all")]
    assert res["bin1"].iloc[0] == "<0.4"
    assert r["fpr"].empty  # no scores → no false-positive table
