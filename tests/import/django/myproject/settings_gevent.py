# django-prodserver's documented "Gevent Pool" ARGS on a worker, beside a
# 3.x web server (backends.servers.uvicorn, serving the ASGI app) and a
# flag written as the string "True".
import os

from .settings import *  # noqa: F401,F403

print("settings: gevent pool")  # as settings modules do; must not reach the JSON

PRODUCTION_PROCESSES = {
    "web": {
        "BACKEND": "django_prodserver.backends.servers.uvicorn.UvicornServer",
        "ARGS": {"host": "127.0.0.1", "port": os.environ.get("WEB_PORT", "8000"), "proxy-headers": "True"},
    },
    "io_worker": {
        "BACKEND": "django_prodserver.backends.workers.celery.CeleryWorker",
        "APP": "myproject.celery.app",
        "ARGS": {"pool": "gevent", "concurrency": "100", "without-mingle": "True", "purge": "False"},
    },
}
