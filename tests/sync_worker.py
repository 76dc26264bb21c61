"""A sync run in its own process, for the tests that kill it or run several at once:
``python -m tests.sync_worker A_DIR B_DIR STATE_URL LOG [CONCURRENCY [TABLE_PREFIX [PAUSE]]]``.
Each finished transfer is appended to LOG as it happens, then the worker pauses PAUSE seconds
(so that processes started together all get a share however fast the machine is)."""

from __future__ import annotations

import sys
import time

from persisty_blobs.stores.directory import DirectoryStore
from persisty_blobs.sync import ProgressEvent, Replicator, SyncState


def main(
    a_dir: str,
    b_dir: str,
    state_url: str,
    log_path: str,
    concurrency: str = "4",
    table_prefix: str = "pbsync",
    pause: str = "0",
) -> None:
    with open(log_path, "a", encoding="utf-8", buffering=1) as log:

        def record(event: ProgressEvent) -> None:
            if event.kind == "done" and event.action is not None:
                log.write(f"{event.action.value} {event.namespace}/{event.key}\n")
                time.sleep(float(pause))

        state = SyncState(state_url, table_prefix=table_prefix)
        with DirectoryStore(a_dir) as a, DirectoryStore(b_dir) as b:
            report = Replicator(
                a, b, state, pair="crash", concurrency=int(concurrency), retry_delay=0.01
            ).run(progress=record)
        state.close()
        sys.exit(0 if report.ok else 3)


if __name__ == "__main__":
    main(*sys.argv[1:])
