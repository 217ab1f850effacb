"""Project logger and terminal colouring, shared by every module and CLI."""

import logging
import os
import sys
from contextlib import contextmanager

LOGGING_NAME = "yolov5-prune"


def _make_logger(name=LOGGING_NAME):
    rank = int(os.getenv("RANK", -1))
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    # Only the main process speaks in DDP runs; other ranks keep warnings and errors.
    logger.setLevel(logging.INFO if rank in {-1, 0} else logging.WARNING)
    logger.propagate = False
    return logger


LOGGER = _make_logger()

_COLOURS = {
    "black": "\033[30m", "red": "\033[31m", "green": "\033[32m", "yellow": "\033[33m",
    "blue": "\033[34m", "magenta": "\033[35m", "cyan": "\033[36m", "white": "\033[37m",
    "bold": "\033[1m", "underline": "\033[4m", "end": "\033[0m",
}


def colour_enabled():
    """ANSI colours only where a person sees them: the log stream (stderr) is a terminal and NO_COLOR is unset
    (https://no-color.org); a log redirected to a file gets plain text."""
    return not os.getenv("NO_COLOR") and is_terminal()


def is_terminal():
    """Whether the log stream (stderr) is a terminal, not a file or a pipe."""
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


def colorstr(*args):
    """colorstr('blue', 'bold', 'text') → coloured text; with one argument it is blue+bold (as YOLOv5)."""
    *styles, text = args if len(args) > 1 else ("blue", "bold", args[0])
    if not colour_enabled():
        return f"{text}"
    return "".join(_COLOURS[s] for s in styles) + f"{text}" + _COLOURS["end"]


_nesting = []  # one entry per command running inside another (classify/prune.py's train and rank steps)


@contextmanager
def nested():
    """Run a command inside another quietly: no option dump or next-step hints of its own."""
    _nesting.append(True)
    try:
        yield
    finally:
        _nesting.pop()


def is_nested():
    return bool(_nesting)


def progress_bar(iterable=None, *args, **kwargs):
    """tqdm on a terminal; off (disabled, its `desc` still kept) when the log goes to a file or a pipe, where each
    redraw is a carriage-return update that bloats the log: callers log the lines that matter (train.py: one per
    epoch)."""
    from tqdm import tqdm

    kwargs["disable"] = kwargs.get("disable", False) or not is_terminal()
    return tqdm(iterable, *args, **kwargs)
