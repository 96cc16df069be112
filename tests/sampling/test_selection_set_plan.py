"""Selection sets as the seed system built them: ranking modes × LRG variants (stage 3, without Spark)."""

from __future__ import annotations

import numpy as np
import pytest

from dhs.config import config_from_dict
from dhs.stages.stage3 import build_brick_table, plan_regions

VARIANTS = ["v1_pure_massive", "v2_baseline_dr10", "v3_color_relaxed"]


def _bricks(n_ra: int = 6, n_dec: int = 4, seed: int = 3) -> tuple[dict, dict]:
    """A grid of n_ra × n_dec adjacent 0.25° bricks with random LRG counts per variant (v1 ⊂ v2 ⊂ v3)."""
    rng = np.random.default_rng(seed)
    names, counts, rows = [], {}, []
    for i in range(n_ra):
        for j in range(n_dec):
            ra1, dec1 = 10.0 + 0.25 * i, -1.0 + 0.25 * j
            name = f"b{i:02d}{j:02d}"
            n3 = int(rng.integers(5, 60))
            n2 = int(rng.integers(0, n3 + 1))
            n1 = int(rng.integers(0, n2 + 1))
            counts[name] = [n3 + 20, n1, n2, n3]
            names.append(name)
            rows.append((ra1, ra1 + 0.25, dec1, dec1 + 0.25))
    r = np.array(rows)
    summary = {"brickname": np.array(names), "ebv": rng.uniform(0.01, 0.05, len(names)),
               "psfsize_r": rng.uniform(1.0, 1.5, len(names)), "psfdepth_r_mag5": rng.uniform(23.7, 24.5, len(names)),
               "ra1": r[:, 0], "ra2": r[:, 1], "dec1": r[:, 2], "dec2": r[:, 3]}
    return counts, summary


def _cfg(**stage3):
    return config_from_dict({"survey_root": "s3://bucket/sky", "output_root": "/tmp/x", "variant": "v2_baseline_dr10",
                             "seed": 7, "stage3": {"variants": VARIANTS, "region_max_bricks": 2,
                                                   "healpix_nside": 64, **stage3}})


def _plan(cfg):
    counts, summary = _bricks()
    bricks = build_brick_table(counts, VARIANTS, summary)
    per_brick = {b: c[0] for b, c in counts.items()}
    return plan_regions(cfg, bricks, VARIANTS, per_brick)


def test_seed_preset_builds_twelve_sets_four_modes_by_three_variants():
    cfg = _cfg(selection_sets="seed", selection_set_variants=VARIANTS)
    metrics, info = _plan(cfg)
    ids = info["selection_set_ids"]
    assert len(ids) == 12 == len(set(ids))
    assert {info["selection_set_score"][i] for i in ids} == {"density", "n_lrg", "area_weighted", "psf_weighted"}
    assert sorted(set(info["selection_set_variant"].values())) == sorted(VARIANTS)
    assert all(i.endswith("__" + info["selection_set_variant"][i]) for i in ids)
    # every (mode, variant) pair once
    pairs = {(info["selection_set_score"][i], info["selection_set_variant"][i]) for i in ids}
    assert len(pairs) == 12


def test_each_set_ranks_regions_by_its_own_variant():
    """A top-K set by n_lrg for variant v holds, per split, the K regions with the most v-LRGs."""
    k = 3
    cfg = _cfg(selection_sets=[{"kind": "topk", "score": "n_lrg", "k": k}], selection_set_variants=VARIANTS)
    m, info = _plan(cfg)
    split = np.asarray(m["region_split"]).astype(str)
    chosen_by_variant = {}
    for v in VARIANTS:
        sid = f"topk_n_lrg_k{k}__{v}"
        member = np.array([sid in x for x in m["selection_sets"]])
        n = np.asarray(m[f"n_lrg_{v}"], dtype=float)
        for s in set(split.tolist()):
            sel = split == s
            expect = min(k, int(sel.sum()))
            assert member[sel].sum() == expect
            assert n[sel & member].min() >= np.sort(n[sel])[::-1][expect - 1]
        chosen_by_variant[v] = member
        score_col = "score_n_lrg" if v == "v2_baseline_dr10" else f"score_n_lrg__{v}"
        assert np.array_equal(np.asarray(m[score_col]), n)
    # the variants' LRG counts differ, so at least two variants choose different regions
    assert len({tuple(x) for x in chosen_by_variant.values()}) > 1


def test_without_variants_the_sets_are_the_run_variants_with_plain_ids():
    cfg = _cfg(selection_sets=[{"kind": "topk", "score": "density", "k": 2}])
    _, info = _plan(cfg)
    assert info["selection_set_ids"] == ["topk_density_k2"]
    assert info["selection_set_variant"] == {"topk_density_k2": "v2_baseline_dr10"}


def test_selection_set_variants_must_be_stage3_variants():
    with pytest.raises(Exception, match="selection_set_variants"):
        _cfg(selection_set_variants=["v5_very_relaxed"])
    with pytest.raises(Exception, match="selection_sets"):
        _cfg(selection_sets="best")
