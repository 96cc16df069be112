"""The null-injection audit end to end on the synthetic sky (configs/debug.yaml: stage4a.null_fraction):
null rows exist in the manifest, take the whole 4c path with zero flux, are left out of completeness, and
stage 4d compares them with their matched controls (AUCs consistent with 0.5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from dhs.io.stamps import decode

pytestmark = [pytest.mark.spark, pytest.mark.slow]


def test_null_rows_in_manifest_and_stamps(stage4a_result, stage4c_result, debug_config):
    man = pq.read_table(stage4a_result.output_path).to_pandas()
    frac = debug_config.stage4a.null_fraction
    assert frac > 0
    pos = man[man["is_control"] == 0]
    null = pos[pos["lens_model"] == "NULL"]
    for _, grp in pos.groupby("region_split", observed=True):
        assert abs((grp["lens_model"] == "NULL").sum() - frac * len(grp)) <= 0.5 + 1e-9
    assert len(null) > 0 and np.isinf(null["src_mag_r"]).all() and (null["theta_e_arcsec"] > 0).all()
    assert man["selection_set_id"].notna().all()
    st = pq.read_table(stage4c_result.output_path, columns=["task_id", "lens_model", "cutout_ok", "stamp", "arc",
                                                            "total_injected_flux_r", "src_flux_r",
                                                            "stamp_size"]).to_pandas()
    ns = st[(st["lens_model"] == "NULL") & (st["cutout_ok"] == 1)]
    assert len(ns) > 0
    assert (ns["total_injected_flux_r"] == 0).all() and (ns["src_flux_r"] == 0).all()
    for blob, size in zip(ns["arc"], ns["stamp_size"]):
        assert not decode(blob, size=int(size)).any()


def test_null_rows_not_in_completeness_and_null_audit_is_half(stage4d_result, stage4c_result, debug_config):
    out = Path(stage4d_result.output_path)
    metrics = pq.read_table(stage4c_result.extra["metrics_path"], columns=["lens_model"]).to_pandas()
    comp = pd.read_parquet(out / "completeness.parquet")
    tot = comp[(comp["surface"] == "total") & (comp["recovery"] == "proxy") & (comp["selection"] == "all")]
    assert tot["n_attempt"].item() == int((metrics["lens_model"] == "SIE").sum())
    na = pd.read_parquet(out / "null_audit.parquet")
    sa = pd.read_parquet(out / "shortcut_audit.parquet")
    assert set(na["feature"]) == set(sa["feature"])              # every audit feature
    assert set(na["variant"]) == {"full", "centre_masked"}
    assert (na["n_pos"] >= 3).all() and (na["n_neg"] >= 3).all()
    # ≈ 0.5: no feature flagged, and every AUC within 3σ of 0.5 (Mann–Whitney σ under no difference)
    n1, n2 = na["n_pos"].to_numpy(float), na["n_neg"].to_numpy(float)
    sigma = np.sqrt((n1 + n2 + 1) / (12 * n1 * n2))
    assert (np.abs(na["auc"] - 0.5) <= 3 * sigma).all(), na[["feature", "auc", "n_pos", "n_neg"]]
    assert not na["flagged"].any()
    assert stage4d_result.extra["null_audit_flagged"] == []
    text = Path(stage4d_result.extra["report"]).read_text()
    assert "Null-injection audit" in text and "Resolution axis" in text
