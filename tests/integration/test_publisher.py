"""The publisher on a real broker: threads publishing at once wait each for its own messages."""

from __future__ import annotations

import threading

import pytest

from tellusonce.errors import BrokerUnavailable, MessageTooLarge
from tellusonce.events import EventType
from tellusonce.kafka import Admin, Outgoing, Publisher
from tellusonce.settings import Settings
from tellusonce.topics import Topics
from tests.integration.conftest import read_topic, wait_for


def test_a_publish_returns_once_its_own_messages_are_acknowledged_not_another_threads(
    settings: Settings, topics: Topics
) -> None:
    """A message to a topic that does not exist stays queued until the publish timeout; another
    thread's publish on the same Publisher meanwhile returns as soon as Kafka acknowledged its
    own message (flush() waited for the whole queue: for the other thread's timeout)."""
    settings = settings.model_copy(update={"publish_timeout_seconds": 6.0})
    publisher = Publisher(settings, "shared")
    stuck: list[BrokerUnavailable] = []
    stuck_done = threading.Event()

    def publish_where_nothing_answers() -> None:
        try:
            publisher.publish([Outgoing(f"{settings.topic_prefix}no-such-topic", b"k", b"v", [])])
        except BrokerUnavailable as exc:
            stuck.append(exc)
        finally:
            stuck_done.set()

    other = threading.Thread(target=publish_where_nothing_answers)
    other.start()
    queued = publisher._producer  # the only way to see the other message queued
    wait_for(lambda: len(queued) == 1, "the other thread's message in the producer's queue")

    publisher.publish([Outgoing(topics.events(EventType.DEATH), b"k", b"ours", [])])

    # returned with the other thread's message still queued (flush() returned only once the
    # whole queue had gone: at that message's timeout), and that publish still waiting
    assert len(queued) == 1
    assert not stuck_done.is_set()
    assert [m.value for m in read_topic(settings, topics.events(EventType.DEATH))] == [b"ours"]
    other.join(settings.publish_timeout_seconds + 10)
    assert len(stuck) == 1
    assert "1 of 1 messages not acknowledged" in str(stuck[0])


def test_publishing_nothing_returns_at_once(settings: Settings, topics: Topics) -> None:
    """An empty batch has nothing to wait for (and is not an error): even with no broker to
    answer, where any wait for one would end in BrokerUnavailable."""
    Publisher(settings, "empty").publish([])
    assert read_topic(settings, topics.events(EventType.DEATH)) == []
    nowhere = settings.model_copy(update={"bootstrap_servers": "127.0.0.1:1"})
    Publisher(nowhere, "empty").publish([])


def test_threads_sharing_a_publisher_each_get_their_own_messages_acknowledged(
    settings: Settings, topics: Topics
) -> None:
    """Eight threads publish 20 batches each on one Publisher: every publish returns, and every
    message is on the topic once."""
    threads = 8
    publisher = Publisher(settings, "shared")
    topic = topics.events(EventType.BIRTH)
    errors: list[Exception] = []

    def publish(n: int) -> None:
        try:
            for b in range(20):
                publisher.publish(
                    [Outgoing(topic, b"k", f"{n}-{b}-{i}".encode(), []) for i in range(10)]
                )
        except Exception as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=publish, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert errors == []
    sent = [f"{n}-{b}-{i}".encode() for n in range(threads) for b in range(20) for i in range(10)]
    assert sorted(m.value for m in read_topic(settings, topic)) == sorted(sent)


def test_a_message_the_topic_refuses_alone_is_too_large_and_one_batched_is_sent_again(
    settings: Settings, topics: Topics
) -> None:
    """The topic's max.message.bytes bounds a batch of messages, not one: a message refused
    with others (small ones beside a large one, or another request's at once) may fit alone,
    and was answered as too large for good (413, withdrawn from the ledger)."""
    topic = f"{settings.topic_prefix}small-messages"
    Admin(settings).ensure_topics([topic], {"max.message.bytes": "2000"})
    try:
        publisher = Publisher(settings, "limits")
        large, small = Outgoing(topic, b"k", b"x" * 3000, []), Outgoing(topic, b"k", b"small", [])
        with pytest.raises(MessageTooLarge):  # alone: refused for good
            publisher.publish([large])
        # the next, at once, answered for what they are
        with pytest.raises(
            BrokerUnavailable, match="refused a batch holding them as too large"
        ) as refused:
            publisher.publish([small, large])  # may fit alone: try again (a 503, not a 413)
        assert refused.value.went_out is False  # refused: neither can have gone out
        publisher.publish([small])
        assert [m.value for m in read_topic(settings, topic)] == [b"small"]
        publisher.close()
    finally:
        Admin(settings).delete_topics([topic])
