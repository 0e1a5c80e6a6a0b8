"""Find an experiment's studies in a storage, and the study file stored with them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from optuna.storages import BaseStorage

from hpstudy._errors import ConfigError, UsageError
from hpstudy._redact import redact_url
from hpstudy.store._studies import StudyInfo, read_studies

if TYPE_CHECKING:
    from hpstudy.config import ExperimentConfig


def experiment_studies(storage: BaseStorage, experiment: str) -> list[StudyInfo]:
    """The hpstudy studies of ``experiment`` in ``storage``."""
    infos, _ = read_studies(storage)
    return [i for i in infos if i.experiment == experiment]


def require_experiment(storage: BaseStorage, experiment: str, storage_url: str) -> list[StudyInfo]:
    """The studies of ``experiment``; :class:`UsageError` when there are none."""
    infos = experiment_studies(storage, experiment)
    if not infos:
        raise UsageError(
            f"experiment '{experiment}' not found in {redact_url(storage_url)}; run 'hpstudy list --storage {redact_url(storage_url)}'"
        )
    return infos


def stored_config(info: StudyInfo, storage_url: str) -> ExperimentConfig:
    """The study file stored with a study, parsed again (as ``resume NAME`` runs it)."""
    from hpstudy.config import parse_config  # pydantic: only commands that read the file

    base = Path(info.study_file_path).parent if info.study_file_path else Path.cwd()
    try:
        return parse_config(
            info.study_file,
            source=f"{info.study_file_path or info.experiment} (as stored)",
            base_dir=base,
        )
    except ConfigError as e:
        raise ConfigError(
            f"the study file stored with experiment '{info.experiment}' in {redact_url(storage_url)} no longer loads "
            f"({e}); resume from the file instead: hpstudy resume path/to/file.toml"
        ) from e
