"""elastic-ingest under its own name: `elastic_ingest.connectors`, `.flows`, `.tasks`, `.app`,
`.deployments`, so an installed copy never collides with a Prefect project's own `flows/`.

Installed, those packages sit in this directory. In a checkout they stay at the top of the
repository (`python -m flows.poll` still runs), and this package reaches them from there.
"""

from pathlib import Path

_here = Path(__file__).resolve().parent
if not (_here / "connectors").is_dir() and (_here.parent / "connectors" / "__init__.py").is_file():
    __path__.append(str(_here.parent))  # a checkout: the packages are the repository's folders
