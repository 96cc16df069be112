"""The stage 4c output schema: every DESIGN §5 column, manifest columns kept, arrays last."""

import pyarrow as pa

from dhs.injection.schema import RESULT_NAMES, metrics_schema, output_schema

DESIGN_COLUMNS = ["cutout_ok", "error", "stamp", "arc_snr", "arc_snr_sum", "arc_snr_sum_footprint", "arc_snr_opt",
                  "magnification", "clean",
                  "total_injected_flux_g", "total_injected_flux_r", "total_injected_flux_z", "lensed_hlr_arcsec",
                  "bad_pixel_frac", "wise_brightmask_frac", "psf_fwhm_used_g", "psf_fwhm_used_r",
                  "psf_fwhm_used_z", "psf_source_g", "psf_source_r", "psf_source_z", "cosmos_index",
                  "src_gr_used", "src_rz_used", "src_mag_r_used"]


def _manifest():
    return pa.schema([("task_id", pa.string()), ("task_seed", pa.int64()), ("theta_e_arcsec", pa.float32()),
                      ("cosmos_index", pa.int32()), ("psfsize_g", pa.float64()), ("region_split", pa.string())])


def test_columns_and_types():
    s = output_schema(_manifest(), ["arc", "invvar"])
    for c in DESIGN_COLUMNS + ["arc", "invvar", "task_id", "psfsize_g", "region_split"]:
        assert c in s.names, c
    assert "maskbits" not in s.names and "stamp_npz" not in s.names
    assert s.field("theta_e_arcsec").type == pa.float64()        # 4c type replaces the manifest's
    assert s.field("cosmos_index").type == pa.int64()
    assert s.names.index("theta_e_arcsec") == 2                     # at the manifest's position
    assert s.names[-3:] == ["stamp", "arc", "invvar"]
    assert len(s.names) == len(set(s.names))
    assert len(s.names) == len(_manifest()) + len(RESULT_NAMES) - 2 + 3


def test_metrics_drop_arrays_and_cache():
    s = output_schema(_manifest(), ["maskbits"], stamp_npz=True)
    assert s is output_schema(_manifest(), ["maskbits"], stamp_npz=True)
    m = metrics_schema(s)
    assert not {"stamp", "maskbits", "stamp_npz", "arc", "invvar"} & set(m.names)
    assert len(m) == len(s) - 3
