"""Read a delimited text file as a person's spreadsheet export: any common delimiter and
quoting, quoted header names, duplicated names found rather than silently renamed.

pandas' ``read_csv`` assumes commas: a tab-separated file becomes one column whose name is the
whole header line, and every later message about "its columns" misleads. Here the delimiter
and quote character are sniffed from the first lines with :class:`csv.Sniffer` (or given by
the study file's ``sep``/``quotechar``), header names are stripped of spaces and surrounding
quotes, and the header's own names are read with the same dialect, so a name used twice is
seen before pandas renames it ``name.1``.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from hpstudy._errors import ConfigError

# Delimiters the sniffer may choose from: the ones spreadsheets and statistics packages write.
_DELIMITERS = ",\t;|"
_SAMPLE_BYTES = 64 * 1024
_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe", " ": "space"}


@dataclass(frozen=True)
class Table:
    """A file's rows with clean header names, and how it was read.

    Attributes:
        frame: The rows; column names stripped of spaces and quotes (duplicates renamed
            ``name.1`` by pandas; see ``duplicates``).
        sep: The delimiter used.
        quotechar: The quote character used.
        duplicates: Header names used more than once, with their 1-based column positions.
    """

    frame: pd.DataFrame
    sep: str
    quotechar: str
    duplicates: dict[str, list[int]]

    def describe_sep(self) -> str:
        return _NAMES.get(self.sep, repr(self.sep))


def clean_name(name: object) -> str:
    """A header name without surrounding spaces and one pair of matching quotes."""
    text = str(name).strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


def sniff(path: str | Path, sep: str | None, quotechar: str | None) -> tuple[str, str]:
    """The delimiter and quote character of ``path``: the given ones, else sniffed from its
    first 64 KiB (comma and double quote when the sniffer cannot tell)."""
    if sep is not None and quotechar is not None:
        return sep, quotechar
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        sample = f.read(_SAMPLE_BYTES)
    if len(sample) == _SAMPLE_BYTES and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # whole lines only: a cut line misleads it
    found_sep, found_quote = ",", '"'
    try:
        dialect = csv.Sniffer().sniff(sample, delimiters=sep or _DELIMITERS)
        found_sep, found_quote = dialect.delimiter, dialect.quotechar or '"'
    except csv.Error:
        # one column, or a file the sniffer cannot decide: count delimiters in the header
        header = sample.splitlines()[0] if sample else ""
        counts = {d: header.count(d) for d in _DELIMITERS}
        best = max(counts, key=lambda d: counts[d])
        if counts[best] > 0:
            found_sep = best
    return sep or found_sep, quotechar or found_quote


def read_table(
    path: str | Path, sep: str | None = None, quotechar: str | None = None, *, what: str = ""
) -> Table:
    """Read ``path`` (delimiter and quoting sniffed unless given).

    Raises:
        ConfigError: The file cannot be read or parsed; the message names the file, the
            delimiter used and how to set another.
    """
    prefix = f"{what}: " if what else ""
    try:
        used_sep, used_quote = sniff(path, sep, quotechar)
    except OSError as e:
        raise ConfigError(f"{prefix}cannot read {path}: {e.strerror or e}") from e
    try:
        # cells are read as written (a leading space stays): models trained before read them so
        frame = pd.read_csv(path, sep=used_sep, quotechar=used_quote)
    except (OSError, ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        header = _header(path, used_sep, used_quote)
        hint = _delimiter_hint(header[0], used_sep) if len(header) == 1 else ""
        raise ConfigError(
            f"{prefix}cannot read {path} as a table separated by {_NAMES.get(used_sep, repr(used_sep))} "
            f"with {used_quote!r} quotes: {first}"
            + (
                hint
                or '; set sep = "..." (and quotechar) on the task if it uses another delimiter'
            )
        ) from e
    header = _header(path, used_sep, used_quote)
    names = [clean_name(n) for n in header] if len(header) == frame.shape[1] else None
    positions: dict[str, list[int]] = {}
    for i, n in enumerate(names or [clean_name(c) for c in frame.columns]):
        positions.setdefault(n, []).append(i + 1)
    duplicates = {n: p for n, p in positions.items() if len(p) > 1}
    columns = [clean_name(c) for c in frame.columns]
    if names is not None and duplicates:
        # pandas renamed the second 'y' to 'y.1'; keep that so columns stay distinct
        columns = [
            n if len(positions[n]) == 1 else str(c)
            for n, c in zip(names, frame.columns, strict=True)
        ]
    frame.columns = pd.Index(columns)
    return Table(frame, used_sep, used_quote, duplicates)


def _header(path: str | Path, sep: str, quotechar: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            return next(
                csv.reader(f, delimiter=sep, quotechar=quotechar, skipinitialspace=True), []
            )
    except (OSError, csv.Error):
        return []


def one_column_hint(table: Table) -> str:
    """When the header was read as one column that holds another delimiter: say so."""
    if table.frame.shape[1] != 1:
        return ""
    return _delimiter_hint(str(table.frame.columns[0]), table.sep)


def _delimiter_hint(name: str, sep: str) -> str:
    inside = [d for d in _DELIMITERS if d in name and d != sep]
    if not inside:
        return ""
    found = _NAMES.get(inside[0], repr(inside[0]))
    shown = {"\t": "\\t"}.get(inside[0], inside[0])
    return (
        f"; the header was read as ONE column named {name[:60]!r}, which holds {found}s: the file "
        f'is probably {found}-separated; set sep = "{shown}" on the task'
    )
