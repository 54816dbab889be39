"""Which Elasticsearch node the stack runs: its version (`STACK_ES_VERSION`), port, and the
directory of its data, logs and service key. Each version has a node of its own, so the 9.x
default and the 8.19 compatibility lane run side by side (an 8.x node cannot open data a 9.x
node has written)."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.common import env_port, stack_dir

DEFAULT_VERSION = "9.5.4"
# The last 8.x minor, tested by `make test-es8`.
COMPAT_VERSION = "8.19.21"
VERSION = os.environ.get("STACK_ES_VERSION", DEFAULT_VERSION)
MAJOR = int(VERSION.split(".")[0]) if VERSION.split(".")[0].isdigit() else 0
# 8.x runs on Java 17 or later; 9.x needs 21.
MINIMUM_JAVA = 21 if MAJOR >= 9 else 17


def port() -> int:
    """`STACK_ES_PORT`, else 9200 for 9.x and 9201 for 8.x (both may run at once)."""
    return env_port("STACK_ES_PORT", 9200 if MAJOR >= 9 else 9201)


def url() -> str:
    return f"http://127.0.0.1:{port()}"


def node_dir() -> Path:
    """`<stack>/elasticsearch/<version>/`: this node's data, logs and service key."""
    return stack_dir() / "elasticsearch" / VERSION


def pid_name() -> str:
    return f"elasticsearch-{VERSION}"
