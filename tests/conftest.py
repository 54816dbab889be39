"""Point every test at the project's real stack (see devstack/) and keep Prefect quiet and local."""

import os
import tempfile

from devstack.__main__ import environment

for _key, _value in environment().items():
    os.environ.setdefault(_key, _value)
os.environ.setdefault("PREFECT_HOME", tempfile.mkdtemp(prefix="elastic-ingest-prefect-"))
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("DO_NOT_TRACK", "1")
os.environ.setdefault("PREFECT_TASKS_DEFAULT_NO_CACHE", "true")


def pytest_collection_modifyitems(items):
    """Files holding slow tests first (stable otherwise): with test files spread over several
    processes, a long file started last would leave the others idle at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)
