"""The HTML report without Spark: every link resolves to a non-empty PNG; Lupton RGB channel order."""

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dhs.completeness.audit import shortcut_audit
from dhs.completeness.tables import compute_all_pandas
from dhs.config.stage4d import Stage4dConfig
from dhs.report.gallery import lupton_rgb
from dhs.report.html import build_report
from tests.completeness.fixture_tables import host_image, metrics_table


@pytest.mark.slow
def test_report_links_resolve(tmp_path):
    df = metrics_table(n_pos=300, n_ctrl=120, seed=4)
    scores = pd.DataFrame({"task_id": df["task_id"], "score": np.random.default_rng(0).uniform(size=len(df))})
    s = Stage4dConfig()
    r = compute_all_pandas(df, s, scores)
    rng = np.random.default_rng(1)
    audit = shortcut_audit({"f": rng.normal(1, 1, 100)}, {"f": rng.normal(0, 1, 100)}, n_boot=100)
    stamp = np.stack([host_image(32, f) for f in (2.0, 4.0, 6.0)])
    pairs = [{"theta_e": 0.5, "injection": stamp, "control": stamp * 0.5, "injection_id": "a", "control_id": "b"},
             {"theta_e": 1.5, "injection": stamp, "control": None, "injection_id": "c", "control_id": None}]
    index = build_report(str(tmp_path / "report"), meta={"variant": "v", "experiment_id": "e"},
                         definitions=r["definitions"], tables=r, snr_hist=r["snr_hist"], audit_rows=audit,
                         audit_limit=0.6, provenance=pd.DataFrame({"psf_source_r": [0], "count": [3]}),
                         failures=pd.DataFrame({"error_kind": ["off_image"], "count": [2]}), gallery_pairs=pairs)
    with open(index, encoding="utf-8") as fh:
        text = fh.read()
    links = re.findall(r'src="([^"]+)"', text)
    # 6 one-dimensional plots + 2 heat maps per definition, SNR, audit, gallery
    assert len(links) >= 4 * 2 + 3
    for link in links:
        p = tmp_path / "report" / link
        assert p.is_file() and p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG"
    assert "False-positive rates" in text and "fpr_0.05" in text and "PROXY" in text
    assert "(none)" in text  # the injection without a matched control is listed honestly


def test_lupton_rgb_channel_order():
    z_only = np.zeros((3, 16, 16))
    z_only[2, 8, 8] = 10.0
    rgb = lupton_rgb(z_only)
    assert rgb.shape == (16, 16, 3) and rgb.dtype == np.uint8
    assert rgb[8, 8, 0] > 0 and rgb[8, 8, 1] == 0 and rgb[8, 8, 2] == 0  # z → red
    with pytest.raises(ValueError, match="g, r, z"):
        lupton_rgb(np.zeros((2, 4, 4)))


def test_report_opens_with_two_sentences_the_headline_and_the_gallery(tmp_path):
    """The first screen: a two-sentence lede, completeness vs θE, then the gallery, before any run table."""
    df = metrics_table(n_pos=200, n_ctrl=60, seed=5)
    r = compute_all_pandas(df, Stage4dConfig(), None)
    stamp = np.stack([host_image(32, f) for f in (2.0, 4.0, 6.0)])
    arc = np.zeros_like(stamp)
    arc[:, 10:12, 14:18] = 0.3
    pairs = [{"theta_e": 0.8, "injection": stamp + arc, "arc": arc, "control": stamp, "injection_id": "a",
              "control_id": "b"}]
    index = build_report(str(tmp_path / "report"), meta={"variant": "v", "experiment_id": "e", "injections": 200},
                         definitions=r["definitions"], tables=r, snr_hist=r["snr_hist"], audit_rows=[],
                         audit_limit=0.6, provenance=pd.DataFrame(), failures=pd.DataFrame(), gallery_pairs=pairs)
    text = Path(index).read_text(encoding="utf-8")
    lede = re.search(r"<p class='lede'>(.*?)</p>", text, re.S).group(1)
    assert len(re.findall(r"[.?!](?:\s|$)", re.sub(r"<[^>]+>", "", lede))) == 2
    assert "200 simulated strong lenses" in lede and "proxy" in lede
    order = [text.index(s) for s in ("class='lede'", "completeness_proxy_theta_e.png", "gallery.png", "<h2>Run</h2>")]
    assert order == sorted(order)


def test_gallery_rows_crop_and_stretch(tmp_path):
    from dhs.report.gallery import ROW_LABELS, auto_stretch, centre_crop, gallery_figure

    a = np.arange(3 * 10 * 10, dtype=float).reshape(3, 10, 10)
    assert centre_crop(a, 4).shape == (3, 4, 4) and centre_crop(a, 4)[0, 0, 0] == a[0, 3, 3]
    assert centre_crop(a, None) is a and centre_crop(a, 12) is a
    arc = np.zeros((3, 8, 8))
    arc[1, 4, 4] = 0.8
    assert auto_stretch(arc) == pytest.approx(0.4) and auto_stretch(None, 0.5) == 0.5
    assert auto_stretch(np.zeros((3, 4, 4)), 0.7) == 0.7
    assert len(ROW_LABELS) == 3 and "arc alone" in ROW_LABELS
    png = gallery_figure([{"theta_e": 1.0, "injection": a, "arc": None, "control": None}], str(tmp_path / "g.png"),
                         crop_pix=6)
    assert Path(png).read_bytes()[:4] == b"\x89PNG"


def test_image_stretch_never_falls_below_the_noise():
    from dhs.report.gallery import auto_stretch, image_stretch

    rng = np.random.default_rng(2)
    stamp = rng.normal(0.0, 0.1, size=(3, 32, 32))
    faint = np.zeros_like(stamp)
    faint[1, 16, 16] = 0.04
    assert auto_stretch(faint) == pytest.approx(0.02)
    assert image_stretch(stamp, faint) == pytest.approx(0.2, rel=0.15)
    bright = faint * 100
    assert image_stretch(stamp, bright) == pytest.approx(2.0)
