"""``nested-learning dashboard``: start the Streamlit dashboard from a checkout of the repository.

The dashboard's pages (app.py, app_pages/) and the shipped checkpoint (assets/) live in the repository,
not in the installed package: from an installed wheel alone this command says where to get them.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from ..cli import CommandError

CHECKOUT = Path(__file__).resolve().parents[2]  # the repository root, when running from a checkout


def add_arguments(parser: argparse.ArgumentParser):
    parser.add_argument("--port", type=int, default=8501, help="port to serve on (default %(default)s)")
    parser.add_argument("--address", default="localhost", help="address to listen on (default %(default)s)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")


def run(args: argparse.Namespace) -> int:
    app = CHECKOUT / "app.py"
    if not (app.is_file() and (CHECKOUT / "app_pages").is_dir()):
        raise CommandError("the dashboard runs from a checkout of the repository (app.py, app_pages/, assets/): "
                           "clone it, then run `nested-learning dashboard` or `streamlit run app.py` there")
    if not 1 <= args.port <= 65535:
        raise CommandError(f"--port must be in [1, 65535], got {args.port}")
    command = [sys.executable, "-m", "streamlit", "run", str(app), "--server.port", str(args.port),
               "--server.address", args.address]
    if args.dry_run:
        print(" ".join(command))
        return 0
    return subprocess.call(command, cwd=CHECKOUT)
