"""Atomic file output: write to a temporary file beside the target, then rename it into place.

A crash or kill mid-write leaves the previous file (or none), never a truncated one.
"""

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path


def _umask():
    mask = os.umask(0)  # the only way to read it is to set it: put it straight back
    os.umask(mask)
    return mask


# Mode of a new file, as open() would give it; mkstemp's own 0600 would make checkpoints private to their writer.
FILE_MODE = 0o666 & ~_umask()


@contextmanager
def atomic_path(path):
    """Yield a temporary path in path's folder; on success it replaces path, on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, FILE_MODE)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def write_text_atomic(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)
