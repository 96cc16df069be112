"""Synthetic DR10 sky for the demo, CI and end-to-end tests.

``build_sky(out_dir, n_bricks=6, seed=42, coadd_size=480) -> SynthSky`` writes sweeps, coadds
(image/invvar/psfsize per band, maskbits with WISE masks) and the brick summary in the exact DR10 layout,
with every catalogue object drawn into the images from its catalogue parameters.
"""

from dhs.synth.sky import SynthSky, build_sky

__all__ = ["SynthSky", "build_sky"]
