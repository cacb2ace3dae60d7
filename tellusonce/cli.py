"""The `tellusonce` command: submit, correct, cancel, consume, status, seed, dlq, topics, serve,
keys, up and the demo."""

from __future__ import annotations

import argparse
import errno
import logging
import os
import re
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from tellusonce import shutdown

if TYPE_CHECKING:  # imported at run time inside main(), after the signal handlers are in place
    from consumers.dead_letters import DeadLetter
    from producers.offices import Offices
    from tellusonce.settings import Settings

EVENT_TYPES = ("death", "birth", "marriage", "address-change")

EXIT_INVALID = 2
EXIT_BROKER = 3
EXIT_NOT_RECORDED = 4
PORT_MAX = 65535
# Stopped by SIGTERM or Ctrl-C cleanly (seed: finished once begun, as its stores are seeded
# one after another and `seed --if-empty` asks the first); the others are interrupted at once.
DRAINING = {"consume", "serve", "up", "demo", "seed"}
_MAYBE_SENT = ": it may have reached Kafka; run the same command again (services apply it once)"
INTERRUPTED = {
    "submit": _MAYBE_SENT,
    "correct": _MAYBE_SENT,
    "cancel": _MAYBE_SENT,
    "replay": ": `tellusonce dlq list` shows which letters are marked replayed (one sent, not "
    "yet marked, is sent again by the next replay: services apply it once)",
    "create": ": a key may have been made and not shown: `tellusonce keys list` names the "
    "office's keys (`tellusonce keys revoke KEY_ID` refuses one nobody has)",
}
DEMO_DATA_DIR = ".run/demo"  # the demo's own stores (make run's), emptied by each run


def _add_cancel(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    cancel = sub.add_parser("cancel", help="cancel a registration made in error")
    cancel.add_argument("reference")
    cancel.add_argument("--reason", required=True, help="why the registration is cancelled")
    cancel.add_argument(
        "--entry",
        type=_entry,
        default=None,
        metavar="DISTRICT:NUMBER",
        help="its register entry, if the reference names several registrations",
    )
    cancel.set_defaults(run=_publishing)


def _entry(text: str) -> tuple[str, int]:
    """A register entry given as DISTRICT:NUMBER (Leeds:1042), as entries are compared."""
    from producers.submission import entry_of

    district, _, number = text.rpartition(":")
    found = entry_of({"registration": {"district": district, "entry_number": _number(number)}})
    if found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not DISTRICT:NUMBER (e.g. Leeds:1042)")
    return found


def _number(text: str) -> int | str:
    return int(text) if text.isdigit() else text


FILE_MAX = 1024 * 1024  # bytes of a submission file (the API takes 16 KiB)


def _read_json(path: str) -> object:
    from producers import documents
    from tellusonce.errors import InvalidSubmission

    try:
        with Path(path).open("rb") as file:  # no more than a submission can be: /dev/zero
            data = file.read(FILE_MAX + 1)  # given for a file grew the process until it died
    except OSError as exc:
        raise InvalidSubmission([("(file)", f"cannot read {path}: {exc.strerror}")]) from exc
    if len(data) > FILE_MAX:
        raise InvalidSubmission([("(file)", f"{path} is larger than {FILE_MAX // 1024} KiB")])
    try:
        return documents.load(data)
    except documents.NotJson as exc:
        raise InvalidSubmission([("(file)", f"cannot read {path} as JSON: {exc}")]) from exc


def _publishing(args: argparse.Namespace, settings: Settings) -> int:
    """submit, correct and cancel: print the receipt only once Kafka acknowledged."""
    from pydantic import ValidationError

    from producers.submission import NOT_SUBMITTED_HERE, Registrar, problems_of, registration
    from producers.submission import receipt as receipt_of
    from tellusonce.codec import Codec
    from tellusonce.errors import (
        BrokerUnavailable,
        InvalidSubmission,
        MessageTooLarge,
        NotRecorded,
    )
    from tellusonce.events import EventType
    from tellusonce.kafka import Admin, Publisher, how_to_start

    try:  # a registration validated before its ledger is opened (made): bad input changes nothing
        document = None if args.command == "cancel" else _read_json(args.file)
        if args.command == "submit":
            event = registration(EventType(args.event_type), document, settings)
        elif _no_store(settings.store_url_for("registrar")):  # nothing submitted from here
            raise InvalidSubmission([NOT_SUBMITTED_HERE])
        registrar = Registrar(settings, Publisher(settings, "cli"), Codec(settings.schema_dirs))
        if args.command == "correct":
            event = registrar.correction_of(args.reference, document, args.reason)
        elif args.command == "cancel":
            event = registrar.cancellation_of(args.reference, args.reason, args.entry)
        sent = registrar.acknowledged_already(event)  # answered from the ledger, no broker
        if not sent and not Admin(settings).reachable(5.0):  # now, not after the publish's 30 s
            print(
                f"error: no broker answers at {settings.bootstrap_servers}"
                f"{how_to_start(settings)}: nothing was published; run the same command again "
                "once Kafka answers",
                file=sys.stderr,
            )
            return EXIT_BROKER
        published, now = registrar.publish_once(event)
        receipt = receipt_of(published)
    except (InvalidSubmission, ValidationError) as exc:  # a model's own check past parsing's too
        problems = exc.problems if isinstance(exc, InvalidSubmission) else problems_of(exc)
        plural = "s" if len(problems) != 1 else ""
        print(f"error: nothing was published ({len(problems)} problem{plural}):", file=sys.stderr)
        for field, reason in problems:
            print(f"  {field}: {reason}", file=sys.stderr)
        return EXIT_INVALID
    except MessageTooLarge as exc:
        print(f"error: Kafka refuses the event: larger than its topic takes ({exc})",
              file=sys.stderr)  # fmt: skip
        return EXIT_INVALID
    except BrokerUnavailable as exc:
        print(f"error: Kafka did not acknowledge the event ({exc}); {_why_not(settings)}",
              file=sys.stderr)  # fmt: skip
        return EXIT_BROKER
    except NotRecorded as exc:
        done = "published, but not recorded here" if exc.published else "not recorded nor published"
        print(
            f"error: {done} ({exc}); run the same command again to record it (services apply "
            "it once)",
            file=sys.stderr,
        )
        return EXIT_NOT_RECORDED
    print(f"event_id: {receipt.event_id}")
    print(f"reference: {receipt.reference}")
    print(f"action: {receipt.action.value}")
    if receipt.late_registration:
        print("note: registered after the legal period (flagged as a late registration)")
    if not now:
        print("note: published before; nothing was sent again")
    return 0


def _consume(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.launch import build, run_until_signalled

    port = _metrics_port(args, settings, args.name)
    run_until_signalled(build(args.name, settings), port, settings.metrics_host)
    return 0


def _why_not(settings: Settings) -> str:
    """What to do after Kafka did not acknowledge: start it if no broker answers now."""
    from tellusonce.kafka import Admin, how_to_start

    again = "run the same command again once Kafka answers (services apply the event once)"
    if Admin(settings).reachable(2.0):
        return f"it may have reached the services all the same: {again}"
    return f"no broker answers at {settings.bootstrap_servers} now{how_to_start(settings)}: {again}"


def _metrics_port(args: argparse.Namespace, settings: Settings, name: str) -> int:
    """--metrics-port, else TELLUSONCE_METRICS_PORT, else the process's own (0: any free)."""
    from tellusonce.stack import metrics_port

    given = (args.metrics_port, settings.metrics_port, metrics_port(name))
    return next(p for p in given if p is not None)


def _status(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.report import render, render_overdue
    from consumers.tracker import TrackerStore
    from producers.ledger import Ledger
    from tellusonce.codec import Codec
    from tellusonce.headers import EVENT_ID
    from tellusonce.identity import as_issued
    from tellusonce.topics import TRACKER

    if (args.reference is None) == (not args.awaiting):
        print("error: give a reference (or an event id), or --awaiting", file=sys.stderr)
        return EXIT_INVALID
    if args.older_than is not None and not args.awaiting:
        print("error: --older-than goes with --awaiting", file=sys.stderr)
        return EXIT_INVALID
    url = settings.store_url_for(TRACKER)
    none_yet = _no_store(url) and Path(url.removeprefix("sqlite:///")).parent.is_dir()
    tracker = TrackerStore("sqlite://" if none_yet else url)  # none yet: an empty one in
    if args.awaiting:  # memory (opening the file would make it); no data directory: said
        minutes = args.older_than or 0
        print(render_overdue(tracker.overdue(minutes * 60), minutes))
        return 0
    url = settings.store_url_for("registrar")  # this registrar's ledger, if it is here
    ledger = None if _no_store(url) else Ledger(url, Codec(settings.schema_dirs))
    reference = as_issued(args.reference)
    if EVENT_ID.fullmatch(event_id := args.reference.strip().lower()):  # a dead letter's, say
        published = ledger.find(event_id) if ledger else None
        mine = published.envelope.reference if published else None
        reference = tracker.reference_of(event_id) or mine or reference
    statuses = tracker.status(reference)
    # what the ledger holds: just published, or not acknowledged
    recorded = ledger.under(reference) if ledger else []
    seen = {s.event_id for s in statuses}
    statuses += tracker.unrecorded(
        [e.envelope for e, ok in recorded if ok and e.envelope.event_id_text not in seen]
    )
    statuses.sort(key=lambda s: s.revision)  # stable: the tracker's order within a revision
    waiting = tracker.unrecorded([e.envelope for e, acknowledged in recorded if not acknowledged])
    reasons = {e.envelope.event_id_text: why for e, _ in recorded if (why := e.envelope.reason)}
    print(render(reference, statuses, reasons, waiting))
    return 0 if statuses or waiting else 1


# read by deploy/kafka/broker.sh (make broker-start), not by tellusonce
_BROKERS_OWN = {  # deploy/kafka/broker.sh's
    f"TELLUSONCE_KAFKA_{name}"
    for name in ("HEAP", "PORT", "CONTROLLER_PORT", "STATE", "EXTRA_CONFIG")
}


def _unknown_settings(settings: Settings) -> list[str]:
    """What a TELLUSONCE_ variable that is no setting is (a misspelt one was ignored without a
    word), with the setting it most likely meant."""
    import difflib
    import os

    known = [_env(name) for name in type(settings).model_fields]
    said = []
    for name in sorted(v for v in os.environ if v.upper().startswith("TELLUSONCE_")):
        if name.upper() not in known and name.upper() not in _BROKERS_OWN:
            close = difflib.get_close_matches(name.upper(), known, n=1)
            meant = f" (did you mean {close[0]}?)" if close else ""
            said.append(f"{name} is not a setting, and is ignored{meant}")
    return said


def _env(field: object) -> str:
    """The environment variable of a setting."""
    return f"TELLUSONCE_{field}".upper()


def _no_store(url: str) -> bool:
    """Whether a store is an SQLite file that does not exist (opening it would make it)."""
    return url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists()


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from consumers.seed import seed, seeded

    held = [] if args.force else seeded(settings)
    if held:
        why = "stores holding records already, not seeded (events may have changed them)"
        print(f"{why}: {', '.join(held)}")
        if not args.if_empty:
            print("error: --force puts the demo's records back over them", file=sys.stderr)
            return EXIT_INVALID
    for name, count in seed(settings, only_empty=bool(held)).items():
        print(f"{name}: {count} records")
    return 0


def _topics(_args: argparse.Namespace, settings: Settings) -> int:
    from tellusonce.kafka import Admin
    from tellusonce.topics import Topics

    topics = Topics(settings.topic_prefix)
    names = topics.all()
    admin = Admin(settings)
    created = admin.ensure_topics(names, topics.config(settings.replication_factor))
    for name in names:
        print(f"{name}{'  (created)' if name in created else ''}")
    wanted = settings.replication_factor
    for name, replicas in admin.replicas([n for n in names if n not in created]).items():
        if replicas < wanted:  # made before (by a run with the default, say): Kafka keeps it
            print(
                f"warning: {name} has {replicas} replica(s), fewer than "
                f"TELLUSONCE_REPLICATION_FACTOR={wanted}; Kafka keeps an existing topic's "
                "(kafka-reassign-partitions.sh adds replicas; then set its "
                "min.insync.replicas, which only a topic created here is given: "
                "kafka-configs.sh --alter --add-config min.insync.replicas=2)",
                file=sys.stderr,
            )
    return 0


def _dlq(args: argparse.Namespace, settings: Settings) -> int:
    from consumers import dead_letters
    from tellusonce.kafka import Publisher

    letters = dead_letters.read(settings, args.service)
    if args.action == "list":
        _list_dead_letters(args.service, letters)
        return 0
    chosen = _chosen(args, letters)
    if chosen is None:
        return EXIT_INVALID
    if not chosen:
        return 0
    bodiless = [d for d in chosen if d.body_dropped]
    for d in bodiless:  # too large for Kafka: nothing to publish again
        print(
            f"{'error' if len(bodiless) == len(chosen) else 'skipped'}: the dead letter at "
            f"partition {d.partition} offset {d.offset} was kept without its {d.body_dropped} "
            f"bytes, more than Kafka takes: read it from {d.where()} while that topic retains it",
            file=sys.stderr,
        )
    chosen = [d for d in chosen if not d.body_dropped]
    if not chosen:
        print("error: nothing was replayed", file=sys.stderr)
        return EXIT_INVALID
    publisher = Publisher(settings, "dlq-replay")
    count = dead_letters.replay(settings, args.service, chosen, letters, publisher)
    print(f"replayed {count} dead letters of {args.service} to their origin topics")
    return 0


def _list_dead_letters(service: str, letters: list[DeadLetter]) -> None:
    replayed = sum(d.replayed for d in letters)
    bodiless = sum(bool(d.body_dropped) for d in letters)
    print(
        f"{len(letters)} dead letters for {service}"
        + (f", {replayed} of them replayed" if replayed else "")
        + (f", {bodiless} kept without their message (not replayable)" if bodiless else "")
    )
    for d in letters:
        dropped = (
            f" (kept without its {d.body_dropped} bytes: not replayable, read it from its origin)"
            if d.body_dropped
            else ""
        )
        event = f" · event {d.event_id} ({d.event_type})" if d.event_id else ""
        print(
            f"  partition {d.partition} offset {d.offset}: from {d.where()}{event}: "
            f"{d.error_class}: {d.error}{dropped}{' [replayed]' if d.replayed else ''}"
        )


def _chosen(args: argparse.Namespace, letters: list[DeadLetter]) -> list[DeadLetter] | None:
    """The letters a replay names (all of them not replayed yet, unless a partition or an
    offset is named; one named by its offset is sent again if it was); [] if there is nothing
    to do (said), None if the choice is refused (said)."""
    chosen = [
        d
        for d in letters
        if (args.offset is None or d.offset == args.offset)
        and (args.partition is None or d.partition == args.partition)
    ]
    if not chosen and args.offset is None and args.partition is None:
        print(f"nothing to replay: no dead letters of {args.service}")
        return []
    waiting = [d for d in chosen if args.offset is not None or not d.replayed]
    if chosen and not waiting:
        within = "" if args.partition is None else f" in partition {args.partition}"
        print(
            f"nothing to replay: every dead letter of {args.service}{within} was replayed "
            "(--partition P --offset N sends one again)"
        )
        return []
    if not waiting:
        where = " ".join(
            f"{name} {value}"
            for name, value in (("partition", args.partition), ("offset", args.offset))
            if value is not None
        )
        print(f"error: no dead letters of {args.service} at {where}", file=sys.stderr)
        return None
    if args.offset is not None and len(waiting) > 1:  # an offset is a partition's
        where = ", ".join(str(d.partition) for d in waiting)
        print(
            f"error: dead letters at offset {args.offset} in partitions {where}: "
            "say which with --partition (nothing was replayed)",
            file=sys.stderr,
        )
        return None
    return waiting


def _acls(args: argparse.Namespace, settings: Settings) -> int:
    """Print the kafka-acls.sh commands granting each process what it needs, and no more."""
    from tellusonce.acls import commands, grants
    from tellusonce.topics import Topics

    granted = grants(Topics(settings.topic_prefix))
    if not args.apply:
        for line in commands(granted, args.principal, settings.bootstrap_servers):
            print(line)
        return 0
    from tellusonce.kafka import Admin

    created = Admin(settings).allow(granted, args.principal)
    print(f"{created} ACLs created (or there already) at {settings.bootstrap_servers}")
    return 0


def _principal(text: str) -> str:
    if "{name}" not in text:
        raise argparse.ArgumentTypeError("must hold {name}: each process its own principal")
    try:
        text.format(name="pensions")
    except (KeyError, IndexError, ValueError):
        raise argparse.ArgumentTypeError("may hold {name} and no other {field}") from None
    return text


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """The API on its port, for registration offices and families; its /metrics, /healthz and
    /readyz on the metrics port (127.0.0.1 unless TELLUSONCE_METRICS_HOST), not beside the API:
    its counters show each registration as it is made, to anyone who asks."""
    from tellusonce.topics import REGISTRAR

    port = settings.api_port if args.port is None else args.port
    if port and port == _metrics_port(args, settings, REGISTRAR):  # the metrics server took
        # the port the API's socket was bound to but not yet listening on: uvicorn then
        # failed, after "registrar API on ..." was said
        print(f"error: port {port} is the API's and its metrics': choose another", file=sys.stderr)
        return 1
    # The API's socket, bound here: a port in use is said before anything starts, rather than
    # by uvicorn, and the port is known (--port 0: the one the system chose, announced and
    # probed by /readyz, which probed port 0). SO_REUSEADDR as uvicorn binds: a port whose last
    # connections wait out TIME_WAIT is free to listen on (a second `make run` within a
    # minute of the first was refused).
    with socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.host, port))
        return _serve_on(args, settings, listener)


def _serve_on(args: argparse.Namespace, settings: Settings, listener: socket.socket) -> int:
    """The API on its bound socket, and its metrics (see _serve)."""
    import uvicorn

    from producers.api import create_app
    from producers.submission import Registrar
    from tellusonce import metrics
    from tellusonce.codec import Codec
    from tellusonce.kafka import Admin, Publisher
    from tellusonce.topics import REGISTRAR

    port = int(listener.getsockname()[1])
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    registrar = Registrar(settings, Publisher(settings, "api"), Codec(settings.schema_dirs))
    admin = Admin(settings)

    anywhere = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104 (compared): asked there
    api_host = anywhere.get(args.host, args.host)

    def ready() -> bool:  # the API answers (uvicorn starts after this server), and Kafka does
        with socket.socket(listener.family) as api:  # (IPv6 too: ::1)
            listening = api.connect_ex((api_host, port)) == 0
        return listening and admin.reachable(2.0)

    served = metrics.serve(_metrics_port(args, settings, REGISTRAR), ready, settings.metrics_host)
    print(
        f"registrar API on http://{_in_url(args.host)}:{port} (docs /docs, family page /status), "
        f"metrics on http://{settings.metrics_host}:{served.server_port}/metrics",
        flush=True,
    )

    class Server(uvicorn.Server):
        async def on_tick(self, counter: int) -> bool:
            if shutdown.requested.is_set():  # a SIGTERM before uvicorn took the signals over
                self.should_exit = True  # (building the app, its start-up): it never knew
            return await super().on_tick(counter)

    try:
        if shutdown.requested.is_set():  # SIGTERM while starting: nothing to start
            return 0
        server = Server(
            uvicorn.Config(
                create_app(settings, registrar),
                host=args.host,
                port=port,
                access_log=False,
                log_config=None,
                # uvicorn believes X-Forwarded-For from 127.0.0.1 by default: through a local
                # proxy passing it on, each guess at a family's date of birth could name another
                proxy_headers=settings.api_trusted_proxies is not None,
                forwarded_allow_ips=settings.api_trusted_proxies or "",
            )
        )
        server.run(sockets=[listener])
        if not server.started:  # its start-up failed (its log line says why): a port, say
            print(f"error: the API did not start on {args.host}:{port}", file=sys.stderr)
            return 1
    finally:
        metrics.stop_serving(served)
    return 0


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    """keys create OFFICE --district NAME ... | keys list | keys revoke KEY_ID."""
    from producers.offices import Offices

    url = settings.store_url_for("registrar")
    if args.action == "list" and _no_store(url):  # not made here to say so
        print(f"no keys: no registrar store in {settings.data_dir}", file=sys.stderr)
        return 0
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    offices = Offices(url)
    if args.action == "list":
        for k in offices.listing():
            state = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
            allowed = offices.districts(k.office)
            where = "any district" if allowed is None else ", ".join(sorted(allowed))
            print(
                f"{k.key_id}  {k.office:<20} created {k.created_at:%Y-%m-%d %H:%M}  {state}  "
                f"({where})"
            )
        return 0
    if not args.name:
        name = "OFFICE" if args.action == "create" else "KEY_ID"
        print(f"error: keys {args.action} needs {name}", file=sys.stderr)
        return EXIT_INVALID
    try:
        said = _revoke(offices, args.name) if args.action == "revoke" else _create(offices, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INVALID
    print(said)
    return 0


def _revoke(offices: Offices, wanted: str) -> str:
    from producers.offices import ID_LENGTH

    revoked = offices.revoke(wanted)
    if revoked is None:
        raise ValueError(
            f"no key in use has the id {wanted} ({ID_LENGTH} characters, as `keys list` shows)"
        )
    return f"revoked key {revoked.key_id} of office {revoked.office}: refused from now on"


def _create(offices: Offices, args: argparse.Namespace) -> str:
    from producers.offices import key_id, office_name

    if not (args.district or args.any_district):
        raise ValueError(
            "keys create needs the districts the office registers in (--district NAME, once "
            "each) or --any-district"
        )
    office = office_name(args.name)
    before = offices.districts(office)
    known = any(k.office == office for k in offices.listing())
    if args.any_district and before is not None:
        raise ValueError(
            f"office {office} registers in {', '.join(sorted(before))} only (its districts "
            "are kept for every key of the office): name more with --district"
        )
    key = offices.create_key(args.name, args.district)
    allowed = offices.districts(office)
    where = "any district" if allowed is None else ", ".join(sorted(allowed))
    if known and before is None and allowed is not None:
        print(
            f"note: office {office} registered in any district until now; every key of it "
            f"now registers in {where} only",
            file=sys.stderr,
        )
    return (
        f"API key {key_id(key)} for office {office}, registering in {where}\n"
        f"(shown once; only its hash is stored):\n{key}"
    )


def _up(args: argparse.Namespace, settings: Settings) -> int:
    from tellusonce.up import run

    return run(settings, args.metrics_base_port)


def _demo(_args: argparse.Namespace, settings: Settings) -> int:
    from tellusonce.demo import run

    own = Path(DEMO_DATA_DIR)
    if "data_dir" not in settings.model_fields_set:  # its fresh stores are not the services'
        settings = settings.model_copy(update={"data_dir": own})
    return run(settings, owned=settings.data_dir.resolve() == own.resolve())


def _add_keys(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """keys create OFFICE --district NAME ... | keys list | keys revoke KEY_ID."""
    keys = sub.add_parser("keys", help="API keys of registration offices")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("name", nargs="?", help="create: the office; revoke: the key's id")
    keys.add_argument(
        "--district", action="append", default=[], help="create: a district the office registers in"
    )
    keys.add_argument(
        "--any-district", action="store_true", help="create: the office registers in any district"
    )
    keys.set_defaults(run=_keys)


def _port(text: str, lowest: int = 0, highest: int = PORT_MAX) -> int:
    """A port number argument: an integer from lowest to highest (0: any free one)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not lowest <= number <= highest:
        raise argparse.ArgumentTypeError(f"{number} is not a port from {lowest} to {highest}")
    return number


def _in_url(host: str) -> str:
    """A host as a URL writes it (an IPv6 address in brackets)."""
    return f"[{host}]" if ":" in host else host


def _minutes(text: str) -> float:
    """A number of minutes, 0 or more."""
    try:
        number = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of minutes: {text!r}") from None
    if not 0 <= number < 1e9:
        raise argparse.ArgumentTypeError(f"{text} is not a number of minutes from 0")
    return number


def parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from consumers.launch import NAMES

    top = argparse.ArgumentParser(prog="tellusonce", description=__doc__)
    sub = top.add_subparsers(dest="command", required=True)
    submit = sub.add_parser("submit", help="validate and publish a registration from a JSON file")
    submit.add_argument("event_type", choices=EVENT_TYPES)
    submit.add_argument("file")
    submit.set_defaults(run=_publishing)
    correct = sub.add_parser("correct", help="publish a correction: the whole corrected submission")
    correct.add_argument("reference")
    correct.add_argument("file")
    correct.add_argument("--reason", default=None, help="why the entry is corrected")
    correct.set_defaults(run=_publishing)
    _add_cancel(sub)
    consume = sub.add_parser("consume", help="run a service (or the tracker) until SIGTERM")
    consume.add_argument("name", choices=NAMES)
    consume.add_argument("--metrics-port", type=_port, default=None)
    consume.set_defaults(run=_consume)
    status = sub.add_parser(
        "status",
        help="what each service did with a reference (or an event id); --awaiting: the events "
        "a service has not answered",
    )
    status.add_argument("reference", nargs="?", help="a reference (7QK2M-93XDA) or an event id")
    status.add_argument(
        "--awaiting",
        action="store_true",
        help="list the events some service has not answered, oldest first (up to 100)",
    )
    status.add_argument(
        "--older-than",
        type=_minutes,
        default=None,
        metavar="MINUTES",
        help="with --awaiting: only those published over MINUTES ago (the overdue alert's 15)",
    )
    status.set_defaults(run=_status)
    seeding = sub.add_parser("seed", help="write synthetic demo records into every store")
    seeding.add_argument(
        "--if-empty",
        action="store_true",
        help="only if the stores hold no records (a restart keeps what events changed)",
    )
    seeding.add_argument(
        "--force",
        action="store_true",
        help="even over records the stores hold (what events changed is put back)",
    )
    seeding.set_defaults(run=_seed)
    dlq = sub.add_parser("dlq", help="list or replay a service's dead letters")
    dlq.add_argument("action", choices=["list", "replay"])
    dlq.add_argument("service", choices=NAMES)
    dlq.add_argument("--offset", type=int, default=None, help="replay only this offset")
    dlq.add_argument("--partition", type=int, default=None, help="of this partition")
    dlq.set_defaults(run=_dlq)
    sub.add_parser("topics", help="create the bus's topics").set_defaults(run=_topics)
    acls = sub.add_parser(
        "acls", help="print the Kafka ACLs each process needs (kafka-acls.sh commands)"
    )
    acls.add_argument(
        "--principal",
        type=_principal,
        default="User:tellusonce-{name}",
        help="each process's principal, {name} its name (default: %(default)s)",
    )
    acls.add_argument(
        "--apply",
        action="store_true",
        help="create them on the cluster (TELLUSONCE_KAFKA_SECURITY: a principal allowed to)",
    )
    acls.set_defaults(run=_acls)
    serve = sub.add_parser("serve", help="the registrar HTTP API and the family status page")
    serve.add_argument("--port", type=_port, default=None)
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument(
        "--metrics-port", type=_port, default=None, help="/metrics and probes (9406; 0: any)"
    )
    serve.set_defaults(run=_serve)
    _add_keys(sub)
    up = sub.add_parser(
        "up", help="broker (if none), every service, the tracker and the registrar API until Ctrl-C"
    )
    up.add_argument(
        "--metrics-base-port",
        type=lambda text: _port(text, lowest=1),
        default=9401,
        help="the first of the processes' consecutive metrics ports (pensions' ... the API's)",
    )
    up.set_defaults(run=_up)
    demo = sub.add_parser("demo", help="the main job: every service, one death, 4 confirmations")
    demo.set_defaults(run=_demo)
    return top


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; exit 2 for bad input, 3 when Kafka did not acknowledge (or no broker
    answers), 4 when the registrar's ledger could not record the event, 1 when a store,
    directory or port cannot be used, or the settings are invalid or would expose people's
    data; 128 + the signal's number when a short command is interrupted."""
    shutdown.install()
    args = parser().parse_args(argv)
    from tellusonce import logs

    settings = _settings()
    if settings is None:
        return 1
    # Services log what they do; a command a person runs answers on stdout, its own info lines
    # (event_published, ...) only interleaving with the answer, unless TELLUSONCE_LOG_LEVEL asks.
    asked = "log_level" in settings.model_fields_set
    serving = args.command in {"consume", "serve"}
    logs.configure(settings.log_level if serving or asked else "warning")
    if not (serving or asked):  # librdkafka's warnings are retries it makes itself ("Failed to
        # acquire idempotence PID ...: retrying" on a broker just started): its errors only
        logging.getLogger("librdkafka").setLevel(logging.ERROR)
    try:
        if args.command not in DRAINING:
            shutdown.at_once()
        return int(args.run(args, settings))
    except KeyboardInterrupt:  # a short command's Ctrl-C or SIGTERM (a store's transaction undone)
        done = INTERRUPTED.get(getattr(args, "action", args.command), "")
        print(f"error: interrupted{done}", file=sys.stderr)
        return shutdown.exit_status()
    except Exception as exc:
        return _failed(exc, settings)


def entry() -> NoReturn:
    """The `tellusonce` command: main()'s exit status, or, for a short command interrupted,
    the signal's own end (so a shell loop running it stops at Ctrl-C, as for any program)."""
    status = main()
    shutdown.end_if_interrupted()
    raise SystemExit(status)


def _settings() -> Settings | None:
    """The TELLUSONCE_ settings, or None once each invalid one is named (never its value: a
    secret, say); unknown TELLUSONCE_ variables warned of."""
    from pydantic import ValidationError
    from pydantic_settings import SettingsError

    from tellusonce.settings import Settings

    try:
        settings = Settings()
    except ValidationError as exc:
        for error in exc.errors(include_input=False, include_url=False):
            print(f"error: setting {_env(error['loc'][0])}: {error['msg']}", file=sys.stderr)
        return None
    except SettingsError as exc:  # a JSON setting that is not JSON: its value withheld too
        field = re.search(r'field "(\w+)"', str(exc))
        name = _env(field.group(1)) if field else "a TELLUSONCE_ setting"
        print(f"error: setting {name}: not valid JSON", file=sys.stderr)
        return None
    for unknown in _unknown_settings(settings):
        print(f"warning: {unknown}", file=sys.stderr)
    return settings


def _failed(exc: Exception, settings: Settings) -> int:
    """A command's failure said in one line, with its exit code; one not foreseen is raised."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    from tellusonce.database import reason
    from tellusonce.errors import BadSettings, BrokerUnavailable, StoreBusy, UnsafeSettings

    if isinstance(exc, BrokenPipeError):  # `tellusonce dlq list | head`: what is left unsaid
        devnull = os.open(os.devnull, os.O_WRONLY)  # (Python's own flush at exit would fail too)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    if isinstance(exc, BrokerUnavailable):  # topics, dlq: what submit says in its own words
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BROKER
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        print(f"error: {exc}: another process listens there (choose another port)", file=sys.stderr)
        return 1
    if isinstance(exc, OperationalError):  # a store locked by another process, say (keys, seed)
        exc = StoreBusy(f"store busy: {reason(exc)}")
    elif isinstance(exc, DatabaseError):  # a file there that is not a store (not SQLite's)
        exc = StoreBusy(f"store not usable: {reason(exc)}")
    if isinstance(exc, StoreBusy) or (isinstance(exc, OSError) and exc.filename is not None):
        raise _unusable(exc, settings) from exc
    if isinstance(exc, OSError | UnsafeSettings | BadSettings):
        print(f"error: {exc}", file=sys.stderr)
        return 1
    raise exc


def _unusable(exc: Exception, settings: Settings) -> SystemExit:
    """A store or directory this command cannot use, said in one line (exit 1)."""
    return SystemExit(
        f"error: {exc} (data directory {settings.data_dir}: TELLUSONCE_DATA_DIR sets another;"
        " `make run` uses .run/demo)"
    )
