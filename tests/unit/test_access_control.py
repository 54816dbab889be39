"""Identities, identity documents and POSIX accounts: the pure parts of document-level security."""

import os
import stat

import pytest

from elastic_ingest.connectors.access_control import (
    User,
    acl_index,
    content_index,
    dls_enabled,
    identities,
    identity_document,
    restriction_query,
)
from elastic_ingest.connectors.sources.posix_accounts import Accounts, AccountsError


def test_identities_keep_prefixed_values_and_read_bare_names_as_users():
    assert identities(["bob", "group:eng", "everyone", " alice ", "user:bob", None, 3, ""]) == [
        "everyone",
        "group:eng",
        "user:alice",
        "user:bob",
    ]
    assert identities("carol") == ["user:carol"]
    assert identities(None) == [] and identities({"a": 1}) == []


def test_the_dls_toggle_reads_as_kibana_writes_it():
    assert dls_enabled({"use_document_level_security": True})
    assert dls_enabled({"use_document_level_security": "true"})
    assert not dls_enabled({"use_document_level_security": False})
    assert not dls_enabled({})


def test_identities_index_names_work_both_ways():
    assert acl_index("docs") == ".search-acl-filter-docs"
    assert acl_index(".search-acl-filter-docs") == ".search-acl-filter-docs"  # a Kibana job's
    assert content_index(".search-acl-filter-docs") == content_index("docs") == "docs"


def test_an_identity_document_renders_to_the_users_restriction():
    user = User("alice", {"username": "alice"}, ["user:alice", "group:eng", "group:eng"])
    document = identity_document(user, "_allow_access_control.enum")
    assert document["_id"] == "alice" and document["identity"] == {"username": "alice"}
    assert document["query"]["template"]["params"] == {
        "access_control": ["group:eng", "user:alice"]
    }
    assert restriction_query(document) == {
        "bool": {"filter": [{"terms": {"_allow_access_control.enum": ["group:eng", "user:alice"]}}]}
    }
    changed = identity_document(User("alice", {"username": "alice"}, ["user:alice"]), "f")
    assert changed["_timestamp"] != document["_timestamp"]
    assert identity_document(user, "_allow_access_control.enum") == document  # stable


def test_a_document_without_a_template_is_refused():
    with pytest.raises(ValueError, match="no access-control query template"):
        restriction_query({"identity": {}})


@pytest.fixture
def accounts(tmp_path):
    passwd = tmp_path / "passwd"
    group = tmp_path / "group"
    passwd.write_text("# users\nalice:x:1001:2001::/h:/bin/sh\nbob:x:1002:2002::/h:/bin/sh\n")
    group.write_text("eng:x:2001:\nops:x:2002:\nstaff:x:2003:alice,bob\n")
    return Accounts.from_files(str(passwd), str(group))


def _stat(uid, gid, mode):
    return os.stat_result((stat.S_IFREG | mode, 0, 0, 1, uid, gid, 0, 0, 0, 0))


def test_a_files_readers_follow_its_owner_group_and_mode(accounts):
    assert accounts.file_identities(_stat(1001, 2001, 0o640)) == ["user:alice", "group:eng"]
    assert accounts.file_identities(_stat(1002, 2003, 0o604)) == ["user:bob", "everyone"]
    assert accounts.file_identities(_stat(1001, 2001, 0o000)) == []
    assert accounts.file_identities(_stat(4242, 4343, 0o440)) == ["user:4242", "group:4343"]


def test_users_hold_their_own_primary_and_member_groups(accounts):
    users = {user.id: user for user in accounts.users_with_groups()}
    assert users["alice"].access_control == ["user:alice", "group:eng", "group:staff", "everyone"]
    assert users["bob"].identity == {"username": "bob", "uid": 1002}
    assert users["bob"].access_control == ["user:bob", "group:ops", "group:staff", "everyone"]


def test_a_broken_accounts_file_is_named_with_its_line(tmp_path):
    passwd = tmp_path / "passwd"
    passwd.write_text("alice:x:1001:2001::/h:/bin/sh\nbob:x:oops:2002::/h:/bin/sh\n")
    (tmp_path / "group").write_text("")
    with pytest.raises(AccountsError, match=r"passwd:2: expected a numeric id, got 'oops'"):
        Accounts.from_files(str(passwd), str(tmp_path / "group"))
    with pytest.raises(AccountsError, match="cannot read .*missing"):
        Accounts.from_files(str(tmp_path / "missing"), str(tmp_path / "group"))
