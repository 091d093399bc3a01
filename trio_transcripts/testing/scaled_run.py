"""``python -m trio_transcripts.testing.scaled_run [KNOBS] RUN-ARGS...``: ``run`` with the
platform's timings scaled down, for tests that run the worker as a process.

The platform's session keepalive (five minutes, ``liveness.py``) and the backfill's first
wait for a post-call transcript (30 s) are the platform's, not settings a user tunes, so
``run`` has no flags for them; a test that must see a silent call let go, or a transcript
fetched, within seconds gives them here: ``--session-keepalive S``, ``--silence-margin S``,
``--backfill-retry S``. Everything else is ``run``'s own command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from collections.abc import Sequence

from ..cli import build_parser, exit_code, setup_logging
from ..errors import ConfigError
from ..service import config_of, run_config

KNOBS = {
    "--session-keepalive": "keepalive_s",
    "--silence-margin": "silence_margin_s",
    "--backfill-retry": "backfill_retry_s",
}


def main(argv: Sequence[str] | None = None) -> int:
    knobs = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for flag, field in KNOBS.items():
        knobs.add_argument(flag, dest=field, type=float)
    scaled, rest = knobs.parse_known_args(sys.argv[1:] if argv is None else argv)
    args = build_parser("run").parse_args(["run", *rest])
    setup_logging(args.log_format, args.debug)
    changes = {field: value for field, value in vars(scaled).items() if value is not None}

    def run() -> int:
        if args.workers != 1:
            raise ConfigError(["scaled_run runs one worker: drop --workers"])
        run_config(dataclasses.replace(config_of(args), **changes))
        return 0

    return exit_code(run, args.debug)


if __name__ == "__main__":
    sys.exit(main())
