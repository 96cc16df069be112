"""The stage-4d HTML report: ``index.html`` plus PNGs in one folder, linked by relative names, no external
resources (open it from disk, copy the folder anywhere)."""

from __future__ import annotations

import html
import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from dhs.report.gallery import gallery_figure
from dhs.report.plots import plot_audit, plot_completeness_1d, plot_heatmap, plot_snr_distributions

__all__ = ["build_report"]

_CSS = """body{font-family:sans-serif;max-width:1100px;margin:1em auto;color:#222}
table{border-collapse:collapse;font-size:12px;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#eee}.note{background:#fff6d5;border:1px solid #e0c060;padding:.5em}
.red{background:#f6c6c6}.yellow{background:#fbeec0}img{max-width:100%}h2{border-bottom:1px solid #ccc}"""

_TABLE_COLS = ["bin1", "n_attempt", "n_valid", "n_recovered", "completeness", "wilson_lo_68", "wilson_hi_68",
               "wilson_lo_95", "wilson_hi_95", "jeffreys_lo_95", "jeffreys_hi_95"]


def _img(name: str, alt: str) -> str:
    return f'<p><img src="{html.escape(name)}" alt="{html.escape(alt)}"></p>'


def _table(df: pd.DataFrame, cols: Sequence[str] | None = None, floatfmt: str = "{:.3f}") -> str:
    if df is None or len(df) == 0:
        return "<p><i>(empty)</i></p>"
    d = df[[c for c in (cols or df.columns) if c in df.columns]].copy()
    return d.to_html(index=False, na_rep="", float_format=lambda x: floatfmt.format(x), border=0, escape=True)


def _audit_table(rows: Sequence[dict], empty: str = "(audit not run)") -> str:
    if not rows:
        return f"<p><i>{html.escape(empty)}</i></p>"
    head = ["feature", "n_pos", "n_neg", "median_pos", "median_neg", "auc", "auc_lo", "auc_hi", "separation_lo", "flag"]
    if any("variant" in r for r in rows):
        head.insert(1, "variant")
    out = ["<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in rows:
        cls = r["flag"] if r["flag"] in ("red", "yellow") else ""
        cells = []
        for h in head:
            v = r.get(h, "")
            cells.append(f"<td>{v:.4g}</td>" if isinstance(v, float) else f"<td>{html.escape(str(v))}</td>")
        out.append(f'<tr class="{cls}">' + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def build_report(
    report_dir: str,
    *,
    meta: dict[str, Any],
    definitions: Sequence[Any],
    tables: dict[str, pd.DataFrame],
    snr_hist: pd.DataFrame,
    audit_rows: Sequence[dict],
    audit_limit: float,
    provenance: pd.DataFrame,
    failures: pd.DataFrame,
    gallery_pairs: Sequence[dict],
    gallery_options: dict[str, Any] | None = None,
    snr_column: str = "arc_snr",
    snr_hist_width_dex: float = 0.1,
    targeting: pd.DataFrame | None = None,
    null_audit_rows: Sequence[dict] = (),
    dimensions: dict[str, str] | None = None,
) -> str:
    """Write the PNGs and ``index.html`` into ``report_dir``; returns the path of ``index.html``.

    ``meta``: run facts shown at the top (variant, experiment_id, input paths, counts, ...);
    ``targeting``: the brightness-targeting mix of :func:`dhs.completeness.targeting.mix_table` (optional).
    """
    os.makedirs(report_dir, exist_ok=True)
    comp = tables["completeness"]
    fpr = tables.get("fpr", pd.DataFrame())
    reg = tables.get("region_aggregate", pd.DataFrame())
    parts: list[str] = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>dhs stage 4d report</title>",
        f"<style>{_CSS}</style></head><body>",
        (f"<h1>Selection function — {html.escape(str(meta.get('experiment_id', '')))} "
         f"({html.escape(str(meta.get('variant', '')))})</h1>"),
        "<table>" + "".join(f"<tr><th>{html.escape(str(k))}</th><td style='text-align:left'>{html.escape(str(v))}</td></tr>"
                             for k, v in meta.items()) + "</table>",
        "<h2>Recovery definitions</h2><ul>",
    ]
    for d in definitions:
        parts.append(f"<li><b>{html.escape(d.name)}</b>: {html.escape(d.description)}</li>")
    parts.append("</ul>")
    if any(d.kind == "proxy" for d in definitions):
        parts.append("<p class='note'>The <b>proxy</b> is not a lens finder: it counts an injection as recovered "
                     "when its arc is bright and resolved enough by the stated cuts. Use a model-score table "
                     "(<code>stage4d.scores_path</code>) for the completeness of an actual classifier.</p>")
    parts.append("<p>Denominators: injections only (<code>lens_model</code> not \"CONTROL\" and not \"NULL\"; "
                 "null injections are audit rows and count in no rate). <b>all</b>: cutout_ok "
                 "and the definition's inputs present; <b>clean</b>: also the "
                 "<i>clean selection</i> listed above; <b>no_fallback</b>: <i>all</i> rows whose PSF came from the psfsize "
                 "map in every band (psf_source_g/r/z = 0). Intervals: Wilson and Jeffreys (Beta(½,½)), 68 % and "
                 "95 %. Bins are labelled by their lower edge (floor(value / width)); resolution and quality bins "
                 "use explicit edges.</p>")
    dims = dimensions or {}
    if "resolution" in dims:
        parts.append(f"<p class='note'><b>Resolution axis</b>: {html.escape(dims['resolution'])}. The other "
                     "denominator is reported too: <code>resolution_moffat</code> (θE / Moffat FWHM applied) and "
                     "<code>resolution_psfsize</code> (θE / catalogue PSFSIZE_R, the seed system's axis).</p>")

    for d in definitions:
        parts.append(f"<h2>Completeness — {html.escape(d.name)}</h2>")
        for dim in ("theta_e", "resolution", "resolution_moffat", "resolution_psfsize", "psf", "depth", "src_mag",
                    "target_snr", "bad_pixel", "wise_brightmask"):
            sub = comp[(comp["surface"] == dim) & (comp["recovery"] == d.name)]
            if (sub["n_valid"] > 0).any():
                png = plot_completeness_1d(comp, dim, d.name, os.path.join(report_dir, f"completeness_{d.name}_{dim}.png"),
                                           xlabel=dims.get(dim))
                parts.append(_img(os.path.basename(png), f"completeness vs {dim}"))
        for sel in ("all", "clean"):
            png = plot_heatmap(comp, "theta_e_by_psf", d.name, sel, os.path.join(report_dir, f"heatmap_{d.name}_theta_e_psf_{sel}.png"))
            parts.append(_img(os.path.basename(png), f"theta_E x PSF heat map {sel}"))
        parts.append("<h3>Table: completeness vs θE</h3>")
        parts.append(_table(comp[(comp["surface"] == "theta_e") & (comp["recovery"] == d.name)],
                            ["selection"] + _TABLE_COLS))
        parts.append("<h3>Table: completeness vs quality (bad_pixel_frac, wise_brightmask_frac)</h3>")
        parts.append(_table(comp[comp["surface"].isin(["bad_pixel", "wise_brightmask"]) & (comp["recovery"] == d.name)
                                 & (comp["selection"] == "all")], ["surface"] + _TABLE_COLS))
        parts.append("<h3>Table: completeness vs θE, with and without PSF-fallback rows</h3>")
        parts.append(_table(comp[(comp["surface"] == "theta_e") & (comp["recovery"] == d.name)
                                 & comp["selection"].isin(["all", "no_fallback"])], ["selection"] + _TABLE_COLS))
        parts.append("<h3>Table: completeness vs resolution (θE / PSF) and split</h3>")
        parts.append(_table(comp[(comp["surface"] == "resolution_by_split") & (comp["recovery"] == d.name)
                                 & (comp["selection"] == "all")], ["bin2"] + _TABLE_COLS))

    parts.append("<h2>Per-region aggregate</h2><p>Mean and standard deviation of the per-region completeness over "
                 "regions with at least <code>min_count</code> valid injections in the bin; pooled counts and "
                 "intervals over the same regions.</p>")
    parts.append(_table(reg, ["recovery", "selection", "surface", "bin1", "n_regions", "n_regions_used", "region_mean",
                              "region_std", "pooled_n_valid", "pooled_n_recovered", "pooled_completeness",
                              "wilson_lo_95", "wilson_hi_95"]))
    if len(fpr):
        parts.append("<h2>False-positive rates on valid controls</h2>")
        parts.append(_table(fpr[fpr["surface"].isin(["total", "split"])],
                            ["recovery", "selection", "surface", "bin1", "n_attempt", "n_valid", "n_flagged", "fpr",
                             "wilson_lo_95", "wilson_hi_95", "jeffreys_lo_95", "jeffreys_hi_95"], "{:.4g}"))

    png = plot_snr_distributions(snr_hist, snr_column, snr_hist_width_dex, os.path.join(report_dir, "snr_by_theta_e.png"))
    parts.append("<h2>Arc SNR distributions by θE</h2>" + _img(os.path.basename(png), "arc SNR by theta_E"))
    if targeting is not None and len(targeting):
        metric = html.escape(str(targeting["metric"].iloc[0]))
        parts.append(f"<h2>Brightness targeting</h2><p>Stage 4a drew a target r-band SNR (<code>target_snr</code>) "
                     f"for each injection and stage 4c scaled the source flux so that the measured <code>{metric}"
                     "</code> equals it. Shares of the targeted valid injections per SNR bin, asked for and "
                     "achieved:</p>")
        parts.append(_table(targeting, ["bin", "n_target", "frac_target", "n_achieved", "frac_achieved",
                                        "frac_diff"], "{:.4f}"))

    parts.append("<h2>Shortcut audit</h2><p>ROC AUC of trivial features between valid injections and valid "
                 "controls with a bootstrap interval. A feature is flagged when the lower bound of "
                 f"max(AUC, 1 − AUC) exceeds {audit_limit:g} (yellow) or the red limit: a classifier could "
                 "separate the classes without seeing any arc.</p>")
    if audit_rows:
        png = plot_audit(audit_rows, audit_limit, os.path.join(report_dir, "shortcut_audit.png"))
        parts.append(_img(os.path.basename(png), "shortcut audit"))
    parts.append("<p>Centre-masked features (<code>variant = centre_masked</code>) leave out the host's core: "
                 "their AUCs show how much of the separation lives outside the core (where resolved arcs are), "
                 "against the full features' share.</p>")
    parts.append(_audit_table(audit_rows))

    parts.append("<h2>Null-injection audit</h2><p>Null injections (<code>lens_model = \"NULL\"</code>) take the "
                 "whole injection path with zero source flux; they are compared with their matched controls (one "
                 "row per host and class) on every audit feature, full and centre-masked. Every AUC must be ≈ 0.5: "
                 "a flagged feature means the pipeline itself (host selection, cut-outs, validity cuts) separates "
                 "the classes, so a finder could learn the label without any arc.</p>")
    parts.append(_audit_table(null_audit_rows, "(no null injections: set stage4a.null_fraction > 0)"))

    parts.append("<h2>PSF provenance</h2><p>psf_source: 0 psfsize map at the host pixel, 1 catalogue/brick "
                 "value, 2 fallback to r.</p>" + _table(provenance, floatfmt="{:g}"))
    parts.append("<h2>Failure reasons</h2>" + _table(failures, floatfmt="{:g}"))

    go = gallery_options or {}
    png = gallery_figure(gallery_pairs, os.path.join(report_dir, "gallery.png"), go.get("stretch", 0.5),
                         go.get("q", 8.0), go.get("band_scales", (1.0, 1.0, 1.0)))
    parts.append("<h2>Stamp gallery</h2>" + _img(os.path.basename(png), "gallery"))
    ids = pd.DataFrame([{"theta_e_arcsec": p["theta_e"], "injection task_id": p.get("injection_id", ""),
                         "matched control task_id": p.get("control_id") or "(none)"} for p in
                        sorted(gallery_pairs, key=lambda p: p["theta_e"])])
    if len(ids):
        parts.append(_table(ids, floatfmt="{:.2f}"))
    parts.append("</body></html>")
    path = os.path.join(report_dir, "index.html")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\n".join(parts))
    return path
