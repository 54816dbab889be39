"""The stack's Elasticsearch as the service reaches it: its URL and the least-privilege API key
that `make stack` created (README "Security"), never the superuser."""

import os


def elasticsearch_section() -> dict:
    """The `elasticsearch:` section of a test's configuration."""
    return {
        "hosts": [os.environ["ELASTICSEARCH_URL"]],
        "api_key": os.environ["ELASTICSEARCH_API_KEY"],
    }
