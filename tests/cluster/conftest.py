"""Fixtures for the cluster tests: the packed executor environment built as `make dist` builds it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def packed_env(tmp_path_factory) -> Path:
    """dhs wheel + a fresh venv filled by docker/install-dhs.sh (the Dockerfile's install step), venv-packed."""
    work = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(work), str(REPO)],
                   check=True)
    wheel = next(work.glob("dhs-*.whl"))
    env_dir = work / "env"
    base_python = Path(sys.base_prefix) / "bin" / "python3"
    subprocess.run([str(base_python), "-m", "venv", str(env_dir)], check=True)
    subprocess.run(["bash", str(REPO / "docker" / "install-dhs.sh"), str(env_dir / "bin" / "python"), str(wheel)],
                   check=True)
    archive = work / "dhs-env.tar.gz"
    subprocess.run([str(Path(sys.executable).parent / "venv-pack"), "--quiet", "--compress-level", "1",
                    "-p", str(env_dir), "-o", str(archive)], check=True)
    return archive
