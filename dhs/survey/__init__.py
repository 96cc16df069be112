"""Legacy Surveys DR10 data model: bricks, MASKBITS, photometry, file layout, sweeps, coadd store."""
