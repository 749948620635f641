"""Payload base classes: pydantic v2 models whose class names give the event names; :func:`publishes` declares
the ones a service publishes (for its AsyncAPI document)."""

from __future__ import annotations

from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from pydantic._internal._model_construction import ModelMetaclass

from eventbus.core.naming import event_name_from_class_name

# pydantic v1 spellings found in existing services' ``class Config`` blocks.
_V1_CONFIG_KEYS = {"orm_mode": "from_attributes", "allow_population_by_field_name": "populate_by_name"}


class _PayloadMeta(ModelMetaclass):
    """Accepts a v1-style ``class Config: orm_mode = True`` quietly, as v2 ``from_attributes``."""

    def __new__(
        mcs,
        cls_name: str,
        bases: tuple[type[Any], ...],
        namespace: dict[str, Any],
        **kwargs: Any,
    ) -> type:
        legacy = namespace.get("Config")
        if isinstance(legacy, type) and "model_config" not in namespace:
            config: dict[str, Any] = {}
            for key, value in vars(legacy).items():
                if not key.startswith("__"):
                    config[_V1_CONFIG_KEYS.get(key, key)] = value
            namespace = {k: v for k, v in namespace.items() if k != "Config"}
            namespace["model_config"] = ConfigDict(**config)  # type: ignore[typeddict-item]
        return super().__new__(mcs, cls_name, bases, namespace, **kwargs)


class EventPayload(BaseModel, metaclass=_PayloadMeta):
    """Base of every event payload.

    The event name is the class name without ``Payload``, first letter lower-cased
    (``ActionHappenedPayload`` -> ``actionHappened``); set ``event_name`` on the class to
    override it. Set ``contains_personal_data = True`` on a class whose events carry personal
    data: the flag goes into the metadata and the payload is then never logged.
    """

    model_config = ConfigDict(from_attributes=True)

    #: Overrides the name derived from the class name.
    event_name: ClassVar[str | None] = None
    #: Marks every event of this class ``containsPersonalData``.
    contains_personal_data: ClassVar[bool] = False
    #: FIFO: the payload field whose value is the event's message group (events of one group are handled in publish
    #: order, one at a time). ``None``: the event's ``entityId``.
    message_group_field: ClassVar[str | None] = None
    #: FIFO: one message group for every event of this class (one order for all of them); wins over the field.
    message_group: ClassVar[str | None] = None

    def message_group_id(self) -> str | None:
        """This event's FIFO message group when its class chooses one (``metadata.messageGroupId`` on the wire);
        ``None``: the event's ``entityId`` (:func:`eventbus.core.fifo.message_group_of`)."""
        if self.message_group:
            return self.message_group
        if self.message_group_field:
            value = getattr(self, self.message_group_field)
            return None if value is None else str(value)
        return None

    @classmethod
    def get_event_name(cls) -> str:
        """The event name this payload class publishes under."""
        return cls.event_name or event_name_from_class_name(cls.__name__)

    def to_wire(self) -> dict[str, Any]:
        """The payload as a JSON-ready dict (aliases applied)."""
        return self.model_dump(mode="json", by_alias=True)


class EventFailPayload(EventPayload):
    """Base of failure payloads: which entity failed and a message safe to publish."""

    model_config = ConfigDict(populate_by_name=True)

    entity_id: str | None = Field(default=None, alias="entityId")
    error_message: str = Field(default="", alias="errorMessage")


#: The class attribute :func:`publishes` sets (read from the class's own ``__dict__``: not inherited).
_PUBLISHED_MARK = "__eventbus_published__"

P = TypeVar("P", bound=type[EventPayload])


def publishes(first: P, /, *more: type[EventPayload]) -> P:
    """Declare payload classes a service publishes, for its AsyncAPI document (``eventbus asyncapi``).

    Use it as a class decorator (``@publishes`` on the payload class) or call it with the classes
    (``publishes(OrderPlacedPayload, OrderCancelledPayload)``) in a module the Celery app imports. Callback tasks'
    ``payload_cls`` and ``exception_payload_cls`` need no declaration. The mark is the class's own: a subclass is
    not published unless declared too. Returns ``first``. Publishing is unaffected: this only documents.
    """
    for cls in (first, *more):
        if not (isinstance(cls, type) and issubclass(cls, EventPayload)):
            raise TypeError(f"publishes() takes EventPayload subclasses, not {cls!r}")
        setattr(cls, _PUBLISHED_MARK, True)
    return first


def declared_publications() -> list[type[EventPayload]]:
    """The payload classes :func:`publishes` declared among those defined so far in this process, by event name.

    It reads the classes themselves (no registry): what the modules imported so far declare.
    """
    found: dict[type[EventPayload], None] = {}
    stack: list[type[EventPayload]] = [EventPayload]
    while stack:
        cls = stack.pop()
        if cls.__dict__.get(_PUBLISHED_MARK) is True:
            found[cls] = None
        stack.extend(cls.__subclasses__())
    return sorted(found, key=lambda cls: (cls.get_event_name(), cls.__module__, cls.__qualname__))
