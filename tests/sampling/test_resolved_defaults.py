"""The shipped configurations inject resolved, brightness-targeted lenses; the resolved-share check."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from dhs.config import ConfigError, config_from_dict, load_config
from dhs.config.stage4a import Stage4aConfig
from dhs.sampling.manifest import build_manifest
from tests.sampling.fake_hosts import fake_parent

REPO = Path(__file__).resolve().parents[2]


def _stage4a(name: str, tmp_path: Path) -> Stage4aConfig:
    over = [f"survey_root={tmp_path}", f"output_root={tmp_path}/out"] + (["synth=null"] if name == "debug" else [])
    return load_config(REPO / "configs" / f"{name}.yaml", over).stage4a


def _moffat_fwhm(psfsize: np.ndarray, beta: float = 3.5) -> np.ndarray:
    """DESIGN §3, written out: FWHM = PSFSIZE · 4(β−1)·sqrt(2^(1/β)−1) / (sqrt(2β−1)·2.3548)."""
    return psfsize * 4 * (beta - 1) * np.sqrt(2 ** (1 / beta) - 1) / (np.sqrt(2 * beta - 1) * 2.354820045)


@pytest.mark.parametrize("name", ["dr10", "debug"])
def test_shipped_configs_inject_resolved_targeted_lenses(name, tmp_path):
    s = _stage4a(name, tmp_path)
    assert s.parameter_source == "priors" and s.theta_e_mode == "psf_ratio"
    assert s.brightness_targeting and s.target_snr_metric == "arc_snr"
    assert s.resolved.theta_e_over_psf_min == 1.0 and s.resolved.min_fraction == 0.9
    more = {"max_rows": 10**7} | ({"n_hosts_per_cell": 10} if s.tier == "debug" else {})
    res = build_manifest(fake_parent(3000, seed=21), s.model_copy(update=more), experiment_id=name, seed=7)
    df = res.table.to_pandas()
    pos = df[df.is_control == 0]                 # injections and null-audit rows: θE drawn alike
    assert len(pos) > 1000
    ratio = pos.theta_e_arcsec / _moffat_fwhm(pos.psfsize_r.to_numpy())
    share = float(np.mean(ratio >= 1.0))
    assert 0.92 <= share <= 0.98                    # 95 % by the prior, binomial scatter on > 1000 rows
    assert res.counts["resolved_fraction"] == pytest.approx(share, abs=1e-12)
    assert res.counts["resolved_theta_e_over_psf_min"] == 1.0
    assert ratio.min() >= 0.5 - 1e-9 and ratio.max() <= 2.5 + 1e-9
    inj = pos[pos.lens_model != "NULL"]          # null-audit rows carry no brightness target
    t = inj.target_snr.to_numpy()
    assert np.all(t >= 0.8) and (inj.target_snr_metric == "arc_snr").all()
    shares = [np.mean((t >= lo) & (t < hi)) for lo, hi in ((0.8, 2), (2, 8), (8, 20), (20, np.inf))]
    assert shares == pytest.approx([0.40, 0.40, 0.15, 0.05], abs=0.02)


def test_demo_runs_the_debug_configuration(tmp_path):
    from dhs.cli import demo_config

    cfg = demo_config(str(tmp_path), [])
    assert cfg.stage4a == _stage4a("debug", tmp_path)


def _data(tmp_path: Path, **stage4a) -> dict:
    return {"survey_root": str(tmp_path), "output_root": str(tmp_path / "out"), "stage4a": stage4a}


def test_resolved_share_is_checked_when_the_config_loads(tmp_path):
    ok = _data(tmp_path, parameter_source="priors", theta_e_mode="psf_ratio", resolved={"min_fraction": 0.95})
    assert config_from_dict(ok).stage4a.resolved.min_fraction == 0.95
    with pytest.raises(ConfigError, match=r"stage4a.*min_fraction = 0.96.*0\.950"):
        config_from_dict(_data(tmp_path, parameter_source="priors", theta_e_mode="psf_ratio",
                               resolved={"min_fraction": 0.96}))
    # a stricter "resolved" threshold makes the same prior fail: uniform 1–2.5 above 1.5 is 2/3 of 95 %
    with pytest.raises(ConfigError, match=r"0\.633"):
        config_from_dict(_data(tmp_path, parameter_source="priors", theta_e_mode="psf_ratio",
                               resolved={"theta_e_over_psf_min": 1.5, "min_fraction": 0.9}))
    with pytest.raises(ConfigError, match="psf_ratio"):
        config_from_dict(_data(tmp_path, resolved={"min_fraction": 0.9}))      # grid θE: cannot be promised


def test_unresolved_grid_run_reports_its_resolved_share():
    """The seed's grid_small (θE 0.3–1″) against DR10 PSFs: most injections are unresolved, and the counts
    say so."""
    from dhs.sampling.grids import load_grid

    res = build_manifest(fake_parent(300, seed=2), Stage4aConfig(tier="debug"), experiment_id="g", seed=1,
                         grid=load_grid("grid_small"))
    df = res.table.to_pandas()
    pos = df[df.is_control == 0]                 # injections and null-audit rows: θE drawn alike
    expected = float(np.mean(pos.theta_e_arcsec / _moffat_fwhm(pos.psfsize_r.to_numpy()) >= 1.0))
    assert res.counts["resolved_fraction"] == pytest.approx(expected)
    assert expected < 0.4
