"""A delivery process for the kill -9 test: ``python -m tests.notify_process LEDGER RECEIVED
BLOCK_KEY NOW``.

It runs the real NotificationOutbox on LEDGER at the fixed time NOW. Its sender
is the receiver's side too: it appends each key to RECEIVED (flushed and synced:
the receiver has it), and after BLOCK_KEY it never returns, as a sender whose
receiver took the request but whose answer never came. The test kills it there.
"""

from __future__ import annotations

import os
import sys
import threading
from datetime import datetime
from pathlib import Path

from automations.ledger import Ledger
from automations.notify.notice import Notice
from tests.notify_support import PUBLIC, Clock, outbox


class FileReceiver:
    """Sender and receiver in one: each accepted key is one line of ``path``."""

    def __init__(self, path: Path, block_key: str) -> None:
        self.path = path
        self.block_key = block_key

    def send(self, notice: Notice, *, key: str) -> None:
        with self.path.open("a") as received:
            received.write(f"{key}\n")
            received.flush()
            os.fsync(received.fileno())
        if key == self.block_key:
            threading.Event().wait()  # the answer never comes: killed here


def main(ledger_path: str, received: str, block_key: str, now: str) -> None:
    with Ledger(ledger_path) as ledger:
        sender = FileReceiver(Path(received), block_key)
        clock = Clock(datetime.fromisoformat(now))
        outbox(ledger, {"ops-hook": sender}, {"ops-hook": PUBLIC}, clock).deliver_due()


if __name__ == "__main__":
    main(*sys.argv[1:5])
