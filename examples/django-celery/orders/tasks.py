"""The demo's tasks. Each one exists so that a test can observe something.

Routing (shop/settings.py, CELERY_TASK_ROUTES): notify_customer goes to the
`priority` queue, everything else to `default`; `apply_async(queue=...)`
overrides the route.
"""
import os
import resource
import time

from celery import shared_task
from django.conf import settings
from django.utils import timezone

# hog() keeps its allocations here, so the memory stays with the pool child.
_HOG = []


def _var_file(name):
    return os.path.join(settings.VAR_DIR, name)


def _append(name, line):
    # One write() of one short line with O_APPEND: lines from several
    # processes never interleave.
    fd = os.open(_var_file(name), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def _worker_info(request):
    delivery = request.delivery_info or {}
    return {
        "hostname": request.hostname,
        "queue": delivery.get("routing_key"),
        "pid": os.getpid(),
        "ppid": os.getppid(),
    }


@shared_task(bind=True)
def whoami(self):
    """Which worker ran this, and from which queue: tests check routing with it."""
    return _worker_info(self.request)


@shared_task(bind=True)
def tick(self):
    """The periodic task (celery beat, every SHOP_BEAT_EVERY seconds).

    Appends `<unix time> <worker hostname> <task id>` to $SHOP_VAR_DIR/ticks.log.
    """
    now = time.time()
    _append("ticks.log", f"{now:.3f} {self.request.hostname} {self.request.id}")
    return now


@shared_task(bind=True, acks_late=True)
def sleep(self, seconds):
    """Sleep, for stop tests. acks_late: the message is acknowledged only when
    the task finishes, so a worker killed mid-task leaves it to be redelivered.

    Logs `start`/`done` lines to $SHOP_VAR_DIR/sleeps.log so a test can wait
    until the task is really running before it stops the worker.
    """
    info = _worker_info(self.request)
    _append("sleeps.log", f"start {self.request.id} {info['hostname']} {info['pid']}")
    time.sleep(float(seconds))
    _append("sleeps.log", f"done {self.request.id} {info['hostname']} {info['pid']}")
    return {"slept": float(seconds), **info}


@shared_task(bind=True)
def hog(self, mib):
    """Allocate `mib` MiB and keep it for the life of the pool child, for
    memory-recycling tests. Returns the child's current and peak RSS in KiB."""
    # b"\x01" * n writes every page; bytearray(n) would come from calloc and
    # stay unresident until touched.
    _HOG.append(b"\x01" * (int(mib) * 1024 * 1024))
    return {
        "held_mib": sum(len(b) for b in _HOG) // (1024 * 1024),
        "rss_kib": _rss_kib(),
        "maxrss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        **_worker_info(self.request),
    }


def _rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return None


@shared_task(bind=True)
def process_order(self, order_id):
    """The view's task (queue `default`): mark the order processed."""
    from .models import Order

    Order.objects.filter(pk=order_id).update(
        processed_by=self.request.hostname, processed_at=timezone.now()
    )
    return {"order": order_id, **_worker_info(self.request)}


@shared_task(bind=True)
def notify_customer(self, order_id):
    """Routed to the `priority` queue by CELERY_TASK_ROUTES."""
    from .models import Order

    Order.objects.filter(pk=order_id).update(notified_by=self.request.hostname)
    return {"order": order_id, **_worker_info(self.request)}
