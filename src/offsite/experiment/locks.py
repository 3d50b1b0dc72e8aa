"""Several processes of one machine measuring one experiment directory at once, each taking what no other is doing.

The rule: before a process measures a cell or makes a heavy file (a bundle, a fine-tuning run at one learning
rate, a merged adapter), it takes that thing's lock, an exclusive ``flock`` on a file under ``OUT/.locks``, without
waiting. A lock another live process holds raises :class:`Busy`, and the runner moves on to the next cell and comes
back to this one later (by then, usually, to read the cell's file). The operating system drops the locks of a
process that ends or is killed, so a stopped run leaves none behind. A process may take a lock it holds already (a
cell's lock, then the lock of a run the cell needs). Locks cover one machine's processes: parts on several machines
use ``--part``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path
from typing import Iterator

LOCK_DIR = ".locks"


class Busy(Exception):
    """Another live process holds the lock: it is measuring this cell or making this file now."""


class Locks:
    """The locks of the experiment directory ``out``, and which of them this process holds."""

    def __init__(self, out: Path):
        self.root = out / LOCK_DIR
        self._held: set[str] = set()

    @contextlib.contextmanager
    def hold(self, name: str) -> Iterator[None]:
        """Hold the lock ``name`` while the body runs; :class:`Busy` at once when another process holds it."""
        if name in self._held:
            yield
            return
        self.root.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self.root / f"{re.sub(r'[^A-Za-z0-9._-]+', '_', name)}.lock", os.O_CREAT | os.O_RDWR)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise Busy(name) from None
            self._held.add(name)
            try:
                yield
            finally:
                self._held.discard(name)
                fcntl.flock(descriptor, fcntl.LOCK_UN)
        finally:
            os.close(descriptor)
