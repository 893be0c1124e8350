# Run by `prodserver init` with the project's own Python: what is installed,
# and what the settings module and the Celery app say once imported
# (settings are code: a value may come from a function, an env variable or
# another module). Prints one line, MARK followed by JSON, last; anything
# the project prints while being imported goes to stderr.
#
# argv: PROJECT_DIR SETTINGS_MODULE CELERY_MODULE (may be "")
import importlib
import importlib.util
import json
import os
import sys

MARK = "@@prodserver-init@@"
SERVERS = ("gunicorn", "uvicorn", "granian", "daphne")
OTHERS = ("celery", "django_celery_beat", "django")


def one_line(e):
    text = "%s: %s" % (type(e).__name__, e)
    return " ".join(text.split())[:300]


def text_or_none(value):
    return value if isinstance(value, str) else None


def route_queue(route):
    # A route is a queue name, or a dict whose "queue" is a name or a
    # kombu Queue.
    if isinstance(route, str):
        return route
    if isinstance(route, dict):
        q = route.get("queue")
        if isinstance(q, str):
            return q
        name = getattr(q, "name", None)
        if isinstance(name, str):
            return name
    return None


def route_queues(routes, found, opaque):
    # task_routes: a dict {pattern: route}, a list of routers (dicts,
    # functions, dotted paths), or a list of (pattern, route) pairs.
    if routes is None:
        return
    if isinstance(routes, dict):
        for route in routes.values():
            q = route_queue(route)
            if q is None:
                opaque.append("a route that names no queue")
            elif q not in found:
                found.append(q)
    elif isinstance(routes, (list, tuple)):
        if len(routes) == 2 and isinstance(routes[1], dict) and not isinstance(routes[0], (list, tuple, dict)):
            route_queues({"pair": routes[1]}, found, opaque)
        else:
            for item in routes:
                route_queues(item, found, opaque)
    else:
        opaque.append("a router function (%s)" % getattr(routes, "__name__", type(routes).__name__))


def queue_names(queues):
    if queues is None:
        return None
    if isinstance(queues, dict):
        return [str(k) for k in queues]
    names = []
    try:
        for q in queues:
            name = getattr(q, "name", q)
            if isinstance(name, str) and name not in names:
                names.append(name)
    except TypeError:
        return None
    return names


def celery_facts(routes, queues, default_queue, beat_schedule, beat_scheduler):
    found, opaque = [], []
    route_queues(routes, found, opaque)
    return {
        "routes_set": bool(routes),
        "route_queues": found,
        "opaque_routes": opaque,
        "task_queues": queue_names(queues),
        "default_queue": text_or_none(default_queue),
        "beat_schedule": bool(beat_schedule),
        "beat_scheduler": text_or_none(beat_scheduler),
    }


def main():
    real_stdout = sys.stdout
    sys.stdout = sys.stderr
    project, settings_module, celery_module = sys.argv[1:4]
    sys.path.insert(0, project)
    os.chdir(project)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    out = {
        "python": sys.executable,
        "version": sys.version.split()[0],
        "installed": {},
        "settings": None,
        "settings_error": None,
        "celery": None,
        "celery_error": None,
    }
    for name in SERVERS + OTHERS:
        try:
            out["installed"][name] = importlib.util.find_spec(name) is not None
        except Exception:
            out["installed"][name] = False
    try:
        s = importlib.import_module(settings_module)
        g = lambda key: getattr(s, key, None)
        out["settings"] = {
            "wsgi_application": text_or_none(g("WSGI_APPLICATION")),
            "asgi_application": text_or_none(g("ASGI_APPLICATION")),
            "installed_apps": [str(a) for a in (g("INSTALLED_APPS") or [])],
            "celery": celery_facts(
                g("CELERY_TASK_ROUTES"),
                g("CELERY_TASK_QUEUES"),
                g("CELERY_TASK_DEFAULT_QUEUE"),
                g("CELERY_BEAT_SCHEDULE"),
                g("CELERY_BEAT_SCHEDULER"),
            ),
        }
    except BaseException as e:
        out["settings_error"] = one_line(e)
    if celery_module:
        try:
            from celery import Celery

            m = importlib.import_module(celery_module)
            apps = [(k, v) for k, v in vars(m).items() if isinstance(v, Celery)]
            apps.sort(key=lambda kv: (kv[0] != "app", kv[0]))
            if not apps:
                raise LookupError("no Celery app in %s" % celery_module)
            attr, app = apps[0]
            c = app.conf
            facts = celery_facts(
                c.task_routes, c.task_queues, c.task_default_queue, c.beat_schedule, c.beat_scheduler
            )
            facts["attr"] = attr
            out["celery"] = facts
        except BaseException as e:
            out["celery_error"] = one_line(e)
    real_stdout.write("\n" + MARK + json.dumps(out) + "\n")
    real_stdout.flush()


main()
