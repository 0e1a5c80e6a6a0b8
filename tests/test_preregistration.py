"""Issue 17's experiment is pre-registered: its study files were committed, with the plan
(docs/experiment-17.md), before the first run. These tests check that each study file still
says what was registered (a hash of its parsed content, so that a header comment may gain the
measured run time) and that every shipped ``e17-*.csv.gz`` under ``results/`` (the interim
files in ``results/e17/``, the complete experiment's in ``results/``) was produced by it."""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

from hpstudy.config import load_config
from hpstudy.config._schema import METRICS
from hpstudy.strategies import study_budget

ROOT = Path(__file__).resolve().parent.parent
PLAN = ROOT / "docs" / "experiment-17.md"
BEGIN = "<!-- preregistered files: do not edit (tests/test_preregistration.py) -->"
END = "<!-- end of the preregistered files -->"


def content_hash(path: Path) -> str:
    """SHA-256 of a study file's parsed content (comments and layout do not count)."""
    data = tomllib.loads(path.read_text())
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def registered() -> dict[str, str]:
    """``{study file name: content hash}`` from the plan's table."""
    text = PLAN.read_text()
    block = text[text.index(BEGIN) + len(BEGIN) : text.index(END)]
    rows = {}
    for line in block.splitlines():
        match = re.match(r"\| `(studies/e17-[\w-]+\.toml)` \|.*\| `([0-9a-f]{64})` \|$", line)
        if match:
            rows[match[1]] = match[2]
    return rows


def problems_of(results: Path, study: Path) -> list[str]:
    """What in ``results`` (an exported csv.gz) was not produced by ``study``: another
    experiment, a task, strategy or seed the file does not have, a budget or a fingerprint
    (task, space, training, pruner) that differs. Reads the rows themselves, not the copy of
    the study file exported beside them."""
    config = load_config(study)
    tasks = {t.name: t for t in config.tasks}
    seen: set[tuple[str, str, int]] = set()
    problems = []
    with gzip.open(results, "rt", newline="") as f:
        for row in csv.DictReader(f):
            key = (row["task"], row["strategy"], int(row["seed"]))
            if key in seen:
                continue
            seen.add(key)
            task = tasks.get(row["task"])
            if row["experiment"] != config.name:
                problems.append(f"{row['study']}: experiment {row['experiment']!r}")
            if task is None:
                problems.append(f"{row['study']}: task {row['task']!r} is not in {study.name}")
                continue
            if row["strategy"] not in config.strategies:
                problems.append(f"{row['study']}: strategy {row['strategy']!r}")
            elif int(row["budget"]) != study_budget(config, row["strategy"]):
                problems.append(f"{row['study']}: budget {row['budget']}")
            kind = METRICS[row["metric"]][0]
            if row["fingerprint"] != config.fingerprint(task, kind):
                problems.append(f"{row['study']}: fingerprint {row['fingerprint']}")
    expected = {
        (t.name, s, seed) for t in config.tasks for s in config.strategies for seed in config.seeds
    }
    if seen != expected:
        problems.append(
            f"studies missing: {sorted(expected - seen)[:3]}; not in the file: {sorted(seen - expected)[:3]}"
        )
    return problems


def test_the_plan_registers_every_e17_study_file() -> None:
    files = registered()
    assert len(files) >= 9, files
    assert set(files) == {str(p.relative_to(ROOT)) for p in (ROOT / "studies").glob("e17-*.toml")}


@pytest.mark.parametrize("name", sorted(registered()))
def test_each_registered_study_file_is_unchanged(name: str) -> None:
    assert content_hash(ROOT / name) == registered()[name], (
        f"{name} changed after it was pre-registered; a new plan is a new experiment"
    )


@pytest.mark.parametrize(
    "results", sorted((ROOT / "results").glob("**/e17-*.csv.gz")), ids=lambda p: p.name
)
def test_each_shipped_result_was_produced_by_its_registered_study_file(results: Path) -> None:
    name = results.name.removesuffix(".csv.gz")
    study = ROOT / "studies" / f"{name}.toml"
    assert f"studies/{name}.toml" in registered(), f"{results.name} was not pre-registered"
    assert problems_of(results, study) == []
    # the copy exported beside it is the same study file
    assert content_hash(results.with_name(f"{name}.toml")) == content_hash(study)


def test_the_check_finds_results_from_another_study_file(tmp_path: Path) -> None:
    """The check on shipped files can fail: results from a study file whose space, training,
    seeds or budget differ from the one they are checked against are named."""
    results = next(ROOT.glob("results/**/e17-4d-small.csv.gz"))
    study = results.with_name("e17-4d-small.toml")
    assert problems_of(results, study) == []
    text = study.read_text()
    for old, new in [
        ("high = 1e-1", "high = 3e-1"),  # the space
        ("max_epochs = 40", "max_epochs = 30"),  # training
        ("seeds = 20", "seeds = 21"),  # a seed never run
        ('name = "e17-4d-small"', 'name = "other"'),  # another experiment
    ]:
        assert old in text, old
        changed = tmp_path / "changed.toml"
        changed.write_text(text.replace(old, new, 1))
        assert problems_of(results, changed), new


def test_the_content_hash_ignores_comments_only(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.toml", tmp_path / "b.toml", tmp_path / "c.toml"
    a.write_text('name = "x"\nseeds = 20\n')
    b.write_text('# MEASURED run time: 41 min\nname = "x"   # the name\n\nseeds = 20\n')
    c.write_text('name = "x"\nseeds = 21\n')
    assert content_hash(a) == content_hash(b) != content_hash(c)


INTERIM = sorted((ROOT / "results" / "e17").glob("e17-*.csv.gz"))


@pytest.mark.skipif(not INTERIM, reason="no interim results shipped")
def test_the_interim_page_is_regenerated_from_its_raw_results(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/results-e17.md is exactly what its documented command gives from results/e17/."""
    from hpstudy.report._results_page import KEEP_BEGIN, KEEP_END, write_results

    shipped = (ROOT / "docs" / "results-e17.md").read_text()
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "results-e17.md").write_text(shipped)
    (tmp_path / "results").symlink_to(ROOT / "results")
    monkeypatch.chdir(tmp_path)  # the page names the command with paths relative to the root
    write_results([Path("results/e17") / f.name for f in INTERIM], Path("docs/results-e17.md"))
    assert (tmp_path / "docs" / "results-e17.md").read_text() == shipped
    for f in INTERIM:
        assert f"## {f.name.removesuffix('.csv.gz')}" in shipped
    # the block written by hand holds no numbers (link targets, paths in code and the
    # command aside), so it cannot disagree with the tables
    kept = shipped[shipped.index(KEEP_BEGIN) + len(KEEP_BEGIN) : shipped.index(KEEP_END)]
    prose = re.sub(r"```.*?```|`[^`]*`|\]\([^)]*\)", "", kept, flags=re.S)
    assert not re.search(r"\d", prose), re.findall(r".{20}\d.{20}", prose)
