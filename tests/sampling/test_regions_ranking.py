"""Region scores (analytic values) and selection sets (top-K per split, stratified by quantile bins)."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.sampling.ranking import (
    ScoreParams,
    SelectionSpec,
    region_scores,
    select_regions,
    selection_set_id,
    selection_sets_per_region,
)


def test_scores_analytic():
    s = region_scores(n_lrg=np.array([100, 10, 0]), area_deg2=np.array([4.0, 1.0, 0.0]),
                      psfsize_r_p50=np.array([1.25, 1.0, 1.5]), psfdepth_r_mag5_p50=np.array([23.8, 24.3, 23.3]),
                      ebv_p50=np.array([0.0, 0.05, 0.1]))
    np.testing.assert_allclose(s["score_density"][:2], [25.0, 10.0])
    assert np.isnan(s["score_density"][2])
    np.testing.assert_allclose(s["score_area_weighted"][:2], [25.0 * 2.0, 10.0 * 1.0])
    np.testing.assert_allclose(s["w_psf"], [1.0, 1.0, np.exp(-1.0)])  # clipped at 1 below 1.25″
    np.testing.assert_allclose(s["w_depth"], [0.5, 1 / (1 + np.exp(-2.0)), 1 / (1 + np.exp(2.0))], rtol=1e-12)
    np.testing.assert_allclose(s["w_ebv"], np.exp(-4 * np.array([0.0, 0.05, 0.1])))
    np.testing.assert_allclose(s["score_psf_weighted"][:2], [25.0 * 0.5, 10.0 / (1 + np.exp(-2.0)) * np.exp(-0.2)])
    s2 = region_scores(np.array([9]), np.array([9.0]), np.array([1.2]), np.array([24.0]), np.array([0.0]),
                       ScoreParams(area_alpha=1.0))
    np.testing.assert_allclose(s2["score_area_weighted"], [9.0])


def test_ids():
    assert selection_set_id(SelectionSpec(kind="topk", score="density", k=100)) == "topk_density_k100"
    assert selection_set_id(SelectionSpec(kind="stratified", score="density", n=50, n_bins=4)) == "strat_density_q4_n50"
    assert selection_set_id(SelectionSpec(kind="topk", id="mine")) == "mine"
    with pytest.raises(ValueError, match="score"):
        SelectionSpec(kind="topk", score="brightness")
    with pytest.raises(ValueError, match="weights"):
        SelectionSpec(kind="stratified", n_bins=3, weights=(1.0, 2.0))


def test_topk_per_split_with_ties_and_nan():
    rid = np.arange(10)
    split = np.array(["train"] * 6 + ["val"] * 4)
    score = np.array([5, 9, 9, 1, np.nan, 7, 3, 2, 8, 8.0])
    m = select_regions(rid, split, score, SelectionSpec(kind="topk", k=3), seed=0)
    assert np.flatnonzero(m).tolist() == [1, 2, 5, 6, 8, 9]
    m1 = select_regions(rid, split, score, SelectionSpec(kind="topk", k=1), seed=0)
    assert np.flatnonzero(m1).tolist() == [1, 8]  # ties broken by region_id


def test_stratified_quotas_and_determinism():
    rng = np.random.default_rng(1)
    n = 1000
    rid = np.arange(n) * 3 + 7
    split = np.where(np.arange(n) < 700, "train", "test")
    score = rng.lognormal(3, 0.5, n)
    spec = SelectionSpec(kind="stratified", n=60, n_bins=3, weights=(1.0, 1.0, 4.0))
    m = select_regions(rid, split, score, spec, seed=4)
    for s in ("train", "test"):
        sel = (split == s)
        assert m[sel].sum() == 60
        edges = np.quantile(score[sel], [0, 1 / 3, 2 / 3, 1])
        b = np.clip(np.searchsorted(edges[1:-1], score[sel & m], side="right"), 0, 2)
        assert np.bincount(b, minlength=3).tolist() == [10, 10, 40]
    np.testing.assert_array_equal(m, select_regions(rid, split, score, spec, seed=4))
    assert not np.array_equal(m, select_regions(rid, split, score, spec, seed=5))


def test_sets_per_region_lists_and_duplicates():
    rid = np.arange(6)
    split = np.array(["train"] * 3 + ["val"] * 3)
    scores = {"density": np.array([1, 2, 3, 4, 5, 6.0]), "n_lrg": np.array([6, 5, 4, 3, 2, 1.0])}
    specs = [SelectionSpec(kind="topk", score="density", k=1), SelectionSpec(kind="topk", score="n_lrg", k=1)]
    sets = selection_sets_per_region(rid, split, scores, specs, seed=0)
    assert sets == [["topk_n_lrg_k1"], [], ["topk_density_k1"], ["topk_n_lrg_k1"], [], ["topk_density_k1"]]
    with pytest.raises(ValueError, match="duplicate"):
        selection_sets_per_region(rid, split, scores, [specs[0], specs[0]], seed=0)
