"""A sync process builds about eleven Prefect API clients (flow run, logs, events, leases, ...),
and Prefect 3.9 loads a whole CA bundle into a new SSL context for each one, even for a plain
`http://` API whose connections never use it: ~23 ms of CPU each, about a third of a small sync's
cost in a warm worker (PrefectHQ/prefect#19106 would let clients share one context).

For a plain-HTTP API, the fork server points `PREFECT_API_SSL_CERT_FILE` at a file holding one
CA certificate instead (0.3 ms to load). Prefect reads that setting only for its own API, so
nothing else changes; an `https://` API, a cert file of the user's own, or skipped verification
are left exactly as they are.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import certifi

HEADER = """\
Loaded by Prefect's API clients in elastic-ingest worker's sync processes. The Prefect API is
plain http, so no certificate here is ever used to verify a connection: this is the smallest
file OpenSSL accepts (one CA, copied from certifi's bundle), so each client loads it in 0.3 ms
instead of the whole bundle in ~23 ms. See elastic_ingest/workers/api_ca.py.
"""
SETTING = "PREFECT_API_SSL_CERT_FILE"
END = "-----END CERTIFICATE-----"


def unused_ca_file() -> Path | None:
    """The one-CA file, written once per user (atomically: workers may start side by side);
    None where it cannot be written (a read-only temporary folder): runs then load the bundle."""
    folder = Path(tempfile.gettempdir()) / f"elastic-ingest-{os.getuid()}"
    path = folder / "plain-http-api-ca.pem"
    try:
        folder.mkdir(mode=0o700, exist_ok=True)
        if not path.exists():
            bundle = Path(certifi.where()).read_text()
            begin = bundle.index("-----BEGIN CERTIFICATE-----")
            first = bundle[begin : bundle.index(END) + len(END)]
            with tempfile.NamedTemporaryFile("w", dir=folder, delete=False) as out:
                out.write(f"{HEADER}\n{first}\n")
            os.replace(out.name, path)
    except OSError:
        return None
    return path


def lighter_api_ca(env: Mapping[str, str], ca_file: Path | None) -> dict[str, str]:
    """`env`'s additions for a sync process: the one-CA file when the API is plain http and the
    user chose nothing about its TLS; nothing otherwise."""
    api = env.get("PREFECT_API_URL", "")
    skip_verify = env.get("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "").lower() in ("1", "true")
    if ca_file is None or not api.startswith("http://") or env.get(SETTING) or skip_verify:
        return {}
    return {SETTING: str(ca_file)}
