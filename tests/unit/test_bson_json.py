"""BSON -> JSON is lossless for every type, including those FerretDB cannot store."""

import datetime
import re
import uuid

import orjson
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import UuidRepresentation
from bson.dbref import DBRef

from elastic_ingest.connectors.sources.bson_json import document_id, to_json


def test_every_bson_type_has_a_documented_lossless_shape():
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    standard, legacy = uuid.UUID(int=1), uuid.UUID(int=2)
    document = {
        "oid": oid,
        "date": datetime.datetime(2024, 1, 2, 3, 4, 5, 678000),
        "decimal": Decimal128("1234567890123456789.012345678901234"),
        "binary": Binary(b"\x00\x01\xff", 0),
        "uuid4": Binary.from_uuid(standard),
        "uuid3": Binary.from_uuid(legacy, UuidRepresentation.PYTHON_LEGACY),
        "int64": Int64(2**62 + 1),
        "regex": Regex("^a.*z$", "im"),
        "native_regex": re.compile("x+", re.IGNORECASE),
        "timestamp": Timestamp(1700000000, 7),
        "code": Code("function () { return x; }", {"x": 1}),
        "dbref": DBRef("people", oid, "crm"),
        "min": MinKey(),
        "max": MaxKey(),
        "nan": float("nan"),
        "nested": {"list": [1, {"deep": oid}], "none": None, "flag": True},
    }
    converted = to_json(document)
    assert converted == {
        "oid": "65a1b2c3d4e5f60718293a4b",
        "date": "2024-01-02T03:04:05.678+00:00",
        "decimal": "1234567890123456789.012345678901234",
        "binary": "AAH/",
        "uuid4": str(standard),
        "uuid3": str(legacy),
        "int64": 2**62 + 1,
        "regex": {"$regex": "^a.*z$", "$options": "im"},
        "native_regex": {"$regex": "x+", "$options": "i"},
        "timestamp": {"$timestamp": {"t": 1700000000, "i": 7}},
        "code": {"$code": "function () { return x; }", "$scope": {"x": 1}},
        "dbref": {"$ref": "people", "$id": "65a1b2c3d4e5f60718293a4b", "$db": "crm"},
        "min": {"$minKey": 1},
        "max": {"$maxKey": 1},
        "nan": "NaN",
        "nested": {"list": [1, {"deep": "65a1b2c3d4e5f60718293a4b"}], "none": None, "flag": True},
    }
    assert type(converted["int64"]) is int
    orjson.dumps(converted)


def test_ids_of_any_type_become_stable_strings():
    oid = ObjectId("65a1b2c3d4e5f60718293a4b")
    assert document_id(oid) == "65a1b2c3d4e5f60718293a4b"
    assert document_id("plain") == "plain"
    assert document_id(42) == "42"
    assert document_id({"b": 2, "a": 1}) == document_id({"a": 1, "b": 2}) == '{"a":1,"b":2}'
    assert document_id(Binary.from_uuid(uuid.UUID(int=5))) == f'"{uuid.UUID(int=5)}"'
