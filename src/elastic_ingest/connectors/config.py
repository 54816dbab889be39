"""Load config.yml once into typed settings, reporting every problem at once with its YAML path."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from elastic_ingest.connectors.index_names import name_problem

DEFAULT_CONFIG = Path(__file__).resolve().parents[3] / "config.yml"  # a checkout's own
CONFIG_VARIABLE = "ELASTIC_INGEST_CONFIG"
BUILTIN_DEFAULTS = {
    "elasticsearch": {
        "hosts": ["${ELASTICSEARCH_URL:-http://127.0.0.1:9200}"],
        "api_key": "${ELASTICSEARCH_API_KEY:-}",
    },
    "metrics": {"address": "${ELASTIC_INGEST_METRICS_ADDRESS:-}"},
}
"""What runs when no configuration file is found (the same as the shipped config.yml)."""
_ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_HTTP_URL = TypeAdapter(AnyHttpUrl)


class SettingsError(ValueError):
    """A configuration file that cannot be used; `problems` lists each one with its path."""

    def __init__(self, source: str, problems: list[str]):
        self.problems = problems
        listing = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: {len(problems)} problem(s):\n{listing}")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ElasticsearchSettings(_Section):
    hosts: list[str] = Field(default_factory=lambda: ["http://127.0.0.1:9200"], min_length=1)
    api_key: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    ca_certs: str | None = None
    verify_certs: bool = True
    request_timeout: Annotated[float, Field(gt=0)] = 30.0

    @field_validator("api_key", "username", "password", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: Any) -> Any:
        """`${VAR:-}` of an unset variable: no credential, rather than an empty one."""
        return None if value == "" else value

    @field_validator("hosts")
    @classmethod
    def _urls(cls, hosts: list[str]) -> list[str]:
        for host in hosts:
            try:
                _HTTP_URL.validate_python(host)
            except ValidationError:
                raise ValueError(f"{host!r} is not an http(s) URL") from None
        return hosts


class BulkSettings(_Section):
    operations_per_request: Annotated[int, Field(ge=1, le=100_000)] = 500
    max_bytes_per_request: Annotated[int, Field(ge=1024)] = 10 * 1024 * 1024
    requests_in_flight: Annotated[int, Field(ge=1, le=64)] = 2
    max_retries: Annotated[int, Field(ge=0, le=20)] = 5
    retry_backoff_seconds: Annotated[float, Field(ge=0)] = 0.5


class ServiceSettings(_Section):
    poll_interval: Annotated[float, Field(gt=0)] = 30.0
    heartbeat_interval: Annotated[float, Field(gt=0)] = 2.0  # also how often job counters move
    max_concurrent_syncs: Annotated[int, Field(ge=1)] = 2
    stale_job_seconds: Annotated[float, Field(gt=0)] = 120.0
    # How long a job launched on a deployment may wait for a worker to start its flow run.
    launch_timeout: Annotated[float, Field(gt=0)] = 600.0
    max_failed_documents: Annotated[int, Field(ge=0)] = 100
    # How often a poll pass validates each connector's configuration and pings its source.
    check_interval: Annotated[float, Field(gt=0)] = 60.0
    # Launch syncs through the `sync/<service_type>` deployment when one exists (false: in-process).
    use_deployments: bool = True
    # The mass-delete guard: a sync that would delete more than this fraction of its index, and
    # more than this many documents, deletes nothing of that batch until released (README).
    delete_guard_fraction: Annotated[float, Field(gt=0, le=1)] = 0.5
    delete_guard_minimum: Annotated[int, Field(ge=0)] = 1000
    # Where every document a sync could not write is recorded (README "Rejected documents");
    # not a dot name: it is the user's to read, with the service key's content privileges.
    failures_index: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")] = (
        "elastic-ingest-failures"
    )
    # Also keep each failed document's body there (off: bodies may be large or sensitive).
    failures_keep_documents: bool = False


class ExtractionSettings(_Section):
    """Text extraction from binary files (PDF, Office, ...), when a connector's pipeline asks."""

    max_bytes: Annotated[int, Field(ge=1)] = 10 * 1024 * 1024  # larger files: metadata only
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0  # per file
    workers: Annotated[int, Field(ge=0)] = 0  # extractions at once; 0: one per CPU


class ProtocolSettings(_Section):
    connectors_index: str = ".elastic-connectors"
    jobs_index: str = ".elastic-connectors-sync-jobs"

    @field_validator("connectors_index", "jobs_index")
    @classmethod
    def _index_name(cls, name: str) -> str:
        problem = name_problem(name)
        if problem:
            raise ValueError(problem)
        return name


class MetricsSettings(_Section):
    """Prometheus metrics of the poll loop (README "Metrics"): off unless an address is given."""

    address: str = ""  # "127.0.0.1:9464"; empty: no endpoint

    @field_validator("address")
    @classmethod
    def _host_and_port(cls, address: str) -> str:
        host, _, port = address.rpartition(":")
        if address and not (host and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"expected HOST:PORT (e.g. 127.0.0.1:9464), got {address!r}")
        return address


class Settings(_Section):
    elasticsearch: ElasticsearchSettings = ElasticsearchSettings()
    bulk: BulkSettings = BulkSettings()
    service: ServiceSettings = ServiceSettings()
    protocol: ProtocolSettings = ProtocolSettings()
    extraction: ExtractionSettings = ExtractionSettings()
    metrics: MetricsSettings = MetricsSettings()
    # service type -> `package.module:Class`, besides (and before) the installed packages'
    # `elastic_ingest.sources` entry points, where the built-in sources are declared
    sources: dict[str, Annotated[str, Field(pattern=r"^[\w.]+:[\w.]+$")]] = Field(
        default_factory=dict
    )


def expand_env(value: Any, path: str, problems: list[str]) -> Any:
    """Replace `${VAR}` and `${VAR:-default}` in every string; an unset VAR is a problem."""
    if isinstance(value, dict):
        return {
            key: expand_env(item, f"{path}.{key}" if path else str(key), problems)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [expand_env(item, f"{path}[{i}]", problems) for i, item in enumerate(value)]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        name, default = match.group(1), match.group(2)
        if name in os.environ and os.environ[name] != "":
            return os.environ[name]
        if default is not None:
            return default
        problems.append(f"{path}: environment variable {name} is not set")
        return ""

    return _ENV_REFERENCE.sub(substitute, value)


def _location(loc: tuple) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        elif part not in ("function-after",) and not str(part).startswith("function-"):
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def _describe(error: dict) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "missing value"
    if kind == "string_pattern_mismatch":
        return f"expected 'package.module:Class', got {error.get('input')!r}"
    if message.startswith("Value error, "):
        return message.removeprefix("Value error, ")
    return f"{message} (got {error.get('input')!r})" if kind.endswith("_type") else message


def parse_settings(raw: Any, source: str = "config") -> Settings:
    """Validate a parsed YAML mapping; raise SettingsError listing every problem."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise SettingsError(source, ["(top level): expected a mapping of sections"])
    problems: list[str] = []
    expanded = expand_env(raw, "", problems)
    try:
        settings = Settings.model_validate(expanded)
    except ValidationError as error:
        reported = {problem.split(":")[0] for problem in problems}
        for item in error.errors():
            path = _location(item["loc"])
            if path not in reported:
                problems.append(f"{path}: {_describe(item)}")
        settings = None
    if problems:
        raise SettingsError(source, problems)
    return settings


def user_config_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config"
    return Path(base) / "elastic-ingest" / "config.yml"


def config_file(path: str | os.PathLike | None = None) -> Path | None:
    """Which file configures this process: the one given (`-c`), else $ELASTIC_INGEST_CONFIG,
    else ./config.yml, else the user's (~/.config/elastic-ingest/config.yml), else a checkout's
    own config.yml; None means the built-in defaults."""
    explicit = path or os.environ.get(CONFIG_VARIABLE)
    if explicit:
        return Path(explicit)
    for candidate in (Path.cwd() / "config.yml", user_config_file(), DEFAULT_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """Read and validate the configuration file `config_file(path)` names, or the built-in
    defaults when there is none."""
    file = config_file(path)
    if file is None:
        return parse_settings(BUILTIN_DEFAULTS, "built-in defaults")
    try:
        text = file.read_text()
    except OSError as error:
        raise SettingsError(str(file), [f"cannot read the file: {error.strerror}"]) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(error, "problem", None) or str(error)
        raise SettingsError(str(file), [f"{where}invalid YAML ({problem})"]) from None
    return parse_settings(raw, str(file))
