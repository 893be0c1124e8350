"""Prints a Django project's process settings as JSON on stdout, for
`prodserver import django-prodserver`.

Settings are code: they are imported (as `manage.py` would, from the
project's folder with DJANGO_SETTINGS_MODULE set), never parsed. Through
django.conf when Django is importable, so settings wrappers behave as in
production; the module itself otherwise. Apps are not loaded
(no django.setup()): nothing but the settings module runs.
"""

import importlib
import json
import os
import sys

NAMES = ("PRODUCTION_PROCESSES", "PROD_SERVERS", "WSGI_APPLICATION", "ASGI_APPLICATION")


def ordered(value):
    """Dicts as {"__pairs__": [[key, value], ...]}: their order is the
    order processes and command-line arguments are written in, and a
    JSON object does not promise to keep it."""
    if isinstance(value, dict):
        return {"__pairs__": [[str(k), ordered(v)] for k, v in value.items()]}
    if isinstance(value, (list, tuple)):
        return [ordered(v) for v in value]
    return value


def main():
    # Settings modules print ("using local settings"): their output goes
    # to stderr, so stdout carries the JSON alone.
    out_stream, sys.stdout = sys.stdout, sys.stderr
    sys.path.insert(0, os.getcwd())
    module = os.environ["DJANGO_SETTINGS_MODULE"]
    try:
        from django.conf import settings

        def get(name):
            return getattr(settings, name, None)

        get("INSTALLED_APPS")  # imports the module now, raising its own error
    except ImportError as e:
        if getattr(e, "name", None) not in ("django", "django.conf"):
            raise
        mod = importlib.import_module(module)

        def get(name):
            return getattr(mod, name, None)

    out = {name: ordered(get(name)) for name in NAMES}
    # repr() for what JSON cannot carry (a Path, a lazy object): the
    # importer reports it instead of guessing.
    json.dump(out, out_stream, default=repr)


main()
