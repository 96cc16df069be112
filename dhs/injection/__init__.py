"""Stage 4c per-task work (pure numpy/arrow, no Spark): PSF choice, source fluxes, arc noise, the
injection of one manifest row into one coadd cutout, and the output schema."""
