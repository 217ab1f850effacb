"""Options shared by several commands are declared once (utils/options.py): every parser is built and each flag that
appears in more than one must have the same declaration everywhere, but for what utils/options.PER_COMMAND lets a
command set (and why), or be listed in COMMAND_SPECIFIC as a different option spelled alike."""

import argparse

import pytest

import export
from classify import predict, prune, rank, sensitivity, train, val
from utils.cli import DEFAULT_IMGSZ
from utils.options import BATCH_SIZES, COMMAND_SPECIFIC, PER_COMMAND


COMMANDS = {"train": train, "val": val, "predict": predict, "export": export, "rank": rank, "prune": prune,
            "sensitivity": sensitivity}
FIELDS = ("option_strings", "dest", "nargs", "const", "type", "choices", "default", "help")


class Built(Exception):
    """Raised instead of parsing: carries the parser a parse_opt() built."""


def stop(parser, *args, **kwargs):
    raise Built(parser)


def declarations(commands):
    """{flag: {command: argparse action}} of every option of every command's parser (keyed by its first flag)."""
    found = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(argparse.ArgumentParser, "parse_known_args", stop)
        for name, module in commands.items():
            with pytest.raises(Built) as e:
                module.parse_opt()
            for action in e.value.args[0]._actions:
                if not isinstance(action, argparse._HelpAction):
                    found.setdefault(action.option_strings[0], {})[name] = action
    return found


def mismatches(found):
    """One line per shared flag whose declarations differ in a field PER_COMMAND does not free."""
    lines = []
    for flag, by_command in found.items():
        if len(by_command) < 2 or flag in COMMAND_SPECIFIC:
            continue
        free = PER_COMMAND.get(flag, (set(),))[0]
        for field in (f for f in FIELDS if f not in free):
            values = {name: getattr(action, field) for name, action in by_command.items()}
            if len({repr(v) for v in values.values()}) > 1:
                lines.append(f"{flag} {field}: {values} (declare it once in utils/options.py)")
        kinds = {name: type(action).__name__ for name, action in by_command.items()}
        if len(set(kinds.values())) > 1:
            lines.append(f"{flag} action: {kinds} (declare it once in utils/options.py)")
    return lines


@pytest.fixture(scope="module")
def found():
    return declarations(COMMANDS)


def test_shared_options_have_one_declaration(found):
    assert mismatches(found) == []
    shared = {flag for flag, by_command in found.items() if len(by_command) > 1}
    assert {"--imgsz", "--batch-size", "--device", "--workers", "--project", "--weights", "--data"} <= shared
    assert not set(PER_COMMAND) - set(found) and not set(COMMAND_SPECIFIC) - shared  # no stale entries


def test_a_second_different_declaration_is_caught(found):
    class Rogue:  # a new command declaring --imgsz and --device its own way
        @staticmethod
        def parse_opt():
            parser = argparse.ArgumentParser()
            parser.add_argument("--imgsz", "--img", type=int, default=DEFAULT_IMGSZ, help="image size")
            parser.add_argument("--device", default="", help="cuda device")
            return parser.parse_args()

    found = declarations({**COMMANDS, "rogue": Rogue})
    lines = mismatches(found)
    assert any(line.startswith("--imgsz option_strings") for line in lines)
    assert any(line.startswith("--imgsz default") for line in lines)
    assert any(line.startswith("--device help") for line in lines)


def test_defaults_a_command_sets_are_the_named_ones(found):
    assert {name: (a.default, a.help) for name, a in found["--batch-size"].items()} == BATCH_SIZES
    assert all(a.default is None for a in found["--imgsz"].values())  # each command resolves it
    assert train.parse_opt(argv=[]).imgsz == DEFAULT_IMGSZ  # train's own size, as before --imgsz was shared
    assert train.parse_opt(argv=["--img", "64"]).imgsz == 64
    assert predict.parse_opt(["--img-size", "64"]).imgsz == [64, 64]  # YOLOv5's h w, expanded
    assert export.parse_opt(["--imgsz", "64", "96"]).imgsz == [64, 96]
