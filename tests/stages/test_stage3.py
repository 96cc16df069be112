"""Stage 3 with local Spark: a small catalogue sky (with a corrupt sweep) and the synthetic debug sky."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dhs.config import config_from_dict
from dhs.io.stage_meta import read_stage_config
from dhs.sampling import LRG_VARIANTS, lrg_flags

from .stage3_minisky import build_minisky

DESIGN_PARENT = ["galaxy_id", "brickname", "objid", "ra", "dec", "type", "flux_g", "flux_r", "flux_z", "flux_w1",
                 "mag_g", "mag_r", "mag_z", "mag_w1", "nobs_g", "nobs_r", "nobs_z", "maskbits", "psfsize_g",
                 "psfsize_r", "psfsize_z", "psfdepth_g", "psfdepth_r", "psfdepth_z", "ebv", "shape_r",
                 "region_id", "region_split", "selection_sets"]


@pytest.fixture(scope="module")
def minisky(tmp_path_factory):
    return build_minisky(tmp_path_factory.mktemp("s3mini") / "sky")


def _cfg(sky, out, **stage3):
    data = {"survey_root": sky["root"], "output_root": str(out), "variant": "v3_color_relaxed", "seed": 99,
            "stage3": {"region_max_bricks": 6, "healpix_nside": 128,
                       "selection_sets": [{"kind": "topk", "score": "density", "k": 2},
                                          {"kind": "stratified", "score": "psf_weighted", "n": 3, "n_bins": 3}],
                       **stage3}}
    return config_from_dict(data)


def _read(path: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pandas()


def test_unreadable_sweep_fails_by_name(spark, minisky, tmp_path):
    from dhs.stages import stage3

    cfg = _cfg(minisky, tmp_path / "out")  # default glob includes the corrupt file
    with pytest.raises(RuntimeError, match="sweep-040m030-045m025.fits") as exc:
        stage3.run(spark, cfg)
    assert "allow_missing_sweeps" in str(exc.value)
    assert not (tmp_path / "out" / "phase3" / "v3_color_relaxed" / "parent" / "_stage_config.json").exists()


@pytest.mark.slow
def test_minisky_outputs_counts_rerun_and_force(spark, minisky, tmp_path):
    from dhs.stages import stage3

    cfg = _cfg(minisky, tmp_path / "out", allow_missing_sweeps=True)
    res = stage3.run(spark, cfg)
    parent_dir = Path(res.output_path)
    regions_dir = Path(res.extra["regions_path"])
    parent = _read(str(parent_dir))
    regions = _read(str(regions_dir))

    # columns (docs/outputs.md) and one flag per variant
    for c in DESIGN_PARENT + [f"is_lrg_{v}" for v in LRG_VARIANTS]:
        assert c in parent.columns, c
    assert parent["galaxy_id"].is_unique
    assert (parent["galaxy_id"] == parent["brickname"] + "_" + parent["objid"].astype(str)).all()
    assert parent["mag_z"].dtype == np.float64
    # every parent passes some variant; no PSF anywhere; flags recompute from the stored columns
    flags = lrg_flags({c: parent[c].to_numpy() for c in ("type", "flux_g", "flux_r", "flux_z", "flux_w1",
                                                         "nobs_g", "nobs_r", "nobs_z", "fracmasked_g", "dec")})
    for k, f in flags.items():
        np.testing.assert_array_equal(parent[k].to_numpy(), f, err_msg=k)
    stored_mags = {"type": parent["type"].to_numpy(), **{f"mag_{b}": parent[f"mag_{b}"].to_numpy()
                                                         for b in ("g", "r", "z", "w1")}}
    v5 = lrg_flags(stored_mags, ["v5_very_relaxed"])["is_lrg_v5_very_relaxed"]
    np.testing.assert_array_equal(v5, parent["is_lrg_v5_very_relaxed"].to_numpy())
    assert np.logical_or.reduce([parent[k] for k in flags]).all()
    assert (parent["type"] != "PSF").all()

    # regions: cap, splits cover all three, bricks and regions in exactly one split
    assert regions["n_bricks"].max() <= 6
    assert set(regions["region_split"]) == {"train", "val", "test"}
    assert parent.groupby("brickname")["region_split"].nunique().max() == 1
    assert parent.groupby("region_id")["region_split"].nunique().max() == 1
    reg_split = dict(zip(regions["region_id"], regions["region_split"]))
    assert all(reg_split[r] == s for r, s in zip(parent["region_id"], parent["region_split"]))
    for col in ("area_deg2", "compactness", "density_v3_color_relaxed", "psfsize_r_p10", "psfsize_r_p50",
                "psfsize_r_p90", "psfdepth_r_mag5_p50", "ebv_p90", "score_density", "score_n_lrg",
                "score_area_weighted", "score_psf_weighted", "selection_sets", "bricknames"):
        assert col in regions.columns, col
    # selection sets: ≤ 2 top-density regions per split, each parent carries its region's sets
    for s, grp in regions.groupby("region_split", observed=True):
        top = grp[[("topk_density_k2" in list(x)) for x in grp["selection_sets"]]]
        assert len(top) == min(2, len(grp))
        assert top["score_density"].min() >= grp["score_density"].nlargest(min(2, len(grp))).min()
    sets_of = {r: sorted(x) for r, x in zip(regions["region_id"], regions["selection_sets"])}
    assert all(sorted(x) == sets_of[r] for r, x in zip(parent["region_id"], parent["selection_sets"]))
    # quality: bricks failing the summary cuts (default cuts) have no parents
    from dhs.stages.stage3 import load_brick_summary

    summ = load_brick_summary(minisky["summary"], "mag5")
    failing = summ["brickname"][(summ["psfsize_r"] > 1.6) | (summ["psfdepth_r_mag5"] < 23.6) | (summ["ebv"] > 0.12)]
    assert len(failing) > 0 and not parent["brickname"].isin(failing).any()
    assert parent["region_id"].ge(0).all()
    doc = read_stage_config(str(parent_dir))
    counts = doc["counts"]
    assert counts["sweep_files_unreadable"] == 1
    assert counts["unreadable_sweeps"][0]["path"].endswith("sweep-040m030-045m025.fits")
    assert counts["rows_read"] == minisky["n_objects"]
    assert counts["parent_rows"] == len(parent)
    assert sum(counts["parent_per_split"].values()) == len(parent)
    assert counts["parent_per_split"] == parent["region_split"].value_counts().to_dict()
    assert counts["bricks_failed_quality"]["psfsize_r"] > 0 and counts["bricks_failed_quality"]["psfdepth_r"] > 0
    assert counts["rows_dropped_bad_brick"] > 0
    fc = counts["failed_per_cut"]["v1_pure_massive"]
    assert set(fc) == {"type != PSF", "mag_z < 20.0", "mag_r - mag_z > 0.5", "mag_z - mag_w1 > 1.6"}
    assert counts["passed_per_variant"]["v3_color_relaxed"] >= int(parent["is_lrg_v3_color_relaxed"].sum())
    assert len(counts["per_file"]) == 3
    assert json.loads(json.dumps(doc["config"]))["stage3"]["region_max_bricks"] == 6
    # a region crosses RA = 0/360 (the wrap area is contiguous)
    assert any((np.array([n[:4] for n in bn]) >= "3590").any() and (np.array([n[:4] for n in bn]) <= "0010").any()
               for bn in regions["bricknames"])

    # rerun skips; force rewrites the same content
    again = stage3.run(spark, cfg)
    assert again.skipped
    cfg_force = cfg.model_copy(update={"force": True})
    forced = stage3.run(spark, cfg_force)
    assert not forced.skipped
    parent2 = _read(str(parent_dir))
    key = ["galaxy_id"]
    a = parent.sort_values(key).reset_index(drop=True)
    b2 = parent2.sort_values(key).reset_index(drop=True)
    a["selection_sets"] = a["selection_sets"].map(list)
    b2["selection_sets"] = b2["selection_sets"].map(list)
    pd.testing.assert_frame_equal(a, b2)
    regions2 = _read(str(regions_dir)).sort_values("region_id").reset_index(drop=True)
    r1 = regions.sort_values("region_id").reset_index(drop=True)
    for c in ("selection_sets", "bricknames"):
        r1[c] = r1[c].map(list)
        regions2[c] = regions2[c].map(list)
    pd.testing.assert_frame_equal(r1, regions2)
