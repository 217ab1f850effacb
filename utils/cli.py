"""What every command-line entry point shares: one-line user errors and YOLOv5's argument echo."""

import argparse
import inspect
import math
import os
import sys
from pathlib import Path

from utils.log import LOGGER, colorstr, is_nested
from utils.paths import ROOT


class UserError(Exception):
    """A problem the user can fix from the command line (bad flag, missing file, no network, ...)."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C, with the one line to show for it (where the command stopped, how to go on)."""


# Errors that mean "the input was wrong", reported as one line. Anything else is a bug and keeps its traceback.
USER_ERRORS = (UserError, ValueError, FileNotFoundError, ConnectionError, PermissionError)  # with CheckpointError


def run_cli(main, opt, prog=None):
    """Call main(opt); a user error becomes `<prog>: error: <message>` on stderr and exit status 2, a Ctrl-C
    `<prog>: <what was interrupted>` and exit status 130 (128 + SIGINT, as shells report it).

    Set YOLOV5_DEBUG=1 to get the traceback of user errors and interruptions as well.
    """
    prog = prog or Path(sys.argv[0]).name
    try:
        return main(opt)
    except USER_ERRORS as e:
        if os.getenv("YOLOV5_DEBUG"):
            raise
        print(f"{prog}: error: {one_line(e)}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as e:
        if os.getenv("YOLOV5_DEBUG"):
            raise
        # A Ctrl-C can land inside a constructor (e.g. a progress bar's): that half-built object's destructor then
        # fails when it is collected on the way out. Such errors are noise after an interruption: drop them.
        sys.unraisablehook = lambda unraisable: None
        print(f"{prog}: {one_line(e) if str(e) else 'interrupted'}", file=sys.stderr)
        sys.exit(130)


def one_line(e):
    """An exception's message on one line (or its type name when it has none)."""
    return " ".join(str(e).split()) or type(e).__name__


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """--help with each option's default once: not for options whose help already names it, nor for defaults that
    say nothing (None, '', False), which upstream's parsers print as '(default: None)', '(default: )'."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, "", False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def check_at_least(flag, value, minimum):
    """A one-line UserError unless value ≥ minimum (counts such as --batch-size, --workers, --epochs)."""
    if not isinstance(value, int) or value < minimum:
        raise UserError(f"{flag} must be ≥ {minimum}, not {value}")
    return value


DEFAULT_IMGSZ = 224  # YOLOv5's classifier size, for models whose checkpoint does not say theirs
MAX_IMGSZ = 4096  # far beyond any classifier; larger sizes only fail deep inside OpenCV asking for gigabytes


def check_img_size(imgsz, stride=32, flag="--imgsz"):
    """YOLOv5's image-size rule: at least `stride` and a multiple of it. A size ≤ 0 is an error; other sizes are
    rounded up with a warning, as YOLOv5's check_img_size does. Takes and returns an int or a list of ints."""
    sizes = [imgsz] if isinstance(imgsz, int) else list(imgsz)
    if not sizes or any(not isinstance(x, int) or x < 1 for x in sizes):
        raise UserError(f"{flag} must be ≥ {stride} pixels and a multiple of {stride}, not {imgsz}")
    if max(sizes) > MAX_IMGSZ:
        raise UserError(f"{flag} {imgsz} is above the {MAX_IMGSZ}-pixel limit of MAX_IMGSZ (utils/cli.py)")
    new = [max(math.ceil(x / stride), 1) * stride for x in sizes]
    if new != sizes:
        LOGGER.warning(f"WARNING ⚠️ {flag} {imgsz} must be a multiple of {stride} (≥ {stride}), updating to "
                       f"{new[0] if isinstance(imgsz, int) else new}")
    return new[0] if isinstance(imgsz, int) else new


def model_imgsz(requested, model, flag="--imgsz"):
    """The image size to run `model` at: `requested` (an int or [h, w], checked by check_img_size before the model was
    read; None when --imgsz was not given), else the size its file says it was trained at (one line says so; checked
    here), else DEFAULT_IMGSZ. A requested size that differs from the trained one gets one warning: a classifier run
    at another size than it learnt gives silently worse answers."""
    trained = getattr(model, "trained_imgsz", None)
    if requested is None:
        if trained:
            LOGGER.info(f"{flag} {trained}: the size this model was trained at (read from its file)")
            return check_img_size(trained, flag=flag)
        return DEFAULT_IMGSZ
    if trained and set([requested] if isinstance(requested, int) else requested) != {trained}:
        LOGGER.warning(f"WARNING ⚠️ {flag} {requested} differs from the {trained} px this model was trained at: "
                       f"expect lower accuracy (leave {flag} out to use {trained})")
    return requested


def check_writable(path, flag="--project"):
    """A one-line UserError unless files can be made at `path` (a folder, made later if missing): its nearest
    existing ancestor must be a folder that takes a new file. Probed by making and removing a temporary file, since
    permission bits do not tell for root or for read-only mounts; no folder is made. Returns path."""
    import tempfile

    target = Path(path).absolute()
    for folder in (target, *target.parents):
        if folder.exists():
            break
    if not folder.is_dir():
        raise UserError(f"{flag} {path}: '{folder}' is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"{flag} {path}: cannot write in '{folder}' ({e.strerror or type(e).__name__})") from None
    return path


def print_args(args=None, show_file=True, show_func=False):
    """Log `file: k=v, k=v` for a dict or argparse Namespace (default: the calling function's arguments); nothing
    for a command nested in another, whose own options were already shown."""
    if is_nested():
        return
    frame = inspect.currentframe().f_back
    info = inspect.getframeinfo(frame)
    if args is None:
        names, _, _, values = inspect.getargvalues(frame)
        args = {k: values[k] for k in names}
    elif not isinstance(args, dict):
        args = vars(args)
    try:
        file = Path(info.filename).resolve().relative_to(ROOT).with_suffix("").as_posix()
    except ValueError:
        file = Path(info.filename).stem
    prefix = (f"{file}: " if show_file else "") + (f"{info.function}: " if show_func else "")
    LOGGER.info(colorstr(prefix) + ", ".join(f"{k}={v}" for k, v in args.items()))

