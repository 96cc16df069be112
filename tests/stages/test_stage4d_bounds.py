"""Stage 4d keeps the driver bounded by configuration: the audit takes exactly ``audit.n_per_class`` stamps per
class (those with the smallest run-seed hash), the gallery handles a continuous θE, and the joint count table
written by Spark re-marginalises to the reported surfaces."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.tables import compute_all_pandas
from dhs.config import config_from_dict
from tests.completeness.fixture_tables import metrics_table, write_4c_outputs

pytestmark = pytest.mark.spark


@pytest.mark.slow
def test_audit_sample_capped_and_joint_counts(spark, tmp_path):
    from dhs.stages import stage4d

    df = metrics_table(n_pos=240, n_ctrl=160, seed=5, stamps=True, size=32)
    rng = np.random.default_rng(1)
    inj = df["lens_model"] != "CONTROL"
    df.loc[inj, "theta_e_arcsec"] = rng.uniform(0.5, 3.0, int(inj.sum()))   # continuous θE (prior draws)
    write_4c_outputs(str(tmp_path / "out"), "v2_baseline_dr10", "cap", df)
    cfg = config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "out"), "experiment_id": "cap",
                            "stage4d": {"audit": {"n_boot": 50, "n_per_class": 25}, "report": False,
                                        "gallery": {"n_theta": 3, "per_theta": 1}}}, check_inputs=False)
    stage4d.run(spark, cfg)
    out = tmp_path / "out" / "phase4d" / "v2_baseline_dr10" / "completeness" / "cap"
    counts = json.loads((out / "_stage_config.json").read_text())["counts"]
    assert counts["audit_n_pos"] == 25 and counts["audit_n_neg"] == 25
    assert counts["gallery_pairs"] == 3
    audit = pd.read_parquet(out / "shortcut_audit.parquet")
    assert set(audit["n_pos"]) <= {25} and audit["n_neg"].max() <= 25
    # the joint counts (one Parquet file written by Spark) sum to the same totals as the pandas path
    joint = pd.read_parquet(out / "counts.parquet")
    ref = compute_all_pandas(df.drop(columns=["stamp"]), cfg.stage4d)["counts"]
    assert len(joint) == len(ref)
    cols = [c for c in ref.columns if c.startswith(("n_attempt", "nv__", "nr__"))]
    assert joint[cols].sum().to_dict() == ref[cols].sum().to_dict()
    assert int(joint["n_attempt"].sum()) == len(df)
