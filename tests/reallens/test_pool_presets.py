"""Pool presets: the first documented rules of the seed system beside today's (revised) defaults."""

from __future__ import annotations

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from dhs.config import ConfigError, config_from_dict
from dhs.config.stage6 import POOL_PRESETS, Stage6Config
from dhs.reallens.derived import NOBS_Z_BINS
from dhs.reallens.sweep_task import process_columns
from tests.reallens.sweep_factory import default_columns


def _st(tmp_path, stage6):
    return config_from_dict({"survey_root": str(tmp_path), "output_root": str(tmp_path / "o"), "stage6": stage6}).stage6


def test_first_documented_holds_the_seed_values(tmp_path):
    """Every value of seed-facts' 'first documented version' list."""
    st = _st(tmp_path, {"pool_preset": "first_documented"})
    f = st.filters
    assert (f.footprint.dec_min_deg, f.footprint.dec_max_deg) == (-18.0, 32.0)
    assert (f.nobs.min, f.nobs.bands) == (3, ["g", "r", "z"])
    assert f.maskbits.bits == [1, 5, 6, 7, 11, 12, 13]
    assert f.type.allowed == ["SER", "DEV", "REX", "EXP"]
    assert (f.mag.band, f.mag.max, f.mag.missing_passes) == ("z", 21.0, True)
    assert f.known_lens.radius_arcsec == 10.0
    rules = [(r.category, r.type_in, r.flux_r_min, r.shape_r_min, r.g_minus_r_max, r.mag_r_max) for r in st.n2_rules]
    assert rules == [("ring_proxy", ["DEV"], 10.0, None, None, None),
                     ("edge_on_proxy", ["EXP"], None, 2.0, None, None),
                     ("blue_clumpy", None, None, None, 0.4, 19.0)]
    assert [b[2] for b in NOBS_Z_BINS] == ["1-2", "3-5", "6-10", "11+"]
    assert (st.sampling.n2_fraction, st.healpix_nside, st.cutouts.size) == (0.15, 128, 101)
    assert st.split_fractions == {"train": 0.70, "val": 0.15, "test": 0.15}


def test_revised_is_the_default(tmp_path):
    """No preset named = ``revised`` = the field defaults: EXP dropped, z < 20, 11″, four N2 categories."""
    a, b = _st(tmp_path, {}), _st(tmp_path, {"pool_preset": "revised"})
    assert a == b == Stage6Config() and a.pool_preset == "revised"
    assert a.filters.type.allowed == ["SER", "DEV", "REX"] and a.filters.mag.max == 20.0
    assert not a.filters.mag.missing_passes and a.filters.known_lens.radius_arcsec == 11.0
    assert sorted({r.category for r in a.n2_rules}) == ["blue_clumpy", "edge_on_proxy", "large_galaxy", "ring_proxy"]
    assert [r.model_dump(exclude_defaults=True) for r in a.n2_rules] == POOL_PRESETS["revised"]["n2_rules"]


def test_keys_override_the_preset(tmp_path):
    st = _st(tmp_path, {"pool_preset": "first_documented", "filters": {"mag": {"max": 22.0}},
                        "n2_rules": [{"category": "big", "shape_r_min": 3.0}]})
    assert st.filters.mag.max == 22.0 and st.filters.mag.missing_passes          # merged, not replaced
    assert st.filters.type.allowed == ["SER", "DEV", "REX", "EXP"]
    assert [r.category for r in st.n2_rules] == ["big"]


def test_unknown_preset_names_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"stage6\.pool_preset"):
        _st(tmp_path, {"pool_preset": "paper_iv"})


def _rows():
    """One row per rule difference between the presets (default_columns pass every filter of both)."""
    cols = default_columns(7)
    cols["type"] = np.array(["EXP", "SER", "SER", "SER", "DEV", "EXP", "SER"])
    cols["shape_r"][5] = 2.5                                  # EXP, large: edge-on proxy of the first version
    cols["flux_z"][1] = 10.0 ** (-0.4 * (20.5 - 22.5))        # z = 20.5
    cols["flux_z"][2] = 0.0                                   # no z magnitude
    cols["flux_r"][4] = 7.0                                   # DEV with 5 ≤ flux_r < 10
    cols["flux_g"][6] = 10.0 ** (-0.4 * (19.6 - 22.5))        # blue (g − r = 0.3) at r = 19.3
    cols["flux_r"][6] = 10.0 ** (-0.4 * (19.3 - 22.5))
    lens = SkyCoord(10.0 * u.deg, 0.0 * u.deg).directional_offset_by(0 * u.deg, 10.5 * u.arcsec)
    cols["ra"] = np.full(7, 10.0) + np.arange(7) * 0.01
    cols["ra"][3] = 10.0                                      # 10.5″ from the lens
    return cols, np.array([lens.ra.deg]), np.array([lens.dec.deg])


@pytest.mark.parametrize("preset,kept,n2", [
    ("revised", ["0001p000_4", "0001p000_6"], {"0001p000_4": "ring_proxy", "0001p000_6": "blue_clumpy"}),
    ("first_documented", [f"0001p000_{i}" for i in range(7)],
     {"0001p000_5": "edge_on_proxy"}),
])
def test_presets_on_sweep_rows(tmp_path, preset, kept, n2):
    """The same rows through both rule sets: EXP, z = 20.5, missing z and 10.5″ from a lens pass only the first
    version; its N2 rules differ (DEV flux_r 7 is a ring only in the revision; r = 19.3 is too faint for the
    first version's blue-clumpy cut; EXP with shape_r 2.5″ is its edge-on proxy)."""
    st = _st(tmp_path, {"pool_preset": preset})
    cols, lra, ldec = _rows()
    _, neg, _ = process_columns(cols, lra, ldec, st, 1, "x.fits")
    assert neg["galaxy_id"].to_pylist() == kept
    cats = {g: c for g, c in zip(neg["galaxy_id"].to_pylist(), neg["n2_category"].to_pylist()) if c}
    assert cats == n2


@pytest.mark.parametrize("preset", ["revised", "first_documented"])
def test_nobs_z_1_2_holds_neither_negatives_nor_positives(tmp_path, preset):
    """Under the ≥ 3-exposure rule no negative can fall in nobs_z 1–2; positives pass the same rule, so a lens
    on such an object is reported instead of filling a stratum that can never get negatives."""
    st = _st(tmp_path, {"pool_preset": preset})
    cols = default_columns(4)
    cols["nobs_z"] = np.array([1, 2, 3, 11])
    cols["ra"] = 10.0 + np.arange(4) * 0.01
    _, neg, _ = process_columns(cols, np.zeros(0), np.zeros(0), st, 1, "x.fits")
    assert "1-2" not in set(neg["nobs_z_bin"].to_pylist()) and neg.num_rows == 2
    cand, _, _ = process_columns(cols, cols["ra"] + 1e-5, cols["dec"], st, 1, "x.fits")
    failed = dict(zip(cand["galaxy_id"].to_pylist(), cand["filter_failed"].to_pylist()))
    assert failed == {"0001p000_0": "nobs", "0001p000_1": "nobs", "0001p000_2": "", "0001p000_3": ""}


def test_preset_selected_in_the_run_yaml(tmp_path):
    """configs/debug.yaml with ``--set stage6.pool_preset=first_documented``: a sweep file read by the stage's
    task keeps the rows only the first version admits."""
    from pathlib import Path

    from dhs.config import load_config
    from dhs.reallens.sweep_task import process_sweep
    from tests.reallens.sweep_factory import write_sweep

    cols, lra, ldec = _rows()
    path = write_sweep(str(tmp_path / "sweep-000p000-010p005.fits"), cols)
    yaml = Path(__file__).resolve().parents[2] / "configs" / "debug.yaml"
    kept = {}
    for preset in ("revised", "first_documented"):
        cfg = load_config(yaml, [f"stage6.pool_preset={preset}"], check_inputs=False)
        assert cfg.stage6.pool_preset == preset
        _, neg, summary = process_sweep(path, lra, ldec, cfg.stage6, cfg.seed)
        kept[preset] = neg.num_rows
        assert summary["rows_read"] == 7 == neg.num_rows + sum(summary["first_failed"].values())
    assert kept == {"revised": 2, "first_documented": 7}
