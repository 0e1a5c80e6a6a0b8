"""Torch's thread count for work done outside the trial workers (test-score retraining,
``train-best``).

Trials run with ``training.torch_threads`` (default 1) torch threads per process: two threads
never helped these small networks, and two processes with two threads each were ~11x slower
than with one (oversubscription). Retraining in the main process used torch's default (one
thread per core), which on a loaded machine made a report take longer than the search
(``benchmarks/bench_retrain_threads.py`` measures it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` torch threads, then restore the previous count."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
