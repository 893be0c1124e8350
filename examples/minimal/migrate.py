"""Oneshot: prepares the spool folders, like `manage.py migrate` prepares a DB."""
from common import DONE, QUEUE

QUEUE.mkdir(parents=True, exist_ok=True)
DONE.mkdir(parents=True, exist_ok=True)
print(f"migrate: spool ready at {QUEUE.parent}", flush=True)
