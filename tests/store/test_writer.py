"""Trial writes under concurrency, and worker identity."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.study import StudyDirection
from optuna.trial import TrialState

from hpstudy.store import TrialReader, TrialWriter, counts_toward_budget, open_storage
from hpstudy.store._identity import WorkerId, process_gone, this_worker, worker_id

DISTS = {"lr": FloatDistribution(1e-4, 1.0, log=True), "n_units": IntDistribution(8, 64)}


def test_a_worker_whose_trial_was_taken_cannot_record_its_result(tmp_path: Path) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    mine, other = TrialWriter(storage), TrialWriter(storage)
    other.worker = "elsewhere:1:boot:1:1"
    added = mine.add_trial(
        study_id, TrialState.RUNNING, {"lr": 0.01, "n_units": 16}, DISTS, budget=2
    )
    assert added is not None
    (trial,) = TrialReader(storage).fetch(study_id, None)
    assert other.fail_and_requeue(study_id, added[0], trial, "stale: no heartbeat") == 1
    assert not mine.finish(added[0], TrialState.COMPLETE, 0.9, user_attrs={"epochs": 3})
    taken, copy = storage.get_all_trials(study_id)
    assert (taken.state, taken.value, copy.state) == (TrialState.FAIL, None, TrialState.WAITING)
    assert "epochs" not in taken.user_attrs and not counts_toward_budget(taken)
    assert copy.params == trial.params and copy.user_attrs["crashes"] == 1


def test_a_parameterless_stale_trial_is_failed_never_requeued_never_counted(
    tmp_path: Path,
) -> None:
    storage = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    writer = TrialWriter(storage)
    added = writer.add_trial(study_id, TrialState.RUNNING, {}, {}, budget=1)
    assert added is not None
    (trial,) = TrialReader(storage).fetch(study_id, None)
    assert writer.fail_and_requeue(study_id, added[0], trial, "stale: worker x is gone") is None
    (failed,) = storage.get_all_trials(study_id)
    assert failed.state == TrialState.FAIL and not counts_toward_budget(failed)
    assert "before its parameters were stored" in failed.user_attrs["fail_reason"]
    # the budget of 1 is free again: a new number can be claimed
    assert writer.add_trial(study_id, TrialState.RUNNING, {}, {}, budget=1) is not None


def test_worker_identity_trusts_a_missing_pid_only_in_its_own_namespace_and_boot() -> None:
    me = this_worker()
    assert WorkerId.parse(worker_id()) == me
    assert not process_gone(worker_id())  # alive
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    gone = dataclasses.replace(me, pid=int(dead.stdout))
    assert process_gone(str(gone))
    assert not process_gone(str(dataclasses.replace(gone, pidns="1")))  # another container
    assert not process_gone(str(dataclasses.replace(gone, boot="other-boot")))
    assert not process_gone(str(dataclasses.replace(gone, host="elsewhere")))
    assert process_gone(str(dataclasses.replace(me, start="1")))  # my pid, reused
    assert not process_gone(f"{me.host}:{dead.stdout.strip()}")  # old ids: heartbeat decides


def test_sample_indexes_are_the_smallest_free_ones_and_a_parameterless_failure_frees_its_own(
    tmp_path: Path,
) -> None:
    """A trial holds its sample index unless it failed before its parameters were stored;
    a sampled trial stored before sample indexes existed holds its number; a re-run holds
    none (it repeats its original's parameters); the budget still bounds every claim."""
    storage = open_storage(f"sqlite:///{tmp_path / 'db.sqlite'}")
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], "s")
    writer = TrialWriter(storage)
    # number 0: an old-style sampled trial (no sample_index): holds index 0
    legacy = writer.add_trial(study_id, TrialState.RUNNING, {"lr": 0.01, "n_units": 8}, DISTS)
    assert legacy is not None and writer.finish(legacy[0], TrialState.COMPLETE, 0.5)
    first = writer.claim_number(study_id, budget=10)
    assert first is not None and first[1:] == (1, 1)  # (number, index)
    second = writer.claim_number(study_id, budget=10)
    assert second is not None and second[1:] == (2, 2)
    writer.set_params(second[0], {"lr": 0.02, "n_units": 9}, DISTS)
    # the first dies before storing parameters: failed, its index free again
    reader = TrialReader(storage)
    (dead,) = reader.fetch(study_id, {first[0]})
    assert writer.fail_and_requeue(study_id, first[0], dead, "stale: gone") is None
    # the second dies after: failed and re-queued (the copy holds no index)
    (crashed,) = reader.fetch(study_id, {second[0]})
    assert writer.fail_and_requeue(study_id, second[0], crashed, "stale: gone") == 3
    again = writer.claim_number(study_id, budget=10)
    assert again is not None and again[1:] == (4, 1)  # the dead claim's index, a new number
    after = writer.claim_number(study_id, budget=10)
    assert after is not None and after[1:] == (5, 3)
    # budget 4: the legacy trial, the re-run, and the two running ones take it all
    assert writer.claim_number(study_id, budget=4) is None


def _held_index_rule(trials: list) -> tuple[int, set[int]]:
    """The documented rule, on trials read back in full: a trial holds its sample_index;
    stored before indexes existed and sampled (parameters, not a re-run), its number; a
    trial failed before its parameters were stored holds nothing."""
    held = set()
    for t in trials:
        if t.state == TrialState.FAIL and not t.params:
            continue
        if "sample_index" in t.user_attrs:
            held.add(int(t.user_attrs["sample_index"]))
        elif t.params and "retry_of" not in t.user_attrs:
            held.add(t.number)
    return next(i for i in range(len(held) + 1) if i not in held), held


def _random_index_history(url: str, seed: int) -> None:
    """Random claims, parameters, crashes before and after parameters, re-runs, finishes
    and legacy trials; before every claim the index the claim takes is the rule's."""
    import random

    from hpstudy.store import _rows

    rng = random.Random(seed)
    storage = open_storage(url)
    study_id = storage.create_new_study([StudyDirection.MAXIMIZE], f"s{seed}")
    writer, reader = TrialWriter(storage), TrialReader(storage)
    gaps = 0
    for _ in range(40):
        trials = reader.fetch(study_id, None)
        expected, held = _held_index_rule(trials)
        with writer.engine.begin() as conn:
            assert _rows.free_sample_index(conn, study_id) == expected
        running = [t for t in trials if t.state == TrialState.RUNNING]
        bare = [t for t in running if not t.params]
        waiting = [t for t in trials if t.state == TrialState.WAITING]
        params = {"lr": rng.uniform(1e-4, 1.0), "n_units": rng.randint(8, 64)}
        action = rng.random()
        if action < 0.35 or not running:
            claimed = writer.claim_number(study_id, budget=10_000)
            assert claimed is not None and claimed[2] == expected
            gaps += expected < max(held, default=-1)  # a gap below the highest held index
        elif action < 0.55 and bare:
            writer.set_params(rng.choice(bare)._trial_id, params, DISTS)
        elif action < 0.7:
            victim = rng.choice(running)
            writer.fail_and_requeue(study_id, victim._trial_id, victim, "stale: gone")
        elif action < 0.8 and waiting:
            writer.claim(rng.choice(waiting)._trial_id)
        elif action < 0.9:
            done = [t for t in running if t.params]
            if done:
                writer.finish(rng.choice(done)._trial_id, TrialState.COMPLETE, rng.random())
        else:  # a sampled trial stored by an hpstudy without sample indexes
            legacy = writer.add_trial(study_id, TrialState.RUNNING, params, DISTS)
            assert legacy is not None
            writer.finish(legacy[0], TrialState.PRUNED, rng.random())
    assert gaps > 0  # some claims filled the index of a trial that died without parameters


def test_the_free_sample_index_follows_the_rule_on_random_histories(tmp_path: Path) -> None:
    """The index comes from one aggregate row when the held indexes have no gap, and from
    all of them when they do; both paths give the rule's answer."""
    for seed in range(6):
        _random_index_history(f"sqlite:///{tmp_path / f'{seed}.db'}", seed)


def test_the_free_sample_index_follows_the_rule_on_postgresql(postgres_url: str) -> None:
    for seed in range(3):
        _random_index_history(postgres_url, seed)


_REPLACE_ATTRS = """
import sys
from hpstudy._faults import start_barrier
from hpstudy.store import TrialWriter, open_storage

url, study_id, who = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
writer = TrialWriter(open_storage(url))
start_barrier()
for k in range(20):
    writer.set_study_user_attrs(study_id, {"test_scores": [who, k], "test_scores_by_trial": {"w": who}})
    writer.update_study_user_attrs(
        study_id, ("merged",), lambda stored: {"merged": {**stored.get("merged", {}), f"{who}.{k}": k}}
    )
"""


def test_workers_replacing_the_same_study_attrs_at_once_take_turns(
    tmp_path: Path, postgres_url: str
) -> None:
    """Six processes lined up at a start barrier replace the same study attrs and merge into
    one: none fails (before, the second insert of a key violated the first one's on
    PostgreSQL: two workers caching a lookup study's test scores at once), none's merge is lost."""
    import optuna

    storage = open_storage(postgres_url)
    study_id = optuna.create_study(storage=storage, study_name="s")._study_id
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    n = 6
    env = {**os.environ, "HPSTUDY_START_BARRIER": f"{barrier}:{n}"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _REPLACE_ATTRS, postgres_url, str(study_id), str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(n)
    ]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * n, outs
    attrs = storage.get_study_user_attrs(study_id)
    assert attrs["test_scores"][1] == 19 and attrs["test_scores_by_trial"] == {
        "w": attrs["test_scores"][0]
    }
    assert attrs["merged"] == {f"{w}.{k}": k for w in range(n) for k in range(20)}


_FREEZE_AFTER_MANY = """
import os, signal, sys
import optuna
from hpstudy.store import TrialWriter, open_storage
from hpstudy.store._optuna import rdb_backend
from hpstudy.store import _rows as r

url, how = sys.argv[1], sys.argv[2]
storage = open_storage(url)
study_id = optuna.create_study(storage=storage, study_name="s")._study_id
writer = TrialWriter(storage)
trial_id, _, _ = writer.claim_number(study_id, 10)
engine = rdb_backend(storage).engine
with engine.begin() as conn:
    r.lock_study(conn, study_id)  # what every other worker's claim waits for
    if how == "insert-many":  # as a claim's attrs, a trial's epochs, its parameters
        r.insert_intermediate(conn, trial_id, {1: 0.5, 2: 0.4, 3: 0.3})
    else:  # an executemany that is not an INSERT
        conn.execute(r.SET_NUMBER, [{"b_trial": trial_id, "b_number": 0}] * 2)
    print(conn.connection.dbapi_connection.info.backend_pid, flush=True)
    os.kill(os.getpid(), signal.SIGSTOP)  # frozen inside the transaction, the study row locked
"""


@pytest.mark.parametrize("how", ["insert-many", "update-many"])
def test_a_session_frozen_right_after_an_executemany_is_ended_by_the_idle_limit(
    postgres_url: str, how: str
) -> None:
    """psycopg sends executemany in pipeline mode, after which PostgreSQL does not arm
    idle_in_transaction_session_timeout: a worker frozen right there held the study row for
    ever (the CI failure of the frozen-worker test at claim-tx:2, reproduced by hand). The
    server must end the frozen session within the limit."""
    import sqlalchemy

    env = {**os.environ, "HPSTUDY_PG_IDLE_IN_TRANSACTION_TIMEOUT": "2"}
    proc = subprocess.Popen(
        [sys.executable, "-c", _FREEZE_AFTER_MANY, postgres_url, how],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line.strip().isdigit(), proc.stderr.read() if proc.stderr else ""
        backend = int(line)
        engine = sqlalchemy.create_engine(
            postgres_url.replace("postgresql://", "postgresql+psycopg://")
        )
        deadline = time.monotonic() + 60  # the limit is 2 s; a loaded machine gets 30x that
        alive = True
        while alive and time.monotonic() < deadline:
            time.sleep(0.5)
            with engine.connect() as conn:
                alive = bool(
                    conn.execute(
                        sqlalchemy.text("SELECT count(*) FROM pg_stat_activity WHERE pid = :p"),
                        {"p": backend},
                    ).scalar_one()
                )
        engine.dispose()
        assert not alive, f"the frozen session ({how}) still holds its transaction after 60 s"
    finally:
        proc.kill()
        proc.wait()
