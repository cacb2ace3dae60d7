"""The subscriber across assignments, on librdkafka's in-process mock cluster (the adapter's
own behaviour, not the bus's): a partition paused for a retry, taken away and given back, is
read again (librdkafka keeps an application's pause: it stayed paused, unread); a partition
paused for a retry counts its lag from the message to retry (its position unknown, it read 0);
offsets of a partition taken away while its messages were handled are not stored."""

from __future__ import annotations

from confluent_kafka import TopicPartition

from tests.mock_kafka import read, subscribed, taken_away


def test_a_partition_paused_for_a_retry_is_read_when_given_back() -> None:
    subscriber, _cluster = subscribed(3)
    assert len(read(subscriber, 3)) == 3
    subscriber.rewind("events", 0, 1)  # a transient failure at offset 1: paused, to retry

    subscriber._consumer.unsubscribe()  # taken away (a rebalance) and given back
    subscriber.subscribe(["events"])

    assert [m.offset for m in read(subscriber, 3)] == [0, 1, 2]  # nothing committed: from 0
    subscriber.close()


def test_a_partition_paused_for_a_retry_counts_its_lag_from_the_message_to_retry() -> None:
    subscriber, _cluster = subscribed(10)
    assert len(read(subscriber, 10)) == 10
    assert subscriber.lag()[("events", 0)] == 0

    subscriber.rewind("events", 0, 1)  # a transient failure at offset 1: paused, to retry
    assert subscriber.poll(500, 0.2) == []
    assert subscriber.lag()[("events", 0)] == 9

    subscriber.resume("events", 0)
    assert [m.offset for m in read(subscriber, 9)] == list(range(1, 10))
    assert subscriber.lag()[("events", 0)] == 0
    subscriber.close()


def test_offsets_of_a_partition_taken_away_are_not_stored() -> None:
    """The batch still held its messages, and storing their offsets raised librdkafka's _STATE
    out of the consumer's loop, ending the process."""
    subscriber, batch, _cluster = taken_away()

    subscriber.store(batch)  # raised KafkaException(_STATE)

    assert subscriber.commit() is None  # nothing stored to commit
    (committed,) = subscriber._consumer.committed([TopicPartition("events", 0)], timeout=10)
    assert committed.offset < 0  # its new owner reads it from the start
    subscriber.close()
