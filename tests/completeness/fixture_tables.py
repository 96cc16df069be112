"""Builders of small 4c-like tables (DESIGN §5 stamps/metrics columns) for the 4d tests.

Everything is drawn from a seeded numpy Generator, so the tables are the same on every run.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

PIX = 0.262  # arcsec per pixel


def host_image(size: int, flux: float, sigma_pix: float = 2.0) -> np.ndarray:
    """A round Gaussian host of total ``flux`` nanomaggies centred on pixel (size//2, size//2)."""
    yy, xx = np.mgrid[0:size, 0:size]
    r2 = (yy - size // 2) ** 2 + (xx - size // 2) ** 2
    g = np.exp(-0.5 * r2 / sigma_pix**2)
    return flux * g / g.sum()


def ring_image(size: int, flux: float, radius_pix: float, width_pix: float = 1.2) -> np.ndarray:
    """A thin ring (an Einstein-ring-like arc) of total ``flux`` nanomaggies."""
    yy, xx = np.mgrid[0:size, 0:size]
    r = np.hypot(yy - size // 2, xx - size // 2)
    g = np.exp(-0.5 * (r - radius_pix) ** 2 / width_pix**2)
    return flux * g / g.sum()


def metrics_table(n_pos: int = 400, n_ctrl: int = 200, seed: int = 7, stamps: bool = False,
                  size: int = 32, n_regions: int = 4, extra_core_flux: float = 0.0) -> pd.DataFrame:
    """Injection rows (lens_model "SIE") and control rows ("CONTROL") with 4c columns.

    Injections: θE from a grid, psf_fwhm_used_r in [0.9, 1.5]″, arc_snr log-uniform in [1, 100];
    about 5 % failed cutouts (cutout_ok = 0, metrics null) and 3 % with a null arc_snr. Controls: θE = 0,
    arc metrics null, ``control_of`` = a positive's task_id. With ``stamps=True`` a ``stamp`` column holds
    float32 (3, size, size) arrays (host + noise [+ ring for injections] [+ ``extra_core_flux`` nanomaggies
    in a compact core for injections — the shortcut the audit must flag]).
    """
    rng = np.random.default_rng(seed)
    n = n_pos + n_ctrl
    is_ctrl = np.r_[np.zeros(n_pos, int), np.ones(n_ctrl, int)]
    theta = np.r_[rng.choice([0.3, 0.6, 1.0, 1.5], n_pos), np.zeros(n_ctrl)]
    psf = rng.uniform(0.9, 1.5, n)
    snr = np.r_[10 ** rng.uniform(0, 2, n_pos), np.full(n_ctrl, np.nan)]
    ok = (rng.uniform(size=n) > 0.05).astype(int)
    region = rng.integers(0, n_regions, n)
    split = np.array(["train", "val", "test"])[region % 3]
    df = pd.DataFrame({
        "task_id": [f"t{i:05d}" for i in range(n)],
        "galaxy_id": [f"0001p000_{i}" for i in range(n)],
        "is_control": is_ctrl,
        "lens_model": np.where(is_ctrl == 1, "CONTROL", "SIE"),
        "control_of": [None] * n_pos + [f"t{int(j):05d}" for j in rng.integers(0, n_pos, n_ctrl)],
        "theta_e_arcsec": theta,
        "psf_fwhm_used_r": psf,
        "psf_fwhm_used_g": psf * 1.1,
        "psf_fwhm_used_z": psf * 0.95,
        "psfsize_r": psf / 0.81,
        "psfdepth_r": 10 ** rng.uniform(2.5, 3.5, n),
        "psf_source_g": rng.choice([0, 1, 2], n, p=[0.8, 0.15, 0.05]),
        "psf_source_r": rng.choice([0, 1], n, p=[0.9, 0.1]),
        "psf_source_z": np.zeros(n, int),
        "arc_snr": snr,
        "arc_snr_sum": snr * 0.6,             # seed definition: all good pixels of a 64² stamp dilute it
        "arc_snr_sum_footprint": snr * 3.0,
        "src_mag_r": np.r_[rng.uniform(22, 26, n_pos), np.full(n_ctrl, np.nan)],
        "cutout_ok": ok,
        "error": np.where(ok == 1, None, "off_image"),
        "bad_pixel_frac": rng.uniform(0, 0.35, n),
        "wise_brightmask_frac": rng.choice([0.0, 0.5], n, p=[0.9, 0.1]),
        "region_id": region,
        "region_split": split,
        "stamp_size": size,
    })
    df["region_id"] = df["region_id"].astype("int64")
    df.loc[ok == 0, ["arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "bad_pixel_frac"]] = np.nan
    null_snr = (rng.uniform(size=n) < 0.03) & (is_ctrl == 0)
    df.loc[null_snr, "arc_snr"] = np.nan
    df["arc_snr"] = df["arc_snr"].astype("Float64")  # nullable, like Parquet nulls
    if stamps:
        blobs = []
        for i in range(n):
            img = np.stack([host_image(size, f) for f in rng.uniform(5, 20, 1) * np.array([0.5, 1.0, 1.6])])
            img += rng.normal(0, 0.01, img.shape)
            if is_ctrl[i] == 0:
                img += np.stack([ring_image(size, f, max(theta[i] / PIX, 1.5)) for f in (1.0, 1.2, 1.4)])
                if extra_core_flux:
                    img += np.stack([host_image(size, extra_core_flux * c, 1.0) for c in (0.5, 1.0, 1.6)])
            blobs.append(img.astype("<f4").tobytes())
        df["stamp"] = blobs
    return df


def decode_stamps(df: pd.DataFrame, size: int) -> np.ndarray:
    """(N, 3, size, size) float32 from the ``stamp`` blobs (float32 LE, C order)."""
    return np.stack([np.frombuffer(b, dtype="<f4").reshape(3, size, size) for b in df["stamp"]])


def write_4c_outputs(output_root: str, variant: str, experiment_id: str, df: pd.DataFrame) -> tuple[str, str]:
    """Write ``df`` as the 4c ``stamps/`` (with arrays) and ``metrics/`` (without) Parquet datasets,
    partitioned by region_split, under ``<output_root>/phase4c/<variant>/``; returns both paths."""
    import os

    import pyarrow as pa
    import pyarrow.parquet as pq

    base = os.path.join(output_root, "phase4c", variant)
    stamps = os.path.join(base, "stamps", experiment_id)
    metrics = os.path.join(base, "metrics", experiment_id)
    pq.write_to_dataset(pa.Table.from_pandas(df, preserve_index=False), stamps, partition_cols=["region_split"])
    m = df.drop(columns=[c for c in ("stamp",) if c in df.columns])
    pq.write_to_dataset(pa.Table.from_pandas(m, preserve_index=False), metrics, partition_cols=["region_split"])
    return stamps, metrics
