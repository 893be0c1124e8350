"""Beat: enqueues a periodic job. Run exactly one (prodserver locks it)."""
import os
import time

from common import Stop, enqueue

stop = Stop()
every = float(os.environ.get("BEAT_EVERY", "5"))
n = 0
while not stop.requested:
    n += 1
    job = enqueue(f"tick-{time.time_ns()}", f"tick {n}")
    print(f"beat: enqueued {job.name}", flush=True)
    deadline = time.monotonic() + every
    while not stop.requested and time.monotonic() < deadline:
        time.sleep(0.1)
print("beat: schedule saved, bye", flush=True)
