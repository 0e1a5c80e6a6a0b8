"""Regenerate docs/report.png, the README's picture of a report: ``make screenshot``.

Runs ``studies/quickstart.toml`` into a throw-away SQLite file (unless ``--storage`` names one
that already holds it), writes its report, and photographs the report's first screen in the
same headless Chromium (Debian's package, driven by Playwright) that the browser test uses.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", help="a storage that already holds the quickstart")
    parser.add_argument("--study", default=str(ROOT / "studies" / "quickstart.toml"))
    parser.add_argument("-o", "--output", default=str(ROOT / "docs" / "report.png"))
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=1100)
    args = parser.parse_args()

    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(chromium).exists():
        print("chromium is not installed: apt-get install -y chromium (as root)", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from hpstudy.config import load_config
    from hpstudy.report import write_report
    from hpstudy.runner import create_experiment

    config = load_config(args.study)
    with tempfile.TemporaryDirectory() as tmp:
        storage = args.storage or f"sqlite:///{Path(tmp) / 'screenshot.db'}"
        if args.storage is None:
            print(f"running {args.study} (about a minute)...", file=sys.stderr)
            create_experiment(config, storage)
        page_path, _ = write_report(storage, config.name, Path(tmp) / "report.html")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS)
            page = browser.new_page(viewport={"width": args.width, "height": args.height})
            page.goto(page_path.resolve().as_uri())
            page.wait_for_function(
                "window.Plotly !== undefined && "
                "document.querySelectorAll('.plotly-graph-div svg').length > 0"
            )
            page.wait_for_timeout(500)  # let Plotly finish its first layout pass
            page.screenshot(path=args.output, full_page=False)
            browser.close()
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
