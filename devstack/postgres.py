"""PostgreSQL from Debian's `postgresql` package, on its own port, data and user: the database
of the Prefect server when it runs production-shaped (instead of SQLite)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import pwd
import secrets
import signal
import subprocess
import time
from pathlib import Path

from devstack.common import (
    StackError,
    apt_install,
    check_port_free,
    ensure_system_user,
    env_port,
    pid_file,
    port_open,
    read_pid,
    spawn,
    stack_dir,
    stop,
    wait_until,
)

NAME = "postgres"
SERVICE_USER = "elastic-ingest-pg"
SUPERUSER = "postgres"
ROLE = DATABASE = "prefect"
# For a small shared machine; everything else keeps PostgreSQL's defaults.
SETTINGS = {"max_connections": "100", "shared_buffers": "128MB"}


def port() -> int:
    """5433 by default: Debian's package may run a system cluster of its own on 5432."""
    return env_port("STACK_POSTGRES_PORT", 5433)


def home() -> Path:
    return stack_dir() / "postgres"


def data_dir() -> Path:
    return home() / "data"


def log_path() -> Path:
    return home() / "postgres.log"


def _password_file(role: str) -> Path:
    return home() / f"{role}.password"


def _display_url() -> str:
    return f"postgresql://127.0.0.1:{port()}/{DATABASE}"


def database_url(database: str = DATABASE) -> str:
    """What PREFECT_SERVER_DATABASE_CONNECTION_URL takes; the password exists once `up` ran."""
    try:
        password = _password_file(ROLE).read_text().strip()
    except FileNotFoundError:
        raise StackError(
            "postgres: no database password yet; start it first (`python -m devstack up postgres`)"
        ) from None
    # token_urlsafe passwords need no quoting in a URL.
    return f"postgresql+asyncpg://{ROLE}:{password}@127.0.0.1:{port()}/{database}"


def fresh_database(name: str) -> str:
    """An empty database `name` owned by the prefect role (dropped first if it exists), for a
    test's private Prefect server; returns its URL. Call after `up`."""
    if not name.replace("_", "").isalnum():
        raise StackError(f"postgres: {name!r} is not a plain database name")
    _superuser_sql(
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\nCREATE DATABASE {name} OWNER {ROLE};\n",
        f"could not create database {name}",
    )
    return database_url(name)


def drop_database(name: str) -> None:
    if not name.replace("_", "").isalnum():
        raise StackError(f"postgres: {name!r} is not a plain database name")
    _superuser_sql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE);\n", f"could not drop {name}")


def _find_bin(version: str | None = None) -> Path | None:
    """The bin directory of the newest installed server, or of major `version`."""
    found = {}
    for server in Path("/usr/lib/postgresql").glob("*/bin/postgres"):
        major = server.parent.parent.name
        if major.isdigit():
            found[int(major)] = server.parent
    if version is not None:
        return found.get(int(version)) if version.isdigit() else None
    return found[max(found)] if found else None


def _bin() -> Path:
    """Binaries of the major that initialised the data directory (data files are per major);
    for a new one, the newest installed, installing Debian's package if there is none."""
    version_file = data_dir() / "PG_VERSION"
    if version_file.exists():
        version = version_file.read_text().strip()
        found = _find_bin(version)
        if found is None:
            raise StackError(
                f"postgres: {data_dir()} was created by PostgreSQL {version}; "
                f"install postgresql-{version} or delete that directory"
            )
        return found
    return _find_bin() or _install()


def _install() -> Path:
    """apt-get's `postgresql`. Its postinst may create and start a system cluster on 5432; that
    cluster is left alone (this one has its own port, data directory and user)."""
    apt_install("postgresql", "postgres")
    found = _find_bin()
    if found is None:
        raise StackError("postgres: `apt-get install postgresql` left no server to run")
    return found


def _ensure_user() -> pwd.struct_passwd | None:
    """The user PostgreSQL runs as: a dedicated system user when we are root (it refuses root)."""
    return ensure_system_user(SERVICE_USER)


def _as_user(command: list[str], user: pwd.struct_passwd | None) -> list[str]:
    """setpriv rather than runuser: runuser forks, and on SIGINT or SIGTERM sends its child
    SIGTERM then SIGKILL 2s later. setpriv execs, so the PID file names the postmaster itself."""
    if user is None:
        return command
    ids = [f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups"]
    return ["setpriv", *ids, "--", *command]


def _write_secret(path: Path) -> None:
    """A new random password, readable by its owner only from the first byte on."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(32) + "\n")


def _init(bin_dir: Path, user: pwd.struct_passwd | None) -> None:
    """initdb once: scram-sha-256 on the socket and TCP, the superuser's password from a file."""
    home().mkdir(parents=True, exist_ok=True)
    home().chmod(0o700)
    superuser_password = _password_file(SUPERUSER)
    if not superuser_password.exists():
        _write_secret(superuser_password)
    if user:
        for path in (home(), superuser_password):
            os.chown(path, user.pw_uid, user.pw_gid)
    if (data_dir() / "PG_VERSION").exists():
        return
    command = [
        str(bin_dir / "initdb"),
        f"--pgdata={data_dir()}",
        f"--username={SUPERUSER}",
        f"--pwfile={superuser_password}",
        "--auth=scram-sha-256",
        "--encoding=UTF8",
        "--locale=C.UTF-8",
    ]
    result = subprocess.run(_as_user(command, user), capture_output=True, text=True, cwd=home())
    if result.returncode != 0:
        raise StackError(f"postgres: initdb failed:\n{(result.stdout + result.stderr)[-2000:]}")


def _scram_verifier(password: str, iterations: int = 4096) -> str:
    """The form PostgreSQL stores a scram-sha-256 password in (RFC 7677); sent instead of the
    password, which therefore never reaches the server or its log."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    salt64, stored64, server64 = (
        base64.b64encode(v).decode() for v in (salt, stored_key, server_key)
    )
    return f"SCRAM-SHA-256${iterations}:{salt64}${stored64}:{server64}"


def _ensure_database(bin_dir: Path) -> None:
    """Role and database `prefect`, idempotently; the role's password is (re)set from its file,
    generated on first start."""
    password_file = _password_file(ROLE)
    if not password_file.exists():
        _write_secret(password_file)
    verifier = _scram_verifier(password_file.read_text().strip())
    sql = (
        f"SELECT 'CREATE ROLE {ROLE}' WHERE NOT EXISTS "
        f"(SELECT FROM pg_roles WHERE rolname = '{ROLE}')\\gexec\n"
        f"ALTER ROLE {ROLE} WITH LOGIN PASSWORD '{verifier}';\n"
        f"SELECT 'CREATE DATABASE {DATABASE} OWNER {ROLE}' WHERE NOT EXISTS "
        f"(SELECT FROM pg_database WHERE datname = '{DATABASE}')\\gexec\n"
    )
    _superuser_sql(sql, f"could not create database {DATABASE}", bin_dir)


def _superuser_sql(sql: str, failure: str, bin_dir: Path | None = None) -> None:
    """Run `sql` with psql as the superuser, over the stack's own socket."""
    psql = [str((bin_dir or _bin()) / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1"]
    target = ["-h", str(home()), "-p", str(port()), "-U", SUPERUSER, "-d", "postgres"]
    env = {**os.environ, "PGPASSWORD": _password_file(SUPERUSER).read_text().strip()}
    result = subprocess.run(
        psql + target, input=sql, env=env, capture_output=True, text=True, timeout=60
    )
    if result.returncode != 0:
        raise StackError(f"postgres: {failure}: {result.stderr.strip()}")


def _ready() -> bool:
    bin_dir = _find_bin()
    if bin_dir is None:
        return False
    command = [str(bin_dir / "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(port()), "-t", "2"]
    return subprocess.run(command, capture_output=True).returncode == 0


def up() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and _ready():
        return f"postgres: running at {_display_url()} (pid {pid}, reused)"
    check_port_free(port(), "postgres", "STACK_POSTGRES_PORT")
    # The socket lives in our folder (the service user cannot write /var/run/postgresql).
    if len(str(home() / f".s.PGSQL.{port()}").encode()) > 107:
        raise StackError(f"postgres: {home()} is too long a path for a unix socket")
    user = _ensure_user()
    bin_dir = _bin()
    _init(bin_dir, user)
    settings = {
        "listen_addresses": "127.0.0.1",
        "port": str(port()),
        "unix_socket_directories": str(home()),
        **SETTINGS,
    }
    command = [str(bin_dir / "postgres"), "-D", str(data_dir())]
    command += [f"--{key}={value}" for key, value in settings.items()]
    pid = spawn(NAME, _as_user(command, user), log_path())
    wait_until(_ready, 60, "postgres", log_path(), pid)
    _ensure_database(bin_dir)
    return f"postgres: started at {_display_url()} (pid {pid})"


def down() -> str:
    """Fast shutdown (SIGINT) first: `stop` sends SIGTERM, PostgreSQL's smart shutdown, which
    waits for every client (Prefect's connection pool) to leave, and then escalates to SIGKILL."""
    pid = read_pid(pid_file(NAME))
    if pid is None:
        return stop(NAME, "postgres")
    try:
        os.kill(pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 60
    lock = data_dir() / "postmaster.pid"
    while time.monotonic() < deadline and lock.exists() and read_pid(pid_file(NAME)):
        time.sleep(0.2)
    stop(NAME, "postgres")
    return f"postgres: stopped (pid {pid})"


def status() -> str:
    pid = read_pid(pid_file(NAME))
    if pid and _ready():
        return f"postgres: running at {_display_url()} (pid {pid})"
    if port_open(port()):
        return f"postgres: port {port()} answers but not started by this stack"
    return "postgres: stopped"
