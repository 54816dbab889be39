"""The real stack answers: Elasticsearch, FerretDB (MongoDB wire), the S3 server and Prefect."""

import os
import uuid

import aioboto3
import pytest
from elasticsearch import AsyncElasticsearch, AuthenticationException
from prefect import flow, task
from pymongo import AsyncMongoClient

from devstack import es_node


async def test_elasticsearch_answers_with_the_stack_version():
    """9.5.4 by default; the compatibility lane sets STACK_ES_VERSION=8.19.21."""
    key = os.environ["ELASTICSEARCH_API_KEY"]
    async with AsyncElasticsearch(os.environ["ELASTICSEARCH_URL"], api_key=key) as es:
        nodes = await es.nodes.info(node_id="_local", filter_path="nodes.*.version")
        versions = {node["version"] for node in nodes["nodes"].values()}
        health = await es.cluster.health()
    assert versions == {es_node.VERSION}
    assert health["status"] in ("yellow", "green")


async def test_elasticsearch_refuses_a_request_without_credentials():
    async with AsyncElasticsearch(os.environ["ELASTICSEARCH_URL"]) as es:
        with pytest.raises(AuthenticationException):
            await es.info()


async def test_a_document_round_trips_through_pymongo_async_on_ferretdb():
    client = AsyncMongoClient(os.environ["MONGODB_URL"], serverSelectionTimeoutMS=5000)
    try:
        collection = client["smoke"][f"c{uuid.uuid4().hex}"]
        await collection.insert_one({"_id": "a", "title": "hello", "n": 3})
        assert await collection.find_one({"_id": "a"}) == {"_id": "a", "title": "hello", "n": 3}
        await collection.drop()
    finally:
        await client.close()


async def test_an_object_round_trips_through_aioboto3_on_the_s3_server():
    session = aioboto3.Session(
        aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
    )
    bucket = f"smoke-{uuid.uuid4().hex[:12]}"
    async with session.client("s3", endpoint_url=os.environ["S3_ENDPOINT_URL"]) as s3:
        await s3.create_bucket(Bucket=bucket)
        await s3.put_object(Bucket=bucket, Key="a/b.txt", Body=b"hello s3")
        response = await s3.get_object(Bucket=bucket, Key="a/b.txt")
        assert await response["Body"].read() == b"hello s3"


@task
def double(value: int) -> int:
    return value * 2


@flow
def smoke_flow(value: int) -> int:
    return double(value)


def test_a_trivial_prefect_flow_with_a_task_completes():
    state = smoke_flow(21, return_state=True)
    assert state.is_completed()
    assert state.result() == 42
