"""Recovery definitions, thresholds from target FPRs, score join."""

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.recovery import (
    fraction_flagged,
    join_scores,
    proxy_definition,
    score_definitions,
    threshold_for_fpr,
)


def test_proxy_definition_null_safe():
    df = pd.DataFrame({
        "arc_snr": pd.array([6.0, 4.9, None, 10.0, 10.0], dtype="Float64"),
        "theta_e_arcsec": [1.0, 1.0, 1.0, 0.5, 1.0],
        "psf_fwhm_used_r": [1.0, 1.0, 1.0, 1.0, np.nan],
    })
    d = proxy_definition()
    assert d.recovered(df).tolist() == [True, False, False, False, False]
    assert "PROXY" in d.description
    assert set(d.required) == {"arc_snr", "theta_e_arcsec", "psf_fwhm_used_r"}


def test_threshold_for_fpr_by_hand():
    ctrl = np.arange(1, 101) / 100.0  # 0.01 .. 1.00
    t, fpr = threshold_for_fpr(ctrl, 0.05)
    # flag score >= t: the 5 largest controls 0.96..1.00
    assert t == 0.96 and fpr == 0.05
    assert fraction_flagged(ctrl, t) == 0.05
    t, fpr = threshold_for_fpr(ctrl, 0.055)  # cannot flag 5.5 controls: at most 5
    assert t == 0.96 and fpr == 0.05
    # ties at the top: 3 controls at 1.0 of 10, target 0.1 → no control may be flagged
    t, fpr = threshold_for_fpr([0.1] * 7 + [1.0] * 3, 0.1)
    assert t > 1.0 and fpr == 0.0
    t, fpr = threshold_for_fpr([0.1] * 7 + [1.0] * 3, 0.3)
    assert t == 1.0 and fpr == 0.3
    with pytest.raises(ValueError, match="no valid control"):
        threshold_for_fpr([np.nan], 0.1)


def test_score_definitions_and_join():
    metrics = pd.DataFrame({"task_id": ["a", "b", "c"], "x": [1, 2, 3]})
    scores = pd.DataFrame({"task_id": ["b", "a"], "score": [0.9, 0.2]})
    j = join_scores(metrics, scores)
    assert j["score"].tolist()[:2] == [0.2, 0.9] and np.isnan(j["score"].iloc[2])
    with pytest.raises(ValueError, match="task_id 'a' appears 2 times"):
        join_scores(metrics, pd.DataFrame({"task_id": ["a", "a"], "score": [1, 2]}), source="s.parquet")
    with pytest.raises(ValueError, match="s.parquet: column 'score'"):
        join_scores(metrics, pd.DataFrame({"task_id": ["a"]}), source="s.parquet")
    defs = score_definitions([0.5], [0.5], control_scores=[0.1, 0.2, 0.8, 0.9])
    assert [d.name for d in defs] == ["score_ge_0.5", "fpr_0.5"]
    assert defs[1].params["threshold"] == 0.8 and defs[1].params["control_fpr"] == 0.5
    assert defs[0].recovered(j).tolist() == [False, True, False]
