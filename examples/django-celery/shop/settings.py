"""Settings for the demo shop.

Every path and address comes from the environment so that several copies can
run side by side (one per test) without sharing a database, a broker folder or
a port. See README.md for the variables.
"""
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_path(name, default):
    value = os.environ.get(name)
    return Path(value).resolve() if value else Path(default)


def _env_bool(name, default=False):
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


VAR_DIR = _env_path("SHOP_VAR_DIR", BASE_DIR / "var")

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "dev-only-insecure-key-change-me-in-production"
)
DEBUG = _env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = ["*"]

INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "orders",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "shop.urls"
WSGI_APPLICATION = "shop.wsgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": _env_path("SHOP_DB", VAR_DIR / "db.sqlite3"),
        "OPTIONS": {
            # gunicorn workers and Celery pool children write concurrently.
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        },
    }
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": os.environ.get("SHOP_LOG_LEVEL", "INFO")},
}

# --- Celery -----------------------------------------------------------------

BROKER = os.environ.get("BROKER", "filesystem").strip().lower()

if BROKER == "redis":
    REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    CELERY_BROKER_URL = REDIS_URL
    CELERY_RESULT_BACKEND = REDIS_URL
    # acks_late tasks are redelivered after this many seconds if their worker
    # died (Redis has no per-connection acknowledgement). Default: 1 hour.
    # kombu looks for such messages only every interval x throttle seconds
    # (10 x 10 by default), so a test with a short visibility timeout also
    # sets SHOP_UNACKED_RESTORE_INTERVAL=1.
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": int(os.environ.get("SHOP_VISIBILITY_TIMEOUT", "3600")),
    }
    if os.environ.get("SHOP_UNACKED_RESTORE_INTERVAL"):
        CELERY_BROKER_TRANSPORT_OPTIONS.update(
            unacked_restore_interval=int(os.environ["SHOP_UNACKED_RESTORE_INTERVAL"]),
            unacked_restore_throttle=1,
        )
elif BROKER == "filesystem":
    BROKER_DIR = _env_path("SHOP_BROKER_DIR", VAR_DIR / "broker")
    RESULTS_DIR = _env_path("SHOP_RESULTS_DIR", VAR_DIR / "results")
    CELERY_BROKER_URL = "filesystem://"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        # One folder for both directions: producers write, consumers read.
        "data_folder_in": str(BROKER_DIR),
        "data_folder_out": str(BROKER_DIR),
        # Without this kombu keeps its exchange tables in ./control, relative
        # to whatever the current directory is.
        "control_folder": str(BROKER_DIR / "control"),
        "processed_folder": str(BROKER_DIR / "processed"),
        "store_processed": False,
        # Seconds between polls of the folder (kombu's default is 1.0).
        "polling_interval": float(os.environ.get("SHOP_BROKER_POLL", "0.2")),
    }
    CELERY_RESULT_BACKEND = "file://" + str(RESULTS_DIR)
    # kombu does not create these, and Celery's file backend refuses a
    # missing folder.
    for _folder in (BROKER_DIR, BROKER_DIR / "control", BROKER_DIR / "processed", RESULTS_DIR):
        _folder.mkdir(parents=True, exist_ok=True)
    # kombu creates an exchange table by opening it with "wb" and only then
    # locking it: a second process binding at that moment reads it empty
    # and dies (JSONDecodeError) when workers start together on a fresh
    # folder. Each table is created whole here, atomically (a full temp
    # file linked into place, which fails if it exists), before any bind.
    for _exchange in ("default", "priority", "celery", "celery.pidbox", "reply.celery.pidbox", "celeryev"):
        _table = BROKER_DIR / "control" / f"{_exchange}.exchange"
        if not _table.exists():
            _tmp = _table.with_name(f".{_table.name}.{os.getpid()}")
            _tmp.write_text("[]")
            try:
                os.link(_tmp, _table)
            except FileExistsError:
                pass
            finally:
                _tmp.unlink()
else:
    raise RuntimeError(f"BROKER={BROKER!r}: expected 'filesystem' (default) or 'redis'")

VAR_DIR.mkdir(parents=True, exist_ok=True)

CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "orders.tasks.notify_customer": {"queue": "priority"},
    "orders.tasks.*": {"queue": "default"},
}
CELERY_TASK_TRACK_STARTED = True
CELERY_RESULT_EXTENDED = True
CELERY_RESULT_EXPIRES = 3600
# One message at a time per pool process: a stop never strands prefetched
# tasks behind a long one.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

CELERY_BEAT_SCHEDULE = {
    "tick": {
        "task": "orders.tasks.tick",
        "schedule": float(os.environ.get("SHOP_BEAT_EVERY", "10")),
    },
}
# celery beat's state file; `-s` would override it. Kept under VAR_DIR so
# parallel runs don't share it.
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
