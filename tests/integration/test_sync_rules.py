"""Sync rules written as Kibana writes them, on the real stack: a poll pass validates and
activates the draft, basic rules filter in the framework, advanced rules are pushed down into
MongoDB, S3 and folder listings, and what a rule now excludes leaves the index."""

import json
import os
import uuid

from tests.integration.test_cli import cli
from tests.integration.test_s3_source import config_for, make_bucket
from tests.integration.test_sync_kinds import indexed


def rule(policy, field, operator, value, order=1):
    return {
        "id": uuid.uuid4().hex[:8],
        "policy": policy,
        "field": field,
        "rule": operator,
        "value": value,
        "order": order,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
    }


def write_tree(root, files):
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


async def test_folder_rules_are_validated_activated_applied_and_followed_when_they_change(
    es, harness, index_name, tmp_path
):
    write_tree(
        tmp_path / "tree",
        {
            "docs/a.md": "hello",
            "docs/b.log": "noise",
            "docs/secret.md": "classified plans",
            "src/c.py": "print()",
        },
    )
    connector = await harness.create("directory", index_name, path=str(tmp_path / "tree"))
    skip_logs = rule("exclude", "extension", "equals", ".log")
    entry = await harness.edit_rules(connector, [skip_logs], advanced={"include": ["docs/*"]})
    assert entry["draft"]["validation"] == {"state": "valid", "errors": []}
    assert entry["active"] == entry["draft"]

    synced = await harness.sync(connector)
    assert synced.status == "completed"
    assert set(await indexed(es, index_name)) == {"docs/a.md", "docs/secret.md"}
    job_rules = synced.job.doc["connector"]["filtering"]  # the active rules, as Elastic's jobs
    assert job_rules["advanced_snippet"]["value"] == {"include": ["docs/*"]}
    assert synced.job.doc["metadata"]["filtered_document_count"] == 1
    assert synced.job.doc["metadata"]["filtered_by_rule"] == {skip_logs["id"]: 1}

    # A rule on the file's text: decided only once the file is read, so unchanged files are
    # read again under the new rules, and the one it excludes leaves the index.
    secret = rule("exclude", "body", "contains", "classified", order=2)
    await harness.edit_rules(connector, [skip_logs, secret], advanced={"include": ["docs/*"]})
    synced = await harness.sync(connector)
    assert synced.status == "completed" and synced.deleted == 1
    assert set(await indexed(es, index_name)) == {"docs/a.md"}

    await harness.edit_rules(connector, [skip_logs, secret])  # advanced rules removed
    synced = await harness.sync(connector)
    assert set(await indexed(es, index_name)) == {"docs/a.md", "src/c.py"}
    assert synced.created == 1 and synced.deleted == 0


async def test_an_invalid_draft_is_shown_invalid_and_invalid_active_rules_never_run(
    es, harness, index_name, tmp_path
):
    write_tree(tmp_path / "tree", {"a.txt": "a"})
    connector = await harness.create("directory", index_name, path=str(tmp_path / "tree"))
    broken = rule("include", "path", "regex", "(")
    entry = await harness.edit_rules(connector, [broken], advanced={"paths": ["x"]})
    validation = entry["draft"]["validation"]
    assert validation["state"] == "invalid"
    assert [error["ids"] for error in validation["errors"]] == [
        [broken["id"]],
        ["advanced_snippet"],
    ]
    assert "not a valid regex" in validation["errors"][0]["messages"][0]
    assert "advanced rules.paths is not supported" in validation["errors"][1]["messages"][0]
    assert entry["active"]["rules"][1:] == []  # the active rules did not change

    # Another tool wrote invalid rules straight into `active`: the job refuses to run them.
    filtering = (await harness.connectors.get(connector)).doc["filtering"]
    filtering[0]["active"] = entry["draft"]
    await harness.connectors.patch(connector, {"filtering": filtering})
    synced = await harness.sync(connector)
    assert synced.status == "error"
    assert "invalid sync rules" in synced.error and "not a valid regex" in synced.error
    assert not await es.indices.exists(index=index_name)  # nothing was written


async def test_rules_on_lazy_documents_and_in_incremental_syncs(es, harness, index_name):
    def documents(version="v1", odd_n=None):
        return [
            {"_id": f"d{i}", "n": odd_n if (odd_n is not None and i % 2) else i,
             "_timestamp": version if (odd_n is None or i % 2) else "v1"}
            for i in range(6)
        ]  # fmt: skip

    connector = await harness.create("memory", index_name, documents=documents(), lazy=True)
    await harness.edit_rules(connector, [rule("exclude", "n", ">", "3")])
    synced = await harness.sync(connector)
    assert set(await indexed(es, index_name)) == {"d0", "d1", "d2", "d3"}
    assert synced.fetched == 6  # the stubs lack `n`: each was fetched, then decided

    # New rules, same documents: the index follows without a change at the source.
    await harness.edit_rules(connector, [rule("exclude", "n", "<", "2")])
    synced = await harness.sync(connector, job_type="incremental")
    assert synced.job.doc["metadata"]["ran_as"] == "full"
    assert "sync rules changed" in synced.job.doc["metadata"]["ran_as_reason"]
    assert set(await indexed(es, index_name)) == {"d2", "d3", "d4", "d5"}

    # An incremental sync deletes a document an update made excluded, and nothing else.
    await harness.configure(connector, documents=documents("v2", odd_n=0))
    synced = await harness.sync(connector, job_type="incremental")
    assert synced.status == "completed" and synced.job.doc["metadata"]["ran_as"] == "incremental"
    assert set(await indexed(es, index_name)) == {"d2", "d4"}


async def test_mongodb_advanced_rules_are_pushed_down_and_basic_rules_filter(
    es, harness, index_name, mongo_collection
):
    await mongo_collection.insert_many(
        [{"_id": i, "kind": "book" if i % 2 else "film", "year": 2000 + i} for i in range(10)]
    )
    connector = await harness.create(
        "mongodb",
        index_name,
        host=os.environ["MONGODB_URL"],
        database=mongo_collection.database.name,
        collection=mongo_collection.name,
    )
    entry = await harness.edit_rules(
        connector,
        [rule("exclude", "year", "<", "2004")],
        advanced={"find": {"filter": {"kind": "book"}}},
    )
    assert entry["active"]["validation"]["state"] == "valid"
    synced = await harness.sync(connector)
    assert set(await indexed(es, index_name)) == {"5", "7", "9"}
    assert synced.job.doc["metadata"]["filtered_document_count"] == 2  # 1 and 3

    await harness.edit_rules(
        connector, advanced={"aggregate": {"pipeline": [{"$match": {"year": {"$gte": 2008}}}]}}
    )
    synced = await harness.sync(connector)
    assert set(await indexed(es, index_name)) == {"8", "9"}
    assert synced.deleted == 2


async def test_s3_advanced_rules_choose_buckets_prefixes_and_extensions(
    es, harness, index_name, s3
):
    first = await make_bucket(s3, {"docs/a.txt": b"a", "docs/b.pdf": b"%PDF", "img/c.txt": b"c"})
    second = await make_bucket(s3, {"x.txt": b"x", "y.md": b"y"})
    connector = await harness.create("s3", index_name, **config_for(first))
    await harness.edit_rules(
        connector,
        [rule("exclude", "key", "starts_with", "y")],
        advanced=[
            {"bucket": first, "prefix": "docs/", "extension": [".txt"]},
            {"bucket": first, "prefix": "docs/", "extension": ["txt"]},  # overlaps: read once
            {"bucket": second},
        ],
    )
    synced = await harness.sync(connector)
    assert synced.status == "completed"
    assert set(await indexed(es, index_name)) == {f"{first}/docs/a.txt", f"{second}/x.txt"}
    assert synced.created == 2


async def test_the_cli_shows_edits_validates_and_activates_rules(harness, index_name, tmp_path):
    (tmp_path / "tree").mkdir()
    config_file, index = str(harness.config_file), index_name
    created = cli(config_file, "connector", "create", "--service-type", "directory",
                  "--index-name", index, "--set", f"path={tmp_path / 'tree'}")  # fmt: skip
    connector = created.stdout.strip()

    added = cli(config_file, "connector", "rules", connector, "--exclude", "extension", "equals",
                ".log", "--include", "size", ">", "0")  # fmt: skip
    assert "sync rules valid and active (2 basic rule(s), advanced rules: none)" in added.stdout
    advanced = tmp_path / "advanced.json"
    advanced.write_text('{"include": ["docs/*"]}')
    cli(config_file, "connector", "rules", connector, "--set-advanced", str(advanced))
    shown = json.loads(cli(config_file, "connector", "rules", connector, "-o", "json").stdout)
    active = shown["active"]
    assert [(r["policy"], r["field"], r["rule"], r["value"]) for r in active["rules"][1:]] == [
        ("exclude", "extension", "equals", ".log"),
        ("include", "size", ">", "0"),
    ]
    assert active["advanced_snippet"]["value"] == {"include": ["docs/*"]}

    refused = cli(config_file, "connector", "rules", connector, "--include", "path", "regex", "(",
                  check=False)  # fmt: skip
    assert refused.returncode == 1
    assert (
        "invalid and was not activated" in refused.stderr and "not a valid regex" in refused.stderr
    )
    text = cli(config_file, "connector", "rules", connector).stdout
    assert "active: valid (2 basic rule(s), advanced rules: yes)" in text
    assert "draft: invalid (3 basic rule(s)" in text and "error: rule" in text

    cleared = cli(config_file, "connector", "rules", connector, "--clear", "--clear-advanced")
    assert "valid and active (0 basic rule(s), advanced rules: none)" in cleared.stdout


async def test_a_rule_on_a_field_the_source_never_has_is_flagged(harness, index_name, tmp_path):
    """S3 objects have a `key`, not an `extension`: such a rule is valid but matches nothing, so
    the CLI and the poll pass (what Kibana shows) both say so, naming the fields there are."""
    config_file = str(harness.config_file)
    values = ["--set", "buckets=b1", "--set", "endpoint_url=http://127.0.0.1:1"]
    created = cli(config_file, "connector", "create", "--service-type", "s3", "--index-name",
                  index_name, *values)  # fmt: skip
    connector = created.stdout.strip()
    flagged = cli(config_file, "connector", "rules", connector, "--exclude", "extension",
                  "equals", ".log", "--exclude", "key", "ends_with", ".log")  # fmt: skip
    assert "sync rules valid and active (2 basic rule(s)" in flagged.stdout
    warnings = [line for line in flagged.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "no field 'extension'" in warnings[0]
    assert "key" in warnings[0] and "last_modified" in warnings[0]

    rules = [rule("exclude", "colour", "equals", "red"), rule("include", "body", "contains", "x")]
    entry = await harness.edit_rules(connector, rules)
    assert entry["draft"]["validation"]["state"] == "valid" and entry["active"]["rules"]
    [warning] = entry["draft"]["validation"]["warnings"]
    assert "no field 'colour'" in warning["messages"][0]
