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


def pid_alive(pid):
    """Whether process `pid` runs on this machine (signal 0 probes without signalling)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def remove_stale_temps(path):
    """Delete the temporary files of earlier writes of `path` whose writer is gone (killed mid-write: SIGKILL, power
    loss). Temp names carry the writer's PID, so a live writer's file is left alone."""
    for tmp in Path(path).parent.glob(f".{path.name}.*.tmp"):
        pid = tmp.name[len(path.name) + 2:].split(".", 1)[0]
        if not (pid.isdigit() and pid_alive(int(pid))):  # no PID: written before temps carried one
            tmp.unlink(missing_ok=True)


@contextmanager
def atomic_path(path):
    """Yield a temporary path in path's folder; on success it replaces path, on any error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temps(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent)
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
