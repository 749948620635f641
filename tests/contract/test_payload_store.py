"""The PayloadStore contract (:mod:`eventbus.testing.contracts.payload_store`): in-memory, and S3 on the emulator;
plus S3's own cases (a bucket that does not exist, an unreachable endpoint, objects the extended clients read).

The S3 tests use the ``s3_endpoint`` fixture: the SNS/SQS endpoint when it serves S3 (the embedded moto server),
else an embedded emulator of its own (LocalStack started with SNS and SQS only). Each test class gets its own bucket.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from botocore.exceptions import BotoCoreError

from eventbus.adapters.aws import S3PayloadStore
from eventbus.adapters.memory import InMemoryPayloadStore
from eventbus.core.claim_check import Pointer
from eventbus.errors import ClaimCheckError
from eventbus.ports import PayloadStore
from eventbus.testing.contracts import PayloadStoreContract
from tests.conftest import REGION, s3_client

# ------------------------------------------------------------------ in-memory


class TestInMemoryPayloadStore(PayloadStoreContract):
    def make_store(self) -> PayloadStore:
        return InMemoryPayloadStore(bucket=f"memory-{uuid.uuid4().hex[:8]}")


# ------------------------------------------------------------------ S3


def create_bucket(client: Any, name: str) -> None:
    client.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": REGION})


def drop_bucket(client: Any, name: str) -> None:
    """Delete every object of ``name``, then the bucket."""
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=name):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=name, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=name)


@pytest.fixture(scope="class")
def s3_bucket(s3_endpoint: str) -> Iterator[tuple[Any, str]]:
    """An S3 client and a bucket of the test class's own, dropped after its last test."""
    client = s3_client(s3_endpoint)
    name = f"eventbus-claims-{uuid.uuid4().hex[:12]}"
    create_bucket(client, name)
    yield client, name
    drop_bucket(client, name)


@pytest.mark.integration
class TestS3PayloadStore(PayloadStoreContract):
    @pytest.fixture(autouse=True)
    def _bucket(self, s3_bucket: tuple[Any, str]) -> None:
        self.client, self.bucket_name = s3_bucket

    def make_store(self) -> PayloadStore:
        return S3PayloadStore(self.client, self.bucket_name)

    def test_put_stores_the_body_where_an_s3_client_reads_it(self) -> None:
        body = "extended clients read this «✓»".encode()
        pointer = self.store.put(body)
        stored = self.client.get_object(Bucket=pointer.bucket, Key=pointer.key)
        assert stored["Body"].read() == body
        uuid.UUID(pointer.key)  # a fresh UUID, as the extended clients make keys

    def test_get_reads_an_object_another_writer_stored(self) -> None:
        # a message from a service using the extended client: the object is its own, under a key it chose
        key = f"written-elsewhere/{uuid.uuid4()}"
        self.client.put_object(Bucket=self.bucket_name, Key=key, Body=b'{"payload":"from elsewhere"}')
        assert self.store.get(Pointer(self.bucket_name, key), 100) == b'{"payload":"from elsewhere"}'

    def test_get_and_delete_follow_the_pointer_into_another_bucket(self) -> None:
        other = f"eventbus-other-{uuid.uuid4().hex[:12]}"
        create_bucket(self.client, other)
        try:
            self.client.put_object(Bucket=other, Key="k", Body=b"theirs")
            pointer = Pointer(other, "k")
            assert self.store.get(pointer, 100) == b"theirs"
            self.store.delete([pointer, self.store.put(b"ours")])
            self.assert_missing(pointer)
        finally:
            drop_bucket(self.client, other)

    def test_a_bucket_that_does_not_exist_is_missing_for_good(self) -> None:
        self.assert_missing(Pointer(f"eventbus-nonexistent-{uuid.uuid4().hex[:12]}", "k"))

    def test_put_into_a_bucket_that_does_not_exist_fails(self) -> None:
        store = S3PayloadStore(self.client, f"eventbus-nonexistent-{uuid.uuid4().hex[:12]}")
        with pytest.raises(ClaimCheckError) as caught:
            store.put(b"secret body")
        assert caught.value.reason == "claim-check-unstored"
        assert "NoSuchBucket" in str(caught.value)
        assert "secret body" not in str(caught.value)

    def test_a_store_without_a_bucket_reads_but_refuses_to_store(self) -> None:
        reader = S3PayloadStore(self.client)
        pointer = self.store.put(b"readable")
        assert reader.get(pointer, 100) == b"readable"
        with pytest.raises(ClaimCheckError) as caught:
            reader.put(b"x")
        assert caught.value.reason == "claim-check-unstored"
        assert caught.value.permanent is True


def unreachable_store() -> S3PayloadStore:
    """An S3 store on a port nobody listens on: one attempt, short timeouts."""
    import boto3
    from botocore.config import Config

    config = Config(
        s3={"addressing_style": "path"},
        retries={"total_max_attempts": 1},
        connect_timeout=1,
        read_timeout=1,
    )
    client = boto3.client(
        "s3",
        endpoint_url="http://127.0.0.1:9",
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=config,
    )
    return S3PayloadStore(client, "eventbus-unreachable")


def test_an_unreachable_s3_fails_get_put_and_delete_for_now_not_for_good() -> None:
    store = unreachable_store()
    pointer = Pointer("eventbus-unreachable", "k")
    expected = {"get": "claim-check-unreadable", "put": "claim-check-unstored", "delete": "claim-check-undeleted"}
    calls: dict[str, Callable[[], object]] = {
        "get": lambda: store.get(pointer, 100),
        "put": lambda: store.put(b"secret body"),
        "delete": lambda: store.delete([pointer]),
    }
    for name, call in calls.items():
        with pytest.raises(ClaimCheckError) as caught:
            call()
        assert caught.value.permanent is False, name
        assert caught.value.reason == expected[name], name
        assert "secret body" not in str(caught.value)
        if name != "delete":  # delete reports every failed call at the end, after trying them all
            assert isinstance(caught.value.__cause__, BotoCoreError), name
