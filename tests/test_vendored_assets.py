"""The vendored front-end files are exactly those recorded in VENDORED.md: a file edited
by hand (or a refresh without its table) fails here."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

VENDOR = Path(__file__).resolve().parent.parent / "api" / "dashboard" / "static" / "vendor"
TABLE = VENDOR / "VENDORED.md"
COLUMNS = ["package", "version", "licence", "file", "sha256", "npm integrity"]


def table_rows() -> list[dict[str, str]]:
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.startswith("|"):
            continue
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if header is None:
            header = cells
            assert header == COLUMNS, f"VENDORED.md's table has columns {header}"
        elif not set("".join(cells)) <= set("-: "):  # not the |---| line
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


ROWS = table_rows()


def test_table_lists_every_vendored_file() -> None:
    listed = sorted(r["file"] for r in ROWS)
    present = sorted(p.name for p in VENDOR.iterdir() if p.is_file() and p.name != TABLE.name)
    assert listed == present
    assert {"htmx.min.js", "chart.umd.min.js"} <= set(listed)


@pytest.mark.parametrize("row", ROWS, ids=[r["file"] for r in ROWS])
def test_sha256_matches_table(row: dict[str, str]) -> None:
    digest = hashlib.sha256((VENDOR / row["file"]).read_bytes()).hexdigest()
    assert digest == row["sha256"], (
        f"{row['file']} differs from the copy recorded in VENDORED.md: refresh it from "
        f"{row['package']}@{row['version']} as VENDORED.md says, or record the new sum")
    assert re.fullmatch(r"sha512-[A-Za-z0-9+/]{86}==", row["npm integrity"]), row["npm integrity"]


def test_versions_match_the_files() -> None:
    versions = {r["package"]: r["version"] for r in ROWS}
    htmx = (VENDOR / "htmx.min.js").read_text(encoding="utf-8")
    assert f'version:"{versions["htmx.org"]}"' in htmx
    chart = (VENDOR / "chart.umd.min.js").read_text(encoding="utf-8")
    assert f"Chart.js v{versions['chart.js']}\n" in chart[:200]
