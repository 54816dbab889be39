"""Sync rules without services: how basic rules decide, how drafts are validated and promoted,
and the advanced-rule checks each built-in source makes."""

import pytest

from elastic_ingest.connectors.sources.directory import DirectoryDataSource
from elastic_ingest.connectors.sources.mongo import MongoDataSource
from elastic_ingest.connectors.sources.s3 import S3DataSource
from elastic_ingest.connectors.sync_rules import (
    UNDECIDED,
    SyncRules,
    basic_rule_problems,
    default_filtering,
    domain_filter,
    reviewed_filtering,
    split_cursor,
    with_framework,
)


def rule(rule_id, policy, field, operator, value, order):
    return {"id": rule_id, "policy": policy, "field": field, "rule": operator, "value": value,
            "order": order}  # fmt: skip


def rules_of(*rules, advanced=None):
    default = rule("DEFAULT", "include", "_", "regex", ".*", 0)
    return SyncRules.of({"rules": [default, *rules], "advanced_snippet": {"value": advanced}})


def decision(rules, document, complete=True):
    matched = rules.first_match(document, complete)
    if matched is UNDECIDED:
        return "undecided"
    return "exclude" if matched is not None and matched.policy == "exclude" else "include"


def test_rules_apply_in_order_and_the_first_match_decides():
    rules = rules_of(
        rule("b", "exclude", "path", "starts_with", "docs/", 2),
        rule("a", "include", "path", "ends_with", ".md", 1),
    )
    assert decision(rules, {"path": "docs/readme.md"}) == "include"  # order 1 wins
    assert decision(rules, {"path": "docs/notes.txt"}) == "exclude"
    assert decision(rules, {"path": "src/main.py"}) == "include"  # no match includes
    assert decision(rules, {"other": 1}) == "include"  # a missing field never matches


@pytest.mark.parametrize(
    ("operator", "value", "document_value", "matches"),
    [
        ("equals", "10", 10, True),  # numbers compare as numbers
        ("equals", "10.0", 10, True),
        (">", "9", 10, True),
        ("<", "9", 10, False),
        (">", "abc", 10, False),  # not a number: no match, no error
        ("equals", "yes", True, True),
        ("equals", "false", True, False),
        (">", "2024-01-01", "2024-06-01T00:00:00+00:00", True),  # dates compare as dates
        ("<", "2024-01-01T00:00:00Z", "2023-12-31T23:00:00+00:00", True),
        ("contains", "ell", "hello", True),
        ("regex", "h.l+o$", "hello", True),
        ("regex", "ello", "hello", False),  # anchored at the start, as Elastic's engine is
        ("equals", "b", ["a", "b"], True),  # a list matches when an item does
    ],
)
def test_values_are_compared_as_the_document_value_type(operator, value, document_value, matches):
    rules = rules_of(rule("r", "exclude", "f", operator, value, 1))
    assert (decision(rules, {"f": document_value}) == "exclude") is matches


def test_dotted_fields_reach_into_objects_and_stubs_wait_for_their_fields():
    rules = rules_of(rule("r", "exclude", "meta.author", "equals", "bob", 1))
    assert decision(rules, {"meta": {"author": "bob"}}) == "exclude"
    assert decision(rules, {"_id": "x"}, complete=False) == "undecided"
    assert decision(rules, {"_id": "x"}, complete=True) == "include"


def test_the_fingerprint_follows_the_rules():
    one = rules_of(rule("r", "exclude", "f", "equals", "1", 1))
    assert one.fingerprint == rules_of(rule("r", "exclude", "f", "equals", "1", 1)).fingerprint
    assert one.fingerprint != rules_of(rule("r", "exclude", "f", "equals", "2", 1)).fingerprint
    assert one.fingerprint != rules_of(rule("r", "exclude", "f", "equals", "1", 1),
                                       advanced={"include": ["*"]}).fingerprint  # fmt: skip
    assert rules_of().fingerprint == ""  # the default rule alone is no rules at all


def test_the_cursor_carries_the_rules_fingerprint_apart_from_the_sources_part():
    stored = with_framework({"since": "t"}, {"sync_rules": "abc", "content_settings": ""})
    assert stored == {"since": "t", "sync_rules": "abc"}
    assert split_cursor(stored) == ({"since": "t"}, {"sync_rules": "abc", "content_settings": ""})
    assert with_framework({"since": "t"}, {"sync_rules": ""}) == {"since": "t"}
    assert split_cursor(with_framework(None, {"sync_rules": "abc"}))[0] is None
    assert split_cursor(None) == (None, {})


def test_bad_basic_rules_are_named_with_every_problem():
    errors = basic_rule_problems(
        [
            rule("ok", "include", "f", "equals", "x", 1),
            rule("bad", "maybe", "", "regex", "(", 2),
            rule("dup", "include", "f", "equals", "x", 3),
        ]
    )
    assert [e["ids"] for e in errors] == [["bad"], ["dup"]]
    bad = " ".join(errors[0]["messages"])
    assert "policy must be include or exclude" in bad
    assert "field is empty" in bad and "not a valid regex" in bad
    assert "same rule as ok" in errors[1]["messages"][0]


def edited(filtering, rules=(), advanced=None):
    draft = domain_filter(filtering, "draft")
    draft["rules"] += list(rules)
    draft["advanced_snippet"]["value"] = advanced or {}
    draft["validation"] = {"state": "edited", "errors": []}
    return filtering


def test_a_valid_draft_is_marked_valid_and_becomes_active():
    filtering = edited(default_filtering("t"), [rule("r", "exclude", "f", "equals", "1", 1)])
    reviewed = reviewed_filtering(filtering, DirectoryDataSource.advanced_rules_problems)
    assert domain_filter(reviewed, "draft")["validation"] == {"state": "valid", "errors": []}
    assert domain_filter(reviewed, "active") == domain_filter(reviewed, "draft")
    assert reviewed_filtering(reviewed, None) is None  # nothing edited: nothing to do


def test_an_invalid_draft_is_marked_invalid_and_the_active_rules_stay():
    filtering = edited(default_filtering("t"), [rule("r", "exclude", "f", "regex", "(", 1)],
                       advanced={"include": "docs/*"})  # fmt: skip
    reviewed = reviewed_filtering(filtering, DirectoryDataSource.advanced_rules_problems)
    validation = domain_filter(reviewed, "draft")["validation"]
    assert validation["state"] == "invalid"
    assert [e["ids"] for e in validation["errors"]] == [["r"], ["advanced_snippet"]]
    assert "advanced rules.include must be a list, got" in str(validation["errors"])
    assert domain_filter(reviewed, "active") == domain_filter(default_filtering("t"), "active")


def test_advanced_rules_on_a_source_without_them_are_invalid():
    filtering = edited(default_filtering("t"), advanced={"anything": 1})
    reviewed = reviewed_filtering(filtering, None)
    validation = domain_filter(reviewed, "draft")["validation"]
    assert validation["state"] == "invalid"
    assert "does not support advanced sync rules" in str(validation["errors"])


@pytest.mark.parametrize(
    ("source", "rules", "problem"),
    [
        (DirectoryDataSource, {"include": ["docs/*"], "exclude": ["*.log"]}, None),
        (DirectoryDataSource, {"paths": ["x"]}, "advanced rules.paths is not supported"),
        (S3DataSource, [{"bucket": "b", "prefix": "p/", "extension": [".pdf"]}], None),
        (S3DataSource, [{"prefix": "p/"}], "advanced rule 1.bucket is required"),
        (S3DataSource, {"bucket": "b"}, "must be a list of objects"),
        (MongoDataSource, {"find": {"filter": {"a": 1}, "projection": {"a": 1}}}, None),
        (MongoDataSource, {"aggregate": {"pipeline": [{"$match": {"a": 1}}]}}, None),
        (MongoDataSource, {"find": {}, "aggregate": {"pipeline": [{}]}}, "exactly one of"),
        (MongoDataSource, {"aggregate": {"pipeline": []}}, "non-empty list of stages"),
        (MongoDataSource, {"find": {"limit": 3}}, "advanced rules.find.limit is not supported"),
    ],
)
def test_each_source_checks_its_advanced_rules(source, rules, problem):
    problems = source.advanced_rules_problems(rules)
    if problem is None:
        assert problems == []
    else:
        assert any(problem in p for p in problems), problems


def test_features_say_which_rules_a_source_takes():
    features = MongoDataSource.features({})
    assert features["sync_rules"] == {"basic": {"enabled": True}, "advanced": {"enabled": True}}
    from elastic_ingest.connectors.sources.memory import MemoryDataSource

    assert MemoryDataSource.features({})["sync_rules"]["advanced"] == {"enabled": False}
