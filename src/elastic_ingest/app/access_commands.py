"""`connector api-key`: a search key restricted to the documents one user may see."""

from __future__ import annotations

import os
import sys

from pydantic import SecretStr

from elastic_ingest.app.context import Context, RuntimeFailure, UsageError, get_connector
from elastic_ingest.connectors.access_control import acl_index, restriction_query
from elastic_ingest.connectors.es.access_control import (
    KeyRefused,
    create_restricted_key,
    identity_of,
)
from elastic_ingest.connectors.es.client import create_client

PASSWORD_VARIABLE = "ELASTICSEARCH_PASSWORD"


async def create_search_key(args, ctx: Context) -> None:
    """Print an API key that searches the connector's index as `--user` may: built from the
    user's identity document, which the last access-control sync wrote."""
    connector = await get_connector(ctx.connectors, args.connector_id)
    if not connector.dls_on:
        raise UsageError(
            f"connector {connector.id}: document level security is off (set "
            "use_document_level_security=true and run an access-control sync first)"
        )
    identities = acl_index(connector.index_name)
    identity = await identity_of(ctx.es, identities, args.user)
    if identity is None:
        raise UsageError(
            f"user {args.user!r} is unknown to connector {connector.id}: no identity document "
            f"in {identities} (run `elastic-ingest connector sync {connector.id} --type "
            "access_control` if the user was added since)"
        )
    try:
        query = restriction_query(identity)
    except ValueError as error:
        raise RuntimeFailure(f"user {args.user!r} in {identities}: {error}") from None
    maker = create_client(_key_maker_settings(args, ctx))
    try:
        key = await create_restricted_key(
            maker,
            name=f"{connector.index_name}-{args.user}",
            index=connector.index_name,
            query=query,
            expiration=args.expiration,
            metadata={"connector_id": connector.id, "user": args.user, "by": "elastic-ingest"},
        )
    except KeyRefused as error:
        raise RuntimeFailure(
            f"Elasticsearch refused to create the key ({error}); "
            "the user creating keys needs manage_own_api_key and read on "
            f"{connector.index_name}"
        ) from None
    finally:
        await maker.close()
    expires = key.get("expiration")
    print(
        f"search key {key['id']} for {args.user!r} on index {connector.index_name}, "
        f"expires in {args.expiration}" + (f" (epoch ms {expires})" if expires else ""),
        file=sys.stderr,
    )
    ctx.out(key["encoded"])


def _key_maker_settings(args, ctx: Context):
    """Elasticsearch does not let an API key create keys with privileges: the key is made
    with a user's credentials (`--es-username` and $ELASTICSEARCH_PASSWORD, or the config's)."""
    configured = ctx.settings.elasticsearch
    username = args.es_username or configured.username
    password = os.environ.get(PASSWORD_VARIABLE) if args.es_username else None
    if args.es_username and not password:
        raise UsageError(f"--es-username {args.es_username}: set {PASSWORD_VARIABLE} too")
    if not username or not (password or configured.password):
        raise UsageError(
            "a search key must be created by a user, not by an API key: pass --es-username "
            f"NAME and set {PASSWORD_VARIABLE} (a user with manage_own_api_key and read on the "
            "connector's index)"
        )
    return configured.model_copy(
        update={
            "api_key": None,
            "username": username,
            "password": SecretStr(password) if password else configured.password,
        }
    )
