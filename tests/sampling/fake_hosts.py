"""A small fake stage-3 parent table (docs/outputs.md parent columns) for the stage 4a unit tests."""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def fake_parent(n: int = 600, seed: int = 7, splits=("train", "val", "test"), split_p=(0.6, 0.2, 0.2)) -> pa.Table:
    """``n`` LRG-like parent rows with realistic DR10 PSF sizes (arcsec), depths (nanomaggy⁻²) and mags."""
    rng = np.random.default_rng(seed)
    psfsize_r = rng.uniform(0.9, 1.6, n)
    mag5_r = rng.uniform(23.4, 24.4, n)
    psfdepth_r = 1.0 / (10 ** (-0.4 * (mag5_r - 22.5)) / 5.0) ** 2
    bricks = np.array([f"{1000 + i:04d}p{i % 7:03d}" for i in range(25)])
    brick = bricks[rng.integers(0, len(bricks), n)]
    objid = np.arange(n)
    split = np.array(splits)[rng.choice(len(splits), n, p=np.asarray(split_p))]
    sel = [["topk_density_k100"] if i % 3 else ["topk_density_k100", "strat_psf_weighted"] for i in range(n)]
    return pa.table({
        "galaxy_id": [f"{b}_{o}" for b, o in zip(brick, objid)],
        "brickname": brick,
        "objid": objid,
        "ra": rng.uniform(150.0, 152.0, n),
        "dec": rng.uniform(1.0, 3.0, n),
        "type": np.where(rng.random(n) < 0.5, "DEV", "SER"),
        "mag_r": rng.uniform(18.0, 21.0, n),
        "psfsize_g": psfsize_r * 1.1, "psfsize_r": psfsize_r, "psfsize_z": psfsize_r * 0.95,
        "psfdepth_g": psfdepth_r * 1.5, "psfdepth_r": psfdepth_r, "psfdepth_z": psfdepth_r * 0.3,
        "ebv": rng.uniform(0.01, 0.1, n),
        "is_lrg_v2_baseline_dr10": rng.random(n) < 0.9,
        "region_id": rng.integers(0, 30, n),
        "region_split": split,
        "selection_sets": pa.array(sel, type=pa.list_(pa.string())),
    })
