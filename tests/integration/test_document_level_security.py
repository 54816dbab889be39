"""Document-level security on the secured stack, proven as a search application would: each
user's API key (made by `elastic-ingest connector api-key`) finds exactly that user's documents."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elasticsearch import AsyncElasticsearch

from devstack import elasticsearch as stack_es
from elastic_ingest.connectors.access_control import acl_index
from elastic_ingest.connectors.poll import create_due_jobs

PROJECT = Path(__file__).resolve().parents[2]
PASSWD = "alice:x:51001:52001::/home/alice:/bin/sh\nbob:x:51002:52002::/home/bob:/bin/sh\n"
GROUP = "eng:x:52001:\nops:x:52002:\nstaff:x:52003:alice\n"
# name -> (uid, gid, mode): alice holds eng and staff, bob holds ops
FILES = {
    "alice-only.txt": (51001, 52001, 0o600),
    "eng.txt": (0, 52001, 0o040),
    "bob-only.txt": (51002, 52002, 0o600),
    "staff.txt": (51002, 52003, 0o640),
    "public.txt": (0, 0, 0o644),
    "nobody.txt": (51001, 52001, 0o000),
}


@pytest.fixture
def folder(tmp_path):
    accounts = tmp_path / "accounts"
    accounts.mkdir()
    (accounts / "passwd").write_text(PASSWD)
    (accounts / "group").write_text(GROUP)
    files = tmp_path / "files"
    files.mkdir()
    for name, (uid, gid, mode) in FILES.items():
        path = files / name
        path.write_text(f"the text of {name}\n")
        os.chown(path, uid, gid)
        path.chmod(mode)
    return files, accounts


def api_key_for(harness, connector_id, user, check=True):
    """`elastic-ingest connector api-key`, made by the stack's superuser (a user: an API key
    may not create keys with privileges)."""
    name, password = stack_es.superuser()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "elastic_ingest.app.cli",
            "-c",
            str(harness.config_file),
            "connector",
            "api-key",
            connector_id,
            "--user",
            user,
            "--es-username",
            name,
            "--expiration",
            "1h",
        ],
        capture_output=True,
        text=True,
        cwd=PROJECT,
        env={**os.environ, "ELASTICSEARCH_PASSWORD": password},
        timeout=120,
    )
    if check:
        assert result.returncode == 0, result.stderr
    return result


async def visible(index, api_key=None):
    """The ids a search with this key (the superuser's without one) finds in the index."""
    url, superuser = os.environ["ELASTICSEARCH_URL"], stack_es.superuser()
    async with AsyncElasticsearch(url, basic_auth=superuser) as admin:
        await admin.indices.refresh(index=index)
    auth = {"api_key": api_key} if api_key else {"basic_auth": superuser}
    async with AsyncElasticsearch(url, **auth) as client:
        response = await client.search(index=index, size=100, query={"match_all": {}})
    return {hit["_id"] for hit in response["hits"]["hits"]}


async def test_each_users_key_finds_exactly_the_files_that_user_may_read(
    es, harness, index_name, folder
):
    files, accounts = folder
    connector = await harness.create(
        "directory",
        index_name,
        path=str(files),
        use_document_level_security=True,
        passwd_file=str(accounts / "passwd"),
        group_file=str(accounts / "group"),
    )
    await harness.publish()
    assert (await harness.sync(connector)).status == "completed"
    synced = await harness.sync(connector, job_type="access_control")
    assert synced.status == "completed", synced.error
    assert synced.job.doc["connector"]["index_name"] == acl_index(index_name)
    connector_doc = (await harness.connectors.get(connector)).doc
    assert connector_doc["last_access_control_sync_status"] == "completed"
    assert connector_doc["features"]["document_level_security"] == {"enabled": True}

    source = (await es.get(index=index_name, id="eng.txt"))["_source"]
    assert source["_allow_access_control"] == ["group:eng"]
    identities = await visible(acl_index(index_name))
    assert identities == {"alice", "bob"}

    alice = api_key_for(harness, connector, "alice").stdout.strip()
    bob = api_key_for(harness, connector, "bob").stdout.strip()
    assert await visible(index_name, alice) == {
        "alice-only.txt",
        "eng.txt",
        "staff.txt",
        "public.txt",
    }
    assert await visible(index_name, bob) == {"bob-only.txt", "staff.txt", "public.txt"}
    assert "nobody.txt" in await visible(index_name)  # the superuser sees everything

    # a file changes group, and alice leaves staff while bob joins it
    os.chown(files / "bob-only.txt", 51002, 52001)
    (files / "bob-only.txt").chmod(0o640)
    (accounts / "group").write_text("eng:x:52001:\nops:x:52002:\nstaff:x:52003:bob\n")
    assert (await harness.sync(connector)).status == "completed"
    assert (await harness.sync(connector, job_type="access_control")).status == "completed"

    # the file's new readers show through the keys already issued ...
    assert "bob-only.txt" in await visible(index_name, alice)
    # ... and a key issued after the access-control sync holds the new memberships
    alice, bob = (api_key_for(harness, connector, u).stdout.strip() for u in ("alice", "bob"))
    assert await visible(index_name, alice) == {
        "alice-only.txt",
        "eng.txt",
        "bob-only.txt",
        "public.txt",
    }
    assert await visible(index_name, bob) == {"bob-only.txt", "staff.txt", "public.txt"}


async def test_documents_carry_no_identities_while_security_is_off(es, harness, index_name, folder):
    files, accounts = folder
    connector = await harness.create("directory", index_name, path=str(files))
    await harness.publish()
    assert (await harness.sync(connector)).status == "completed"
    source = (await es.get(index=index_name, id="eng.txt"))["_source"]
    assert "_allow_access_control" not in source

    synced = await harness.sync(connector, job_type="access_control")
    assert synced.status == "error"
    assert "document level security is off" in synced.error

    refused = api_key_for(harness, connector, "alice", check=False)
    assert refused.returncode == 2
    assert "document level security is off" in refused.stderr
    assert "Traceback" not in refused.stderr

    # turned on: every document is written again, with its identities
    await harness.configure(
        connector,
        use_document_level_security=True,
        passwd_file=str(accounts / "passwd"),
        group_file=str(accounts / "group"),
    )
    await harness.publish()
    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.updated == len(FILES)
    source = (await es.get(index=index_name, id="eng.txt"))["_source"]
    assert source["_allow_access_control"] == ["group:eng"]


async def test_an_unknown_user_gets_a_clear_error_not_a_key(harness, index_name, folder):
    files, accounts = folder
    connector = await harness.create(
        "directory",
        index_name,
        path=str(files),
        use_document_level_security=True,
        passwd_file=str(accounts / "passwd"),
        group_file=str(accounts / "group"),
    )
    await harness.publish()
    await harness.sync(connector)
    await harness.sync(connector, job_type="access_control")
    refused = api_key_for(harness, connector, "mallory", check=False)
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines() == [
        f"error: user 'mallory' is unknown to connector {connector}: no identity document in "
        f"{acl_index(index_name)} (run `elastic-ingest connector sync {connector} --type "
        "access_control` if the user was added since)"
    ]


async def test_mongodb_identities_come_from_a_field_and_a_users_collection(
    es, harness, index_name, mongo_collection
):
    users = mongo_collection.database[f"{mongo_collection.name}_users"]
    await mongo_collection.insert_many(
        [
            {"_id": "m1", "title": "for alice", "allowed": ["alice"]},
            {"_id": "m2", "title": "for eng", "allowed": ["group:eng"]},
            {"_id": "m3", "title": "for bob", "allowed": "bob"},
            {"_id": "m4", "title": "for nobody"},
        ]
    )
    await users.insert_many([{"_id": "alice", "groups": ["eng"]}, {"_id": "bob", "groups": []}])
    try:
        connector = await harness.create(
            "mongodb",
            index_name,
            host=os.environ["MONGODB_URL"],
            database=mongo_collection.database.name,
            collection=mongo_collection.name,
            use_document_level_security=True,
            access_control_field="allowed",
            users_collection=users.name,
        )
        await harness.publish()
        assert (await harness.sync(connector)).status == "completed"
        synced = await harness.sync(connector, job_type="access_control")
        assert synced.status == "completed", synced.error
        alice = api_key_for(harness, connector, "alice").stdout.strip()
        bob = api_key_for(harness, connector, "bob").stdout.strip()
        assert await visible(index_name, alice) == {"m1", "m2"}
        assert await visible(index_name, bob) == {"m3"}
        assert await visible(index_name) == {"m1", "m2", "m3", "m4"}

        # a document's identities change, and bob joins eng
        await mongo_collection.update_one({"_id": "m1"}, {"$set": {"allowed": ["bob"]}})
        await users.update_one({"_id": "bob"}, {"$set": {"groups": ["eng"]}})
        assert (await harness.sync(connector)).status == "completed"
        assert (await harness.sync(connector, job_type="access_control")).status == "completed"
        alice = api_key_for(harness, connector, "alice").stdout.strip()
        bob = api_key_for(harness, connector, "bob").stdout.strip()
        assert await visible(index_name, alice) == {"m2"}
        assert await visible(index_name, bob) == {"m1", "m2", "m3"}
    finally:
        await users.drop()


async def test_s3_refuses_document_level_security_with_a_clear_message(harness, index_name):
    connector = await harness.create(
        "s3",
        index_name,
        buckets=["no-such-bucket"],
        endpoint_url=os.environ["S3_ENDPOINT_URL"],
        use_document_level_security=True,
    )
    await harness.publish()
    doc = (await harness.connectors.get(connector)).doc
    assert doc["features"]["document_level_security"] == {"enabled": False}
    assert doc["status"] == "error"
    assert "S3" in doc["error"] and "does not support document level security" in doc["error"]


async def test_access_control_syncs_are_scheduled_only_with_security_on(
    harness, index_name, folder
):
    files, accounts = folder
    hour_slots = {"enabled": True, "interval": "0 0 * * * ?"}
    two_hours_ago = (datetime.now(UTC) - timedelta(hours=2, minutes=30)).isoformat()
    ids = {}
    for dls in (True, False):
        ids[dls] = await harness.create(
            "directory",
            f"{index_name}-{str(dls).lower()}",
            path=str(files),
            use_document_level_security=dls,
            passwd_file=str(accounts / "passwd"),
            group_file=str(accounts / "group"),
        )
        await harness.connectors.patch(
            ids[dls],
            {
                "scheduling": {"access_control": hour_slots},
                "last_access_control_sync_scheduled_at": two_hours_ago,
            },
        )
    await harness.publish()
    scheduled = (await create_due_jobs(harness.connectors, harness.jobs)).scheduled
    assert len(scheduled) == 1
    job = await harness.jobs.get(scheduled[0])
    assert job.connector_id == ids[True] and job.job_type == "access_control"
    assert job.doc["trigger_method"] == "scheduled"
    slot = (await harness.connectors.get(ids[True])).doc["last_access_control_sync_scheduled_at"]
    assert slot > two_hours_ago
    assert (await create_due_jobs(harness.connectors, harness.jobs)).scheduled == []
