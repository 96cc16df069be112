"""Fixtures for the COSMOS bank tests: the real 100-galaxy GalSim catalogue and a 20-template bank."""

from __future__ import annotations

from pathlib import Path

import pytest

N_TEST = 20
SEED = 3


@pytest.fixture(scope="session")
def cosmos_dir(shared_data: Path) -> Path:
    path = shared_data / "cosmos"
    assert (path / "real_galaxy_catalog_26_extension_example.fits").is_file(), path
    return path


@pytest.fixture(scope="session")
def built_bank(cosmos_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    """(path, BuildResult) of a 20-template bank built from the real catalogue folder (seed 3)."""
    from dhs.cosmos.builder import build_bank

    out = tmp_path_factory.mktemp("cosmos") / "bank.h5"
    res = build_bank(cosmos_dir, out, n=N_TEST, seed=SEED, checkpoint_every=8)
    return out, res
