"""docs/results.md and README's answer are what the shipped raw results give: regenerating
them from results/*.csv.gz (real training) and results/bench/*.csv.gz (published tabular
benchmarks, analysed apart) with the command the page names gives the same page and paragraphs;
the block written by hand holds no numbers; every number in a generated sentence is in a
table; the benchmarks' answer is a section of its own, never pooled, and where it differs from
the answer on real training the page says so, counted from the tables."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from hpstudy.analysis import Analysis
from hpstudy.report._results_page import (
    ANSWER_BEGIN,
    ANSWER_END,
    BENCHMARKS_HEADING,
    KEEP_BEGIN,
    KEEP_END,
    write_results,
)

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "results").glob("*.csv.gz"))
BENCH = sorted((ROOT / "results" / "bench").glob("*.csv.gz"))
NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:\.\d+)?(?:e[-+]?\d+)?")


@pytest.fixture(scope="module")
def regenerated(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[str, str, list[tuple[Path, Analysis]]]:
    """The page and README regenerated in a copy of the repository's layout, and what the
    command analysed."""
    assert FILES, "no results/*.csv.gz shipped"
    assert BENCH, "no results/bench/*.csv.gz shipped"
    tmp = tmp_path_factory.mktemp("page")
    (tmp / "docs").mkdir()
    shutil.copy(ROOT / "docs" / "results.md", tmp / "docs" / "results.md")
    shutil.copy(ROOT / "README.md", tmp / "README.md")
    (tmp / "results").symlink_to(ROOT / "results")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp)  # the page names the command with paths relative to the root
        done = write_results(
            [Path("results") / f.name for f in FILES]
            + [Path("results/bench") / f.name for f in BENCH],
            Path("docs/results.md"), readme=Path("README.md"),
        )  # fmt: skip
    return (tmp / "docs" / "results.md").read_text(), (tmp / "README.md").read_text(), done


def test_docs_results_is_regenerated_from_the_shipped_raw_results(
    regenerated: tuple[str, str, list[tuple[Path, Analysis]]],
) -> None:
    page, _, _ = regenerated
    shipped = (ROOT / "docs" / "results.md").read_text()
    assert KEEP_BEGIN in shipped and KEEP_END in shipped
    assert page == shipped
    for f in FILES + BENCH:
        assert f"## {f.name.removesuffix('.csv.gz')}" in shipped  # every shipped run is on it
    assert "results/bench/*.csv.gz -o docs/results.md" in shipped  # the command it names


def test_readme_carries_the_generated_answer(
    regenerated: tuple[str, str, list[tuple[Path, Analysis]]],
) -> None:
    page, readme, _ = regenerated
    assert readme == (ROOT / "README.md").read_text()

    def block(text: str) -> str:
        return text[text.index(ANSWER_BEGIN) : text.index(ANSWER_END)]

    assert block(readme) == block(page) and len(block(page)) > len(ANSWER_BEGIN) + 100


def _table_rows(part: str, heading: str) -> tuple[list[str], list[list[str]]]:
    """The header and data rows of the first table after ``heading`` in ``part``."""
    body = part[part.index(heading) :]
    lines = body[body.index("\n| ") + 1 :].split("\n\n", 1)[0].splitlines()
    head = [c.strip() for c in lines[0].strip("|").split(" | ")]
    return head, [[c.strip() for c in r.strip("|").split(" | ")] for r in lines[2:]]


def test_the_benchmark_answer_is_a_section_beside_real_training_never_pooled(
    regenerated: tuple[str, str, list[tuple[Path, Analysis]]],
) -> None:
    page, _, done = regenerated
    section = f"## {BENCHMARKS_HEADING}"
    assert page.count(section) == 1
    main, bench = page[: page.index(section)], page[page.index(section) :]
    # each part's comparisons are its own files' only, judged in a family of their own
    head, rows = _table_rows(main, "## Every comparison")
    assert {r[0] for r in rows} == {f.name.removesuffix(".csv.gz") for f in FILES}
    bhead, brows = _table_rows(bench, "### Every comparison")
    assert {r[0] for r in brows} == {f.name.removesuffix(".csv.gz") for f in BENCH}
    assert "test regret (strategy; baseline)" in bhead and "test regret" not in " ".join(head)
    trained = [a for _, a in done if not a.table.from_tables]
    looked_up = [a for _, a in done if a.table.from_tables]
    assert len(trained) == len(FILES) and len(looked_up) == len(BENCH)
    assert {a.family for a in trained}.isdisjoint({a.family for a in looked_up})
    # the answer block: real training's answer, then the benchmarks', then where they differ
    answer = page[page.index(ANSWER_BEGIN) : page.index(ANSWER_END)]
    assert answer.index("Random search against") < answer.index("On the published tabular")
    assert "differ" in answer.split("On the published tabular")[1]

    # the side-by-side table: each verdict count is the count in each part's comparison table
    shead, srows = _table_rows(bench, "side by side")
    assert shead == ["strategy", "outcome", "real training", "the published tabular benchmarks",
                     "differs"]  # fmt: skip
    words = {"superior": "superior", "equivalent": "equivalent", "non-inferior": "non-inferior",
             "not settled": "inconclusive", "inferior": "inferior"}  # fmt: skip
    checked = 0
    for strategy, outcome, first, second, differs in srows:
        counts = []
        for h, rs in ((head, rows), (bhead, brows)):
            own = [r[h.index("verdict")] for r in rs if r[h.index("strategy")] == strategy]
            if outcome in words:
                counts.append(f"{own.count(words[outcome])} of {len(own)}")
            elif outcome.startswith("competitive"):
                k = sum(own.count(w) for w in ("superior", "equivalent", "non-inferior"))
                counts.append(f"{k} of {len(own)}")
        if counts:
            assert [first, second] == counts, (strategy, outcome)
            checked += 1
        (k1, _, n1), (k2, _, n2) = first.split(), second.split()
        one_zero = n1 != "0" and n2 != "0" and (k1 == "0") != (k2 == "0")
        assert differs == ("yes" if one_zero else "no")
    assert checked == 2 * 6
    # the sentence names exactly the outcomes that differ, with the table's counts
    sentence = answer.strip().splitlines()[-1]
    assert sentence in bench
    for strategy, outcome, first, second, differs in srows:
        said = f"{outcome} on {first} comparisons on real training and {second} on"
        assert (said in sentence) == (differs == "yes"), (strategy, outcome)


def test_the_block_written_by_hand_holds_no_numbers() -> None:
    shipped = (ROOT / "docs" / "results.md").read_text()
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


def test_every_number_in_a_task_sentence_is_in_its_tables(
    regenerated: tuple[str, str, list[tuple[Path, Analysis]]],
) -> None:
    page, _, _ = regenerated
    sections = [s for s in _sections(page) if s[1].startswith("Test ")]
    assert len(sections) >= 11
    for heading, sentence, tables in sections:
        cells = set(NUMBER.findall(tables))
        for number in NUMBER.findall(sentence):
            assert number in cells or number.lstrip("+") in cells, (heading, number)


def test_the_answer_counts_agree_with_the_overview_table(
    regenerated: tuple[str, str, list[tuple[Path, Analysis]]],
) -> None:
    page, _, _ = regenerated
    answer = page[page.index(ANSWER_BEGIN) : page.index(ANSWER_END)]
    split = page.index(f"## {BENCHMARKS_HEADING}")
    parts = [
        (answer.split("On the published tabular")[0], page[:split], "## Every comparison"),
        (answer.split("On the published tabular")[1], page[split:], "### Every comparison"),
    ]
    for text, part, heading in parts:
        head, rows = _table_rows(part, heading)
        for label in ("random search", "TPE"):
            verdicts = [
                r[head.index("verdict")] for r in rows if r[head.index("strategy")] == label
            ]
            own = text[text.index(f"{label[0].upper()}{label[1:]} against") :]
            for word, shown in (("equivalent", "equivalent"), ("non-inferior", "non-inferior"),
                                ("inconclusive", "not settled"), ("superior", "superior"),
                                ("inferior", "inferior")):  # fmt: skip
                n = verdicts.count(word)
                if n:
                    assert f"{n} {shown}" in own.split(".")[0], (label, word, n)
            assert f"{len(verdicts)} comparisons" in own
