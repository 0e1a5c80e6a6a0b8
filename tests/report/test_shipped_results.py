"""docs/results.md and README's answer are what the shipped raw results give: regenerating
them from results/*.csv.gz with the command the page names gives the same page and paragraph;
the block written by hand holds no numbers; every number in a generated sentence is in a
table."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hpstudy.report._results_page import (
    ANSWER_BEGIN,
    ANSWER_END,
    KEEP_BEGIN,
    KEEP_END,
    write_results,
)

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "results").glob("*.csv.gz"))
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@pytest.fixture(scope="module")
def regenerated(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """The page and README regenerated in a copy of the repository's layout."""
    assert FILES, "no results/*.csv.gz shipped"
    tmp = tmp_path_factory.mktemp("page")
    (tmp / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "results.md", tmp / "docs" / "results.md")
    shutil.copy(ROOT / "README.md", tmp / "README.md")
    (tmp / "results").symlink_to(ROOT / "results")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the page names the command with paths relative to the root
        write_results(
            [Path("results") / f.name for f in FILES], Path("docs/results.md"),
            readme=Path("README.md"),
        )  # fmt: skip
    return (tmp / "docs" / "results.md").read_text(), (tmp / "README.md").read_text()


def test_docs_results_is_regenerated_from_the_shipped_raw_results(
    regenerated: tuple[str, str],
) -> None:
    page, _ = regenerated
    shipped = (ROOT / "docs" / "results.md").read_text()
    assert KEEP_BEGIN in shipped and KEEP_END in shipped
    assert page == shipped
    for f in FILES:
        assert f"## {f.name.removesuffix('.csv.gz')}" in shipped  # every shipped run is on it


def test_readme_carries_the_generated_answer(regenerated: tuple[str, str]) -> None:
    page, readme = regenerated
    assert readme == (ROOT / "README.md").read_text()

    def block(text: str) -> str:
        return text[text.index(ANSWER_BEGIN) : text.index(ANSWER_END)]

    assert block(readme) == block(page) and len(block(page)) > len(ANSWER_BEGIN) + 100


def test_the_benchmark_page_is_regenerated_from_its_raw_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/results-benchmarks.md is what results/bench/ gives, apart from real training."""
    bench = sorted((ROOT / "results" / "bench").glob("*.csv.gz"))
    assert bench
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "results-benchmarks.md", tmp_path / "docs")
    (tmp_path / "results").symlink_to(ROOT / "results")
    monkeypatch.chdir(tmp_path)
    write_results(
        [Path("results/bench") / f.name for f in bench], Path("docs/results-benchmarks.md")
    )
    page = (tmp_path / "docs" / "results-benchmarks.md").read_text()
    assert page == (ROOT / "docs" / "results-benchmarks.md").read_text()
    assert page.startswith("# Results from published tabular benchmarks")
    # never pooled: one page with both kinds is refused
    from hpstudy._errors import ConfigError

    with pytest.raises(ConfigError, match="never pooled"):
        write_results([Path("results") / FILES[0].name, Path("results/bench") / bench[0].name],
                      tmp_path / "mixed.md")  # fmt: skip


@pytest.mark.parametrize("page", ["results.md", "results-benchmarks.md"])
def test_the_block_written_by_hand_holds_no_numbers(page: str) -> None:
    shipped = (ROOT / "docs" / page).read_text()
    kept = shipped[shipped.index(KEEP_BEGIN) + len(KEEP_BEGIN) : shipped.index(KEEP_END)]
    words = re.compile(r"\b(two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|half|twice)\b", re.I)  # fmt: skip
    prose = re.sub(r"```.*?```", "", kept, flags=re.S)  # the command may name files
    assert not re.search(r"\d", prose), re.findall(r".{20}\d.{20}", prose)
    assert not words.search(prose), words.findall(prose)


def _sections(page: str) -> list[tuple[str, str, str]]:
    """(task heading, its generated sentence, the tables and notes that follow it)."""
    out = []
    parts = re.split(r"^### ", page, flags=re.M)[1:]
    for part in parts:
        heading, _, rest = part.partition("\n")
        body = rest.strip().split("\n\n", 1)
        if len(body) == 2 and not body[0].startswith("|"):
            out.append((heading, body[0], body[1].split("\n## ", 1)[0]))
    return out


def test_every_number_in_a_task_sentence_is_in_its_tables(regenerated: tuple[str, str]) -> None:
    page, _ = regenerated
    sections = [s for s in _sections(page) if s[1].startswith("Test ")]
    assert len(sections) >= 11
    for heading, sentence, tables in sections:
        cells = set(NUMBER.findall(tables))
        for number in NUMBER.findall(sentence):
            assert number in cells or number.lstrip("+") in cells, (heading, number)


def test_the_answer_counts_agree_with_the_overview_table(regenerated: tuple[str, str]) -> None:
    page, _ = regenerated
    answer = page[page.index(ANSWER_BEGIN) : page.index(ANSWER_END)]
    table = page[page.index("## Every comparison") :].split("\n## ", 1)[0]
    rows = [r.split(" | ") for r in table.splitlines() if r.startswith("| full-")]
    for label in ("random search", "TPE"):
        verdicts = [r[7] for r in rows if r[4] == label]
        own = answer[answer.index(f"{label[0].upper()}{label[1:]} against") :]
        for word, shown in (("equivalent", "equivalent"), ("non-inferior", "non-inferior"),
                            ("inconclusive", "not settled"), ("superior", "superior")):  # fmt: skip
            n = verdicts.count(word)
            if n:
                assert f"{n} {shown}" in own.split(".")[0], (label, word, n)
        assert f"{len(verdicts)} comparisons" in own
