"""Cutout quality metrics, coadd cutouts on the synthetic sky, and the HTTP client against a loopback server."""

from __future__ import annotations

import io
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

import numpy as np
import pytest
from astropy.io import fits

from dhs.io.stamps import decode, decode_mask
from dhs.reallens.cutouts import CutoutServiceClient, cutout_row, quality_metrics


def test_quality_metrics_analytic():
    img = np.ones((3, 21, 21), dtype=np.float32)
    iv = np.ones_like(img)
    img[0, 10, 10] = 101.0          # delta on top of 1 at the centre of g
    iv[2] = 0.0                     # z has no data
    img[1, :, :2] = np.nan          # two NaN columns in r
    m = quality_metrics(img, iv, core_radius_pix=1.5, annulus_pix=(3, 5), central_box_pix=4)
    assert m["bands_present"] == "gr"
    total = 3 * 21 * 21
    assert m["nan_frac"] == pytest.approx((21 * 21 + 2 * 21) / total)
    assert m["nan_frac_central"] == pytest.approx(1 / 3)  # z only; central box avoids the NaN columns
    assert m["core_flux_g"] == pytest.approx(100.0 + 9.0)  # r < 1.5 px holds 9 pixels
    assert m["annulus_median_g"] == 1.0 and m["outer_mad_g"] == 0.0
    assert np.isnan(m["core_flux_z"]) and np.isnan(m["outer_median_z"])


def test_coadd_cutout_rows(synth_sky):
    from dhs.survey.coadd import CoaddStore
    from dhs.survey.sweeps import read_sweep

    store = CoaddStore(synth_sky.survey_root, cache_bytes=200_000_000)
    t = read_sweep(synth_sky.sweep_paths[0], columns=["ra", "dec", "brickname", "objid", "type", "flux_r"]).to_pylist()
    edge = set(synth_sky.edge_galaxy_ids)
    gal = max((r for r in t if r["type"] == "DEV" and f"{r['brickname']}_{r['objid']}" not in edge),
              key=lambda r: r["flux_r"])
    row = cutout_row(gal["ra"], gal["dec"], gal["brickname"], 51, store=store, core_radius_pix=4.0)
    assert row["cutout_ok"] == 1, row["error"]
    img = decode(row["stamp"], size=51)
    assert img.shape == (3, 51, 51) and row["cutout_source"] == "coadd"
    assert decode(row["invvar"], size=51).min() >= 0
    assert decode_mask(row["maskbits_stamp"], 51).shape == (51, 51)
    assert row["core_flux_r"] > 0 and row["feat_central_flux_r"] == pytest.approx(row["core_flux_r"], rel=1e-6)
    off = cutout_row(gal["ra"] + 5.0, gal["dec"], gal["brickname"], 51, store=store)
    assert off["cutout_ok"] == 0 and off["error"] == "off_image" and off["stamp"] is None
    missing = cutout_row(200.0, 10.0, None, 51, store=store)
    assert missing["cutout_ok"] == 0 and missing["error"] == "brick_missing"


class _Server:
    """A loopback cutout service: replies follow a script of status codes (200 = a FITS cube)."""

    def __init__(self, script):
        self.script = list(script)
        self.calls = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                q = parse_qs(urlparse(self.path).query)
                outer.calls.append(q)
                code = outer.script.pop(0) if outer.script else 200
                if code == "garbage":
                    body, code = b"not a fits file", 200
                elif code == 200:
                    size = int(q["size"][0])
                    cube = np.arange(3 * size * size, dtype=np.float32).reshape(3, size, size)
                    buf = io.BytesIO()
                    fits.PrimaryHDU(cube).writeto(buf)
                    body = buf.getvalue()
                else:
                    body = b"error"
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/viewer/cutout.fits"

    def __exit__(self, *a):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def test_service_retries_then_succeeds():
    srv = _Server([503, "garbage", 200])
    with srv as url:
        c = CutoutServiceClient(url, retries=3, timeout_s=5, backoff_s=0.0)
        got = c.fetch(150.1, 2.2, 11)
    assert got.ok and got.attempts == 3 and got.image.shape == (3, 11, 11)
    assert got.image[2, 0, 0] == 2 * 121
    q = srv.calls[-1]
    assert q["layer"] == ["ls-dr10"] and q["pixscale"] == ["0.262"] and q["bands"] == ["grz"]
    assert float(q["ra"][0]) == 150.1 and q["size"] == ["11"]


def test_service_gives_up_and_does_not_retry_4xx():
    with _Server([500, 500, 500]) as url:
        got = CutoutServiceClient(url, retries=2, timeout_s=5, backoff_s=0.0).fetch(1.0, 2.0, 9)
    assert not got.ok and got.attempts == 3 and "http_500" in got.reason
    srv = _Server([404])
    with srv as url:
        row = cutout_row(1.0, 2.0, None, 9, client=CutoutServiceClient(url, retries=5, timeout_s=5, backoff_s=0.0))
    assert len(srv.calls) == 1
    assert row["cutout_ok"] == 0 and row["error"].startswith("service_error:http_404")
    with _Server([]) as url:
        row = cutout_row(1.0, 2.0, None, 9, client=CutoutServiceClient(url, retries=0, timeout_s=5))
    assert row["cutout_ok"] == 1 and row["invvar"] is None and decode(row["stamp"], size=9).shape == (3, 9, 9)


def test_service_connection_refused():
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    got = CutoutServiceClient(f"http://127.0.0.1:{port}/x", retries=1, timeout_s=2, backoff_s=0.0).fetch(1, 2, 5)
    assert not got.ok and got.attempts == 2 and "connection" in got.reason
