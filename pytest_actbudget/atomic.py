"""Writing a file so that nobody ever reads half of it."""

from __future__ import annotations

import os
from contextlib import suppress
from pathlib import Path


def write_atomic(path: str | Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8, line endings as given) so that a reader, or
    a process killed half way, sees the old file or the new one, never a mix.

    Temp file in the same folder, flushed and fsynced, the original's permission bits
    copied, then ``os.replace``. A symlink is followed: its target is replaced.
    """
    target = Path(os.path.realpath(path))
    data = text.encode("utf-8")
    try:
        mode: int | None = target.stat().st_mode & 0o7777
    except FileNotFoundError:
        mode = None
    temp = target.with_name(f".{target.name}.{os.urandom(4).hex()}.tmp")
    # 0o666 and the umask, as a plain open() would create the file.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if mode is not None:
            os.chmod(temp, mode)
        os.replace(temp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_folder(target.parent)


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable where the OS allows it (not on Windows)."""
    with suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
