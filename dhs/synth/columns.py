"""The DR10 sweep column set written by the synthetic sky (names, FITS formats, units).

Derived from the DR9/DR10 Tractor data model (a real 181-column DR9 sweep row in the test data is the check):
the scalar Tractor columns plus the ``DCHISQ`` vector, with DR10-south's i band added; the aperture-flux
and WISE light-curve vectors (``APFLUX_*``, ``LC_*``) are not in sweeps and are left out.
"""

from __future__ import annotations

OPTICAL = ("G", "R", "I", "Z")
WISE = ("W1", "W2", "W3", "W4")
GRZ = ("G", "R", "Z")

_GAIA = [
    ("GAIA_PHOT_G_MEAN_MAG", "E"), ("GAIA_PHOT_G_MEAN_FLUX_OVER_ERROR", "E"), ("GAIA_PHOT_G_N_OBS", "I"),
    ("GAIA_PHOT_BP_MEAN_MAG", "E"), ("GAIA_PHOT_BP_MEAN_FLUX_OVER_ERROR", "E"), ("GAIA_PHOT_BP_N_OBS", "I"),
    ("GAIA_PHOT_RP_MEAN_MAG", "E"), ("GAIA_PHOT_RP_MEAN_FLUX_OVER_ERROR", "E"), ("GAIA_PHOT_RP_N_OBS", "I"),
    ("GAIA_PHOT_VARIABLE_FLAG", "L"), ("GAIA_ASTROMETRIC_EXCESS_NOISE", "E"),
    ("GAIA_ASTROMETRIC_EXCESS_NOISE_SIG", "E"), ("GAIA_ASTROMETRIC_N_OBS_AL", "I"),
    ("GAIA_ASTROMETRIC_N_GOOD_OBS_AL", "I"), ("GAIA_ASTROMETRIC_WEIGHT_AL", "E"),
    ("GAIA_DUPLICATED_SOURCE", "L"), ("GAIA_A_G_VAL", "E"), ("GAIA_E_BP_MIN_RP_VAL", "E"),
    ("GAIA_PHOT_BP_RP_EXCESS_FACTOR", "E"), ("GAIA_ASTROMETRIC_SIGMA5D_MAX", "E"),
    ("GAIA_ASTROMETRIC_PARAMS_SOLVED", "B"),
]


def _per(prefix: str, bands: tuple[str, ...], fmt: str) -> list[tuple[str, str]]:
    return [(f"{prefix}_{b}", fmt) for b in bands]


#: (name, FITS TFORM) of every sweep column, in file order.
SWEEP_SCHEMA: list[tuple[str, str]] = (
    [("RELEASE", "I"), ("BRICKID", "J"), ("BRICKNAME", "8A"), ("OBJID", "J"), ("BRICK_PRIMARY", "L"),
     ("MASKBITS", "J"), ("FITBITS", "I"), ("TYPE", "3A"), ("RA", "D"), ("DEC", "D"), ("RA_IVAR", "E"),
     ("DEC_IVAR", "E"), ("BX", "E"), ("BY", "E"), ("DCHISQ", "5E"), ("EBV", "E"), ("MJD_MIN", "D"),
     ("MJD_MAX", "D"), ("REF_CAT", "2A"), ("REF_ID", "K"), ("PMRA", "E"), ("PMDEC", "E"), ("PARALLAX", "E"),
     ("PMRA_IVAR", "E"), ("PMDEC_IVAR", "E"), ("PARALLAX_IVAR", "E"), ("REF_EPOCH", "E")]
    + _GAIA
    + _per("FLUX", OPTICAL + WISE, "E") + _per("FLUX_IVAR", OPTICAL + WISE, "E")
    + _per("FIBERFLUX", OPTICAL, "E") + _per("FIBERTOTFLUX", OPTICAL, "E")
    + _per("MW_TRANSMISSION", OPTICAL + WISE, "E") + _per("NOBS", OPTICAL + WISE, "I")
    + _per("RCHISQ", OPTICAL + WISE, "E") + _per("FRACFLUX", OPTICAL + WISE, "E")
    + _per("FRACMASKED", OPTICAL, "E") + _per("FRACIN", OPTICAL, "E")
    + _per("ANYMASK", OPTICAL, "I") + _per("ALLMASK", OPTICAL, "I")
    + [("WISEMASK_W1", "B"), ("WISEMASK_W2", "B")]
    + _per("PSFSIZE", OPTICAL, "E") + _per("PSFDEPTH", OPTICAL, "E") + _per("GALDEPTH", OPTICAL, "E")
    + _per("NEA", OPTICAL, "E") + _per("BLOB_NEA", OPTICAL, "E") + _per("PSFDEPTH", WISE, "E")
    + [("WISE_COADD_ID", "8A"), ("WISE_X", "E"), ("WISE_Y", "E"),
       ("SERSIC", "E"), ("SERSIC_IVAR", "E"), ("SHAPE_R", "E"), ("SHAPE_R_IVAR", "E"),
       ("SHAPE_E1", "E"), ("SHAPE_E1_IVAR", "E"), ("SHAPE_E2", "E"), ("SHAPE_E2_IVAR", "E")]
)

#: Units of the columns that have one (FITS TUNIT).
SWEEP_UNITS: dict[str, str] = {
    "RA": "deg", "DEC": "deg", "RA_IVAR": "1/deg^2", "DEC_IVAR": "1/deg^2", "BX": "pix", "BY": "pix",
    "EBV": "mag", "MJD_MIN": "d", "MJD_MAX": "d", "PMRA": "mas/yr", "PMDEC": "mas/yr", "PARALLAX": "mas",
    "PMRA_IVAR": "1/(mas/yr)^2", "PMDEC_IVAR": "1/(mas/yr)^2", "PARALLAX_IVAR": "1/mas^2", "REF_EPOCH": "yr",
    "SHAPE_R": "arcsec", "SHAPE_R_IVAR": "1/arcsec^2", "WISE_X": "pix", "WISE_Y": "pix",
    **{f"FLUX_{b}": "nanomaggy" for b in OPTICAL + WISE},
    **{f"FLUX_IVAR_{b}": "1/nanomaggy^2" for b in OPTICAL + WISE},
    **{f"FIBERFLUX_{b}": "nanomaggy" for b in OPTICAL},
    **{f"FIBERTOTFLUX_{b}": "nanomaggy" for b in OPTICAL},
    **{f"PSFSIZE_{b}": "arcsec" for b in OPTICAL},
    **{f"PSFDEPTH_{b}": "1/nanomaggy^2" for b in OPTICAL + WISE},
    **{f"GALDEPTH_{b}": "1/nanomaggy^2" for b in OPTICAL},
    **{f"NEA_{b}": "arcsec^2" for b in OPTICAL},
    **{f"BLOB_NEA_{b}": "arcsec^2" for b in OPTICAL},
}
