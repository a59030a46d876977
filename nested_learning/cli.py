"""Command line: ``python -m nested_learning <command> ...`` (installed: ``nested-learning <command> ...``).

Each command lives in its own module exposing ``add_arguments(parser)`` and ``run(args) -> int``;
this file only routes. Errors print one line on stderr and exit non-zero, never a traceback.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

# command -> (module, one-line help). Modules are imported only when their command runs.
COMMANDS = {
    "record": ("nested_learning.recording.cli", "run the model on a text and save a per-token recording"),
    "train": ("nested_learning.training.cli", "train a model (byte-level LM + synthetic memory tasks)"),
    "validate": ("nested_learning.validation.cli", "measure the five test-time-learning properties"),
    "dashboard": ("nested_learning.viz.cli", "start the Streamlit dashboard (from a checkout of the repository)"),
}


class CommandError(Exception):
    """A user-facing error: printed as one line, exit code 2."""


def available_commands() -> dict:
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # its package is not there at all
            present = False
        if present:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m nested_learning",
                                     description="Nested Learning / Hope: record, train and validate test-time memory.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in available_commands().items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        importlib.import_module(module).add_arguments(command)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = importlib.import_module(available_commands()[args.command][0])
    try:
        return int(module.run(args) or 0)
    except (CommandError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
