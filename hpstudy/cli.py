"""The ``hpstudy`` command line: a thin Typer layer over the Python API.

Each command converts its options, makes one library call and prints. This is the one place
where errors become exit codes (0 ok, 1 runtime error, 2 usage/config error, 130 interrupted).
Nothing heavy (torch, optuna) is imported at module level, so ``hpstudy --help`` is instant.
"""

from __future__ import annotations

import logging
import sys
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core
from rich.console import Console
from rich.table import Table

from hpstudy._errors import ConfigError, DatabaseError, HpStudyError, Interrupted, WorkerDied
from hpstudy._redact import redact_text, redact_url

# Global options a user may also write after the command (``hpstudy status NAME -q``).
_GLOBAL_FLAGS = ("-q", "--quiet", "--debug", "--verbose")


def _is_global_flag(token: str) -> bool:
    return token in _GLOBAL_FLAGS or (
        len(token) > 1 and token[0] == "-" and set(token[1:]) == {"v"}
    )


class _Commands(typer.core.TyperGroup):
    """Accepts the global options (``-q``, ``-v``, ``--debug``) after the command too, by
    moving them in front of it before parsing; a value of a command's own option (``-o -q``)
    and anything after ``--`` stay where they are."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        command_at = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
        if command_at is None:
            return super().parse_args(ctx, args)
        command = self.get_command(ctx, args[command_at])
        takes_value: set[str] = set()
        for param in getattr(command, "params", []):
            if getattr(param, "is_flag", True) or getattr(param, "count", False):
                continue
            takes_value.update(getattr(param, "opts", []))
        moved: list[str] = []
        kept = list(args[: command_at + 1])
        rest = args[command_at + 1 :]
        i = 0
        while i < len(rest):
            token = rest[i]
            if token == "--":
                kept += rest[i:]
                break
            if token in takes_value and i + 1 < len(rest):
                kept += rest[i : i + 2]
                i += 2
                continue
            (moved if _is_global_flag(token) else kept).append(token)
            i += 1
        return super().parse_args(ctx, moved + kept)


app = typer.Typer(
    help="Hyperparameter studies for PyTorch MLPs: compare manual, grid, random and Bayesian search.",
    cls=_Commands,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
# Piped output is not cut to 80 columns: tables of study names would be unreadable.
out = Console(highlight=False, width=None if sys.stdout.isatty() else 200)
err = Console(stderr=True, highlight=False, soft_wrap=True)
_state: dict[str, Any] = {"debug": False, "quiet": False, "url": None}
T = TypeVar("T")

StorageOption = Annotated[
    str | None,
    typer.Option(
        "--storage",
        help="The storage: sqlite:///path.db or just a file path (a SQLite file), or a server URL "
        "such as postgresql://user@host/db [default: $HPSTUDY_STORAGE or sqlite:///storage/hpstudy.db]",
        show_default=False,
    ),
]


def _jobs_option(help_text: str) -> Any:
    return typer.Option("--n-jobs", "-j", min=1, max=256, help=help_text)


NJobsOption = Annotated[
    int,
    _jobs_option(
        "Worker processes on this machine, and processes retraining missing test scores "
        "(one torch thread each)."
    ),
]


def _print_version(value: bool) -> None:
    if not value:
        return
    from importlib.metadata import PackageNotFoundError, version

    from hpstudy._version import __version__

    def installed(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    # Metadata only: importing torch or optuna would make --version slow.
    deps = ", ".join(f"{n} {installed(n)}" for n in ("optuna", "torch", "optuna-dashboard"))
    out.print(f"hpstudy {__version__} ({deps})", markup=False)
    raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[
        int,
        typer.Option("--verbose", "-v", count=True, help="More log output (-vv for Optuna's)."),
    ] = 0,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress display; results and errors only.")
    ] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_print_version,
            is_eager=True,
            help="Print hpstudy's version and the versions it runs on, then exit.",
        ),
    ] = False,
) -> None:
    _state["debug"], _state["quiet"] = debug, quiet
    level = (
        logging.DEBUG if debug or verbose >= 2 else logging.INFO if verbose else logging.WARNING
    )
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, _ScrubFilter) for f in handler.filters):
            handler.addFilter(_ScrubFilter())
    logging.getLogger("hpstudy").setLevel(level)
    if verbose < 2 and not debug:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)


class _ScrubFilter(logging.Filter):
    """Removes the command's storage password from every log line (a warning may quote a
    driver's message, which may quote the URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _state["url"] is not None:
            record.msg, record.args = _scrub(record.getMessage()), None
        return True


def _call(
    fn: Callable[[], T],
    resume_hint: Callable[[], str] | None = None,
    show_results: Callable[[list[Any]], None] | None = None,
) -> T:
    """Run a library call; turn hpstudy errors, and database errors from below it, into
    one-line messages (the resume command after a run was cut short) and exit codes.

    Args:
        resume_hint: The command that continues this one (commands that run trials).
        show_results: Prints how each study stands when worker processes died
            (:class:`~hpstudy.WorkerDied`), before the error.
    """
    try:
        return fn()
    except Interrupted as e:
        err.print(_scrub(f"{e}"), markup=False)
        if resume_hint is not None:
            err.print(f"resume with: {resume_hint()}", markup=False)
        raise typer.Exit(130) from None
    except HpStudyError as e:
        if _state["debug"]:
            err.print(_scrub(traceback.format_exc()), markup=False)
        if isinstance(e, WorkerDied) and show_results is not None:
            show_results(e.results)
        err.print(_scrub(f"error: {e}"), markup=False)
        if isinstance(e, DatabaseError | WorkerDied) and resume_hint is not None:
            err.print(f"resume with: {resume_hint()}", markup=False)
        raise typer.Exit(e.exit_code) from None
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        if resume_hint is not None:
            err.print(f"resume with: {resume_hint()}", markup=False)
        raise typer.Exit(130) from None
    except OSError as e:
        import errno

        if _state["debug"]:
            err.print(_scrub(traceback.format_exc()), markup=False)
        name = f" {e.filename}" if e.filename else ""
        if e.errno == errno.ENAMETOOLONG:
            err.print(
                _scrub(
                    f"error: file name too long:{name[:120]}...; choose a shorter name or path"
                ),
                markup=False,
            )
            raise typer.Exit(2) from None
        err.print(_scrub(f"error: cannot use{name}: {e.strerror or e}"), markup=False)
        raise typer.Exit(1) from None
    except Exception as e:
        from hpstudy._errors import too_many_connections
        from hpstudy.store._retry import database_cause, one_line
        from hpstudy.store._storage import damaged_database

        # a database that runs out of connection slots mid-run (another worker took the last
        # one): one line saying what to change, not a driver traceback
        damaged = damaged_database(e, _state["url"]) or too_many_connections(e)
        cause = database_cause(e) if damaged is None else None
        if damaged is None and cause is None:
            raise
        if _state["debug"]:
            err.print(_scrub(traceback.format_exc()), markup=False)
        if damaged is not None:
            err.print(_scrub(f"error: {damaged}"), markup=False)
            if resume_hint is not None and "connection" in damaged:
                err.print(f"resume with: {resume_hint()}", markup=False)
        elif cause is not None:
            # SQLAlchemy raised below hpstudy (a server that went away before a run's own
            # retries apply, a refused statement): one line, never a traceback or a password.
            err.print(_scrub(f"error: database error: {one_line(cause)}"), markup=False)
            if resume_hint is not None:
                err.print(f"resume with: {resume_hint()}", markup=False)
        raise typer.Exit(1) from None


def _storage_url(storage: str | None) -> str:
    """The storage URL of a command (option, environment or default), remembered so that no
    message of this command can show its password."""
    from hpstudy.store import resolve_storage_url

    url = resolve_storage_url(storage)
    _state["url"] = url
    return url


def _scrub(text: str) -> str:
    """``text`` without the password of this command's storage URL."""
    url = _state["url"]
    return text if url is None else redact_text(text, url)


def _storage_flag(url: str, note: bool = True) -> str:
    """``--storage URL`` for a command to copy, never with a password in it: a URL with one
    is shown redacted (``note``: with how to put it back), and ``$HPSTUDY_STORAGE`` is relied
    on when it holds that URL."""
    import os
    import shlex

    from hpstudy.store import DEFAULT_STORAGE

    if url == DEFAULT_STORAGE:
        return ""
    shown = redact_url(url)
    if shown == url:
        return f" --storage {shlex.quote(url)}"
    if os.environ.get("HPSTUDY_STORAGE") == url:
        return ""  # the environment still holds it
    flag = f" --storage {shlex.quote(shown)}"
    return flag + " (with the password in place of ***, or set $HPSTUDY_STORAGE)" if note else flag


def _experiment_name(file: Path) -> str:
    """The experiment name of a study file, for messages (the file itself if unreadable)."""
    import tomllib

    try:
        name = tomllib.loads(file.read_text()).get("name")
    except (OSError, ValueError):
        name = None
    return name if isinstance(name, str) else str(file)


def _parse_seeds(text: str | None) -> list[int] | None:
    if text is None:
        return None
    try:
        seeds: list[int] = []
        for part in text.split(","):
            if "-" in part.strip()[1:]:
                lo, hi = part.split("-", 1)
                seeds.extend(range(int(lo), int(hi) + 1))
            else:
                seeds.append(int(part))
        return seeds
    except ValueError:
        raise ConfigError(
            f"--seeds must be a comma-separated list or range of integers like 0,1,2 or 0-4, got {text!r}"
        ) from None


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _metric(info: Any) -> str:
    """What a study's trial values (its best) are, and their direction, e.g. ``rmse
    (minimize)``, ``cross_entropy (minimize)`` for a classifier selected on cross-entropy."""
    return f"{info.objective} ({info.objective_direction})"


@app.command()
def create(
    file: Annotated[
        Path, typer.Argument(help="The study file (TOML), e.g. studies/quickstart.toml.")
    ],
    storage: StorageOption = None,
    strategy: Annotated[
        list[str] | None,
        typer.Option("--strategy", "-s", help="Run only this strategy of the file (repeatable)."),
    ] = None,
    n_trials: Annotated[
        int | None,
        typer.Option("--n-trials", "-n", help="Override the budget: finished trials per study."),
    ] = None,
    seeds: Annotated[
        str | None, typer.Option("--seeds", help="Override the seeds: 0,1,2 or 0-4.")
    ] = None,
    no_run: Annotated[
        bool, typer.Option("--no-run", help="Create the studies without running any trial.")
    ] = False,
    n_jobs: NJobsOption = 1,
) -> None:
    """Create one Optuna study per task x strategy x seed of FILE, then run them."""
    from hpstudy.config import load_config
    from hpstudy.runner import (
        apply_overrides,
        create_experiment,
    )

    url = _storage_url(storage)

    def work() -> Any:
        config = apply_overrides(
            load_config(file), strategies=strategy, seeds=_parse_seeds(seeds), n_trials=n_trials
        )
        progress = _live_progress(not no_run)
        try:
            return config, create_experiment(
                config, url, run=not no_run, n_jobs=n_jobs, progress=progress
            )
        finally:
            progress.close()
            _scoring_note(progress)

    config, (infos, results) = _call(
        work,
        resume_hint=lambda: f"hpstudy resume {_experiment_name(file)}{_storage_flag(url)}",
        show_results=lambda results: _print_results(_experiment_name(file), url, results),
    )
    if no_run:
        out.print(
            f"created {len(infos)} studies of experiment '{config.name}' in {redact_url(url)} (not run)"
        )
        return
    _print_results(config.name, url, results)


def _scoring_note(progress: Any) -> None:
    """One line on the test scores a run computed (missing ones, or a study's at its end)."""
    if progress.scored is None or _state["quiet"]:
        return
    done, total = progress.scored
    if done == total:
        err.print(
            f"test scores: {total} configuration(s) retrained on train+validation and scored "
            "once on test (cached in the storage)",
            markup=False,
        )
    else:
        err.print(f"test scores: {done} of {total} configuration(s) retrained", markup=False)


def _print_results(experiment: str, url: str, results: list[Any]) -> None:
    table = Table(title=f"experiment {experiment}")
    for col in (
        "study", "finished", "complete", "pruned", "failed", "interrupted", "best", "stopped",
    ):  # fmt: skip
        table.add_column(
            col, justify="left" if col in ("study", "stopped") else "right", no_wrap=True
        )
    n_failed = 0
    for r in results:
        c = r.counts
        n_failed += c.failed
        table.add_row(
            r.name,
            f"{c.finished}/{r.budget}",
            str(c.complete),
            str(c.pruned),
            str(c.failed),
            str(c.interrupted),
            _fmt(c.best),
            r.reason,
        )
    out.print(table)
    if n_failed:
        err.print(
            f"{n_failed} trial(s) failed; their reasons are in the trial user attr 'fail_reason' (optuna-dashboard shows it)"
        )
    flag = _storage_flag(url, note=False)
    out.print(
        f"results: {redact_url(url)}  (report: hpstudy report {experiment}{flag}; browse: hpstudy dashboard{flag})",
        markup=False,
    )


@app.command("list")
def list_(
    storage: StorageOption = None,
    experiment: Annotated[
        str | None, typer.Option("--experiment", "-e", help="Only this experiment.")
    ] = None,
) -> None:
    """List the experiments and studies in the storage with their trial counts and best values."""
    from hpstudy.runner import list_studies

    url = _storage_url(storage)
    rows, others = _call(lambda: list_studies(url, experiment))
    if not rows:
        what = f"experiment '{experiment}'" if experiment else "hpstudy studies"
        out.print(
            f"no {what} in {redact_url(url)}" + (f" ({others} other studies)" if others else "")
        )
        return
    by_experiment: dict[str, list[Any]] = {}
    for row in rows:
        by_experiment.setdefault(row.info.experiment, []).append(row)
    for name, group in by_experiment.items():
        table = Table(title=f"experiment {name}", title_justify="left")
        for col in (
            "study",
            "strategy",
            "seed",
            "finished",
            "complete",
            "pruned",
            "failed",
            "interrupted",
            "running",
            "best",
            "metric",
        ):
            table.add_column(
                col,
                justify="left" if col in ("study", "strategy", "metric") else "right",
                no_wrap=True,
            )
        for row in group:
            i, c = row.info, row.counts
            table.add_row(
                i.name, i.strategy, str(i.seed), f"{c.finished}/{i.budget}", str(c.complete),
                str(c.pruned), str(c.failed), str(c.interrupted), str(c.running), _fmt(c.best),
                _metric(i),
            )  # fmt: skip
        table.caption = "best: on the validation split, in each study's own metric"
        out.print(table)
    if others:
        out.print(f"(and {others} studies not made by hpstudy)")


def _live_progress(enabled: bool = True) -> Any:
    from hpstudy.runner import Progress, RichProgress

    return RichProgress(err) if enabled and err.is_terminal and not _state["quiet"] else Progress()


@app.command()
def resume(
    experiment: Annotated[
        str,
        typer.Argument(
            help="Experiment name, or its study file (checked against the stored one)."
        ),
    ],
    storage: StorageOption = None,
    n_jobs: NJobsOption = 1,
    n_trials: Annotated[
        int | None,
        typer.Option("--n-trials", "-n", help="A new budget: finished trials per study."),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force",
            help="Resume even if the study file changed in a way that makes trials incomparable.",
        ),
    ] = False,
) -> None:
    """Continue every study of EXPERIMENT until its budget is met (stale and interrupted trials are re-run)."""
    _resume_and_print("resume", experiment, storage, force=force, n_trials=n_trials, n_jobs=n_jobs)


@app.command()
def worker(
    experiment: Annotated[str, typer.Argument(help="Experiment name (or its study file).")],
    storage: StorageOption = None,
    n_jobs: NJobsOption = 1,
) -> None:
    """Join a running experiment from this machine: run its remaining trials alongside other workers."""
    _resume_and_print("worker", experiment, storage, n_jobs=n_jobs, join=True)


def _resume_and_print(verb: str, experiment: str, storage: str | None, **options: Any) -> None:
    from hpstudy.runner import resume_experiment

    url = _storage_url(storage)

    def work() -> Any:
        progress = _live_progress()
        try:
            return resume_experiment(experiment, url, progress=progress, **options)
        finally:
            progress.close()
            _scoring_note(progress)

    config, results = _call(
        work,
        resume_hint=lambda: f"hpstudy {verb} {experiment}{_storage_flag(url)}",
        show_results=lambda results: _print_results(experiment, url, results),
    )
    _print_results(config.name, url, results)


@app.command()
def status(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    storage: StorageOption = None,
) -> None:
    """Show each study of EXPERIMENT: finished/budget, running, pruned, failed, retried, best, stale trials."""
    from hpstudy.runner import experiment_status

    url = _storage_url(storage)
    rows = _call(lambda: experiment_status(url, experiment))
    table = Table(title=f"experiment {experiment}", title_justify="left")
    for col in (
        "study",
        "finished",
        "running",
        "waiting",
        "pruned",
        "failed",
        "interrupted",
        "retried",
        "best",
        "metric",
    ):
        table.add_column(
            col, justify="left" if col in ("study", "metric") else "right", no_wrap=True
        )
    stale = []
    for row in rows:
        c = row.counts
        table.add_row(
            row.info.name, f"{c.finished}/{row.info.budget}", str(c.running), str(c.waiting),
            str(c.pruned), str(c.failed), str(c.interrupted), str(row.retried), _fmt(c.best),
            _metric(row.info),
        )  # fmt: skip
        stale += [f"{row.info.name} {s}" for s in row.stale]
    table.caption = (
        "best: on the validation split, in each study's own metric; interrupted: attempts "
        "stopped by Ctrl-C or a dead worker (re-run) or given up: never counted"
    )
    out.print(table)
    done = sum(r.counts.finished >= r.info.budget for r in rows)
    out.print(f"{done} of {len(rows)} studies have met their budget")
    for line in stale:
        err.print(f"warning: {line}; 'hpstudy resume {experiment}' re-runs it", markup=False)
    for row in rows:
        if row.failures:
            err.print(f"warning: {row.info.name}: {row.failures}", markup=False)
        for line in row.gave_up:  # not counted toward the budget, not re-run
            err.print(f"warning: {row.info.name} {line}", markup=False)


@app.command()
def delete(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    storage: StorageOption = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    force: Annotated[
        bool,
        typer.Option("--force", help="Delete even while trials are RUNNING (their workers fail)."),
    ] = False,
) -> None:
    """Delete every study of EXPERIMENT and its trials (other experiments are untouched)."""
    from hpstudy.runner import delete_experiment, plan_delete

    url = _storage_url(storage)
    plan = _call(lambda: plan_delete(url, experiment, force=force))
    out.print(
        f"experiment '{experiment}' in {redact_url(url)}: {len(plan.studies)} studies, "
        f"{plan.n_trials} trials",
        markup=False,
    )
    for name, n in plan.studies:
        out.print(f"  {name} ({n} trials)", markup=False)
    if not yes and not typer.confirm(f"delete these {len(plan.studies)} studies?", err=True):
        err.print("nothing deleted", markup=False)
        raise typer.Exit(1)
    done = _call(lambda: delete_experiment(url, experiment, force=force))
    out.print(
        f"deleted {len(done.studies)} studies ({done.n_trials} trials) of experiment '{experiment}'",
        markup=False,
    )


@app.command()
def report(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    storage: StorageOption = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="HTML file [default: reports/EXPERIMENT.html]."),
    ] = None,
) -> None:
    """Write one offline HTML report: which strategy won, for how much compute, on held-out test data, and is it real. Reads only: nothing is retrained."""
    from hpstudy.analysis._table import failure_note
    from hpstudy.report import write_report

    url = _storage_url(storage)
    path, analysis = _call(lambda: write_report(url, experiment, output))
    out.print(analysis.headline)
    for summary in analysis.summaries:
        out.print(f"{summary.task}: {summary.verdict}")
    for study in analysis.table.studies:
        note = failure_note(study.trials)
        if note is not None:
            err.print(f"warning: {study.name}: {note}", markup=False)
    out.print(f"report: {path}")


@app.command()
def export(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    storage: StorageOption = None,
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            "-f",
            help="csv (trials + a .summary.csv beside), json, or csv.gz (the raw results "
            "'hpstudy results' recomputes from, with the study file beside as NAME.toml).",
        ),
    ] = "csv",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="File [default: reports/EXPERIMENT.csv, .json or .csv.gz]."
        ),
    ] = None,
) -> None:
    """Export one row per trial (every parameter, value, epochs, seconds) and the summary table. Reads only."""
    from hpstudy.report import export_experiment

    url = _storage_url(storage)
    paths = _call(lambda: export_experiment(url, experiment, fmt, output))
    for path in paths:
        out.print(f"wrote {path}")


@app.command()
def results(
    files: Annotated[
        list[Path], typer.Argument(help="Files written by 'hpstudy export NAME -f csv.gz'.")
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Markdown page to write.")] = Path(
        "reports/results.md"
    ),
    html_dir: Annotated[
        Path | None,
        typer.Option("--html-dir", help="Also write each experiment's HTML report here."),
    ] = None,
    readme: Annotated[
        Path | None,
        typer.Option(
            "--readme", help="Also put the generated answer between its markers in this file."
        ),
    ] = None,
) -> None:
    """Recompute every verdict, table and figure from exported raw results, retraining nothing.

    Files of published tabular benchmarks are never pooled with real training: given both,
    each kind is analysed apart and the benchmarks' answer is a section of the page, beside
    the answer from real training, with the outcomes where the two differ."""
    from hpstudy.report._results_page import write_results

    done = _call(lambda: write_results(files, output, html_dir, readme))
    for _, analysis in done:
        for summary in analysis.summaries:
            out.print(f"{analysis.table.experiment}.{summary.task}: {summary.verdict}")
    out.print(f"wrote {output}")


@app.command()
def best(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    storage: StorageOption = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="Only this task.")] = None,
    strategy: Annotated[
        str | None, typer.Option("--strategy", "-s", help="Only this strategy's studies.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON (for scripts).")] = False,
) -> None:
    """Print the best configuration of each task and its scores: each study's pick, ranked by its
    validation score relative to each seed's median, averaged over the seeds it was trained at."""
    import json

    from hpstudy.report import best_configurations

    url = _storage_url(storage)
    found = _call(lambda: best_configurations(url, experiment, task, strategy))
    if as_json:
        print(json.dumps([b.as_dict() for b in found], indent=1))
        return
    from hpstudy.config._schema import BENCHMARK_METRICS

    for b in found:
        # a benchmark's test score is not a retraining: the table's other repetitions
        scored = (
            "unobserved repetitions of the table"
            if b.metric in BENCHMARK_METRICS
            else "retrainings"
        )
        tests = (
            f"; test {b.metric} {sum(b.test_scores) / len(b.test_scores):.4g} (mean of {len(b.test_scores)} {scored})"
            if b.test_scores
            else f"; no test score yet ('hpstudy resume {experiment}' computes it)"
        )
        n = len(b.values_by_seed)
        spread = f"mean over {n} seeds {b.mean_value:.4g}" if n > 1 else f"at seed {b.seed} only"
        out.print(
            f"{b.task}: validation {b.objective} {b.value:.4g} ({b.objective_direction}; {spread}){tests}",
            markup=False,
        )
        if b.validation_regret is not None:  # a benchmark task: its optimum is known
            tested = "" if b.test_regret is None else f", test {b.test_regret:.4g}"
            out.print(
                f"  regret (0 is the table's optimum): validation {b.validation_regret:.4g}{tested}",
                markup=False,
            )
        out.print(f"  from {b.study} trial {b.trial}", markup=False)
        for k, v in b.params.items():
            out.print(f"  {k} = {v!r}", markup=False)


@app.command()
def dashboard(
    storage: StorageOption = None,
    host: Annotated[
        str,
        typer.Option(
            "--host",
            help="Address to bind; other than loopback needs --allow-remote.",
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port.")] = 8080,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a --host reachable from other machines: anyone who reaches it can rename and delete studies.",
        ),
    ] = False,
) -> None:
    """Browse the studies in optuna-dashboard (started on the same storage)."""
    from hpstudy._dashboard import (
        check_dashboard_host,
        check_dashboard_storage,
        is_loopback,
        run_dashboard,
    )

    url = _storage_url(storage)
    _call(lambda: check_dashboard_host(host, allow_remote))
    _call(lambda: check_dashboard_storage(url))
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"optuna-dashboard for {redact_url(url)} at http://{shown}:{port}/ (Ctrl-C to stop)",
        markup=False,
    )
    if not is_loopback(host):
        err.print(
            f"warning: {host} is reachable from other machines and the dashboard has unauthenticated write endpoints",
            markup=False,
        )
    _call(lambda: run_dashboard(url, host, port, allow_remote=allow_remote))


@app.command("train-best")
def train_best(
    experiment: Annotated[str, typer.Argument(help="Experiment name.")],
    storage: StorageOption = None,
    task: Annotated[
        str | None,
        typer.Option("--task", "-t", help="The task (required when the experiment has several)."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Model folder [default: models/EXPERIMENT-TASK]."),
    ] = None,
    all_rows: Annotated[
        bool,
        typer.Option(
            "--all-rows",
            help="Refit on every labelled row, the test split included (the held-out test "
            "score is measured first, without those rows).",
        ),
    ] = False,
) -> None:
    """Retrain the best configuration (by its mean over seeds) on train+validation and save the
    model (no pickle)."""
    from hpstudy.saved_model import train_best as _train_best

    url = _storage_url(storage)
    path, meta = _call(lambda: _train_best(url, experiment, task, output, all_rows=all_rows))
    scores = ", ".join(f"{k} {v:.4g}" for k, v in meta["scores"].items())
    out.print(
        f"saved {path} ({meta['task']}, {scores}); use it with: hpstudy predict {path} data.csv",
        markup=False,
    )


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="A model folder saved by train-best.")],
    data: Annotated[
        Path,
        typer.Argument(
            help="CSV with the model's input columns (the target column may be there too)."
        ),
    ],
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write predictions here (CSV) instead of stdout."),
    ] = None,
    impute: Annotated[
        bool,
        typer.Option(
            "--impute",
            help="Fill text, infinite or huge values in numeric columns with the training "
            "median (and say how many) instead of refusing them.",
        ),
    ] = False,
    ids: Annotated[
        list[str] | None,
        typer.Option(
            "--id",
            help="Copy this column of the data to the output, to match rows (repeatable) "
            "[default: every column the model ignores, e.g. an ID left out of training].",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Predict new rows with a saved model."""
    from hpstudy.saved_model import predict_csv

    notes: list[str] = []
    path, predictions = _call(
        lambda: predict_csv(model, data, output, impute=impute, ids=ids or None, notes=notes)
    )
    for note in notes:
        err.print(note, markup=False)
    if path is None:
        sys.stdout.write(predictions.to_csv(index=False))
    else:
        out.print(f"wrote {len(predictions)} predictions to {path}", markup=False)


def main() -> None:
    """Console-script entry point."""
    app()
