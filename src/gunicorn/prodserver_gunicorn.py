"""prodserver's gunicorn integration: a config module that says when the app
is loaded.

Written to prodserver's runtime directory and loaded by the gunicorn it
starts as `gunicorn --config=python:prodserver_gunicorn ...` when the server
cannot be probed from outside (a held or unix socket, an inherited fd, a
bind address only a config file knows). Nothing to install, no user code.

gunicorn's own `READY=1` is sent by the arbiter once it has bound, before
any worker has imported the app: it says "bound", not "serving". This module
takes $NOTIFY_SOCKET out of the environment when gunicorn loads it (so that
message is never sent, and the app does not inherit the variable) and sends

  READY=1   from post_worker_init, in each worker once it has loaded the
            app (with --preload too: the hook runs in every worker after it
            booted). The first one makes the instance ready; later ones are
            ignored.

It also makes the master exit with gunicorn's own boot failure status (3
or 4) when gunicorn's halt raised a second HaltServer (two workers failing
to boot at once), which would otherwise exit 1 like any crash.

Only one `--config` counts for gunicorn, so the user's own one (named in
$PRODSERVER_GUNICORN_CONFIG, `python:module` or a file), else
./gunicorn.conf.py when it exists (what gunicorn itself would read), is
loaded here the way gunicorn loads it, and every setting it makes is
re-exported. Its post_worker_init runs first; READY=1 follows only if it
returned.

Sending never blocks (a full socket drops the message) and never raises
into gunicorn.
"""

import importlib
import importlib.machinery
import importlib.util
import os
import socket
import sys

_CONFIG_ENV = "PRODSERVER_GUNICORN_CONFIG"
_ADDRESS = os.environ.pop("NOTIFY_SOCKET", None)


def _load_user_config():
    location = os.environ.pop(_CONFIG_ENV, None)
    if location is None:
        default = os.path.join(os.path.abspath(os.getcwd()), "gunicorn.conf.py")
        if not os.path.exists(default):
            return {}
        location = default
    if location.startswith("python:"):
        return dict(vars(importlib.import_module(location[len("python:"):])))
    if location.startswith("file:"):
        location = location[len("file:"):]
    if not os.path.exists(location):
        # gunicorn's own words for a missing config file.
        raise RuntimeError("%r doesn't exist" % location)
    name = "__config__"
    loader = importlib.machinery.SourceFileLoader(name, location)
    spec = importlib.util.spec_from_file_location(name, location, loader=loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return dict(vars(module))


# The modules are bound here: the user's settings, re-exported below, may
# reuse any name of this module's namespace.
def _send(message, _socket=socket, _address=_ADDRESS):
    addr = _address or ""
    if not addr or addr[0] not in "/@":
        return
    if addr[0] == "@":
        addr = "\0" + addr[1:]
    try:
        sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_DGRAM | _socket.SOCK_CLOEXEC)
        try:
            sock.setblocking(False)
            sock.connect(addr)
            sock.send(message.encode())
        finally:
            sock.close()
    except Exception:
        pass


_user = _load_user_config()

def _chain(user_hook, send):
    def post_worker_init(worker):
        if callable(user_hook):
            user_hook(worker)
        send("READY=1")

    return post_worker_init


def _exit_as_halted(hook, _os=os, _sys=sys):
    """gunicorn 27 halts with HaltServer(reason, 3 or 4) when a worker
    fails to boot; when a second worker fails while it halts, the second
    HaltServer escapes and Python exits 1, an ordinary crash that would be
    restarted in a loop. Exit with the status gunicorn meant instead."""

    def excepthook(kind, value, tb):
        hook(kind, value, tb)
        status = getattr(value, "exit_status", None)
        if kind.__name__ == "HaltServer" and kind.__module__ == "gunicorn.errors":
            if isinstance(status, int):
                try:
                    _sys.stderr.flush()
                    _sys.stdout.flush()
                finally:
                    _os._exit(status)

    return excepthook


sys.excepthook = _exit_as_halted(sys.excepthook)

# gunicorn settings never start with "_": this module's own names stay out.
globals().update({k: v for k, v in _user.items() if not k.startswith("_")})
post_worker_init = _chain(_user.get("post_worker_init"), _send)
