"""The one module that talks to confluent_kafka: publish with acknowledgement, consume, admin."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar, cast

from confluent_kafka import (
    Consumer,
    ConsumerGroupState,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from tellusonce import logs
from tellusonce.acls import Grant
from tellusonce.errors import BadSettings, BrokerUnavailable, MessageTooLarge
from tellusonce.settings import Settings

Headers = list[tuple[str, bytes]]
# Errors a request meets while a partition's leadership is still being settled.
_LEADERSHIP_MOVING = frozenset(
    {
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_PARTITION,
    }
)
PartitionsCallback = Callable[[list[tuple[str, int]]], None]


@dataclass(frozen=True)
class Outgoing:
    """A message to publish (a key of None: none, as Kafka keeps a message without one)."""

    topic: str
    key: bytes | None
    value: bytes
    headers: Headers


class Received(NamedTuple):
    """A message read from a topic (a tuple: made for every message, so made cheaply)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: Headers
    timestamp_ms: int


def _received(message: Any) -> Received:
    return Received(
        message.topic(),
        message.partition(),
        message.offset(),
        message.key(),
        message.value() or b"",
        message.headers() or [],
        message.timestamp()[1],
    )


T = TypeVar("T")
LOCAL_BROKER = "127.0.0.1:9092"  # the one deploy/kafka/broker.sh runs
LIBRDKAFKA = logging.getLogger("librdkafka")
LIBRDKAFKA.addFilter(logs.QuietRepeats())  # a line per failed connection, 4 a second, otherwise


def client_config(settings: Settings, client_id: str) -> dict[str, Any]:
    """Connection settings shared by every client."""
    return {
        "bootstrap.servers": settings.bootstrap_servers,
        "client.id": f"tellusonce-{client_id}@{socket.gethostname()}",
        "logger": LIBRDKAFKA,  # its lines as JSON (served by poll), not plain text on stderr
        **settings.kafka_security,
    }


def _made(kind: Callable[[dict[str, Any]], T], config: dict[str, Any]) -> T:
    """A librdkafka client; BadSettings if librdkafka refuses its settings (an unknown property
    in TELLUSONCE_KAFKA_SECURITY, a value out of its range): said in one line, not a trace."""
    try:
        return kind(config)
    except KafkaException as exc:
        raise BadSettings(f"Kafka's client refused its settings: {exc.args[0].str()}") from exc


def consumer_config(settings: Settings, group: str, client_id: str) -> dict[str, Any]:
    """A group member's settings: offsets stored by the runtime once a message is handled and
    committed in the background; fetches held by the broker (fetch_wait_ms) to fill them."""
    return (
        client_config(settings, client_id)
        | {
            "group.id": group,
            "enable.auto.commit": True,
            "auto.commit.interval.ms": 1000,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "fetch.wait.max.ms": settings.fetch_wait_ms,
            "fetch.min.bytes": settings.fetch_min_bytes,
        }
        | ({"group.instance.id": settings.instance_id} if settings.instance_id else {})
    )


STATISTICS_INTERVAL_MS = 5000  # how often a consumer learns whether its brokers answer
# librdkafka's broker states with a connection up (STATISTICS.md): UPDATE and REAUTH pass by
_CONNECTED = frozenset({"UP", "UPDATE", "REAUTH"})
FLUSH_SLICE_SECONDS = 0.01  # how often a publish looks whether its own messages are answered


class _Deliveries:
    """The delivery reports of one publish's messages, served by whichever thread flushes."""

    def __init__(self, count: int) -> None:
        self.waiting = count
        self.failures: list[KafkaError] = []
        self._lock = threading.Lock()

    def report(self, err: KafkaError | None, _msg: object) -> None:
        with self._lock:
            self.waiting -= 1
            if err is not None:
                self.failures.append(err)


class Publisher:
    """An idempotent producer whose publish returns only once the broker acknowledged (acks=all)."""

    def __init__(self, settings: Settings, client_id: str) -> None:
        self.timeout = settings.publish_timeout_seconds
        self._config = client_config(settings, client_id) | {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": int(self.timeout * 1000),
        }
        self._producer = _made(Producer, self._config)
        self._publishing = 0  # publish calls under way (threads share a Publisher)
        self._begun = 0  # publish calls begun, ever
        self._count = threading.Lock()

    def publish(self, messages: Sequence[Outgoing]) -> None:
        """Publish and wait for the acknowledgement of each of these messages; raise
        BrokerUnavailable if any is missing.

        Only these messages are waited for: threads publishing on one Publisher at once (the
        registrar API's requests) do not wait for each other's. flush() would: it returns once
        the producer's whole queue is delivered, so under concurrent submissions each waited for
        the others' (8 threads offering 1,000 messages/s: 12 ms per publish at the median and
        233 ms at the 99th percentile; 2 and 34 ms now, as with a producer each). The wait is
        flush() in slices, which serves every thread's delivery reports and sends at once what
        linger.ms would hold, until these messages are answered.
        """
        with self._count:
            self._publishing += 1
            self._begun += 1
            begun = self._begun
        try:
            self._publish(messages, begun)
        finally:
            with self._count:
                self._publishing -= 1

    def _alone(self, begun: int) -> bool:
        """Whether the publish begun `begun`-th had the producer to itself throughout: no
        other under way, none begun since (so no other message shared its batches)."""
        with self._count:
            return self._publishing == 1 and self._begun == begun

    def _publish(self, messages: Sequence[Outgoing], begun: int) -> None:
        deliveries = _Deliveries(len(messages))
        queued = 0
        try:
            for message in messages:
                self._produce(message, deliveries.report)
                queued += 1
        except (BrokerUnavailable, MessageTooLarge):
            if queued:  # ours queued must never go out later (other threads' go with them:
                self._drop_queued()  # told by their reports); none queued: theirs are left
            raise
        deadline = time.monotonic() + self.timeout
        try:
            while deliveries.waiting and (left := deadline - time.monotonic()) > 0:
                self._producer.flush(min(left, FLUSH_SLICE_SECONDS))
        except KafkaException as exc:  # a fatal error, raised from the flush that served it
            failed, self._producer = self._producer, Producer(self._config)  # not usable again
            with contextlib.suppress(KafkaException):  # what it queued is told it was purged
                failed.purge()
                failed.flush(0)
            raise BrokerUnavailable(
                f"{deliveries.waiting} of {len(messages)} messages not acknowledged by Kafka: "
                f"{exc.args[0].str()}"
            ) from exc
        unacknowledged, failures = deliveries.waiting, deliveries.failures
        if unacknowledged or failures:
            fatal = any(_fatal(err) for err in failures)
            if unacknowledged or fatal:  # ours still queued must never go out later; once all
                self._drop_queued()  # are answered, a purge would only take other threads' own
            if fatal:  # an idempotent producer that hit a fatal error cannot be used again
                self._producer = Producer(self._config)
            reason = failures[0].str() if failures else "no acknowledgement in time"
            large = [e for e in failures if e.code() == KafkaError.MSG_SIZE_TOO_LARGE]
            if large:  # the topic's limit is on a batch of messages: refused for good only if
                # this message went alone; one batched with others may fit alone (sent again)
                reason = large[0].str()
                if len(messages) == len(large) == 1 and self._alone(begun):
                    raise MessageTooLarge(f"the topic refused the message as too large: {reason}")
                reason = f"the topic refused a batch holding them as too large ({reason})"
            raise BrokerUnavailable(
                f"{unacknowledged or len(failures)} of {len(messages)} messages not acknowledged "
                f"by Kafka: {reason}",
                went_out=not (large and len(large) == len(messages) and not unacknowledged),
            )

    def _drop_queued(self) -> None:
        """Forget what was not acknowledged, other threads' messages too: each publish waiting
        for some is told by their delivery reports (purged) and raises; nothing goes out later."""
        self._producer.purge()
        self._producer.flush(0)

    def _produce(self, message: Outgoing, delivered: Callable[..., None]) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                self._producer.produce(
                    message.topic,
                    value=message.value,
                    key=message.key,
                    headers=cast(Any, message.headers),
                    on_delivery=delivered,
                )
                return
            except BufferError as exc:  # local queue full: serve deliveries, then try again
                if time.monotonic() > deadline:
                    raise BrokerUnavailable("the producer queue stayed full") from exc
                self._producer.poll(0.1)
            except KafkaException as exc:  # refused before it was queued
                error: KafkaError = exc.args[0]
                if error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                    size = len(message.value or b"") + len(message.key or b"")
                    raise MessageTooLarge(f"{size} bytes: more than Kafka takes") from exc
                if _fatal(error):  # this producer is done
                    self._producer = Producer(self._config)
                raise BrokerUnavailable(f"Kafka refused the message: {error.str()}") from exc

    def close(self) -> None:
        """Deliver what is queued (bounded by the publish timeout)."""
        self._producer.flush(self.timeout)


class Subscriber:
    """A group consumer with manual offset storage: an offset is stored only after its work is done.

    librdkafka commits stored offsets in the background; commit() commits them now (on revoke and
    at shutdown).
    """

    def __init__(self, settings: Settings, group: str, client_id: str) -> None:
        config = consumer_config(settings, group, client_id)
        # librdkafka's statistics, served by poll, say whether any broker connection is up
        # (readiness): a consumer otherwise only logs and retries while its brokers are down
        config |= {"statistics.interval.ms": STATISTICS_INTERVAL_MS, "stats_cb": self._statistics}
        self._consumer = _made(Consumer, config)
        self.assigned: set[tuple[str, int]] = set()
        self.brokers_up = True  # until librdkafka's statistics say none is
        # Where a rewound partition reads from next: librdkafka knows no position for it until it
        # fetches again, and its lag is counted from here meanwhile.
        self._rewound: dict[tuple[str, int], int] = {}

    def subscribe(
        self,
        topics: Sequence[str],
        on_revoke: PartitionsCallback | None = None,
        on_lost: PartitionsCallback | None = None,
    ) -> None:
        """Join the group; on_revoke runs before partitions are taken away, on_lost after."""

        def assigned(consumer: Consumer, partitions: list[TopicPartition]) -> None:
            # A partition paused for a retry and taken away keeps librdkafka's pause: given back,
            # it would stay paused, unread, with nothing here to resume it. Each assignment
            # starts unpaused (the retry's wait belonged to the assignment it was made in).
            if partitions:
                consumer.resume(partitions)
            self.assigned.update((p.topic, p.partition) for p in partitions)

        def revoked(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            gone = [(p.topic, p.partition) for p in partitions]
            if on_revoke:
                on_revoke(gone)
            self._gone(gone)

        def lost(_consumer: Consumer, partitions: list[TopicPartition]) -> None:
            # Taken away without a chance to commit (session expired): the new owner redelivers.
            gone = [(p.topic, p.partition) for p in partitions]
            self._gone(gone)
            if on_lost:
                on_lost(gone)

        self._consumer.subscribe(list(topics), on_assign=assigned, on_revoke=revoked, on_lost=lost)

    def _gone(self, partitions: list[tuple[str, int]]) -> None:
        self.assigned.difference_update(partitions)
        for where in partitions:
            self._rewound.pop(where, None)

    def _statistics(self, stats: str) -> None:
        try:
            brokers = json.loads(stats).get("brokers", {})
        except (ValueError, AttributeError):  # not what librdkafka documents: keep the last
            return
        self.brokers_up = any(broker.get("state") in _CONNECTED for broker in brokers.values())

    def poll(self, max_messages: int, timeout: float) -> list[Received]:
        """Up to max_messages messages: waits up to `timeout` for the first, then takes what is
        already fetched (low latency when idle, batches under load). Broker-side conditions that
        are not messages are skipped."""
        first = self._consumer.poll(timeout)
        if first is None:
            return []
        received = []
        for message in [first, *self._consumer.consume(max_messages - 1, 0)]:
            error = message.error()
            if error is not None:
                if _fatal(error):  # this consumer can do nothing more (fenced, say): the
                    raise KafkaException(error)  # process ends, and is restarted
                # a topic missing or not allowed, a broker's transient state: librdkafka goes
                # on (and recovers what it can); said, once a minute per kind (QuietRepeats)
                LIBRDKAFKA.warning("consumer error: %s", error.str())
                continue
            received.append(_received(message))
        return received

    def store(self, messages: Sequence[Received]) -> None:
        """Mark messages done: for each partition, the offset after its last one will be
        committed."""
        after: dict[tuple[str, int], int] = {}
        for m in messages:
            after[(m.topic, m.partition)] = max(after.get((m.topic, m.partition), 0), m.offset + 1)
        # A partition revoked while its messages were handled (its revocation served inside
        # poll) is not ours to store: librdkafka refuses (_STATE), and its new owner takes its
        # messages again from the last commit, skipping what was applied here as duplicates.
        after = {where: offset for where, offset in after.items() if where in self.assigned}
        if after:
            self._consumer.store_offsets(
                offsets=[TopicPartition(t, p, offset) for (t, p), offset in after.items()]
            )

    def commit(self) -> str | None:
        """Commit stored offsets now; return why not if that failed.

        A failed commit loses nothing: the uncommitted messages are delivered again and the
        services skip them as duplicates. Only a fatal client error is raised.
        """
        try:
            self._consumer.commit(asynchronous=False)
        except KafkaException as exc:
            error: KafkaError = exc.args[0]
            if _fatal(error):
                raise
            if error.code() != KafkaError._NO_OFFSET:
                return str(error.str())
        return None

    def rewind(self, topic: str, partition: int, offset: int) -> None:
        """Pause a partition and set it to read `offset` again when resumed."""
        tp = TopicPartition(topic, partition, offset)
        self._consumer.pause([tp])
        self._consumer.seek(tp)
        self._rewound[(topic, partition)] = offset

    def resume(self, topic: str, partition: int) -> None:
        """Resume a paused partition."""
        self._consumer.resume([TopicPartition(topic, partition)])

    def lag(self) -> dict[tuple[str, int], int]:
        """Messages not yet consumed per assigned partition (high watermark - position; a
        rewound partition's from the offset it was rewound to)."""
        partitions = [TopicPartition(t, p) for t, p in sorted(self.assigned)]
        lags = {}
        for tp in self._consumer.position(partitions):
            where = (tp.topic, tp.partition)
            _low, high = self._consumer.get_watermark_offsets(tp, cached=True) or (0, 0)
            if tp.offset >= 0:
                self._rewound.pop(where, None)  # fetched again since
            position = tp.offset if tp.offset >= 0 else self._rewound.get(where, high)
            lags[where] = max(high - position, 0)
        return lags

    def close(self) -> None:
        """Commit and leave the group."""
        self._consumer.close()


class Admin:
    """Topic administration and broker reachability."""

    def __init__(self, settings: Settings) -> None:
        self._admin = _made(AdminClient, client_config(settings, "admin"))
        self.settings = settings

    def reachable(self, timeout: float = 5.0) -> bool:
        """Whether a broker answers a metadata request in time."""
        try:
            self._admin.list_topics(timeout=timeout)
        except KafkaException:
            return False
        return True

    def ensure_topics(self, names: Sequence[str], config: dict[str, str]) -> list[str]:
        """Create the topics that do not exist; return the names created."""
        existing = set(_metadata(self._admin, self.settings).topics)
        wanted = [
            NewTopic(
                name,
                num_partitions=self.settings.partitions,
                replication_factor=self.settings.replication_factor,
                config=config,
            )
            for name in names
            if name not in existing
        ]
        if not wanted:
            return []
        created, refused = [], []
        for name, future in self._admin.create_topics(wanted, operation_timeout=30).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    refused.append(f"{name}: {exc.args[0].str()}")
        self._wait_for_leaders(created)
        if refused:  # (too few brokers for the replicas, a policy, no right to create ...)
            made = f"; created {', '.join(created)}" if created else ""
            raise BrokerUnavailable(
                f"Kafka refused to create {len(refused)} topic(s): {'; '.join(refused)}{made}"
            )
        return created

    def allow(self, grants: Sequence[Grant], principal: str) -> int:
        """Create an ACL allowing each grant, from any host, to its process's principal
        (`principal` with {name}); how many. BrokerUnavailable, saying why, for one refused (a
        cluster without an authorizer, a principal not allowed to alter ACLs) or unanswered."""
        bindings = [
            AclBinding(
                ResourceType.TOPIC if g.resource == "topic" else ResourceType.GROUP,
                g.name,
                ResourcePatternType.LITERAL,
                principal.format(name=g.process),
                "*",
                AclOperation[g.operation.upper()],
                AclPermissionType.ALLOW,
            )
            for g in grants
        ]
        of = dict(zip(bindings, grants, strict=True))
        for binding, future in self._admin.create_acls(bindings, request_timeout=30).items():
            try:
                future.result()
            except KafkaException as exc:
                g = of[binding]
                what = f"{binding.principal} {g.operation} {g.resource} {g.name}"
                raise BrokerUnavailable(f"ACL not created ({what}): {exc.args[0].str()}") from exc
        return len(bindings)

    def replicas(self, names: Sequence[str]) -> dict[str, int]:
        """The replication factor of each of these topics that exists (its least replicated
        partition's)."""
        topics = _metadata(self._admin, self.settings).topics
        return {
            name: min(len(p.replicas) for p in topics[name].partitions.values())
            for name in names
            if name in topics and topics[name].partitions
        }

    def _wait_for_leaders(self, names: Sequence[str], timeout: float = 30.0) -> None:
        """Return once every partition of the topics has a leader (a new one is not usable yet)."""
        deadline = time.monotonic() + timeout
        pending = set(names)
        while pending:
            topics = self._admin.list_topics(timeout=10).topics
            pending = {
                name
                for name in pending
                if name not in topics
                or topics[name].error is not None
                or not topics[name].partitions
                or any(p.leader < 0 or p.error for p in topics[name].partitions.values())
            }
            if pending and time.monotonic() > deadline:
                raise BrokerUnavailable(f"no leader within {timeout} s for {sorted(pending)}")
            if pending:
                time.sleep(0.05)

    def committed(self, group: str) -> dict[tuple[str, int], int]:
        """A consumer group's committed offsets by (topic, partition)."""
        request = [ConsumerGroupTopicPartitions(group)]
        try:
            result = self._admin.list_consumer_group_offsets(request)[group].result(timeout=10)
        except (KafkaException, TimeoutError) as exc:
            raise BrokerUnavailable(f"Kafka did not say group {group}'s offsets: {exc}") from exc
        return {
            (tp.topic, tp.partition): tp.offset for tp in result.topic_partitions if tp.offset >= 0
        }

    def group_assigned(self, group: str, members: int = 1) -> bool:
        """Whether a consumer group is stable, with partitions assigned to (at least `members`
        of) its members."""
        try:
            found = self._admin.describe_consumer_groups([group])[group].result(timeout=10)
        except KafkaException:
            return False
        holding = sum(bool(m.assignment.topic_partitions) for m in found.members)
        return found.state == ConsumerGroupState.STABLE and holding >= members

    def delete_topics(self, names: Sequence[str]) -> None:
        """Delete topics (tests clean up after themselves)."""
        for future in self._admin.delete_topics(list(names), operation_timeout=30).values():
            future.result()


def commit_offsets(settings: Settings, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for a consumer group that reads nothing itself: a mark, such as how far a
    dead-letter topic was replayed. BrokerUnavailable if Kafka did not take them."""
    consumer = _made(Consumer, client_config(settings, "marker") | {"group.id": group})
    try:
        consumer.commit(
            offsets=[TopicPartition(t, p, offset) for (t, p), offset in offsets.items()],
            asynchronous=False,
        )
    except KafkaException as exc:
        raise BrokerUnavailable(f"Kafka did not keep the offsets: {exc.args[0].str()}") from exc
    finally:
        consumer.close()


class Reader:
    """Reads a whole topic from the start without a group (inspection, tests, dead letters)."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._consumer = _made(
            Consumer,
            client_config(settings, "reader")
            | {"group.id": "tellusonce-reader", "enable.auto.commit": False},
        )
        metadata = _metadata(self._consumer, settings, topic).topics[topic]
        if metadata.error is not None:  # (not raised by list_topics: a topic's own error) not
            # there (another prefix, `tellusonce topics` not run) or not described to this
            # principal: said, not read as empty ("0 dead letters")
            raise BrokerUnavailable(f"cannot read {topic}: {metadata.error.str()}")
        self._ends = {}
        partitions = []
        for partition in metadata.partitions:
            try:
                low, high = self._watermarks(TopicPartition(topic, partition))
            except KafkaException as exc:  # not allowed to read it, say
                raise BrokerUnavailable(f"cannot read {topic}: {exc.args[0].str()}") from exc
            if high > low:
                self._ends[partition] = high
                partitions.append(TopicPartition(topic, partition, low))
        self.topic = topic
        self._consumer.assign(partitions)

    def _watermarks(self, partition: TopicPartition, timeout: float = 10.0) -> tuple[int, int]:
        """Low and high offsets, retried while leadership settles (new topic, restarted broker)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                low, high = self._consumer.get_watermark_offsets(partition, timeout=timeout)
                return low, high
            except KafkaException as exc:
                if exc.args[0].code() not in _LEADERSHIP_MOVING or time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def read_all(self, timeout: float = 10.0) -> list[Received]:
        """Every message present when the reader was made, in partition order; BrokerUnavailable
        if none comes for `timeout` seconds before the last (however long the whole takes: a
        dead-letter topic of a bad day's million letters)."""
        out: list[Received] = []
        seen = {p: 0 for p in self._ends}
        deadline = time.monotonic() + timeout
        try:
            while any(seen[p] < self._ends[p] for p in self._ends):
                if time.monotonic() > deadline:
                    raise BrokerUnavailable(f"reading {self.topic}: nothing came for {timeout} s")
                for m in self._consumer.consume(500, 0.05):
                    if m.error() is None:
                        seen[m.partition()] = (m.offset() or 0) + 1
                        out.append(_received(m))
                        deadline = time.monotonic() + timeout
        finally:
            self._consumer.close()
        return sorted(out, key=lambda r: (r.partition, r.offset))


def _fatal(error: KafkaError) -> bool:
    """Whether a client error is fatal: the client can do nothing more. A consumer's fatal error
    comes as a message's error, and an error a delivery report or a commit carries, made by
    confluent-kafka without its fatal flag: its code, _FATAL, says so."""
    return bool(error.fatal()) or error.code() == KafkaError._FATAL


def _metadata(client: Any, settings: Settings, topic: str | None = None) -> Any:
    """The cluster's metadata (of one topic, if named); BrokerUnavailable if no broker answers
    in 10 s."""
    try:
        return client.list_topics(topic, timeout=10)
    except KafkaException as exc:
        raise BrokerUnavailable(
            f"no Kafka broker answers at {settings.bootstrap_servers}{how_to_start(settings)} "
            f"({exc.args[0].str()})"
        ) from exc


def how_to_start(settings: Settings) -> str:
    """How to start the broker the settings name, if it is the local one."""
    local = settings.bootstrap_servers == LOCAL_BROKER
    return " (`make broker-start` starts the local one)" if local else ""
