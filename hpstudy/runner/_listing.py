"""What a storage holds: hpstudy's studies with their trial counts and best values."""

from __future__ import annotations

from dataclasses import dataclass

from hpstudy.config._schema import STRATEGIES
from hpstudy.store import StudyCounts, StudyInfo, open_storage
from hpstudy.store._studies import read_studies


@dataclass(frozen=True)
class StudyRow:
    """One line of ``hpstudy list``."""

    info: StudyInfo
    counts: StudyCounts


def list_studies(storage_url: str, experiment: str | None = None) -> tuple[list[StudyRow], int]:
    """The hpstudy studies in the storage (optionally of one experiment).

    Returns:
        The rows, ordered by experiment, task, seed and strategy, and how many other
        (non-hpstudy) studies the storage holds.
    """
    storage = open_storage(storage_url, create=False)
    rows = []
    infos, others = read_studies(storage)
    for info in infos:
        if experiment is not None and info.experiment != experiment:
            continue
        trials = storage.get_all_trials(info.study_id, deepcopy=False)
        rows.append(StudyRow(info, StudyCounts.of(trials, info.objective_direction)))
    order = {s: i for i, s in enumerate(STRATEGIES)}
    rows.sort(
        key=lambda r: (r.info.experiment, r.info.task, r.info.seed, order.get(r.info.strategy, 99))
    )
    return rows, others
