"""`dhs grids`: the named grids with their number of configurations, user grids, broken grid files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from dhs.cli import main
from dhs.sampling.grids import packaged_grids_dir

SIZES = {"grid_small": 48, "grid_medium": 360, "grid_full": 3024, "grid_sota": 1944, "grid_wide": 1008,
         "v4_sota": 1944}


def _table(text: str) -> dict[str, list[str]]:
    rows = [line.split() for line in text.splitlines() if line and not line.startswith(("grid ", "axis"))]
    return {r[0]: r for r in rows}


def test_lists_every_named_grid_with_its_size(capsys, monkeypatch):
    monkeypatch.delenv("DHS_GRIDS_DIR", raising=False)
    assert main(["grids"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["grid", "configs", "theta_e_arcsec"]
    table = _table(out)
    assert {k: int(v[1]) for k, v in table.items()} == SIZES
    small = table["grid_small"]
    assert small[2:12] == ["3:", "0.3..1", "2:", "1..2", "2:", "0.08..0.15", "2:", "0..0.3", "2:", "0..0.03"]
    assert Path(small[-1]) == packaged_grids_dir() / "grid_small.yaml"


def test_user_grids_dir_and_env_come_first(tmp_path, capsys, monkeypatch):
    env_dir, extra = tmp_path / "env", tmp_path / "extra"
    env_dir.mkdir()
    extra.mkdir()
    (env_dir / "mine.yaml").write_text("name: mine\ntheta_e_arcsec: [1.0, 2.0]\nsrc_dmag: [1.0]\n"
                                       "src_reff_arcsec: [0.1]\nsrc_e: [0.0]\nshear: [0.0, 0.01, 0.02]\n")
    (extra / "grid_small.yaml").write_text("name: grid_small\ntheta_e_arcsec: [1.0]\nsrc_dmag: [1.0]\n"
                                           "src_reff_arcsec: [0.1]\nsrc_e: [0.0]\nshear: [0.0]\n")
    monkeypatch.setenv("DHS_GRIDS_DIR", str(env_dir))
    assert main(["grids", "--grids-dir", str(extra)]) == 0
    table = _table(capsys.readouterr().out)
    assert int(table["mine"][1]) == 6 and table["mine"][-1] == str(env_dir / "mine.yaml")
    assert int(table["grid_small"][1]) == 1 and table["grid_small"][-1] == str(extra / "grid_small.yaml")
    assert int(table["grid_full"][1]) == 3024


def test_broken_grid_file_is_reported_and_fails(tmp_path, capsys, monkeypatch):
    (tmp_path / "broken.yaml").write_text("name: broken\ntheta_e_arcsec: [1.0]\n")
    monkeypatch.setenv("DHS_GRIDS_DIR", str(tmp_path))
    assert main(["grids"]) == 1
    cap = capsys.readouterr()
    assert "broken.yaml: missing axis key(s)" in cap.err
    assert int(_table(cap.out)["grid_small"][1]) == 48


def test_console_script_lists_grids():
    out = subprocess.run([str(Path(sys.executable).parent / "dhs"), "grids"], capture_output=True, text=True)
    assert out.returncode == 0 and "grid_sota" in out.stdout
