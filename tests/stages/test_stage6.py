"""Stage 6 end to end on the synthetic sky, with known lenses planted next to synthetic galaxies."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.config import config_from_dict
from dhs.io.stamps import decode
from dhs.reallens.derived import hash_split
from dhs.reallens.sampling import select
from dhs.sampling.hashing import stable_hash64
from dhs.survey.sweeps import read_sweep

OFFSET = 1.0   # arcsec between a planted lens and its galaxy


def _sweep_rows(synth_sky):
    cols = ["brickname", "objid", "ra", "dec", "type", "flux_z", "nobs_g", "nobs_r", "nobs_z", "maskbits"]
    out = {c: [] for c in cols}
    for p in synth_sky.sweep_paths:
        t = read_sweep(p, columns=cols)
        for c in cols:
            out[c].append(t[c].to_numpy(zero_copy_only=False))
    d = {c: np.concatenate(v) for c, v in out.items()}
    d["galaxy_id"] = np.array([f"{b}_{o}" for b, o in zip(d["brickname"], d["objid"])])
    return d


def _quality_ok(d):
    """The pool's footprint/quality cuts (defaults) except the type cut and the known-lens exclusion."""
    with np.errstate(divide="ignore", invalid="ignore"):
        magz = 22.5 - 2.5 * np.log10(d["flux_z"].astype(np.float64))
    return ((d["dec"] > -18) & (d["dec"] < 32) & (d["nobs_g"] >= 3) & (d["nobs_r"] >= 3) & (d["nobs_z"] >= 3)
            & (magz < 20) & ((d["maskbits"].astype(np.int64) & 0b11100011100010) == 0))


def _score_of(gid):
    """Finder score of a galaxy: 8 levels, so that many objects tie."""
    return float(stable_hash64("score", gid) % 8) / 8.0


@pytest.fixture(scope="module")
def planted(synth_sky, tmp_path_factory):
    """A lens CSV: one lens 1″ from each of 8 galaxies that pass the pool filters, one at a DEV/SER galaxy with
    nobs_z = 1–2 (fails "nobs") and one at an EXP galaxy (fails "type"), a second entry for the first
    (duplicate), one lens far from the sky (unmatched). And a finder's score table for every sweep galaxy
    (lens galaxies scored highest), with a NaN score, an id scored twice and an id not in any sweep."""
    d = _sweep_rows(synth_sky)
    edge = set(synth_sky.edge_galaxy_ids)
    free = ~np.isin(d["galaxy_id"], list(edge))
    ok = np.isin(d["type"], ["DEV", "SER"]) & _quality_ok(d) & free
    idx = np.flatnonzero(ok)[::7][:8]
    assert idx.size == 8
    low_nobs = np.flatnonzero(np.isin(d["type"], ["DEV", "SER"]) & (d["nobs_z"] <= 2) & (d["nobs_z"] >= 1) & free)[3]
    exp = np.flatnonzero((d["type"] == "EXP") & _quality_ok(d) & free)[2]
    lines = ["name,ra,dec,grade,reference"]
    truth = {}
    for k, i in enumerate(idx.tolist() + [int(low_nobs), int(exp)]):
        c = SkyCoord(d["ra"][i] * u.deg, d["dec"][i] * u.deg).directional_offset_by(45 * u.deg, OFFSET * u.arcsec)
        lines.append(f"L{k},{c.ra.deg:.10f},{c.dec.deg:.10f},{'A' if k % 2 else 'B'},synthetic")
        truth[f"L{k}"] = d["galaxy_id"][i]
    c = SkyCoord(d["ra"][idx[0]] * u.deg, d["dec"][idx[0]] * u.deg).directional_offset_by(200 * u.deg, 2.5 * u.arcsec)
    lines.append(f"Ldup,{c.ra.deg:.10f},{c.dec.deg:.10f},A,duplicate entry")
    lines.append("Lfar,200.0,10.0,A,elsewhere")
    path = tmp_path_factory.mktemp("lenses") / "planted.csv"
    path.write_text("\n".join(lines) + "\n")
    gids = d["galaxy_id"].tolist()
    lens_gids = set(truth.values())
    scores = pd.DataFrame({"galaxy_id": gids + [gids[5], gids[6], "0000p000_99999"],
                           "score": [2.0 if g in lens_gids else _score_of(g) for g in gids] + [9.0, np.nan, 9.0]})
    scores.loc[6, "score"] = np.nan     # gids[6]: every score NaN → never a hard negative
    spath = tmp_path_factory.mktemp("scores") / "scores.parquet"
    scores.to_parquet(spath, index=False)
    return path, truth, d, spath


@pytest.fixture(scope="module")
def stage6_run(spark, debug_config, planted, tmp_path_factory):
    from dhs.stages import stage6

    out = tmp_path_factory.mktemp("stage6-out")
    cfg = config_from_dict(debug_config.model_dump(mode="json"),
                           [f"stage6.lens_catalog={planted[0]}", f"output_root={out}",
                            f"stage6.hard_negatives.score_table={planted[3]}",
                            "stage6.hard_negatives.per_positive=3",
                            "stage6.hard_negatives.exclusion_radius_arcsec=40"])
    return cfg, stage6.run(spark, cfg)


def _read(path):
    return pq.read_table(path).to_pandas()


def _text(*parts):
    with open(os.path.join(*parts)) as fh:
        return fh.read()


@pytest.mark.slow
def test_stage6_end_to_end(stage6_run, planted, spark):
    from dhs.stages import stage6

    cfg, res = stage6_run
    _, truth, sweep, _ = planted
    dirs = res.extra["dirs"]
    docs = {}
    for k in stage6.KINDS:
        assert os.path.isfile(os.path.join(dirs[k], "_stage_config.json")), k
        docs[k] = json.loads(_text(dirs[k], "_stage_config.json"))
    counts = docs["sample"]["counts"]
    assert docs["positives"]["counts"] == counts

    # positives: one row per lens; planted matches at 1″, the duplicate names its winner, the far one unmatched
    pos = _read(dirs["positives"])
    assert len(pos) == 12 == counts["positives"]["rows_in"] == counts["positives"]["rows_out"]
    by = pos.set_index("lens_id")
    for lid, gid in truth.items():
        assert by.loc[lid, "match_status"] == "matched" and by.loc[lid, "galaxy_id"] == gid
        assert by.loc[lid, "sep_arcsec"] == pytest.approx(OFFSET, abs=1e-6)
        assert by.loc[lid, "tier"] == ("A" if int(lid[1:]) % 2 else "B")
    assert by.loc["Ldup", "match_status"] == "duplicate" and by.loc["Ldup", "duplicate_of"] == "L0"
    assert by.loc["Lfar", "match_status"] == "unmatched" and pd.isna(by.loc["Lfar", "galaxy_id"])
    assert pd.isna(by.loc["Lfar", "passes_filters"]) and pd.isna(by.loc["Lfar", "filter_failed"])
    assert counts["positives"]["matched"] == 10
    # positives pass the pool's footprint/quality filters: the two that fail are reported with the reason
    assert (by.loc[[f"L{k}" for k in range(8)], "passes_filters"] == 1).all()
    assert by.loc["L8", "passes_filters"] == 0 and by.loc["L8", "filter_failed"] == "nobs"
    assert by.loc["L9", "passes_filters"] == 0 and by.loc["L9", "filter_failed"] == "type"
    p = counts["positives"]
    assert p["rejected_by_filters"] == 2 and p["in_sample"] == 8
    assert p["rejected_first_filter"]["nobs"] == 1 and p["rejected_first_filter"]["type"] == 1
    assert p["rejected_lenses"] == [{"lens_id": "L8", "galaxy_id": truth["L8"], "filters": "nobs"},
                                    {"lens_id": "L9", "galaxy_id": truth["L9"], "filters": "type"}]

    # negatives: the pool equals an independent evaluation of the Paper IV cuts on the sweeps
    neg = _read(dirs["negatives"])
    lens = SkyCoord(pos["lens_ra"].to_numpy() * u.deg, pos["lens_dec"].to_numpy() * u.deg)
    objs = SkyCoord(sweep["ra"] * u.deg, sweep["dec"] * u.deg)
    _, sep, _ = objs.match_to_catalog_sky(lens)
    with np.errstate(divide="ignore", invalid="ignore"):
        magz = 22.5 - 2.5 * np.log10(sweep["flux_z"].astype(np.float64))
    expect = ((sweep["dec"] > -18) & (sweep["dec"] < 32) & np.isin(sweep["type"], ["SER", "DEV", "REX"])
              & (sweep["nobs_g"] >= 3) & (sweep["nobs_r"] >= 3) & (sweep["nobs_z"] >= 3) & (magz < 20)
              & ((sweep["maskbits"].astype(np.int64) & 0b11100011100010) == 0) & (sep.arcsec > 11.0))
    assert sorted(neg["galaxy_id"]) == sorted(sweep["galaxy_id"][expect].tolist())
    n = counts["negatives"]
    assert n["rows_in"] == len(sweep["ra"]) == n["rows_out"] + n["rejected"] == len(neg) + sum(
        n["rejected_first_filter"].values())
    assert n["failed_each_filter"]["known_lens"] >= 8
    assert set(neg["pool"]) <= {"N1", "N2"} and (neg["n2_category"][neg["pool"] == "N1"] == "").all()
    assert n["pool"]["n2"] == (neg["pool"] == "N2").sum() and n["pool"]["n"] == len(neg)
    assert n["pool"]["categories"] == neg["n2_category"][neg["pool"] == "N2"].value_counts().to_dict()

    # sample: positives + per-stratum quotas of the smallest-hash negatives
    samp = _read(dirs["sample"])
    s = counts["sample"]
    assert (samp["label"] == 1).sum() == 8 and len(samp) == s["rows_out"]
    assert s["rows_in"] == 8 + len(neg) and s["not_selected"] == len(neg) - (samp["label"] == 0).sum()
    assert not set(samp["galaxy_id"][samp["label"] == 1]) & {truth["L8"], truth["L9"]}
    # every stratum with positives can get negatives: all of them got some
    assert s["gates"]["all_strata_represented"] and s["gates"]["strata_missing_negatives"] == []
    assert set(samp["stratum"][samp["label"] == 1]) <= set(neg["stratum"])
    take = select(neg["stratum"], neg["pool"], neg["sample_hash"], neg["galaxy_id"], s["quotas"])
    assert sorted(neg["galaxy_id"][take]) == sorted(samp["galaxy_id"][samp["label"] == 0])
    assert (samp["label"] == 0).sum() > 0
    want = hash_split(samp["healpix"].to_numpy(), cfg.stage6.healpix_nside, cfg.seed, cfg.stage6.split_fractions)
    assert (samp["region_split"].to_numpy() == want).all()
    assert set(s["gates"]) >= {"total_reached", "n1_share_ok", "all_strata_represented", "passed"}

    # cutouts: rows out = rows in; ok rows decode to 3×101×101; failures carry a reason
    cut = _read(dirs["cutouts"])
    assert len(cut) == len(samp) == counts["cutouts"]["rows_in"] == counts["cutouts"]["rows_out"]
    okr = cut[cut["cutout_ok"] == 1]
    assert len(okr) >= 0.8 * len(cut)
    assert set(cut[cut["cutout_ok"] == 0]["error"].str.split(":").str[0]) <= {"off_image"}   # small synthetic coadds
    assert decode(okr["stamp"].iloc[0], size=101).shape == (3, 101, 101)
    assert cut[cut["cutout_ok"] == 0]["error"].notna().all()
    assert (okr["bands_present"] == "grz").all()

    # validation
    val = json.loads(_text(dirs["validation"], "_validation.json"))
    assert {r["feature"] for r in val["audit"]} >= {"central_flux_r", "central_g_minus_r"}
    assert val["disjointness"]["disjoint"]
    assert "Real-lens training set" in _text(dirs["validation"], "_report.md")
    assert len(_read(dirs["validation"])) == len(val["audit"])

    # a second run with the same config is skipped (outputs complete)
    again = stage6.run(spark, cfg)
    assert again.skipped


def _expected_hard_negatives(cfg, dirs, scores, lens_ra, lens_dec):
    """Hard negatives by the core reference (pandas + numpy) from the stage's own pool, positives and sample."""
    from dhs.reallens.filters import near_any
    from dhs.reallens.hard_negatives import best_scores, hard_negative_quotas, select_hard_negatives

    hn = cfg.stage6.hard_negatives
    neg = _read(dirs["negatives"])
    pos = _read(dirs["positives"])
    samp = _read(dirs["sample"])
    ids, sc, _ = best_scores(scores[hn.id_column].to_numpy(object), scores[hn.score_column].to_numpy())
    best = pd.DataFrame({"galaxy_id": ids, "hn_score": sc})
    lens_obj = set(pos["galaxy_id"][pos["match_status"].isin(["matched", "duplicate"])].dropna())
    cand = neg[neg["pool"].isin(hn.pools) & ~neg["galaxy_id"].isin(lens_obj)].merge(best, on="galaxy_id")
    near = near_any(cand["ra"].to_numpy(), cand["dec"].to_numpy(), lens_ra, lens_dec, hn.exclusion_radius_arcsec)
    el = cand[~near].reset_index(drop=True)
    pos_counts = samp[samp["label"] == 1]["stratum"].value_counts().to_dict()
    quotas = hard_negative_quotas(pos_counts, el["stratum"].value_counts().to_dict(), hn)
    take, rank = select_hard_negatives(el["stratum"], el["hn_score"], el["sample_hash"], el["galaxy_id"], quotas)
    el["hn_rank"] = rank
    return el[take], quotas, int(near.sum())


@pytest.mark.slow
def test_stage6_hard_negatives(stage6_run, planted, spark, tmp_path):
    """Highest-scoring non-lenses per stratum, as the core reference picks them; lenses and their
    neighbours never; deterministic; only this step reruns for a new score table; bad tables fail fast."""
    from dhs.reallens.hard_negatives import ScoreTableError
    from dhs.stages import stage6

    cfg, res = stage6_run
    lens_csv, truth, _, spath = planted
    dirs = res.extra["dirs"]
    hdir = dirs["hard_negatives"]
    assert hdir.endswith(os.path.join("phase6", cfg.variant, "hard_negatives", cfg.experiment_id))
    got = _read(hdir)
    pos = _read(dirs["positives"])
    scores = pd.read_parquet(spath)
    want, quotas, n_near = _expected_hard_negatives(cfg, dirs, scores, pos["lens_ra"].to_numpy(),
                                                    pos["lens_dec"].to_numpy())
    assert len(got) == len(want) > 0
    assert sorted(got["galaxy_id"]) == sorted(want["galaxy_id"])
    g = got.set_index("galaxy_id").sort_index()
    w = want.set_index("galaxy_id").sort_index()
    assert (g["hn_rank"] == w["hn_rank"]).all() and np.allclose(g["hn_score"], w["hn_score"])
    assert not set(got["galaxy_id"]) & set(truth.values())          # lens galaxies scored 2.0: never taken
    assert scores["galaxy_id"][6] not in set(got["galaxy_id"])      # only NaN scores
    assert (got["label"] == 0).all() and set(got["pool"]) <= {"N1", "N2"}
    # the ranking is by score: within a stratum every taken score ≥ every eligible score left out
    doc = json.loads(_text(hdir, "_stage_config.json"))["counts"]["hard_negatives"]
    assert doc["excluded_near_lens"] == n_near > 0
    assert doc["null_or_nan_scores"] == 2 and doc["duplicate_id_rows"] == 2 and doc["rows_out"] == len(got)
    for st, q in quotas.items():
        c = doc["strata"][st]
        assert c["selected"] == q["take"] == (got["stratum"] == st).sum() and c["target"] == q["target"]
        assert c["selected_n1"] + c["selected_n2"] == c["selected"]
    assert set(got["stratum"]) == {s for s, q in quotas.items() if q["take"]}
    # cutouts
    assert (got["cutout_ok"] == 1).sum() >= 0.8 * len(got)
    assert set(got[got["cutout_ok"] == 0]["error"].str.split(":").str[0]) <= {"off_image"}
    okr = got[got["cutout_ok"] == 1]
    assert decode(okr["stamp"].iloc[0], size=101).shape == (3, 101, 101)
    in_samp = set(_read(dirs["sample"]).query("label == 0")["galaxy_id"])
    assert (got["in_sample"] == got["galaxy_id"].isin(in_samp).astype(int)).all()

    # a new score table (same scores, renamed columns, rows shuffled, two files): only this step runs, same rows
    folder = tmp_path / "scores2"
    folder.mkdir()
    sh = scores.rename(columns={"galaxy_id": "id", "score": "p_lens"}).sample(frac=1.0, random_state=3)
    sh.iloc[: len(sh) // 2].to_parquet(folder / "a.parquet", index=False)
    sh.iloc[len(sh) // 2:].to_parquet(folder / "b.parquet", index=False)
    main_doc = _text(dirs["sample"], "_stage_config.json")
    cfg2 = config_from_dict(cfg.model_dump(mode="json"),
                            [f"stage6.hard_negatives.score_table={folder}", "stage6.hard_negatives.id_column=id",
                             "stage6.hard_negatives.score_column=p_lens"])
    r2 = stage6.run(spark, cfg2)
    assert not r2.skipped and r2.output_path == hdir
    assert _text(dirs["sample"], "_stage_config.json") == main_doc
    again = _read(hdir).sort_values("galaxy_id").reset_index(drop=True)
    first = got.sort_values("galaxy_id").reset_index(drop=True)
    for c in ("galaxy_id", "hn_rank", "hn_score", "stratum", "stamp"):
        assert again[c].tolist() == first[c].tolist(), c
    assert stage6.run(spark, cfg2).skipped                            # same settings: nothing to do

    # a score table with a wrong column fails before any work, naming the file and the column
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"galaxy_id": ["x"], "prob": [0.5]}).to_parquet(bad, index=False)
    cfg3 = config_from_dict(cfg.model_dump(mode="json"), [f"stage6.hard_negatives.score_table={bad}"])
    with pytest.raises(ScoreTableError, match=r"bad\.parquet: column 'score' not found"):
        stage6.run(spark, cfg3)
    # ids that are not dhs galaxy_ids: a clear error, not an empty output
    alien = tmp_path / "alien.parquet"
    pd.DataFrame({"galaxy_id": ["123", "456"], "score": [0.5, 0.9]}).to_parquet(alien, index=False)
    cfg4 = config_from_dict(cfg.model_dump(mode="json"), [f"stage6.hard_negatives.score_table={alien}"])
    with pytest.raises(ScoreTableError, match=r"alien\.parquet: none of its ids .* is a galaxy_id of the negative"):
        stage6.run(spark, cfg4)


def test_stage6_without_catalogue_is_a_clear_error(debug_config):
    from dhs.stages.stage6 import load_lenses

    with pytest.raises(ValueError, match="stage6.lens_catalog"):
        load_lenses(debug_config)


def test_positives_table_without_candidates(debug_config):
    """No lens matched: one row per lens, null object columns, split from the lens position."""
    from dhs.reallens.derived import healpix_index
    from dhs.reallens.lenses import LensTable
    from dhs.reallens.sweep_task import CANDIDATE_SCHEMA
    from dhs.stages.stage6 import positives_table

    lenses = LensTable(np.array([1.0, 2.0]), np.array([0.0, 1.0]), np.array(["A", ""], dtype=object),
                       np.array(["r", ""], dtype=object), np.array(["a", "b"], dtype=object), "x.csv", {})
    t, c = positives_table(lenses, CANDIDATE_SCHEMA.empty_table(), debug_config)
    st = debug_config.stage6
    pix = healpix_index(lenses.ra, lenses.dec, st.healpix_nside)
    assert {k: c[k] for k in ("matched", "unmatched", "duplicate")} == {"matched": 0, "unmatched": 2, "duplicate": 0}
    assert c["filters"]["rejected"] == 0 and t["passes_filters"].to_pylist() == [None, None]
    assert t["galaxy_id"].to_pylist() == [None, None] and t["tier"].to_pylist() == ["A", "B"]
    assert t["healpix"].to_pylist() == pix.tolist()
    assert t["region_split"].to_pylist() == hash_split(pix, st.healpix_nside, debug_config.seed,
                                                       st.split_fractions).tolist()


def test_positives_table_reports_filter_failures(debug_config):
    """Without Spark: lenses on objects that fail the pool filters are matched, flagged and listed."""
    from dhs.reallens.sweep_task import process_columns
    from dhs.stages.stage6 import LensTable, positives_table
    from tests.reallens.sweep_factory import default_columns

    cols = default_columns(3)
    cols["ra"] = 10.0 + np.arange(3) * 0.01
    cols["nobs_z"][1] = 2
    cols["type"][2] = "EXP"
    lenses = LensTable(cols["ra"] + 1e-5, cols["dec"].copy(), np.array(["A"] * 3, dtype=object),
                       np.array(["r"] * 3, dtype=object), np.array(["a", "b", "c"], dtype=object), "x.csv", {})
    cand, _, _ = process_columns(cols, lenses.ra, lenses.dec, debug_config.stage6, 1, "s.fits")
    t, c = positives_table(lenses, cand, debug_config)
    assert c["matched"] == 3 and t["passes_filters"].to_pylist() == [1, 0, 0]
    assert t["filter_failed"].to_pylist() == ["", "nobs", "type"]
    assert c["filters"]["rejected"] == 2 and c["filters"]["rows"] == [
        {"key": "b", "object": "0001p000_1", "filters": "nobs"}, {"key": "c", "object": "0001p000_2", "filters": "type"}]


def test_load_lenses_from_lenscat(debug_config, monkeypatch):
    """use_lenscat reads ``lenscat.catalog`` (a stand-in module here: tests never use the network)."""
    import sys
    import types

    from astropy.table import Table

    from dhs.stages.stage6 import load_lenses

    fake = types.ModuleType("lenscat")
    fake.catalog = Table({"name": ["J1"], "RA": [150.1], "DEC": [2.2], "grading": ["confident"], "ref": ["x"]})
    monkeypatch.setitem(sys.modules, "lenscat", fake)
    cfg = config_from_dict(debug_config.model_dump(mode="json"), ["stage6.use_lenscat=true"])
    t = load_lenses(cfg)
    assert t.source == "lenscat.catalog" and t.lens_id.tolist() == ["J1"] and t.grade.tolist() == ["confident"]
