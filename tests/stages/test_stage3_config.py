"""Stage 3 configuration validation and sweep-path resolution (no Spark)."""

from __future__ import annotations

import itertools

import numpy as np
import pyarrow.csv as pcsv
import pytest

from dhs.config import ConfigError, config_from_dict
from dhs.sampling.lrg import resolve_variants
from dhs.sampling.regions import brick_area_deg2
from dhs.stages.stage3 import load_brick_summary, resolve_sweep_paths


def _cfg(tmp_path, check_inputs=False, **kw):
    data = {"survey_root": str(tmp_path), "output_root": str(tmp_path / "out"), **kw}
    return config_from_dict(data, check_inputs=check_inputs)


def test_defaults_valid(tmp_path):
    st = _cfg(tmp_path, stage3={}).stage3
    assert st.quality.ebv_max == 0.12 and st.quality.psfsize_r_max == 1.6 and st.quality.psfdepth_r_mag5_min == 23.6
    assert st.split_fractions == {"train": 0.70, "val": 0.15, "test": 0.15}
    assert "seed_phase3" in st.variants and st.healpix_nside == 32
    assert [s.kind for s in st.selection_sets] == ["topk", "stratified"]


@pytest.mark.parametrize("stage3,needle", [
    ({"regon_max_bricks": 3}, "stage3.regon_max_bricks: unknown key"),
    ({"healpix_nside": 48}, "stage3.healpix_nside"),
    ({"split_fractions": {"train": 0.8, "val": 0.3}}, "stage3.split_fractions"),
    ({"variants": ["v2_baseline_dr10", "v7"]}, "unknown ['v7']"),
    ({"custom_variants": {"mine": ["mag_z << 20"]}}, "cannot parse LRG cut 'mag_z << 20'"),
    ({"custom_variants": {"v1_pure_massive": ["mag_z < 20"]}}, "built-in variant"),
    ({"selection_sets": [{"kind": "topk", "k": 5}, {"kind": "topk", "k": 5}]}, "duplicate ids ['topk_density_k5']"),
    ({"selection_sets": [{"kind": "stratified", "n_bins": 3, "weights": [1, 2]}]}, "n_bins is 3"),
    ({"selection_sets": [{"kind": "best"}]}, "stage3.selection_sets[0].kind"),
    ({"quality": {"psfsize_r_max": -1}}, "stage3.quality.psfsize_r_max"),
])
def test_errors_name_the_key(tmp_path, stage3, needle):
    with pytest.raises(ConfigError) as exc:
        _cfg(tmp_path, stage3=stage3)
    assert needle in str(exc.value)


def test_run_variant_must_be_selected(tmp_path):
    with pytest.raises(ConfigError, match="variant: 'seed_phase3' is not among stage3.variants"):
        _cfg(tmp_path, check_inputs=True, variant="seed_phase3", stage3={"variants": ["v2_baseline_dr10"]})
    with pytest.raises(ConfigError, match="stage3.brick_summary: file does not exist"):
        _cfg(tmp_path, check_inputs=True, stage3={"brick_summary": str(tmp_path / "nope.fits")})


def test_custom_variant_usable(tmp_path):
    cfg = _cfg(tmp_path, variant="bright", stage3={"variants": ["bright"], "custom_variants": {"bright": ["mag_z < 19"]}})
    (v,) = resolve_variants(cfg.stage3.variants, cfg.stage3.custom_variants)
    assert [c.expr for c in v.cuts] == ["type != PSF", "mag_z < 19"]


def test_sweep_paths_glob_list_index(tmp_path):
    d = tmp_path / "sweep" / "10.1"
    d.mkdir(parents=True)
    names = ["sweep-000m005-005p000.fits", "sweep-005m005-010p000.fits", "sweep-010m005-015p000.fits"]
    for n in names:
        (d / n).write_bytes(b"")
    (d / "notes.txt").write_text("x")
    default = resolve_sweep_paths(_cfg(tmp_path))
    assert [p.rsplit("/", 1)[1] for p in default] == names
    lst = resolve_sweep_paths(_cfg(tmp_path, stage3={"sweeps": [str(d / names[2]), str(d / "sweep-00*.fits")]}))
    assert [p.rsplit("/", 1)[1] for p in lst] == names
    index = tmp_path / "sweeps.txt"
    index.write_text(f"# two sweeps\n{d / names[1]}\n\nsweep/10.1/{names[0]}\n")
    got = resolve_sweep_paths(_cfg(tmp_path, stage3={"sweep_index": str(index)}))
    assert sorted(p.rsplit("/", 1)[1] for p in got) == [names[0], names[1]]
    with pytest.raises(FileNotFoundError, match="stage3.sweeps"):
        resolve_sweep_paths(_cfg(tmp_path, stage3={"sweeps": str(d / "nothing-*.fits")}))


def test_brick_summary_real_rows_and_units(shared_data, tmp_path):
    """The 105 real DR10 brick-summary rows (CSV, 5σ depths in mag) load; ivar unit converts."""
    path = shared_data / "legacysurvey" / "survey-bricks-rows" / "primary_region_bricks_phase1p6.csv"
    s = load_brick_summary(str(path), "mag5")
    assert len(s["brickname"]) > 10 and {"ra1", "ra2", "dec1", "dec2"} <= set(s)
    assert float(s["psfdepth_r_mag5"].min()) > 22.0 and float(s["psfdepth_r_mag5"].max()) < 26.5
    area = brick_area_deg2(s["ra1"], s["ra2"], s["dec1"], s["dec2"])
    ref = pcsv.read_csv(str(path))["area_deg2"].to_numpy()
    np.testing.assert_allclose(area, ref, rtol=1e-5)
    ivar = tmp_path / "ivar.csv"
    ivar.write_text("brickname,ebv,psfsize_r,psfdepth_r\n0001p000,0.01,1.1,2500\n")
    s2 = load_brick_summary(str(ivar), "ivar")
    np.testing.assert_allclose(s2["psfdepth_r_mag5"], 22.5 - 2.5 * np.log10(5 / 50.0))
    with pytest.raises(KeyError, match="column 'psfsize_r' missing"):
        (tmp_path / "bad.csv").write_text("brickname,ebv,psfdepth_r\n0001p000,0.01,24\n")
        load_brick_summary(str(tmp_path / "bad.csv"), "mag5")


def test_brick_summary_bounds_from_centres(tmp_path):
    """A summary with centres but no bounds (as the DR10 file) gets the tiling's bounds; a name that does
    not match its centre is an error naming the row."""
    good = tmp_path / "s.csv"
    good.write_text("brickname,ra,dec,ebv,psfsize_r,psfdepth_r\n0001p000,0.125,0.0,0.01,1.1,24\n"
                    "3598p002,359.875,0.25,0.01,1.1,24\n")
    s = load_brick_summary(str(good), "mag5")
    np.testing.assert_allclose(s["ra1"], [0.0, 359.75])
    np.testing.assert_allclose(s["ra2"], [0.25, 360.0])
    np.testing.assert_allclose(s["dec1"], [-0.125, 0.125])
    bad = tmp_path / "b.csv"
    bad.write_text("brickname,ra,dec,ebv,psfsize_r,psfdepth_r\n0001p000,10.0,0.0,0.01,1.1,24\n")
    with pytest.raises(ValueError, match="row 0 brickname '0001p000' does not match"):
        load_brick_summary(str(bad), "mag5")


def test_row_chunks_cover_file_exactly(tmp_path):
    """read_chunk_rows splits a sweep into row ranges whose results add up to the whole-file result."""
    from dhs.sampling.lrg import resolve_variants
    from dhs.stages.stage3 import process_sweep
    from dhs.stages.sweep_inputs import sweep_read_tasks as _tasks

    from .stage3_minisky import build_minisky

    sky = build_minisky(tmp_path / "sky")
    path = sky["sweeps"][0]
    cfg = _cfg(tmp_path / "sky", stage3={"sweeps": [path], "read_chunk_rows": 1000})
    tasks = _tasks(cfg, [path])
    assert len(tasks) >= 3 and tasks[0][1] == 0 and all(a[2] == b[1] for a, b in itertools.pairwise(tasks))
    variants = resolve_variants(None)
    whole, s_whole = process_sweep(path, variants, "any", "v2_baseline_dr10")
    parts = [process_sweep(p, variants, "any", "v2_baseline_dr10", rows=(a, b)) for p, a, b in tasks]
    assert sum(s["rows_read"] for _, s in parts) == s_whole["rows_read"]
    import pyarrow as pa

    joined = pa.concat_tables([t for t, _ in parts])
    assert joined.equals(whole)
    for v in s_whole["failed_cut"]:
        for cut, n in s_whole["failed_cut"][v].items():
            assert sum(s["failed_cut"][v][cut] for _, s in parts) == n
