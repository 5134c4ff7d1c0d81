"""Files a user names (the config, secret files, saved incidents): regular files only, bounded.

Opening a FIFO for reading waits for a writer, forever; a device such as
/dev/zero never ends. Both are refused before a byte is read, with what the
file is, so a mistyped path is one line of error rather than a hung process.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from automations.errors import FileTooLarge, RefusedFile

_KINDS = (
    (stat.S_ISDIR, "a directory, not a file"),
    (stat.S_ISFIFO, "a named pipe (FIFO), not a regular file"),
    (stat.S_ISCHR, "a character device, not a regular file"),
    (stat.S_ISBLK, "a block device, not a regular file"),
    (stat.S_ISSOCK, "a socket, not a regular file"),
)


def read_regular_file(path: Path, *, limit: int | None = None) -> bytes:
    """The bytes of ``path``, a regular file of at most ``limit`` bytes.

    RefusedFile for anything else; OSError (FileNotFoundError...) as ``open`` raises it.
    """
    try:
        # O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except ValueError:
        raise RefusedFile("contains a NUL character, which no path can") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise RefusedFile(f"is {_kind(mode)}")
        with open(fd, "rb", closefd=False) as file:
            data = file.read() if limit is None else file.read(limit + 1)
    finally:
        os.close(fd)
    if limit is not None and len(data) > limit:
        raise FileTooLarge(f"is larger than {_size(limit)}")
    return data


def _kind(mode: int) -> str:
    return next((kind for test, kind in _KINDS if test(mode)), "not a regular file")


def _size(count: int) -> str:
    return f"{count // 1024} KiB" if count % 1024 == 0 else f"{count} bytes"
