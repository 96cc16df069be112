"""The dhs command: --help everywhere, config errors reported without a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dhs.cli import build_parser, main


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["synth", "--help"], ["demo", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0
    assert "usage: dhs" in capsys.readouterr().out


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        assert p.format_help().startswith("usage:"), name


def test_run_reports_config_error(tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"survey_root: {tmp_path}\noutput_root: {tmp_path}/o\nstage3: {{bogus: 1}}\n")
    assert main(["run", str(cfg), "--stage", "3"]) == 2
    err = capsys.readouterr().err
    assert "stage3.bogus: unknown key" in err


def test_console_script_installed():
    out = subprocess.run([sys.executable, "-m", "dhs.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "synth" in out.stdout


def test_demo_config_is_package_data(tmp_path):
    """`dhs demo` reads its run configuration from the installed package (configs/debug.yaml shipped as
    dhs/presets/debug.yaml), not from a repository checkout."""
    import importlib.resources
    from pathlib import Path

    import yaml

    from dhs.cli import DEMO_CONFIG, demo_config

    repo = Path(__file__).resolve().parent.parent
    shipped = importlib.resources.files("dhs").joinpath(DEMO_CONFIG).read_text()
    assert shipped == (repo / "configs" / "debug.yaml").read_text()
    cfg = demo_config(str(tmp_path / "demo"), ["stage4c.supersample=2"])
    debug = yaml.safe_load(shipped)
    assert cfg.stage4a.theta_e_mode == debug["stage4a"]["theta_e_mode"] and cfg.stage3.region_max_bricks == 1
    assert cfg.survey_root == str(tmp_path / "demo" / "sky") and cfg.stage4c.supersample == 2
