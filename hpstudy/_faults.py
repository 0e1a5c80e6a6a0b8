"""Named crash points and a start barrier, for tests that kill real processes at exact steps.

Off unless an environment variable asks for it (read once per process; a list lookup per
point otherwise):

- ``HPSTUDY_CRASH_AT=STEP:N[:SIGNAL]``: the N-th time (1-based, counted per process) this
  process reaches crash point ``STEP``, it sends itself ``SIGNAL`` (default ``KILL``; also
  ``INT``, ``TERM``, ``HUP``; ``STOP`` freezes the process there until a test sends
  ``SIGCONT``, as a suspended laptop or a network partition would; ``pgINT`` etc. signal the
  whole process group, as a terminal's Ctrl-C does). ``SIGKILL`` is a real ``kill -9`` at
  that instruction; ``INT``/``TERM``/``HUP`` arrive as they would from a terminal or a
  scheduler. Steps: ``claim`` (a number or a
  WAITING trial is claimed, nothing sampled yet), ``sample`` (the sampler is running),
  ``params`` (parameters sampled, not stored), ``train`` (inside an epoch of a trial),
  ``finish`` (trained, result not stored), ``claim-tx`` (inside the transaction that claims a
  new number, the study row locked), ``finish-tx`` (inside the transaction that stores a
  result, the trial row locked), ``recovery`` (a stale trial is about to be failed
  and re-queued), ``create-study`` (before each study of ``create``), ``queue`` (before each
  grid point or manual configuration is queued).
- ``HPSTUDY_START_BARRIER=DIR:N[:POINT]``: the first time a process reaches ``POINT``
  (``claim``, the default: before a worker's first claim; ``open``: before a storage is opened
  and its schema created; ``plan``: before ``create`` or ``resume`` creates studies and queues
  configurations), it writes a file in ``DIR`` and waits until ``N`` processes have,
  so N processes race at that point at the same moment (where identical proposals, or two
  schema creations, used to collide).
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections import Counter
from pathlib import Path

ENV_CRASH = "HPSTUDY_CRASH_AT"
ENV_BARRIER = "HPSTUDY_START_BARRIER"
STEPS = (
    "claim",
    "sample",
    "params",
    "train",
    "finish",
    "claim-tx",
    "finish-tx",
    "recovery",
    "create-study",
    "queue",
)

_reached: Counter[str] = Counter()
_barrier_passed = False


_crash_spec: list[str | None] = []  # HPSTUDY_CRASH_AT, read at the first crash point


def crash_point(step: str) -> None:
    """Send this process the configured signal if ``step`` is the configured crash point."""
    # Read once: a point runs every epoch, and os.environ.get, cold after an epoch of
    # training, cost ~30 microseconds. Tests set the variable before the process starts.
    if not _crash_spec:
        _crash_spec.append(os.environ.get(ENV_CRASH))
    spec = _crash_spec[0]
    if not spec:
        return
    name, _, rest = spec.partition(":")
    if name != step:
        return
    count, _, sig = rest.partition(":")
    _reached[step] += 1
    if _reached[step] == int(count or 1):
        if sig.startswith("pg"):
            os.killpg(os.getpgid(0), getattr(signal, f"SIG{sig[2:]}"))
        else:
            os.kill(os.getpid(), getattr(signal, f"SIG{sig or 'KILL'}"))


def start_barrier(point: str = "claim") -> None:
    """Wait (once per process) until every process named by ``HPSTUDY_START_BARRIER`` is here."""
    global _barrier_passed
    spec = os.environ.get(ENV_BARRIER)
    if not spec or _barrier_passed:
        return
    folder, n, at = (spec.split(":") + ["claim"])[:3]
    if at != point:
        return
    _barrier_passed = True
    path = Path(folder)
    (path / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
    while len(list(path.iterdir())) < int(n):
        time.sleep(0.01)
