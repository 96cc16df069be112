"""Stage 4d surfaces without Spark: quality bins (bad_pixel_frac, wise_brightmask_frac), the no-fallback
curve (PSF from the psfsize map in every band) and the resolution axis by Moffat FWHM or psfsize_r."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.binning import edge_bin
from dhs.completeness.tables import compute_all_pandas, dimension_descriptions
from dhs.config.stage4d import Stage4dConfig
from dhs.report.html import build_report
from tests.completeness.fixture_tables import metrics_table


@pytest.fixture(scope="module")
def df() -> pd.DataFrame:
    return metrics_table(n_pos=500, n_ctrl=150, seed=9)


@pytest.fixture(scope="module")
def result(df):
    return compute_all_pandas(df, Stage4dConfig(snr_min=5.0, resolution_min=0.8))


def _manual(df: pd.DataFrame, mask: np.ndarray, psf: str = "psf_fwhm_used_r") -> tuple[int, int]:
    """(n_valid, n_recovered) of injections under the proxy, computed from the rows directly."""
    inj = (df["lens_model"] == "SIE").to_numpy()
    snr = pd.to_numeric(df["arc_snr"], errors="coerce").to_numpy(float, na_value=np.nan)
    valid = inj & (df["cutout_ok"].to_numpy() == 1) & np.isfinite(snr) & mask
    rec = valid & (snr >= 5.0) & (df["theta_e_arcsec"].to_numpy() / df[psf].to_numpy() >= 0.8)
    return int(valid.sum()), int(rec.sum())


def _rows(comp, surface, selection="all"):
    return comp[(comp["surface"] == surface) & (comp["recovery"] == "proxy") & (comp["selection"] == selection)]


def test_no_fallback_curve_keeps_rows_with_map_psf_in_every_band(df, result):
    comp = result["completeness"]
    map_all = ((df["psf_source_g"] == 0) & (df["psf_source_r"] == 0) & (df["psf_source_z"] == 0)).to_numpy()
    assert 0 < map_all.sum() < len(df)          # the fixture has fallbacks in g and r
    tot = _rows(comp, "total", "no_fallback")
    assert (tot["n_valid"].item(), tot["n_recovered"].item()) == _manual(df, map_all)
    all_ = _rows(comp, "total", "all")
    assert tot["n_valid"].item() < all_["n_valid"].item()
    for theta, row in _rows(comp, "theta_e", "no_fallback").set_index("bin1").iterrows():
        sel = map_all & np.isclose(df["theta_e_arcsec"].to_numpy(), float(theta))
        assert (row["n_valid"], row["n_recovered"]) == _manual(df, sel)


@pytest.mark.parametrize("surface, column", [("bad_pixel", "bad_pixel_frac"),
                                             ("wise_brightmask", "wise_brightmask_frac")])
def test_quality_bins(df, result, surface, column):
    comp = result["completeness"]
    edges = Stage4dConfig().bad_pixel_frac_bins.edges
    labels, _ = edge_bin(pd.to_numeric(df[column]).to_numpy(float), edges)
    rows = _rows(comp, surface)
    assert rows["n_attempt"].sum() == int((df["lens_model"] == "SIE").sum())
    for lab, row in rows.set_index("bin1").iterrows():
        assert (row["n_valid"], row["n_recovered"]) == _manual(df, labels == lab)
    assert set(rows["bin1"]) - {"nan"} <= {"<0.01", "0.01-0.05", "0.05-0.1", "0.1-0.2", ">=0.2"}


def test_resolution_axis_by_moffat_fwhm_or_psfsize(df):
    fwhm = compute_all_pandas(df, Stage4dConfig(psf_column="psf_fwhm_used_r"))["completeness"]
    size = compute_all_pandas(df, Stage4dConfig(psf_column="psfsize_r"))["completeness"]
    edges = Stage4dConfig().resolution_bins.edges
    for comp, col in ((fwhm, "psf_fwhm_used_r"), (size, "psfsize_r")):
        labels, _ = edge_bin(df["theta_e_arcsec"].to_numpy() / df[col].to_numpy(), edges)
        inj = (df["lens_model"] == "SIE").to_numpy()
        got = _rows(comp, "resolution").set_index("bin1")["n_attempt"]
        for lab, n in got.items():
            assert n == int((inj & (labels == lab)).sum())
        # the explicit axes are there whatever psf_column says
        explicit = "resolution_moffat" if col == "psf_fwhm_used_r" else "resolution_psfsize"
        pd.testing.assert_series_equal(_rows(comp, explicit).set_index("bin1")["n_attempt"], got, check_names=False)
    # psfsize_r > Moffat FWHM (≈ 0.81 psfsize): the psfsize axis puts injections at lower resolution
    lo_f = _rows(fwhm, "resolution").set_index("bin1")["n_attempt"].get("<0.4", 0)
    lo_s = _rows(size, "resolution").set_index("bin1")["n_attempt"].get("<0.4", 0)
    assert lo_s > lo_f
    assert "psfsize_r" in dimension_descriptions(Stage4dConfig(psf_column="psfsize_r"))["resolution"]
    assert "Moffat" in dimension_descriptions(Stage4dConfig())["resolution"]


def test_report_labels_the_resolution_axis_and_shows_the_null_audit(df, tmp_path):
    s = Stage4dConfig(psf_column="psfsize_r")
    r = compute_all_pandas(df, s)
    null_rows = [{"feature": "central_flux_r", "variant": "full", "n_pos": 40, "n_neg": 50, "median_pos": 1.0,
                  "median_neg": 1.0, "auc": 0.52, "auc_lo": 0.4, "auc_hi": 0.63, "separation_lo": 0.45,
                  "flagged": False, "flag": "ok"}]
    index = build_report(str(tmp_path / "rep"), meta={"variant": "v", "experiment_id": "e"},
                         definitions=r["definitions"], tables=r, snr_hist=r["snr_hist"], audit_rows=[],
                         audit_limit=0.6, provenance=pd.DataFrame(), failures=pd.DataFrame(), gallery_pairs=[],
                         null_audit_rows=null_rows, dimensions=dimension_descriptions(s))
    with open(index, encoding="utf-8") as fh:
        text = fh.read()
    assert "Resolution axis" in text and "θE / psfsize_r" in text
    assert "Null-injection audit" in text and "central_flux_r" in text
    assert "no_fallback" in text and "completeness_proxy_bad_pixel.png" in text
    assert "completeness_proxy_resolution_psfsize.png" in text and "completeness_proxy_resolution_moffat.png" in text
