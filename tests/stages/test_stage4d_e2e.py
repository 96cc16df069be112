"""Stage 4d on the synthetic sky after stages 3, 4a and 4c (the session pipeline fixtures)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dhs.completeness.audit import roc_auc, shortcut_features
from dhs.io.stamps import decode

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_stage4d_on_synthetic_sky(stage4d_result, stage4c_result, debug_config):
    res = stage4d_result
    out = Path(res.output_path)
    assert (out / "_stage_config.json").is_file()
    assert res.rows_in == res.rows_out > 0
    # report: every linked PNG exists, is a PNG and is not empty; links are relative
    index = Path(res.extra["report"])
    text = index.read_text()
    links = re.findall(r'src="([^"]+)"', text)
    assert "gallery.png" in links and "shortcut_audit.png" in links
    for link in links:
        assert not link.startswith(("/", "http"))
        p = index.parent / link
        assert p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
    comp = pd.read_parquet(out / "completeness.parquet")
    tot = comp[(comp["surface"] == "total") & (comp["recovery"] == "proxy") & (comp["selection"] == "all")]
    metrics = pq.read_table(stage4c_result.extra["metrics_path"], columns=["lens_model", "is_control"]).to_pandas()
    assert tot["n_attempt"].item() == int((~metrics["lens_model"].isin(["CONTROL", "NULL"])).sum())
    # the audit's AUCs are the AUCs of the stamps: recompute them from every valid stamp (independently of
    # the stage's sampling) and compare within the reported bootstrap interval (exactly when all were used)
    st = pq.read_table(stage4c_result.output_path, columns=["task_id", "lens_model", "cutout_ok", "stamp",
                                                            "stamp_size"]).to_pandas()
    st = st[(st["cutout_ok"] == 1) & st["stamp"].notna()]
    if st["lens_model"].eq("CONTROL").sum() == 0:
        pytest.fail("the debug manifest has no valid controls; the audit cannot be checked")
    feats = {}
    for is_ctrl, sub in st[st["lens_model"] != "NULL"].groupby(st["lens_model"] == "CONTROL"):
        arr = np.stack([decode(b, size=int(s)) for b, s in zip(sub["stamp"], sub["stamp_size"])])
        feats[bool(is_ctrl)] = shortcut_features(arr)
    audit = pd.read_parquet(out / "shortcut_audit.parquet").set_index("feature")
    a = debug_config.stage4d.audit
    for name in ("central_flux_r", "total_flux", "outer_noise_mad_r"):
        auc = roc_auc(feats[False][name], feats[True][name])
        row = audit.loc[name]
        if row["n_pos"] == len(feats[False][name]) and row["n_neg"] == len(feats[True][name]):
            assert row["auc"] == pytest.approx(auc, abs=1e-12)
        else:
            assert row["auc_lo"] - 0.05 <= auc <= row["auc_hi"] + 0.05
        assert bool(row["flagged"]) == bool(row["separation_lo"] > a.auc_limit)


def test_debug_run_injects_resolved_targeted_lenses_without_a_core_shortcut(stage4d_result, stage4c_result,
                                                                             debug_config):
    """configs/debug.yaml (the demo): ≥ 90 % of the valid injections have θE / psf_fwhm_used_r ≥ 1, the
    achieved peak arc_snr mix is the seed's, 4c's clean flag is bad_pixel_frac ≤ 0.2, and the core-brightness
    features raise no red flag."""
    out = Path(stage4d_result.output_path)
    m = pq.read_table(stage4c_result.extra["metrics_path"]).to_pandas()
    inj = m[~m["lens_model"].isin(["CONTROL", "NULL"]) & (m["cutout_ok"] == 1)]   # null rows: zero flux
    share = float(np.mean(inj["theta_e_arcsec"] / inj["psf_fwhm_used_r"] >= 1.0))
    assert share >= 0.9
    counts = json.loads((out / "_stage_config.json").read_text())
    assert counts["counts"]["injections_resolved"] == int(round(share * len(inj)))
    assert "wise_brightmask_frac <= 0.2" in counts["clean_selection"]
    np.testing.assert_allclose(inj["arc_snr"], inj["target_snr"], rtol=1e-9)
    mix = pd.read_parquet(out / "brightness_targeting.parquet").set_index("bin")
    assert mix.loc[["0.8-2", "2-8", "8-20", ">=20"], "frac_achieved"].to_numpy() == pytest.approx(
        [0.40, 0.40, 0.15, 0.05], abs=0.02)
    ok = m[m["cutout_ok"] == 1]
    assert (ok["clean"] == (ok["bad_pixel_frac"] <= 0.2).astype(int)).all()
    assert (m.loc[m["cutout_ok"] == 0, "clean"] == 0).all()
    audit = pd.read_parquet(out / "shortcut_audit.parquet").set_index("feature")
    for f in ("central_flux_g", "central_flux_r", "central_flux_z"):
        assert audit.loc[f, "flag"] != "red", audit.loc[f].to_dict()
