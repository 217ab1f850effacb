"""What every command-line entry point shares: one-line user errors and YOLOv5's argument echo."""

import inspect
import math
import os
import sys
from pathlib import Path

from utils.checkpoints import CheckpointError
from utils.log import LOGGER, colorstr, is_nested
from utils.paths import ROOT


class UserError(Exception):
    """A problem the user can fix from the command line (bad flag, missing file, no network, ...)."""


class Interrupted(KeyboardInterrupt):
    """A Ctrl-C, with the one line to show for it (where the command stopped, how to go on)."""


# Errors that mean "the input was wrong", reported as one line. Anything else is a bug and keeps its traceback.
USER_ERRORS = (UserError, ValueError, FileNotFoundError, CheckpointError, ConnectionError, PermissionError)


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


def check_at_least(flag, value, minimum):
    """A one-line UserError unless value ≥ minimum (counts such as --batch-size, --workers, --epochs)."""
    if not isinstance(value, int) or value < minimum:
        raise UserError(f"{flag} must be ≥ {minimum}, not {value}")
    return value


def check_img_size(imgsz, stride=32, flag="--imgsz"):
    """YOLOv5's image-size rule: at least `stride` and a multiple of it. A size ≤ 0 is an error; other sizes are
    rounded up with a warning, as YOLOv5's check_img_size does. Takes and returns an int or a list of ints."""
    sizes = [imgsz] if isinstance(imgsz, int) else list(imgsz)
    if not sizes or any(not isinstance(x, int) or x < 1 for x in sizes):
        raise UserError(f"{flag} must be ≥ {stride} pixels and a multiple of {stride}, not {imgsz}")
    new = [max(math.ceil(x / stride), 1) * stride for x in sizes]
    if new != sizes:
        LOGGER.warning(f"WARNING ⚠️ {flag} {imgsz} must be a multiple of {stride} (≥ {stride}), updating to "
                       f"{new[0] if isinstance(imgsz, int) else new}")
    return new[0] if isinstance(imgsz, int) else new


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


def add_target_options(parser, flops_help, sensitivity_help):
    """--target-flops/--target-params/--target-latency and --sensitivity: a budget instead of --rate (models/budget.py)."""
    parser.add_argument("--target-flops", type=float, default=None, help=flops_help)
    parser.add_argument("--target-params", type=float, default=None, help="... of the unpruned parameters")
    parser.add_argument("--target-latency", type=float, default=None,
                        help="... of the unpruned batch-1 latency on --device at --imgsz (measured)")
    parser.add_argument("--sensitivity", type=str, default="", help=sensitivity_help)
