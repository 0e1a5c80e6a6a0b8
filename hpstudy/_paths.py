"""Default output paths built from names read from storage, kept inside their folder."""

from __future__ import annotations

from pathlib import Path

from hpstudy._errors import UsageError
from hpstudy.config._schema import is_valid_name


def default_output(directory: str, names: tuple[str, ...], suffix: str = "") -> Path:
    """``directory/NAME1-NAME2<suffix>``, refusing any name that could leave ``directory``.

    The names (experiment, task) come from storage, which anyone with write access to the
    database can edit; they are checked as strictly as names in a study file, and the
    resolved path must still lie directly in ``directory``.

    Raises:
        UsageError: A name is not a plain name, or the path would lie outside ``directory``.
    """
    for name in names:
        if not is_valid_name(name):
            raise UsageError(
                f"name {name!r} is not a name of letters, digits, '-' and '_'; refusing to "
                f"build a file name in {directory}/ from it (pass --output)"
            )
    path = Path(directory) / ("-".join(names) + suffix)
    if path.resolve().parent != Path(directory).resolve():
        raise UsageError(f"{path} would lie outside {directory}/; pass --output")
    return path
