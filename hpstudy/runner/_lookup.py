"""Studies of published tabular benchmarks: a trial is a table lookup, so batches are what cost.

A lookup costs microseconds while each storage transaction costs milliseconds, so a worker
claims a batch of trials in one transaction, proposes and looks each up on its local copy
(TPE's next proposal sees the previous lookup's value), and finishes the batch in one
transaction. The claim protocol of docs/architecture.md holds batch by batch:

- **claim**: up to :data:`BATCH` WAITING trials (grid points, manual picks, re-runs), each by
  an atomic ``UPDATE ... WHERE state = 'WAITING'``, or up to :data:`BATCH` new numbers as
  RUNNING trials without parameters under the budget check, with this worker's id and a first
  heartbeat, in one transaction. A crash after it leaves RUNNING trials that recovery fails
  (without parameters: never counted, never re-run; with them: re-queued).
- **sample**: each new number's sampler is seeded from (study seed, that number, strategy),
  as for trained tasks, so workers never share a stream.
- **finish**: parameters, values, ``epochs`` and ``seconds`` (the table's, as the benchmark
  defines them) and the sampler's system attrs of the whole batch, in one transaction, each
  trial guarded by ``state = 'RUNNING'``: all or nothing.

A Ctrl-C (or SIGTERM) during a batch records its unfinished trials as interrupted (never
counted), re-queues those with parameters and raises :class:`~hpstudy.Interrupted`.
At the end the study's test scores are cached where the report reads them (the study user
attrs ``test_scores`` and ``test_scores_by_trial``, as ``report/_test_scores.py`` writes
them): the mean of the repetitions the study did not observe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import TrialState

from hpstudy._errors import Interrupted
from hpstudy._faults import crash_point, start_barrier
from hpstudy.config._benchmarks import repetition_for
from hpstudy.config._schema import ExperimentConfig, TaskConfig
from hpstudy.data._benchmarks import TEST_SCORE_NOTE, load_table
from hpstudy.runner._local import LocalStudy
from hpstudy.runner._recover import HEARTBEAT_INTERVAL, recover_stale
from hpstudy.store import StudyCounts, StudyInfo, best_value
from hpstudy.store._optuna import trial_id
from hpstudy.store._writer import FinishedLookup
from hpstudy.strategies import distributions, make_sampler, strategy

if TYPE_CHECKING:
    from hpstudy.runner._run import StudyResult, WorkerContext

_logger = logging.getLogger("hpstudy")

# Trials per claim/finish transaction. Larger batches amortise more but let a TPE study's
# concurrent workers see each other's results later (at batch boundaries, as the pruner's
# view of other workers in docs/architecture.md); with one worker per study nothing changes.
BATCH = 64


def benchmark_attrs(config: ExperimentConfig, task: TaskConfig) -> Callable[[int], dict[str, Any]]:
    """The study attrs of ``task``'s studies, per seed: the label (``task_kind`` =
    "benchmark", never pooled with real training), the benchmark, the repetition the seed
    observes, the table's optimum over this file's space (for regret) and what the test
    score is. Loads the table, so a missing package fails before storage is touched."""
    assert task.benchmark is not None
    table = load_table(task.benchmark)
    space = {n: p.choices if p.searched else (p.value,) for n, p in config.space.items()}
    optima: dict[int, dict[str, Any]] = {}

    def attrs(seed: int) -> dict[str, Any]:
        rep = repetition_for(seed, str(task.benchmark))
        if rep not in optima:
            best = table.optimum(space, rep)  # type: ignore[arg-type]
            optima[rep] = {
                "validation": best.validation,
                "test": best.test,
                "test_params": best.test_params,
            }
        return {
            "task_kind": "benchmark",
            "benchmark": task.benchmark,
            "repetition": rep,
            "optimum": optima[rep],
            "test_score_note": TEST_SCORE_NOTE,
        }

    return attrs


def run_lookup_study(
    ctx: WorkerContext, info: StudyInfo, should_stop: Callable[[], bool] = lambda: False
) -> StudyResult:
    """Run lookup trials of one benchmark study, in batches, until its budget is met, its
    timeout passes or it runs dry (see the module's docstring for the protocol)."""
    from hpstudy.runner._run import StudyResult

    config, writer, reader = ctx.config, ctx.writer, ctx.reader
    task = config.task(info.task)
    assert task.benchmark is not None
    table = load_table(task.benchmark)
    repetition = repetition_for(info.seed, task.benchmark)
    epochs = table.family.epochs
    queued = strategy(info.strategy).queued
    from hpstudy.runner._run import open_local_study  # _run imports this module lazily

    local = open_local_study(ctx, info, optuna.pruners.NopPruner())
    dists = distributions(config)
    fixed = config.fixed_params()
    deadline = time.monotonic() + info.timeout if info.timeout else None
    last_recovery = time.monotonic()
    reason = "budget met"
    while True:
        if time.monotonic() - last_recovery > HEARTBEAT_INTERVAL:
            recover_stale(reader, writer, info.study_id)
            last_recovery = time.monotonic()
        local.sync()
        counts = StudyCounts.of(local.stored_trials(), info.direction)
        if counts.finished >= info.budget:
            break
        if deadline is not None and time.monotonic() >= deadline:
            reason = "timeout"
            break
        if should_stop():
            reason = "stopped"
            break
        start_barrier()
        claimed: list[tuple[int, int, bool]] = []  # (trial id, number, parameters stored)
        try:
            waiting = local.waiting()[:BATCH]
            if waiting:
                won = set(writer.claim_many([tid for tid, _ in waiting]))
                for _, number in waiting:
                    local.mark_claimed(number)  # ours now, or another worker's
                claimed = [(tid, n, True) for tid, n in waiting if tid in won]
                if not claimed:
                    continue
            elif queued:
                reason = "all configurations run" if counts.running == 0 else "others finishing"
                break
            else:
                want = min(BATCH, max(1, info.budget - counts.finished))
                block = writer.add_running_trials(info.study_id, want, info.budget)
                if not block:  # the budget is taken by trials running elsewhere
                    reason = "others finishing"
                    break
                claimed = [(tid, n, False) for tid, n in block]
                local.sync_claimed(block)
            crash_point("claim")
            batch = []
            for trial_id, number, stored in claimed:
                new_params: dict[str, Any] | None = None
                system: dict[str, Any] = {}
                if stored:
                    local_id = local.local_id(number)
                    params = dict(local.storage.get_trial(local_id).params)
                else:
                    crash_point("sample")
                    sampler = make_sampler(info.strategy, config, info.seed, number)
                    local_id, params, system = local.sample(number, dists, sampler)
                    new_params = params
                value, seconds = table.lookup({**fixed, **params}, repetition)
                attrs = {"epochs": epochs, "seconds": seconds}
                local.finish(local_id, TrialState.COMPLETE, value, attrs)  # TPE sees it next
                batch.append(FinishedLookup(trial_id, value, attrs, system, new_params))
            crash_point("finish")
            done = writer.finish_many(batch, dists)
            claimed = []
            if not all(done):
                # Another worker declared some stale and re-queued them: their re-runs count.
                _logger.warning(
                    "%d trials of %s were declared stale by another worker; their results "
                    "were dropped",
                    done.count(False),
                    info.name,
                )
                local.invalidate()
            ctx.progress.trials_finished(info.name, sum(done), _best(local, info.direction))
        except KeyboardInterrupt:
            if not claimed:
                raise
            _interrupted(ctx, info, claimed)
        except BaseException:
            local.invalidate()  # the local copy may hold results that were not stored
            raise
    write_test_scores(ctx, info, local, table, repetition)
    ctx.progress.study_finished(info.name, reason)
    return StudyResult(info.name, info.budget, counts, reason)


def _best(local: LocalStudy, direction: str) -> float | None:
    return best_value(
        local.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)), direction
    )


def _interrupted(
    ctx: WorkerContext, info: StudyInfo, claimed: list[tuple[int, int, bool]]
) -> None:
    """Record the batch's trials (claimed by this worker, not finished) as interrupted (never
    counted), re-queue those with parameters, and raise :class:`~hpstudy.Interrupted`."""
    stored = ctx.reader.fetch(info.study_id, {tid for tid, _, _ in claimed})
    requeued = 0
    for trial in stored:
        if trial.state == TrialState.RUNNING:
            again = ctx.writer.fail_and_requeue(
                info.study_id,
                trial_id(trial),
                trial,
                "interrupted: Ctrl-C or SIGTERM during a batch of lookups",
            )
            requeued += again is not None
    raise Interrupted(
        f"interrupted during a batch of {len(claimed)} lookups of {info.name}, recorded as FAIL "
        f"(interrupted, not counted); {requeued} configurations are queued again"
    ) from None


def write_test_scores(
    ctx: WorkerContext, info: StudyInfo, local: LocalStudy, table: Any, repetition: int
) -> None:
    """Cache the best trial's test scores (the unobserved repetitions' values; the test score
    is their mean) in the study attrs the report reads, if they are not there already."""
    from hpstudy.report._test_scores import ATTR, ATTR_BY_TRIAL

    complete = local.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return
    pick = max if info.direction == "maximize" else min
    best = pick(complete, key=lambda t: t.value)  # type: ignore[arg-type,return-value]
    scores = table.test_scores({**ctx.config.fixed_params(), **best.params}, repetition)

    def change(stored: dict[str, Any]) -> dict[str, Any]:
        cached = stored.get(ATTR)
        if isinstance(cached, dict) and cached.get("trial") == best.number:
            return {}  # another worker of the study cached it first
        by_trial = stored.get(ATTR_BY_TRIAL)
        return {
            ATTR: {"trial": best.number, "scores": scores},
            ATTR_BY_TRIAL: {
                **(by_trial if isinstance(by_trial, dict) else {}),
                str(best.number): scores,
            },
        }

    # read and written under the study's lock: workers finishing the study at the same
    # moment take turns, and none loses another's entry
    ctx.writer.update_study_user_attrs(info.study_id, (ATTR, ATTR_BY_TRIAL), change)
