"""Shared by the demo programs: a spool folder of job files, stdlib only."""
import os
import pathlib
import signal

SPOOL = pathlib.Path(os.environ.get("DEMO_SPOOL", pathlib.Path(__file__).parent / "var"))
QUEUE = SPOOL / "queue"
DONE = SPOOL / "done"


def enqueue(name: str, payload: str) -> pathlib.Path:
    QUEUE.mkdir(parents=True, exist_ok=True)
    tmp = QUEUE / f".{name}.tmp"
    tmp.write_text(payload)
    final = QUEUE / f"{name}.job"
    tmp.rename(final)  # atomic: a worker never sees half a job
    return final


class Stop:
    """Turns SIGTERM/SIGINT into a flag, so work in progress can finish."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, signum, frame):
        self.requested = True
