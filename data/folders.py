"""Generated dataset folders: written whole or not at all, and stamped with the version of their generator."""

import os
import shutil
import tempfile
from pathlib import Path


def write_stamped_folder(root, write, stamp_file, stamp):
    """Run write(tmp) in a temporary sibling of root, add `stamp_file` holding `stamp`, and rename it to root, so an
    interrupted run leaves no partial dataset. If another process created root meanwhile, its copy is kept."""
    root = Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}-", dir=root.parent))
    try:
        write(tmp)
        (tmp / stamp_file).write_text(f"{stamp}\n")
        try:
            os.rename(tmp, root)
        except OSError:
            if not (root / stamp_file).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


def has_stamp(root, stamp_file, version):
    """True when root holds a complete folder whose stamp starts with `version`."""
    f = Path(root) / stamp_file
    return f.is_file() and f.read_text().split()[:1] == [version]
