"""prodserver's Celery integration.

Written to prodserver's runtime directory and loaded by the Celery processes
prodserver starts: `celery ... worker --include=prodserver_celery`, and for
beat (which has no --include) `celery -A prodserver_celery beat` with the
real app named in PRODSERVER_CELERY_APP. Nothing to install, no user code.
Set `celery_integration = false` on the process to do without it.

It speaks systemd's sd_notify protocol on $NOTIFY_SOCKET:

  worker  READY=1         on worker_ready (connected, consuming)
          WATCHDOG=1      every period from a thread in the main process,
                          while the worker's event loop is seen to run
                          (heartbeat_sent); always while it is reconnecting
                          to the broker (a restart cannot fix a broker), or
                          when no heartbeat can be observed
          STATUS=...      the number of tasks running, when it changes
          TASKS_DONE=1    on task_postrun, from the process that ran the task
          STOPPING=1      on worker_shutting_down
  beat    READY=1         on beat_init
          WATCHDOG=1      every period while the scheduler ticks (a tick
                          started or ended within max_interval + 60 s)

The period is a third of $WATCHDOG_USEC (1 s to 10 s; 10 s without it).
With $PRODSERVER_HEARTBEAT_FILE, each WATCHDOG=1 also rewrites that file
(its mtime is the heartbeat). Without either, or without Celery, it does
nothing. Sending never
blocks (a full socket drops the message) and never raises into Celery.

The pinger is a real OS thread in every pool, also under gevent or eventlet
(`-P gevent`, `-P eventlet`), whose monkey-patching would otherwise make it a
greenlet that a CPU-bound task starves, so that the worker would be
restarted as unhealthy in the middle of its tasks. The thread, its sleep and
the socket are taken from the unpatched modules; gevent and eventlet are
looked up only if they are already loaded, never imported here.
"""

import _thread
import os
import socket
import sys
import time

__all__ = []

_APP_ENV = "PRODSERVER_CELERY_APP"
# A beat tick may take this long beyond max_interval before beat counts as
# stuck.
_BEAT_GRACE = 60.0
# The worker's event loop counts as stuck after this many missed heartbeats.
_MISSED_HEARTBEATS = 6


def _originals():
    """(start_new_thread, sleep, socket class) as they were before gevent or
    eventlet patched them: the real ones either way."""
    start, sleep, sock = _thread.start_new_thread, time.sleep, socket.socket
    gevent_monkey = sys.modules.get("gevent.monkey")
    if gevent_monkey is not None:
        try:
            start = gevent_monkey.get_original("_thread", "start_new_thread")
            sleep = gevent_monkey.get_original("time", "sleep")
            sock = gevent_monkey.get_original("socket", "socket")
        except Exception:
            pass
    eventlet_patcher = sys.modules.get("eventlet.patcher")
    if eventlet_patcher is not None:
        try:
            start = eventlet_patcher.original("_thread").start_new_thread
            sleep = eventlet_patcher.original("time").sleep
            sock = eventlet_patcher.original("socket").socket
        except Exception:
            pass
    return start, sleep, sock


def _address():
    addr = os.environ.get("NOTIFY_SOCKET") or ""
    if not addr or addr[0] not in "/@":
        return None
    if addr[0] == "@":
        return "\0" + addr[1:]
    return addr


_ADDR = _address()
_sock = None
_sock_pid = None


# A file whose mtime is the last WATCHDOG=1 (readiness included): for a
# supervisor that cannot read a socket, e.g. a Kubernetes exec probe, as
# `prodserver export kubernetes` sets it up.
_HEARTBEAT_FILE = os.environ.get("PRODSERVER_HEARTBEAT_FILE") or None


def _touch_heartbeat():
    """Rewrites the heartbeat file: a temporary name, then renamed over it,
    so a probe never reads a half-written one."""
    try:
        tmp = "%s.%d.tmp" % (_HEARTBEAT_FILE, os.getpid())
        with open(tmp, "w") as f:
            f.write("%.3f\n" % time.time())
        os.replace(tmp, _HEARTBEAT_FILE)
    except Exception:
        pass


def _send(text):
    """Sends one datagram; drops it on any error (never blocks, never raises)."""
    global _sock, _sock_pid
    if _HEARTBEAT_FILE is not None and "WATCHDOG=1" in text.split("\n"):
        _touch_heartbeat()
    if _ADDR is None:
        return
    try:
        pid = os.getpid()
        if _sock is None or _sock_pid != pid:
            # A forked pool child must not share its parent's socket object.
            if _sock is not None:
                try:
                    _sock.close()
                except Exception:
                    pass
            # The unpatched class: the pinger thread has no event loop.
            s = _originals()[2](socket.AF_UNIX, socket.SOCK_DGRAM)
            s.setblocking(False)
            _sock, _sock_pid = s, pid
        _sock.sendto(text.encode("utf-8", "replace"), _ADDR)
    except Exception:
        pass


def _period():
    try:
        usec = int(os.environ.get("WATCHDOG_USEC", ""))
        return min(10.0, max(1.0, usec / 3e6))
    except ValueError:
        return 10.0


_state = {
    "consumer": None,
    "last_beat": 0.0,
    "status": None,
    "tick_started": 0.0,
    "tick_ended": 0.0,
    "max_interval": 300.0,
    "thread": None,
}


def _start_pinger(alive, status=None):
    """One OS thread per process: WATCHDOG=1 while alive() says so."""
    if _state["thread"] is not None:
        return
    period = _period()
    start_new_thread, sleep, _ = _originals()

    def run():
        while True:
            sleep(period)
            try:
                lines = []
                if alive():
                    lines.append("WATCHDOG=1")
                text = status() if status is not None else None
                if text is not None and text != _state["status"]:
                    _state["status"] = text
                    lines.append("STATUS=" + text)
                if lines:
                    _send("\n".join(lines))
            except Exception:
                pass

    # A bare thread, not threading.Thread: under gevent that class starts
    # greenlets, and a _thread thread is never waited for at exit.
    _state["thread"] = start_new_thread(run, ())


# ---- worker ----------------------------------------------------------------


def _active_tasks():
    try:
        from celery.worker import state

        n = len(state.active_requests)
    except Exception:
        return None
    return "%d active task%s" % (n, "" if n == 1 else "s")


def _worker_alive():
    c = _state["consumer"]
    if c is None:
        return True
    # Reconnecting to the broker: a restart would not bring it back.
    if getattr(c, "connection", None) is None:
        return True
    heart = getattr(c, "heart", None)
    # No async event loop (solo/threads/gevent pools, or a transport without
    # one) or heartbeats disabled: nothing to judge the main loop by.
    if heart is None or getattr(c, "hub", None) is None:
        return True
    interval = float(getattr(heart, "interval", None) or 2.0)
    limit = max(_MISSED_HEARTBEATS * interval, 2 * _period())
    return time.monotonic() - _state["last_beat"] <= limit


def _on_worker_ready(sender=None, **kwargs):
    try:
        _state["consumer"] = sender
        _state["last_beat"] = time.monotonic()
        status = _active_tasks() or "ready"
        _state["status"] = status
        _send("READY=1\nSTATUS=" + status + "\nWATCHDOG=1")
        _start_pinger(_worker_alive, _active_tasks)
    except Exception:
        pass


def _on_heartbeat(sender=None, **kwargs):
    _state["last_beat"] = time.monotonic()


def _on_task_postrun(sender=None, **kwargs):
    _send("TASKS_DONE=1")


def _on_worker_shutting_down(sender=None, **kwargs):
    _send("STOPPING=1\nSTATUS=shutting down")


# ---- beat ------------------------------------------------------------------


def _beat_alive():
    last = max(_state["tick_started"], _state["tick_ended"])
    return time.monotonic() - last <= _state["max_interval"] + _BEAT_GRACE


def _watch_ticks(service):
    """Wraps the scheduler's tick to time it; False if that is not possible."""
    try:
        scheduler = service.scheduler
        _state["max_interval"] = float(getattr(scheduler, "max_interval", None) or 300.0)
        original = scheduler.tick

        def tick(*args, **kw):
            _state["tick_started"] = time.monotonic()
            try:
                return original(*args, **kw)
            finally:
                _state["tick_ended"] = time.monotonic()

        scheduler.tick = tick
        return True
    except Exception:
        return False


def _on_beat_init(sender=None, **kwargs):
    try:
        _state["tick_started"] = time.monotonic()
        # If ticks cannot be observed, the thread only proves beat runs.
        alive = _beat_alive if _watch_ticks(sender) else (lambda: True)
        _send("READY=1\nSTATUS=beat running\nWATCHDOG=1")
        _start_pinger(alive)
    except Exception:
        pass


# ---- wiring ----------------------------------------------------------------


def _connect():
    try:
        from celery import signals
    except Exception:
        return
    try:
        uid = "prodserver_celery."
        signals.worker_ready.connect(_on_worker_ready, weak=False, dispatch_uid=uid + "ready")
        signals.heartbeat_sent.connect(_on_heartbeat, weak=False, dispatch_uid=uid + "heartbeat")
        signals.task_postrun.connect(_on_task_postrun, weak=False, dispatch_uid=uid + "postrun")
        signals.worker_shutting_down.connect(
            _on_worker_shutting_down, weak=False, dispatch_uid=uid + "shutdown"
        )
        signals.beat_init.connect(_on_beat_init, weak=False, dispatch_uid=uid + "beat")
    except Exception:
        pass


if _ADDR is not None or _HEARTBEAT_FILE is not None:
    _connect()


# `celery -A prodserver_celery beat`: stand in for the real app. A failure
# here is the user's app failing to load, reported as Celery would.
if os.environ.get(_APP_ENV):
    from celery.app.utils import find_app as _find_app

    app = _find_app(os.environ[_APP_ENV])
