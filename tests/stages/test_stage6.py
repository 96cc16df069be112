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


@pytest.fixture(scope="module")
def planted(synth_sky, tmp_path_factory):
    """A lens CSV: one lens 1″ from each of 8 galaxies, a second entry for the first (duplicate), one lens
    far from the sky (unmatched)."""
    d = _sweep_rows(synth_sky)
    edge = set(synth_sky.edge_galaxy_ids)
    ok = np.isin(d["type"], ["DEV", "SER"]) & (d["nobs_z"] >= 3) & ~np.isin(d["galaxy_id"], list(edge))
    idx = np.flatnonzero(ok)[::7][:8]
    assert idx.size == 8
    lines = ["name,ra,dec,grade,reference"]
    truth = {}
    for k, i in enumerate(idx.tolist()):
        c = SkyCoord(d["ra"][i] * u.deg, d["dec"][i] * u.deg).directional_offset_by(45 * u.deg, OFFSET * u.arcsec)
        lines.append(f"L{k},{c.ra.deg:.10f},{c.dec.deg:.10f},{'A' if k % 2 else 'B'},synthetic")
        truth[f"L{k}"] = d["galaxy_id"][i]
    c = SkyCoord(d["ra"][idx[0]] * u.deg, d["dec"][idx[0]] * u.deg).directional_offset_by(200 * u.deg, 2.5 * u.arcsec)
    lines.append(f"Ldup,{c.ra.deg:.10f},{c.dec.deg:.10f},A,duplicate entry")
    lines.append("Lfar,200.0,10.0,A,elsewhere")
    path = tmp_path_factory.mktemp("lenses") / "planted.csv"
    path.write_text("\n".join(lines) + "\n")
    return path, truth, d


@pytest.fixture(scope="module")
def stage6_run(spark, debug_config, planted, tmp_path_factory):
    from dhs.stages import stage6

    out = tmp_path_factory.mktemp("stage6-out")
    cfg = config_from_dict(debug_config.model_dump(mode="json"),
                           [f"stage6.lens_catalog={planted[0]}", f"output_root={out}"])
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
    _, truth, sweep = planted
    dirs = res.extra["dirs"]
    docs = {}
    for k in stage6.KINDS:
        assert os.path.isfile(os.path.join(dirs[k], "_stage_config.json")), k
        docs[k] = json.loads(_text(dirs[k], "_stage_config.json"))
    counts = docs["sample"]["counts"]
    assert docs["positives"]["counts"] == counts

    # positives: one row per lens; planted matches at 1″, the duplicate names its winner, the far one unmatched
    pos = _read(dirs["positives"])
    assert len(pos) == 10 == counts["positives"]["rows_in"] == counts["positives"]["rows_out"]
    by = pos.set_index("lens_id")
    for lid, gid in truth.items():
        assert by.loc[lid, "match_status"] == "matched" and by.loc[lid, "galaxy_id"] == gid
        assert by.loc[lid, "sep_arcsec"] == pytest.approx(OFFSET, abs=1e-6)
        assert by.loc[lid, "tier"] == ("A" if int(lid[1:]) % 2 else "B")
    assert by.loc["Ldup", "match_status"] == "duplicate" and by.loc["Ldup", "duplicate_of"] == "L0"
    assert by.loc["Lfar", "match_status"] == "unmatched" and pd.isna(by.loc["Lfar", "galaxy_id"])
    assert counts["positives"]["matched"] == 8

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
    assert len(okr) >= len(cut) - 2
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


def test_stage6_without_catalogue_is_a_clear_error(debug_config):
    from dhs.stages.stage6 import load_lenses

    with pytest.raises(ValueError, match="stage6.lens_catalog"):
        load_lenses(debug_config)


def test_positives_table_without_candidates(debug_config):
    """No lens matched: one row per lens, null object columns, split from the lens position."""
    from dhs.io.lens_tables import LensTable
    from dhs.reallens.derived import healpix_index
    from dhs.reallens.sweep_task import CANDIDATE_SCHEMA
    from dhs.stages.stage6 import positives_table

    lenses = LensTable(np.array([1.0, 2.0]), np.array([0.0, 1.0]), np.array(["A", ""], dtype=object),
                       np.array(["r", ""], dtype=object), np.array(["a", "b"], dtype=object), "x.csv", {})
    t, c = positives_table(lenses, CANDIDATE_SCHEMA.empty_table(), debug_config)
    st = debug_config.stage6
    pix = healpix_index(lenses.ra, lenses.dec, st.healpix_nside)
    assert c == {"matched": 0, "unmatched": 2, "duplicate": 0}
    assert t["galaxy_id"].to_pylist() == [None, None] and t["tier"].to_pylist() == ["A", "B"]
    assert t["healpix"].to_pylist() == pix.tolist()
    assert t["region_split"].to_pylist() == hash_split(pix, st.healpix_nside, debug_config.seed,
                                                       st.split_fractions).tolist()


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
