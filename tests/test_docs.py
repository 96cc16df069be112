"""The user documentation in docs/ stays true: every output column documented, the configuration reference
current, the stamp-decoding examples runnable, links resolved, nothing pointing outside the repository."""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
DEMO_STAMPS = "build/demo/output/phase4c/v2_baseline_dr10/stamps/debug"


def documented_columns(section: str) -> list[re.Pattern]:
    """Column-name patterns of one ``### <section>: ...`` block of docs/outputs.md (first table cells;
    ``{a,b}`` alternatives and ``<placeholder>`` wildcards)."""
    text = (DOCS / "outputs.md").read_text(encoding="utf-8")
    blocks = re.split(r"^### ", text, flags=re.M)
    block = next((b for b in blocks if b.split(":", 1)[0].strip() == section), None)
    assert block is not None, f"docs/outputs.md has no section '### {section}: ...'"
    pats = []
    for line in block.splitlines():
        if not line.startswith("| `"):
            continue
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            rx = re.escape(name)
            rx = re.sub(r"\\\{([^}]*)\\\}", lambda m: "(" + m.group(1).replace(",", "|") + ")", rx)
            rx = re.sub(r"<[^>]+>", ".+", rx)
            pats.append(re.compile(rx + r"\Z"))
    assert pats, f"section {section} of docs/outputs.md has no column table"
    return pats


#: Sections whose rows carry the columns of other sections too (stage 4c keeps every manifest column).
INHERITS = {"stamps": ("manifest",)}


def undocumented(columns: list[str], section: str) -> list[str]:
    pats = [p for s in (section, *INHERITS.get(section, ())) for p in documented_columns(s)]
    return [c for c in columns if not any(p.match(c) for p in pats)]


def test_pattern_expansion():
    pats = documented_columns("stamps")
    assert any(p.match("psf_source_z") for p in pats) and not any(p.match("psf_source_q") for p in pats)
    assert undocumented(["psfsize_used_g", "no_such_column"], "stamps") == ["no_such_column"]


def test_stage4c_schema_columns_documented():
    """Every column stage 4c adds (dhs.injection.schema) and every array column is in docs/outputs.md."""
    from dhs.injection.schema import ARRAY_COLUMNS, RESULT_NAMES

    assert undocumented(list(RESULT_NAMES) + list(ARRAY_COLUMNS), "stamps") == []


def test_stage4b_asset_columns_documented():
    from dhs.stages.stage4b import ASSET_SCHEMA

    assert undocumented(ASSET_SCHEMA.names, "assets") == []


def test_manifest_schema_columns_documented():
    from dhs.sampling.manifest import COLUMN_ORDER

    assert undocumented(list(COLUMN_ORDER), "manifest") == []


@pytest.mark.spark
def test_every_written_column_documented(debug_config, stage4d_result):
    """The debug pipeline's outputs (stages 3, 4a, 4c, 4d), read back: each column is in docs/outputs.md."""
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq

    from dhs.stages.common import stage_output_dir

    folders = {"parent": ("3", "parent"), "regions": ("3", "regions"), "manifest": ("4a", "manifests"),
               "stamps": ("4c", "stamps"), "metrics": ("4c", "stamps")}
    missing = {}
    for section, (stage, kind) in folders.items():
        schema = ds.dataset(stage_output_dir(debug_config, stage, kind), format="parquet",
                            partitioning="hive").schema
        bad = undocumented(schema.names, "stamps" if section == "metrics" else section)
        if bad:
            missing[section] = bad
    out = stage_output_dir(debug_config, "4d", "completeness")
    files = sorted(glob.glob(os.path.join(out, "*.parquet")))
    assert len(files) >= 6
    for f in files:
        bad = undocumented(pq.read_schema(f).names, "completeness")
        if bad:
            missing[os.path.basename(f)] = bad
    assert not missing, f"columns written but not documented in docs/outputs.md: {missing}"


def _python_examples(doc: Path) -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    return [b for b in blocks if DEMO_STAMPS in b]


@pytest.mark.spark
def test_stamp_reading_examples_run(debug_config, stage4c_result, capsys):
    """The pyarrow, pandas and dhs examples of docs/stamps.md, run against the debug stage 4c output."""
    from dhs.stages.common import stage_output_dir

    stamps_dir = stage_output_dir(debug_config, "4c", "stamps")
    examples = _python_examples(DOCS / "stamps.md")
    assert len(examples) >= 3
    for code in examples:
        scope: dict = {}
        exec(compile(code.replace(DEMO_STAMPS, stamps_dir), "docs/stamps.md", "exec"), scope)
    printed = capsys.readouterr().out
    assert "(3, 64, 64)" in printed and "(4, 3, 64, 64) float32" in printed
    assert scope["image"].shape == (3, 64, 64) and (scope["sigma_r"] > 0).all()


def test_config_reference_is_current():
    """docs/config-reference.md is what ``dhs config-reference`` generates from the models today."""
    from dhs.config.reference import render_reference

    current = (DOCS / "config-reference.md").read_text(encoding="utf-8")
    assert current == render_reference(), (
        "docs/config-reference.md is stale: run `make docs` (dhs config-reference --out docs/config-reference.md)")


def test_config_reference_command_writes_the_file(tmp_path, capsys):
    from dhs.cli import main
    from dhs.config.reference import render_reference

    assert main(["config-reference", "--out", str(tmp_path / "ref.md")]) == 0
    assert (tmp_path / "ref.md").read_text(encoding="utf-8") == render_reference()
    assert main(["config-reference"]) == 0
    assert capsys.readouterr().out.endswith(render_reference())


def test_config_reference_lists_every_key():
    from dhs.config import RunConfig
    from dhs.config.reference import render_reference

    text = render_reference()
    for name, field in RunConfig.model_fields.items():
        assert f"| `{name}` |" in text
    assert "| `stage4c.keep_arrays` |" in text and "| `stage4d.gallery.crop_pix` |" in text


def _user_files() -> list[Path]:
    files = [REPO / "README.md", *sorted(DOCS.glob("*.md"))]
    for folder in ("dhs", "configs", "jobs", "scripts", "docker"):
        files += [p for p in sorted((REPO / folder).rglob("*")) if p.is_file() and p.suffix in
                  (".py", ".md", ".yaml", ".yml", ".sh", ".json", ".txt", "")]
    return [p for p in files if "__pycache__" not in p.parts]


def test_nothing_a_user_needs_points_outside_the_repository():
    bad = []
    for p in _user_files():
        text = p.read_text(encoding="utf-8", errors="replace")
        for needle in ("../shared", "shared/DESIGN", "DESIGN.md", "DESIGN §", "DESIGN section", "INTERFACES.md"):
            if needle in text:
                bad.append(f"{p.relative_to(REPO)}: {needle}")
    assert not bad, bad


def test_relative_links_in_docs_resolve():
    for doc in [REPO / "README.md", *DOCS.glob("*.md")]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", doc.read_text(encoding="utf-8")):
            assert (doc.parent / target).exists(), f"{doc.relative_to(REPO)} links to missing {target}"


def test_no_development_chronicle_in_the_repository():
    """Prose states current facts: no numbered development sessions or rounds, no "(now …)" comparisons."""
    chronicle = re.compile("|".join([r"\bsess" + r"ion[- ]?\d", r"\bro" + r"und \d+(?![.\d])", r"\(no" + r"w \d",
                                     r"\bsince sess" + r"ion"]), re.I)
    files = _user_files() + sorted((REPO / "tests").rglob("*.py")) + sorted((REPO / "benchmarks").rglob("*.py"))
    bad = []
    for p in files:
        for i, line in enumerate(p.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if chronicle.search(line):
                bad.append(f"{p.relative_to(REPO)}:{i}: {line.strip()[:80]}")
    assert not bad, bad


def test_stage6_schema_columns_documented():
    from dhs.reallens.cutouts import cutout_columns
    from dhs.reallens.sweep_task import CANDIDATE_SCHEMA

    assert undocumented(CANDIDATE_SCHEMA.names, "stage6 objects") == []
    assert undocumented([name for name, _ in cutout_columns()], "stage6 cutouts") == []


def test_stage6_positive_columns_documented():
    from dhs.stages.stage6 import _LENS_FIELDS

    assert undocumented([name for name, _ in _LENS_FIELDS] + ["passes_filters", "label"], "stage6 objects") == []
