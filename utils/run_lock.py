"""One live process per run folder: a lock file naming its owner, so two runs with the same --name --exist-ok do not
silently overwrite each other's weights and results."""

import os
import socket
from pathlib import Path

from utils.atomic import pid_alive

LOCK_NAME = ".lock"


class RunFolderBusy(ValueError):
    """The run folder belongs to a live process (a ValueError: the CLIs report it as one line)."""


def _owner(lock):
    """(pid, host) recorded in a lock file, or None when there is none or it is unreadable or half written."""
    try:
        pid, host = lock.read_text().split()
        return int(pid), host
    except (OSError, ValueError):
        return None


def _mine(owner):
    return owner == (os.getpid(), socket.gethostname())


def check_free(folder):
    """Raise RunFolderBusy if another live process holds `folder` (nothing is made): a lock whose owner is gone
    (killed, crashed) is free. A lock from another host counts as held, since its owner cannot be checked here."""
    lock = Path(folder) / LOCK_NAME
    owner = _owner(lock)
    if owner and not _mine(owner) and (owner[1] != socket.gethostname() or pid_alive(owner[0])):
        where = "" if owner[1] == socket.gethostname() else f" on {owner[1]} (delete {lock} if it is gone)"
        raise RunFolderBusy(f"run folder {folder} is in use by process {owner[0]}{where}: pick another --name, or "
                            f"drop --exist-ok to get a new folder")


def acquire(folder):
    """Claim `folder` (made if missing) for this process; returns the lock file. Raises RunFolderBusy as check_free
    does; a stale lock is taken over."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / LOCK_NAME
    for _ in range(2):  # a second try after removing a stale lock
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if _mine(_owner(lock)):
                return lock  # this process holds it already (a command run twice from Python)
            check_free(folder)
            lock.unlink(missing_ok=True)  # its owner is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(f"{os.getpid()} {socket.gethostname()}")
        return lock
    raise RunFolderBusy(f"run folder {folder}: another process claimed it at the same moment; run again")


def release(folder):
    """Remove `folder`'s lock if this process holds it."""
    lock = Path(folder) / LOCK_NAME
    if _mine(_owner(lock)):
        lock.unlink(missing_ok=True)
