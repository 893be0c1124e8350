"""Worker: takes jobs from the spool; on SIGTERM it finishes the job in hand."""
import os
import time

from common import DONE, QUEUE, Stop

stop = Stop()
name = f"worker.{os.environ.get('PRODSERVER_INSTANCE', '1')}"
print(f"{name}: waiting for jobs in {QUEUE}", flush=True)
while not stop.requested:
    jobs = sorted(QUEUE.glob("*.job"))
    if not jobs:
        time.sleep(0.5)  # a demo polls; real workers block on a broker
        continue
    job = jobs[0]
    claimed = job.with_suffix(f".{name}")
    try:
        job.rename(claimed)  # atomic claim: one worker per job
    except FileNotFoundError:
        continue
    print(f"{name}: working on {job.stem}", flush=True)
    time.sleep(1)
    DONE.mkdir(parents=True, exist_ok=True)
    claimed.rename(DONE / f"{job.stem}.done")
    print(f"{name}: done {job.stem}", flush=True)
print(f"{name}: stop requested, no job in hand: bye", flush=True)
