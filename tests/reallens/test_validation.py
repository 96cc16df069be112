"""Validation: shortcut audit flags, split proportions, disjointness, neighbours, report."""

from __future__ import annotations

import numpy as np

from dhs.config.stage6 import ValidationSettings
from dhs.reallens.validation import (
    audit,
    cap_per_class,
    cross_split_neighbours,
    pixel_disjointness,
    report_markdown,
    split_proportions,
)


def test_audit_flags_a_core_brightness_shortcut():
    rng = np.random.default_rng(1)
    pos = {"central_flux_r": rng.normal(10, 1, 300), "outer_noise_mad_r": rng.normal(1, 0.1, 300)}
    neg = {"central_flux_r": rng.normal(5, 1, 3000), "outer_noise_mad_r": rng.normal(1, 0.1, 3000)}
    rows = {r["feature"]: r for r in audit(pos, neg, ValidationSettings(n_boot=200), seed=3)}
    assert rows["central_flux_r"]["flag"] == "red" and rows["central_flux_r"]["auc"] > 0.99
    assert rows["outer_noise_mad_r"]["flag"] == "ok"
    assert rows["outer_noise_mad_r"]["auc_lo"] < 0.5 < rows["outer_noise_mad_r"]["auc_hi"]
    again = {r["feature"]: r for r in audit(pos, neg, ValidationSettings(n_boot=200), seed=3)}
    assert again["outer_noise_mad_r"]["auc_lo"] == rows["outer_noise_mad_r"]["auc_lo"]


def test_split_proportions_flags():
    fr = {"train": 0.7, "val": 0.15, "test": 0.15}
    ok = split_proportions(["train"] * 70 + ["val"] * 15 + ["test"] * 15, fr, 0.05)
    assert ok["flag"] == "ok" and ok["splits"]["val"]["count"] == 15 and ok["max_deviation"] < 1e-12
    bad = split_proportions(["train"] * 90 + ["val"] * 10, fr, 0.05)
    assert bad["flag"] == "yellow" and abs(bad["splits"]["test"]["deviation"] - 0.15) < 1e-12
    assert split_proportions(["train", "oops"], fr, 0.05)["flag"] == "red"


def test_disjointness_and_neighbours():
    d = pixel_disjointness([1, 1, 2, 3], ["train", "train", "val", "test"])
    assert d["disjoint"] and d["pixels"] == 3
    d = pixel_disjointness([1, 1, 2], ["train", "val", "val"])
    assert not d["disjoint"] and d["examples"] == [1]
    ra = np.array([10.0, 10.0 + 5 / 3600, 11.0])
    n = cross_split_neighbours(ra, np.zeros(3), ["train", "test", "train"], 11.0)
    assert n["pairs"] == 1
    assert cross_split_neighbours(ra, np.zeros(3), ["train", "train", "test"], 11.0)["pairs"] == 0


def test_cap_per_class_deterministic():
    keys = [f"k{i}" for i in range(100)]
    a = cap_per_class(keys, 10, 5)
    assert a.sum() == 10 and np.array_equal(a, cap_per_class(keys, 10, 5))
    assert cap_per_class(keys[::-1], 10, 5)[::-1].tolist() == a.tolist()
    assert cap_per_class(keys, 200, 5).all()


def test_report_mentions_gates_and_flags():
    rows = audit({"f": np.arange(20.0)}, {"f": np.arange(20.0) + 100}, ValidationSettings(n_boot=50), seed=1)
    md = report_markdown({"counts": {"lenses": 3, "matched": 2, "unmatched": 1, "duplicate": 0, "pool": 9,
                                     "sample_positives": 2, "sample_negatives": 8}, "n2_share": 0.2,
                          "gates": {"passed": False, "n1_share": 0.8}, "audit": rows, "splits": {},
                          "disjointness": {"pixels": 4, "pixels_in_several_splits": 0}})
    assert "matched 2" in md and "FAIL" in md and "| f |" in md and "red" in md


def test_report_names_positives_failing_the_filters():
    base = {"lenses": 3, "matched": 3, "unmatched": 0, "duplicate": 0, "pool": 9, "sample_positives": 1,
            "sample_negatives": 8}
    md = report_markdown({"counts": {**base, "positives_rejected": 2,
                                     "positives_rejected_first_filter": {"type": 1, "nobs": 1, "mag": 0}}})
    assert "failing the pool's footprint/quality filters" in md and "2 (type 1, nobs 1)" in md
    assert "failing" not in report_markdown({"counts": {**base, "positives_rejected": 0}})
