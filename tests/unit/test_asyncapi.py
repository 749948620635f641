"""The AsyncAPI builder (pure): every reference resolves, every message is used, the headers are the metadata, no
secret gets an example; and :func:`eventbus.payload.publishes`. The AsyncAPI parser's own verdict on a real app's
document is ``tests/integration/test_asyncapi.py``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

import pytest
from pydantic import BaseModel, Field
from pydantic.alias_generators import to_camel

from eventbus.core.asyncapi import HEADER_DESCRIPTIONS, asyncapi_document, component_key
from eventbus.core.envelope import Metadata
from eventbus.core.payload import declared_publications
from eventbus.core.topology import Topology, topology_of
from eventbus.errors import ConfigurationError
from eventbus.payload import EventFailPayload, EventPayload, publishes


class Colour(StrEnum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    street: str
    colour: Colour


class UnitOrderPlacedPayload(EventPayload):
    """An order was placed."""

    order_id: str = Field(alias="orderId")
    address: Address
    previous: list[Address] = []


class UnitPersonPayload(EventPayload):
    contains_personal_data = True

    email: str = Field(examples=["someone@example.com"])


class UnitOrderFailedPayload(EventFailPayload):
    pass


def topology(names: list[str] | None = None) -> Topology:
    return topology_of(topic="shop-topic", queue="shop-queue", event_names=names or ["unitOrderPlaced"])


def document(**overrides: Any) -> dict[str, Any]:
    arguments: dict[str, Any] = {
        "service": "shop",
        "version": "1.2.3",
        "subscribed": {"unitOrderPlaced": UnitOrderPlacedPayload, "unitPerson": UnitPersonPayload, "loose": None},
        "published": [UnitOrderPlacedPayload, UnitOrderFailedPayload],
    }
    arguments.update(overrides)
    return asyncapi_document(topology(["unitOrderPlaced", "unitPerson", "loose"]), **arguments)


def refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        assert isinstance(node, dict), f"{ref} does not resolve"
        assert part in node, f"{ref} does not resolve ({part!r} missing)"
        node = node[part]
    if isinstance(node, dict) and set(node) == {"$ref"}:
        return resolve(doc, node["$ref"])  # a channel's message is a reference to a component
    return node


def test_the_document_names_its_version_service_topic_and_queue() -> None:
    doc = document()
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "shop"
    assert doc["info"]["version"] == "1.2.3"
    assert doc["channels"]["topic"]["address"] == "shop-topic"
    assert doc["channels"]["topic"]["bindings"]["sns"]["name"] == "shop-topic"
    assert doc["channels"]["queue"]["address"] == "shop-queue"
    sqs = doc["channels"]["queue"]["bindings"]["sqs"]
    assert sqs["queue"]["redrivePolicy"]["deadLetterQueue"]["name"] == "shop-queue__dlq"
    assert "metadata" in doc["info"]["description"]
    assert "message attributes" in doc["info"]["description"]
    json.dumps(doc)  # JSON-ready


def test_every_reference_resolves_and_refs_point_into_components() -> None:
    doc = document()
    found = list(refs(doc))
    assert found
    for ref in found:
        resolve(doc, ref)
    assert not any("$defs" in ref for ref in found)
    assert "$defs" not in json.dumps(doc)
    # nested models and enums are hoisted
    assert {"Address", "Colour", "UnitOrderPlacedPayload"} <= set(doc["components"]["schemas"])


def test_every_message_is_in_a_channel_and_an_operation() -> None:
    doc = document()
    messages = doc["components"]["messages"]
    in_channels = {ref for channel in doc["channels"].values() for ref in refs(channel["messages"])}
    assert in_channels == {f"#/components/messages/{key}" for key in messages}
    operated = {ref for operation in doc["operations"].values() for ref in refs(operation["messages"])}
    for name, channel in doc["channels"].items():
        for key in channel["messages"]:
            assert f"#/channels/{name}/messages/{key}" in operated


def test_operations_send_published_and_receive_subscribed_events() -> None:
    doc = document()
    by_action: dict[str, set[str]] = {"send": set(), "receive": set()}
    for operation in doc["operations"].values():
        (message_ref,) = operation["messages"]
        channel = operation["channel"]["$ref"]
        assert message_ref["$ref"].startswith(channel + "/messages/")
        by_action[operation["action"]].add(resolve(doc, message_ref["$ref"])["name"])
    assert by_action["send"] == {"unitOrderPlaced", "unitOrderFailed"}
    assert by_action["receive"] == {"unitOrderPlaced", "unitPerson", "loose"}
    assert all(
        doc["operations"][key]["channel"]["$ref"] == "#/channels/topic" for key in doc["operations"] if "send" in key
    )


def test_messages_carry_the_metadata_as_headers_and_the_payload_schema() -> None:
    doc = document()
    placed = doc["components"]["messages"]["unitOrderPlaced"]
    assert placed["name"] == "unitOrderPlaced"
    assert placed["headers"]["type"] == "object"
    metadata_ref, fixed = placed["headers"]["allOf"]
    metadata = resolve(doc, metadata_ref["$ref"])
    assert fixed["properties"]["eventName"] == {"const": "unitOrderPlaced"}
    # the metadata's wire keys, all of them: a field added to Metadata shows up as a header
    assert set(metadata["properties"]) == {to_camel(name) for name in Metadata.model_fields}
    assert {"eventName", "entityId", "publishDate", "authorization", "containsPersonalData"} <= set(
        metadata["properties"]
    )
    assert metadata["required"] == ["eventName"]
    payload = resolve(doc, placed["payload"]["$ref"])
    assert set(payload["properties"]) == {"orderId", "address", "previous"}  # aliases, not attribute names
    assert payload["required"] == ["orderId", "address"]
    loose = doc["components"]["messages"]["loose"]
    assert loose["payload"]["type"] == "object"
    assert "$ref" not in loose["payload"]


def test_every_header_is_described() -> None:
    doc = document()
    metadata_key = doc["components"]["messages"]["loose"]["headers"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]
    for key, schema in doc["components"]["schemas"][metadata_key]["properties"].items():
        assert schema["description"] == HEADER_DESCRIPTIONS[key]


def test_no_secret_gets_an_example_or_a_default() -> None:
    doc = document()
    metadata_key = doc["components"]["messages"]["loose"]["headers"]["allOf"][0]["$ref"].rsplit("/", 1)[-1]
    authorization = doc["components"]["schemas"][metadata_key]["properties"]["authorization"]
    assert not {"example", "examples", "default", "const", "enum"} & set(authorization)
    assert authorization["format"] == "password"
    assert "Secret" in authorization["description"]
    assert "examples" not in json.dumps(doc["components"]["messages"])  # messages carry no example envelopes


def test_personal_data_messages_are_tagged_and_fix_the_flag() -> None:
    doc = document()
    person = doc["components"]["messages"]["unitPerson"]
    assert person["tags"][0]["name"] == "containsPersonalData"
    assert person["headers"]["allOf"][1]["properties"]["containsPersonalData"] == {"const": True}
    assert "tags" not in doc["components"]["messages"]["unitOrderPlaced"]


def test_one_event_name_two_classes_is_an_error() -> None:
    class UnitOtherPayload(EventPayload):
        event_name = "unitOrderPlaced"

    with pytest.raises(ConfigurationError, match="unitOrderPlaced"):
        document(published=[UnitOrderPlacedPayload, UnitOtherPayload])
    with pytest.raises(ConfigurationError, match="one event name has one payload class"):
        document(published=[UnitOtherPayload])


def test_a_subscribed_event_without_a_class_takes_the_published_class() -> None:
    doc = document(subscribed={"unitOrderPlaced": None}, published=[UnitOrderPlacedPayload])
    assert doc["components"]["messages"]["unitOrderPlaced"]["payload"]["$ref"].endswith("/UnitOrderPlacedPayload")


def test_component_keys_are_what_asyncapi_accepts_and_unique() -> None:
    assert component_key("order:placed/v2") == "order_placed_v2"
    assert component_key("a", ["a", "a_2"]) == "a_3"
    doc = document(subscribed={"order:placed": None, "order_placed": None}, published=[])
    assert {m["name"] for m in doc["components"]["messages"].values()} == {"order:placed", "order_placed"}
    assert len(doc["components"]["messages"]) == 2


def test_a_service_with_no_events_still_names_its_channels() -> None:
    doc = document(subscribed={}, published=[])
    assert doc["operations"] == {}
    assert doc["components"]["messages"] == {}
    assert doc["channels"]["topic"]["messages"] == {}


def test_publishes_declares_the_class_itself_not_its_subclasses() -> None:
    @publishes
    class UnitDeclaredPayload(EventPayload):
        pass

    class UnitSubPayload(UnitDeclaredPayload):
        pass

    class UnitTwoPayload(EventPayload):
        pass

    class UnitThreePayload(EventPayload):
        pass

    assert publishes(UnitTwoPayload, UnitThreePayload) is UnitTwoPayload
    declared = declared_publications()
    assert {UnitDeclaredPayload, UnitTwoPayload, UnitThreePayload} <= set(declared)
    assert UnitSubPayload not in declared
    assert UnitOrderPlacedPayload not in declared


def test_publishes_refuses_what_is_not_a_payload_class() -> None:
    with pytest.raises(TypeError, match="EventPayload subclasses"):
        publishes(Address)  # type: ignore[type-var]
