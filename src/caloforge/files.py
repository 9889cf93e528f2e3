"""Writing a file whole or not at all, and advisory locks on outputs.

``atomic_write`` writes beside the target, flushes to disk and renames: a reader, or a run resumed
after a crash, sees the old file or the whole new one. When the disk is full (ENOSPC, EDQUOT,
EFBIG, EIO) the command stops with one line naming the file and what was written, and the old
file is untouched.

``locked`` takes an exclusive ``flock`` on ``PATH.lock`` for as long as a command writes an output
(a simulation's file, a model directory), so that a second command writing the same output by
mistake is refused in one line. The kernel drops the lock when its process ends, however it
ends: a lock left by a killed process is never in the way.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from caloforge.errors import CaloforgeError

__all__ = ["atomic_write", "atomic_write_bytes", "atomic_write_text", "locked", "write_error"]


def write_error(path: str | Path, exc: Exception, done: str = "") -> CaloforgeError:
    """An error while writing ``path`` (``OSError``, or HDF5's with an errno), in one line;
    ``done`` says what was written."""
    what = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
    found = re.search(r"error message = '([^']+)'", str(exc))
    what = found.group(1) if found else what
    return CaloforgeError(f"cannot write {path}: {what}{f'; {done}' if done else ''}")


@contextmanager
def atomic_write(path: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yields a temporary path beside ``path`` for the body to write; then flushes it to disk and
    renames it to ``path``. On any error the temporary file is removed; an ``OSError`` (a full
    disk) becomes one line that says which file and how much of it was written. ``suffix`` ends
    the temporary name, for writers that want their own."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp" + suffix)
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as exc:
        written = tmp.stat().st_size if tmp.exists() else 0
        tmp.unlink(missing_ok=True)
        raise write_error(path, exc, f"{written:,} bytes written, the old file kept") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextmanager
def locked(path: str | Path, what: str = "") -> Iterator[None]:
    """Hold an exclusive lock on ``path`` + ``.lock`` within; refused in one line while another
    process holds it."""
    lock = Path(str(path) + ".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise CaloforgeError(
                f"{what or path} is being written by another process (pid {holder}); wait for "
                "it to end, or write elsewhere"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # its holder removed it as we took it: take the new one
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        lock.unlink(missing_ok=True)
        os.close(fd)
