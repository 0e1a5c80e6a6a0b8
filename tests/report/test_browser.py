"""The HTML report opened in a real headless Chromium (Debian's package, driven by Playwright):
no console errors, every figure has data, the tables and verdict sentences are there."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hpstudy.config import parse_config
from hpstudy.report import write_report
from hpstudy.runner import create_experiment
from scripts.screenshot import CHROMIUM_FLAGS
from tests.conftest import tiny_study_text

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = CHROMIUM_FLAGS  # one list: the README's screenshot is taken the same way


@pytest.mark.slow
def test_report_opens_offline_in_chromium_with_every_figure_drawn(
    tmp_path: Path, storage_url: str
) -> None:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (.ci/run installs it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    text = (
        tiny_study_text(n_trials=5)
        .replace("seeds = 1", "seeds = 2")
        .replace('name = "tiny"', 'name = "tiny<b>"'.replace("<b>", "-x"))
    )
    create_experiment(parse_config(text), storage_url)
    path, analysis = write_report(storage_url, "tiny-x", tmp_path / "report.html")
    summaries = analysis.summaries
    page_html = path.read_text()
    assert "<script src" not in page_html and page_html.count("<script>") >= 1  # plotly.js inline

    errors: list[str] = []
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on(
            "request",
            lambda r: requests.append(r.url) if not r.url.startswith(("file:", "data:")) else None,
        )
        page.goto(path.resolve().as_uri())
        page.wait_for_function(
            "document.querySelectorAll('.plotly-graph-div').length > 0 && window.Plotly !== undefined"
        )
        figures = page.evaluate(
            """() => [...document.querySelectorAll('.plotly-graph-div')].map(d => ({
                traces: (d.data || []).length,
                points: (d.data || []).reduce((n, t) => n + ((t.x && t.x.length) || (t.dimensions && t.dimensions.length) || 0), 0),
                svg: d.querySelectorAll('svg').length,
            }))"""
        )
        tables = page.evaluate("document.querySelectorAll('table.summary').length")
        verdicts = page.evaluate(
            "[...document.querySelectorAll('p.verdict')].map(p => p.textContent)"
        )
        page.screenshot(path=str(tmp_path / "report.png"), full_page=False)
        browser.close()
    assert errors == []
    assert requests == []  # opens offline: nothing fetched from the network
    assert (
        len(figures) >= 2 * 4
    )  # per task: anytime, importance or parallel, slices, learning curves
    assert all(f["traces"] > 0 and f["points"] > 0 and f["svg"] > 0 for f in figures), figures
    assert tables == 2
    assert verdicts == [s.verdict for s in summaries] and all(v.endswith(".") for v in verdicts)
