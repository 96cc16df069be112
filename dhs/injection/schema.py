"""The stage 4c output schema (DESIGN §5): manifest columns + 4c columns (+ arrays in ``stamps/``).

Built once per (manifest schema, kept arrays) and shared by the success rows, the control rows and the
failure rows, so that every row carries every column.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import lru_cache

import pyarrow as pa

BANDS: tuple[str, ...] = ("g", "r", "z")

#: Binary array columns: ``stamp`` always; the others only when configured (stamps/ output only).
ARRAY_COLUMNS: tuple[str, ...] = ("stamp", "arc", "invvar", "maskbits", "stamp_npz")


def _band(prefix: str, typ: pa.DataType) -> list[pa.Field]:
    return [pa.field(f"{prefix}_{b}", typ) for b in BANDS]


#: Columns written by stage 4c (besides the arrays).  Where a manifest column has the same name
#: (theta_e_arcsec, lens_model, cosmos_index) the 4c value and type replace it.
RESULT_FIELDS: tuple[pa.Field, ...] = tuple(
    [pa.field("cutout_ok", pa.int32()), pa.field("error", pa.string()),
     pa.field("quality_notes", pa.string()),    # non-fatal conditions, ';'-separated; null = none
     pa.field("theta_e_arcsec", pa.float64()), pa.field("lens_model", pa.string()),
     pa.field("arc_snr", pa.float64()), pa.field("arc_snr_sum", pa.float64()),
     pa.field("arc_snr_sum_footprint", pa.float64()),
     pa.field("arc_snr_opt", pa.float64()), pa.field("magnification", pa.float64())]
    + _band("total_injected_flux", pa.float64())
    + [pa.field("lensed_hlr_arcsec", pa.float64()), pa.field("bad_pixel_frac", pa.float64()),
       pa.field("wise_brightmask_frac", pa.float64()),
       pa.field("clean", pa.int32())]               # 1: cutout_ok and bad_pixel_frac <= the clean cut
    + _band("psfsize_map", pa.float64())        # psfsize map at the host pixel (NaN = unusable), arcsec
    + _band("psfsize_used", pa.float64())       # PSFSIZE chosen (arcsec)
    + _band("psf_fwhm_used", pa.float64())      # Moffat FWHM applied (arcsec)
    + _band("psf_source", pa.int32())           # 0 map, 1 catalogue/brick, 2 r-band fallback
    + _band("src_flux", pa.float64())           # unlensed source flux per band (nanomaggies)
    + [pa.field("src_mag_r_used", pa.float64()), pa.field("src_gr_used", pa.float64()),
       pa.field("src_rz_used", pa.float64()), pa.field("src_colour_source", pa.string()),
       pa.field("cosmos_index", pa.int64()),
       pa.field("src_rotation_rad", pa.float64()), pa.field("src_flip", pa.int32()),
       pa.field("src_scale", pa.float64()),
       pa.field("host_dx_pix", pa.float64()), pa.field("host_dy_pix", pa.float64()),
       pa.field("arc_noise", pa.string())]
)

RESULT_NAMES: tuple[str, ...] = tuple(f.name for f in RESULT_FIELDS)


def array_fields(keep_arrays: Iterable[str], stamp_npz: bool) -> list[pa.Field]:
    """The binary array fields of ``stamps/``: ``stamp`` then the kept ones in a fixed order."""
    keep = set(keep_arrays)
    out = [pa.field("stamp", pa.binary())]
    out += [pa.field(a, pa.binary()) for a in ("arc", "invvar", "maskbits") if a in keep]
    if stamp_npz:
        out.append(pa.field("stamp_npz", pa.binary()))
    return out


@lru_cache(maxsize=32)
def _build(manifest_schema: pa.Schema, keep: tuple[str, ...], stamp_npz: bool) -> pa.Schema:
    result = {f.name: f for f in RESULT_FIELDS}
    fields: list[pa.Field] = []
    for f in manifest_schema:
        if f.name in ARRAY_COLUMNS:
            raise ValueError(f"manifest column {f.name!r} clashes with a stage 4c array column")
        fields.append(result.pop(f.name, f))
    fields += list(result.values())
    fields += array_fields(keep, stamp_npz)
    return pa.schema(fields)


def output_schema(manifest_schema: pa.Schema, keep_arrays: Sequence[str] = ("arc",),
                  stamp_npz: bool = False) -> pa.Schema:
    """Schema of ``stamps/``: manifest columns (4c types where 4c rewrites them), 4c columns, arrays."""
    return _build(manifest_schema, tuple(sorted(set(keep_arrays))), bool(stamp_npz))


def metrics_schema(schema: pa.Schema) -> pa.Schema:
    """Schema of ``metrics/``: the stamps schema without the array columns."""
    return pa.schema([f for f in schema if f.name not in ARRAY_COLUMNS])
