# Settings that fail to import, as a typo would.
from .settings import *  # noqa: F401,F403

PRODUCTION_PROCESSES = undefined_name  # noqa: F821
