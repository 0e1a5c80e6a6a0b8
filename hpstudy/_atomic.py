"""Write a file whole or not at all, under a temporary name no one else can have chosen.

A fixed temporary name (``.model.json.tmp``) in an output folder can be a symlink planted by
someone else, which ``open`` would follow, and two processes writing the same target would
share it. Here the temporary file is created by :func:`tempfile.mkstemp` (``O_CREAT |
O_EXCL``: a unique random name, and never an existing file or a symlink) beside the target,
written through that descriptor, flushed, and renamed over the target with
:func:`os.replace` (which replaces a symlink at the target rather than following it).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


@contextmanager
def atomic_file(path: str | Path) -> Iterator[IO[bytes]]:
    """A binary file to write ``path``'s new content to; moved into place when the block ends
    without an error, removed otherwise (the old ``path`` is untouched)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; these are ordinary output files
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (see :func:`atomic_file`)."""
    with atomic_file(path) as f:
        f.write(data)
