"""``python -m trio_transcripts``: parse the command line and dispatch; nothing else.

Each command lives in its own module, imported only when that command runs, so ``run``
loads nothing of the simulator, the bench or the influxd launcher. Exit codes: 0 clean, 1 a
fatal configuration, authentication, source or sink error (one line: what, where, what to
do; ``--debug`` adds the traceback), 2 a usage error, 74 (``errors.EXIT_NOT_KEPT``) records
that no file took (a disk still full at shutdown: the line says how many of each kind).
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import sys
from collections.abc import Callable, Sequence

from . import __version__
from .errors import EXIT_NOT_KEPT, ConfigError, DataNotKept, FatalError, first_fatal

log = logging.getLogger("trio_transcripts")

COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("trio_transcripts.service", "the main job: Genesys -> InfluxDB (or a file)"),
    "demo": ("trio_transcripts.demo", "the built-in simulator into InfluxDB or a file"),
    "simulate": ("trio_transcripts.testing.simulator.command", "serve the Genesys simulator"),
    "show": ("trio_transcripts.show", "print a stored call as a transcript, or list calls"),
    "backfill": (
        "trio_transcripts.backfill_cmd",
        "store calls (or a queue's calls in a window) from their post-call transcripts",
    ),
    "bench": ("trio_transcripts.bench", "measure throughput, latency and footprint"),
}
"""Command -> (module with ``add_arguments(parser)`` and ``main(args) -> int``, help)."""


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


class _TextFormatter(logging.Formatter):
    """One record, one line: control characters in a message (a server's words, a frame's
    excerpt) are escaped as Python writes them (``\\n``, ``\\x1b``), so no input can forge
    a log line or drive a terminal. A traceback after the message keeps its lines."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        if _CONTROLS.search(record.message):
            record.message = _CONTROLS.sub(lambda m: repr(m.group())[1:-1], record.message)
        return super().formatMessage(record)


def setup_logging(fmt: str, debug: bool, quiet: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())  # JSON escapes control characters itself
    else:
        handler.setFormatter(
            _TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if debug else logging.WARNING if quiet else logging.INFO)
    for noisy in ("httpx", "httpcore", "trio-websocket", "trio_websocket"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; only ``command``'s module is imported to add its arguments."""
    parser = argparse.ArgumentParser(
        prog="python -m trio_transcripts",
        description="Persist real-time Genesys Cloud call transcripts into InfluxDB.",
        allow_abbrev=False,
    )
    parser.add_argument("--version", action="version", version=f"trio_transcripts {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        # No abbreviations: a flag added later would make an abbreviation that scripts and
        # unit files use ambiguous, and one command's spelling would not be another's.
        sub = commands.add_parser(name, help=help_text, description=help_text, allow_abbrev=False)
        if name == command:
            sub.add_argument("--log-format", choices=["text", "json"], default="text")
            sub.add_argument("--debug", action="store_true", help="debug logs and tracebacks")
            importlib.import_module(module).add_arguments(sub)
    return parser


def _fatal(exc: BaseException, debug: bool) -> int:
    if debug:
        log.exception("fatal error", exc_info=exc)
    print(f"trio_transcripts: error: {exc}", file=sys.stderr)
    return EXIT_NOT_KEPT if isinstance(exc, DataNotKept) else 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command if command in COMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    setup_logging(args.log_format, args.debug, quiet=args.command == "demo")
    module = importlib.import_module(COMMANDS[args.command][0])
    return exit_code(lambda: module.main(args), args.debug)


def exit_code(command: Callable[[], int], debug: bool) -> int:
    """Run ``command``; a fatal error becomes exit code 1 (74 for data not kept) and one
    line (see the module)."""
    try:
        code = command()
    except ConfigError as exc:
        print("trio_transcripts: configuration problems:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    except FatalError as exc:
        return _fatal(exc, debug)
    except BaseExceptionGroup as group:  # a nursery on the way wrapped the fatal error
        fatal = first_fatal(group)
        if fatal is None:
            raise
        return _fatal(fatal, debug)
    return code
