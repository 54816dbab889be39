"""The real services the tests, benchmarks and `make run` use, started by the project itself.

Each service module has `up()`, `down()` and `status()`; `python -m devstack up` starts what is
missing and reuses what is running. State (downloads, data, logs, PID files) lives in one stack
directory shared by every checkout on the machine, so a fresh clone reuses a running stack.
"""
