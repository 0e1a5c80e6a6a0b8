"""docs/results.md is what the shipped raw results give: regenerating it from results/*.csv.gz
with the command the page names gives the same page, its hand-written block included."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hpstudy.report._results_page import KEEP_BEGIN, KEEP_END, write_results

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "results").glob("*.csv.gz"))


def test_docs_results_is_regenerated_from_the_shipped_raw_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert FILES, "no results/*.csv.gz shipped"
    shipped = (ROOT / "docs" / "results.md").read_text()
    assert KEEP_BEGIN in shipped and KEEP_END in shipped  # the interpretation is kept
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "results.md", tmp_path / "docs" / "results.md")
    (tmp_path / "results").symlink_to(ROOT / "results")
    monkeypatch.chdir(tmp_path)  # the page names the command with paths relative to the root
    write_results([Path("results") / f.name for f in FILES], Path("docs/results.md"))
    assert (tmp_path / "docs" / "results.md").read_text() == shipped
    for f in FILES:
        assert f"## {f.name.removesuffix('.csv.gz')}" in shipped  # every shipped run is on it
