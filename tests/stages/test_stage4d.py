"""Stage 4d end to end in local Spark on fixture 4c outputs: Spark == pandas, report, audit, scores."""

from __future__ import annotations

import json
import os
import re

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.tables import compute_all_pandas
from dhs.config import config_from_dict
from tests.completeness.fixture_tables import metrics_table, write_4c_outputs

pytestmark = pytest.mark.spark

SIZE = 32


@pytest.fixture(scope="module")
def fixture_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("s4d")
    df = metrics_table(n_pos=240, n_ctrl=160, seed=21, stamps=True, size=SIZE, extra_core_flux=15.0)
    write_4c_outputs(str(root), "v2_baseline_dr10", "fx", df)
    scores = pd.DataFrame({"task_id": df["task_id"],
                           "score": np.where(df["arc_snr"].astype(float) > 10, 1.0, 0.0)})
    ctrl = df["lens_model"] == "CONTROL"
    rng = np.random.default_rng(0)
    scores.loc[ctrl, "score"] = rng.uniform(0, 1, int(ctrl.sum()))
    spath = str(root / "scores.parquet")
    scores.to_parquet(spath)
    base = {"survey_root": str(root), "output_root": str(root / "out"), "experiment_id": "fx",
            "stage4d": {"audit": {"n_boot": 200, "n_per_class": 500}, "gallery": {"n_theta": 4, "per_theta": 1}}}
    # the 4c outputs live under output_root
    os.makedirs(root / "out", exist_ok=True)
    os.rename(root / "phase4c", root / "out" / "phase4c")
    return root, df, scores, spath, base


def _cfg(base, **stage4d):
    d = json.loads(json.dumps(base))
    d["stage4d"].update(stage4d)
    return config_from_dict(d, check_inputs=False)


def _keyed(t, key):
    t = t.copy()
    for k in key:
        t[k] = t[k].astype(object).where(t[k].notna(), "").astype(str)
    return t.set_index(key).sort_index()


def _out(root):
    return root / "out" / "phase4d" / "v2_baseline_dr10" / "completeness" / "fx"


def test_stage4d_proxy_report_and_audit(spark, fixture_run):
    from dhs.stages import stage4d

    root, df, _, _, base = fixture_run
    cfg = _cfg(base)
    res = stage4d.run(spark, cfg)
    out = _out(root)
    assert res.rows_in == res.rows_out == len(df)
    assert (out / "_stage_config.json").is_file()
    # Spark aggregation equals the pandas path
    got = pd.read_parquet(out / "completeness.parquet")
    ref = compute_all_pandas(df.drop(columns=["stamp"]), cfg.stage4d)["completeness"]
    key = ["surface", "recovery", "selection", "bin1", "bin2"]
    g, r = _keyed(got, key), _keyed(ref, key)
    assert len(g) == len(r)
    pd.testing.assert_frame_equal(g[["n_attempt", "n_valid", "n_recovered"]], r[["n_attempt", "n_valid", "n_recovered"]])
    np.testing.assert_allclose(g["wilson_lo_95"], r["wilson_lo_95"], equal_nan=True)
    tot = got[(got["surface"] == "total") & (got["selection"] == "all")]
    assert tot["n_attempt"].item() == (df["lens_model"] != "CONTROL").sum()  # controls never in the denominator
    # report: HTML links resolve, PNGs non-empty
    index = out / "report" / "index.html"
    assert res.extra["report"] == str(index)
    text = index.read_text()
    links = re.findall(r'src="([^"]+)"', text)
    assert len(links) >= 8 and "PROXY" in text and "not a lens finder" in text
    for link in links:
        assert not link.startswith(("/", "http")), link
        p = out / "report" / link
        assert p.is_file() and p.stat().st_size > 1000, link
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "gallery.png" in links
    # the audit flags the extra central flux the fixture put into injections
    audit = pd.read_parquet(out / "shortcut_audit.parquet").set_index("feature")
    assert audit.loc["central_flux_r", "flagged"] and audit.loc["central_flux_r", "auc"] > 0.8
    assert "central_flux_r" in res.extra["audit_flagged"]
    # skipped when complete
    again = stage4d.run(spark, cfg)
    assert again.skipped


@pytest.mark.slow
def test_stage4d_model_scores(spark, fixture_run):
    from dhs.stages import stage4d

    root, df, scores, spath, base = fixture_run
    cfg = _cfg(base, scores_path=spath, score_thresholds=[0.5], target_fprs=[0.1], report=False)
    cfg.force = True
    stage4d.run(spark, cfg)
    out = _out(root)
    fpr = pd.read_parquet(out / "fpr.parquet")
    comp = pd.read_parquet(out / "completeness.parquet")
    defs = {d["name"]: d for d in json.loads((out / "recovery_definitions.json").read_text())}
    # by hand: valid controls = CONTROL rows with cutout_ok == 1 (all have scores)
    ctrl = df[(df["lens_model"] == "CONTROL") & (df["cutout_ok"] == 1)]
    cs = scores.set_index("task_id").loc[ctrl["task_id"], "score"].to_numpy()
    t_hand = min(s for s in np.unique(cs) if np.mean(cs >= s) <= 0.1)
    assert defs["fpr_0.1"]["params"]["threshold"] == t_hand
    f = fpr[(fpr["surface"] == "total") & (fpr["recovery"] == "fpr_0.1") & (fpr["selection"] == "all")]
    assert f["n_valid"].item() == len(ctrl) and f["n_flagged"].item() == int((cs >= t_hand).sum())
    # completeness for score >= 0.5 equals the share of valid injections with arc_snr > 10
    inj = df[(df["lens_model"] != "CONTROL") & (df["cutout_ok"] == 1)]
    c = comp[(comp["surface"] == "total") & (comp["recovery"] == "score_ge_0.5") & (comp["selection"] == "all")]
    assert c["n_valid"].item() == len(inj)
    assert c["n_recovered"].item() == int((inj["arc_snr"].astype(float) > 10).sum())
