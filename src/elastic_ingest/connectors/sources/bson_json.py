"""Lossless BSON -> JSON-safe values, the shapes documented in docs/sources.md.

ObjectId -> hex string; datetime -> ISO-8601 UTC; Decimal128 -> its exact decimal string;
Binary -> base64 (UUID subtypes 3/4 -> canonical UUID string); Int64 -> integer;
Regex -> {"$regex", "$options"}; Timestamp -> {"$timestamp": {"t", "i"}};
Code -> {"$code"[, "$scope"]}; DBRef -> {"$ref", "$id"[, "$db"]}; MinKey/MaxKey ->
{"$minKey": 1}/{"$maxKey": 1}; NaN/Infinity -> "NaN"/"Infinity"/"-Infinity" (JSON has none).
"""

from __future__ import annotations

import base64
import datetime
import decimal
import math
import re
import uuid
from typing import Any

import orjson
from bson import Binary, Code, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import UuidRepresentation
from bson.dbref import DBRef
from bson.tz_util import utc as BSON_UTC  # noqa: N812 - the tzinfo of a tz-aware client's dates

_UUID_SUBTYPES = {3: UuidRepresentation.PYTHON_LEGACY, 4: UuidRepresentation.STANDARD}


_AS_IS = frozenset({str, bool, type(None)})  # exact types: Code (a str) and Int64 are not


def to_json(value: Any) -> Any:
    kind = type(value)  # the common cases first, by exact type: most of a document's values
    if kind in _AS_IS:
        return value
    if kind is dict:
        return {key if type(key) is str else str(key): to_json(item) for key, item in value.items()}
    if kind is int:
        return value
    if kind is list:
        return [to_json(item) for item in value]
    if kind is float and math.isfinite(value):
        return value
    if kind is ObjectId:
        return str(value)
    if kind is datetime.datetime and (value.tzinfo is BSON_UTC or value.tzinfo is datetime.UTC):
        return value.isoformat(timespec="milliseconds")  # what a tz-aware client reads
    if kind is Int64:
        return int(value)
    return _converted(value)


def _converted(value: Any) -> Any:
    if isinstance(value, Code):  # a str subclass: must come before the plain-string case
        return {"$code": str(value), **({"$scope": to_json(value.scope)} if value.scope else {})}
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):  # Int64 is an int subclass: stays an integer
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_json(item) for item in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, datetime.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
        return aware.astimezone(datetime.UTC).isoformat(timespec="milliseconds")
    if isinstance(value, Decimal128):
        return str(value.to_decimal())
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, Binary):
        if value.subtype in _UUID_SUBTYPES and len(value) == 16:
            return str(value.as_uuid(_UUID_SUBTYPES[value.subtype]))
        return base64.b64encode(bytes(value)).decode()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, Regex | re.Pattern):
        return {"$regex": value.pattern, "$options": _regex_options(value.flags)}
    if isinstance(value, Timestamp):
        return {"$timestamp": {"t": value.time, "i": value.inc}}
    if isinstance(value, DBRef):
        reference = {"$ref": value.collection, "$id": to_json(value.id)}
        return {**reference, "$db": value.database} if value.database else reference
    if isinstance(value, MinKey):
        return {"$minKey": 1}
    if isinstance(value, MaxKey):
        return {"$maxKey": 1}
    return str(value)


def _regex_options(flags: int | str) -> str:
    if isinstance(flags, str):
        return "".join(sorted(flags))
    letters = {re.IGNORECASE: "i", re.MULTILINE: "m", re.DOTALL: "s", re.VERBOSE: "x"}
    return "".join(sorted(letter for flag, letter in letters.items() if flags & flag))


def document_id(value: Any) -> str:
    """A stable string id for any BSON `_id`: strings as they are, ObjectId as hex, else JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, ObjectId):
        return str(value)
    return orjson.dumps(to_json(value), option=orjson.OPT_SORT_KEYS).decode()
