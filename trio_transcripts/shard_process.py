"""One child of ``run --workers N`` (``supervisor.py``): its settings come whole on stdin,
its snapshots and its account go out as JSON lines on stdout, its log on stderr.

The supervisor makes each child's :class:`~trio_transcripts.config.Config` from its own,
parsed once (``supervisor.child_configs``: the shard, a spool, a state directory and a
metrics port of its own), so nothing is rebuilt from command-line text (where argparse's
abbreviations and ``--flag=value`` spellings made that fragile), and no secret is ever in a
child's command line, which ``ps`` shows to every user of the machine. The pipe carries a
pickle: both ends are this installed package, the child started by the supervisor itself,
and pickle gives the frozen settings back exactly (paths, the shard, the InfluxDB settings).
"""

from __future__ import annotations

import json
import logging
import pickle
import sys
from dataclasses import asdict, dataclass

import trio

from .cli import exit_code, setup_logging
from .config import Config
from .service import run_config
from .worker import Worker

SNAPSHOT = "snapshot "  # then Snapshot.to_json()
ACCOUNT = "account "  # then the run's Account as JSON, once it is over


@dataclass(frozen=True)
class Orders:
    """What a child is sent on stdin."""

    config: Config
    log_format: str = "text"
    debug: bool = False


def main() -> int:
    orders: Orders = pickle.load(sys.stdin.buffer)
    sys.stdin.close()
    setup_logging(orders.log_format, orders.debug)
    # The supervisor makes one status line of every child's snapshots.
    logging.getLogger("trio_transcripts.status").setLevel(logging.WARNING)
    return exit_code(lambda: _run(orders.config), orders.debug)


def _run(config: Config) -> int:
    async def report(worker: Worker) -> None:
        while True:
            await trio.sleep(config.status_interval_s)
            print(SNAPSHOT + worker.snapshot().to_json(), flush=True)

    worker = run_config(config, beside=report)
    print(ACCOUNT + json.dumps(asdict(worker.account)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
