"""The reference notifier's real channels: a real SMTP server on loopback (aiosmtpd) and a real
HTTP receiver, the embedded (memory-only) broker, and the messages as the receivers got them."""

from __future__ import annotations

import contextlib
import email
import email.policy
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from aiosmtpd.controller import Controller

from broker.embedded import free_port
from models import topics
from models.delivery import RetryPolicy, idempotency_key
from models.effects import NotificationCommand, NotificationType
from models.webhook_signatures import TRACKLINE_HEADER, Verdict, verify_trackline
from notifier.channels import HttpChannel, SmtpChannel
from notifier.worker import NotificationWorker
from tests.integration.conftest import produce
from tests.integration.test_notifier_delivery import read_all

pytestmark = pytest.mark.integration
EMAIL = "erika.mustermann@example.de"
PHONE = "+49 151 2345 6789"
HTTP_SECRET = "http-channel-secret-0123"


class Mailbox:
    """An SMTP server's handler: answers each RCPT with the next scripted code (then 250), keeps
    every message it accepted."""

    def __init__(self) -> None:
        self.script: list[str] = []
        self.quit_reply = "221 Bye"
        self.received: list[email.message.EmailMessage] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802 (aiosmtpd's name)
        if self.script:
            return self.script.pop(0)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        self.received.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted"

    async def handle_QUIT(self, server, session, envelope):  # noqa: N802
        return self.quit_reply

    def message_ids(self) -> list[str]:
        return sorted(m["Message-ID"] for m in self.received)


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


class Receiver:
    """An HTTP endpoint for the SMS and push channels: answers with the next scripted status."""

    def __init__(self) -> None:
        self.script: list[int] = []
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                status = receiver.script.pop(0) if receiver.script else 200
                if status == 200:
                    receiver.received.append((self.path, dict(self.headers), body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    running = Receiver()
    yield running
    running.server.shutdown()


def command(n: int, customer: str, type_: NotificationType = NotificationType.shipped, **extra: object) -> tuple:
    now = datetime.now(UTC)
    body = NotificationCommand(
        command_id=f"cmd-{customer}-{n}", type=type_, order_id=f"ORD-{customer}-{n}", package_id="P1",
        customer_id=customer, occurred_at=now, caused_by_ingested_at=now, carrier="UPS", tracking_number="1Z999",
        tracking_url="https://www.ups.com/track?tracknum=1Z999",
        tracking_page_url=f"https://track.example-shop.com/track/token-{n}", **extra).model_dump_json().encode()
    return (topics.NOTIFICATIONS, f"ORD-{customer}-{n}".encode(), body, [])


def preferences(customer: str, **fields: object) -> tuple:
    return (topics.CUSTOMER_PREFERENCES, customer.encode(), orjson.dumps({"customer_id": customer, **fields}), [])


@contextlib.contextmanager
def notifier(broker: str, outbox: Path, channels: list, retry: RetryPolicy | None = None,
             **options: object) -> Iterator[NotificationWorker]:
    worker = NotificationWorker(broker, outbox, channels, retry or RetryPolicy(4, 0.2, 1.0), seed=1,
                                **options)  # type: ignore[arg-type]
    failures: list[BaseException] = []

    def run() -> None:
        try:
            worker.run()
        except BaseException as error:  # shown by wait(): a test must not wait for a dead notifier
            failures.append(error)
            raise

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    RUNNING.append((thread, failures))
    try:
        yield worker
    finally:
        worker.stopping.set()
        thread.join(30)
        RUNNING.remove((thread, failures))


RUNNING: list[tuple[threading.Thread, list[BaseException]]] = []


def wait(condition, timeout: float, what: str, state=lambda: "") -> None:
    """Until ``condition``; on a timeout, ``state()`` says what was seen instead."""
    deadline = time.monotonic() + timeout
    while not condition():
        for thread, failures in RUNNING:
            assert thread.is_alive(), f"a notifier stopped: {failures}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}: {state()}"
        time.sleep(0.2)


def test_an_email_in_the_customers_language_with_links_and_its_idempotency_key(broker, tmp_path, mailbox) -> None:
    box, port = mailbox
    produce(broker, [preferences("CUST-DE", channels=["email"], locale="de-DE", time_zone="Europe/Berlin",
                                 email=EMAIL),
                     preferences("CUST-EN", channels=["email"], email="sam@example.com"),
                     command(1, "CUST-DE", NotificationType.ready_for_pickup, location="Packstation 12",
                             pickup_code="4711", pickup_deadline=datetime(2026, 12, 4, 19, 0, tzinfo=UTC),
                             locale="de-DE"),
                     command(2, "CUST-EN", NotificationType.shipped, locale="en-US",
                             estimated_delivery=datetime(2026, 12, 1).date())])
    with notifier(broker, tmp_path / "outbox.jsonl", [SmtpChannel("127.0.0.1", port, "Shop <shop@example.com>")]):
        wait(lambda: len(box.received) == 2, 60, "two e-mails")
    by_to = {m["To"]: m for m in box.received}
    german = by_to[EMAIL]
    assert german["Subject"] == "Ihre Bestellung ORD-CUST-DE-1 liegt zur Abholung bereit"
    assert german["Message-ID"] == f"<{idempotency_key('cmd-CUST-DE-1', 'email')}@trackline>"
    text = german.get_body(("plain",)).get_content()
    # The deadline in the customer's zone: 19:00 UTC is 20:00 in Berlin.
    assert "Packstation 12" in text and "Abholcode 4711" in text and "04.12.2026, 20:00 Uhr" in text
    assert "https://track.example-shop.com/track/token-1" in text
    html = german.get_body(("html",)).get_content()
    assert '<a href="https://track.example-shop.com/track/token-1">' in html
    english = by_to["sam@example.com"]
    assert english["Subject"] == "Your order ORD-CUST-EN-2 has shipped"
    assert "Expected delivery: Tuesday 01 December 2026" in english.get_body(("plain",)).get_content()
    # Nothing the notifier wrote to the broker holds an address.
    for topic in (topics.HISTORY, topics.DELIVERY_LEDGER):
        assert all(b"@example" not in m.value() for m in read_all(broker, topic, 2)), topic


def test_signed_http_to_the_sms_and_push_endpoints(broker, tmp_path, receiver) -> None:
    # Addressed as the policy addresses it: the customer's channels.
    produce(broker, [preferences("CUST-H", channels=["sms", "push"], phone=PHONE),
                     command(1, "CUST-H", channels=["sms", "push"])])
    channels = [HttpChannel("sms", receiver.url + "/sms", HTTP_SECRET), HttpChannel("push", receiver.url + "/push",
                                                                                   HTTP_SECRET)]
    with notifier(broker, tmp_path / "outbox.jsonl", channels):
        wait(lambda: len(receiver.received) == 2, 60, "an SMS and a push")
    by_path = {path: (headers, body) for path, headers, body in receiver.received}
    for path, channel in (("/sms", "sms"), ("/push", "push")):
        headers, body = by_path[path]
        assert verify_trackline(body, headers[TRACKLINE_HEADER], [HTTP_SECRET], datetime.now(UTC)) is Verdict.valid
        assert headers["Idempotency-Key"] == idempotency_key("cmd-CUST-H-1", channel)
        sent = orjson.loads(body)
        assert (sent["command_id"], sent["channel"], sent["tracking_page_url"]) == (
            "cmd-CUST-H-1", channel, "https://track.example-shop.com/track/token-1")
    assert orjson.loads(by_path["/sms"][1])["to"] == PHONE
    assert "to" not in orjson.loads(by_path["/push"][1])


def test_once_per_command_and_channel_across_restarts_and_two_processes(broker, tmp_path, mailbox) -> None:
    box, port = mailbox
    customers = [f"CUST-{n}" for n in range(12)]
    produce(broker, [preferences(c, email=f"{c.lower()}@example.com") for c in customers])
    produce(broker, [command(1, c) for c in customers])
    smtp = SmtpChannel("127.0.0.1", port, "shop@example.com")

    def seen(*processes: NotificationWorker) -> str:
        return (f"e-mails {box.message_ids()}; per process "
                f"{[(dict(p.outcome_counts), p.duplicates_skipped) for p in processes]}")

    def sent(n: int) -> Callable[[], bool]:
        return lambda: f"<{idempotency_key(f'cmd-{customers[0]}-{n}', 'email')}@trackline>" in box.message_ids()

    with notifier(broker, tmp_path / "a.jsonl", [smtp]) as a, notifier(broker, tmp_path / "b.jsonl", [smtp]) as b:
        wait(lambda: len(box.received) >= 12, 90, "twelve e-mails from two processes", lambda: seen(a, b))
        produce(broker, [command(1, c) for c in customers])  # the same commands again (a replay upstream)
        produce(broker, [command(2, customers[0])])
        wait(sent(2), 60, "the new command", lambda: seen(a, b))
        a.stopping.set()  # both leave the group together, as a deployment stops
        b.stopping.set()
    # A new process, later, in a group of its own: it reads every command from the beginning
    # (twice the twelve, and command 2), and the ledger on the broker says each was sent. (In the
    # old group, the embedded broker may keep a new member waiting for good when the old ones
    # left in the middle of a rebalance: a Tansu limitation, not the ledger's.)
    with notifier(broker, tmp_path / "c.jsonl", [smtp], group="trackline-notifier-replay") as replay:
        produce(broker, [command(3, customers[0])])
        wait(sent(3), 120, "the third command", lambda: seen(replay))
        wait(lambda: replay.duplicates_skipped >= 25, 60, "the replayed commands skipped", lambda: seen(replay))
    ids = box.message_ids()
    assert len(ids) == len(set(ids)) == 14, ids


def test_an_email_the_server_accepted_is_not_sent_again_when_its_goodbye_fails(broker, tmp_path, mailbox) -> None:
    box, port = mailbox
    box.quit_reply = "421 4.3.2 Shutting down"  # after "250 Message accepted"
    produce(broker, [preferences("CUST-Q", email="quit@example.com"), command(1, "CUST-Q"), command(2, "CUST-Q")])
    with notifier(broker, tmp_path / "outbox.jsonl", [SmtpChannel("127.0.0.1", port, "shop@example.com")]) as worker:
        wait(lambda: worker.outcome_counts["email sent"] == 2, 60, "both e-mails recorded as sent",
             lambda: (box.message_ids(), dict(worker.outcome_counts)))
        time.sleep(1.5)  # a retry (0.2 s back-off) would have come by now
    assert box.message_ids() == sorted(f"<{idempotency_key(f'cmd-CUST-Q-{n}', 'email')}@trackline>" for n in (1, 2))


def test_quiet_hours_hold_an_email_durably_until_due(broker, tmp_path, mailbox) -> None:
    """SMTP cannot schedule: the notifier holds the e-mail on the ledger until ``send_after``,
    and a restarted notifier sends it when due. The notifiers' clock is moved, not waited for."""
    box, port = mailbox
    smtp = SmtpChannel("127.0.0.1", port, "shop@example.com")
    due = datetime.now(UTC) + timedelta(hours=8)
    produce(broker, [preferences("CUST-Q", email="night@example.com"),
                     command(1, "CUST-Q", send_after=due)])
    with notifier(broker, tmp_path / "outbox.jsonl", [smtp]) as first:
        wait(lambda: first.outcome_counts["email deferred"] == 1, 60, "the e-mail held")
        first.clock = lambda: due - timedelta(seconds=1)
        time.sleep(2)  # a second before it is due: still held
    assert box.received == []  # stopped before it was due: nothing sent, nothing lost
    # The next process (a group of its own: see test_once_per_...) finds the held e-mail on the ledger.
    with notifier(broker, tmp_path / "outbox.jsonl", [smtp], group="trackline-notifier-next") as second:
        second.clock = lambda: due + timedelta(seconds=1)
        wait(lambda: len(box.received) == 1, 120, "the held e-mail after the restart, once due")
    rows = [orjson.loads(m.value())[0] for m in read_all(broker, topics.HISTORY, 2)]
    assert sorted(r["detail"].split(" ")[0] for r in rows) == ["deferred", "sent"]


def test_transient_failures_are_retried_and_permanent_ones_fail_at_once(broker, tmp_path, mailbox, receiver) -> None:
    box, port = mailbox
    box.script = ["451 4.3.0 Try again later", "421 4.7.0 Busy"]  # then accepted
    receiver.script = [400]  # the push endpoint refuses the request itself
    produce(broker, [preferences("CUST-R", channels=["email", "push"], email="retry@example.com"),
                     command(1, "CUST-R", channels=["email", "push"])])
    channels = [SmtpChannel("127.0.0.1", port, "shop@example.com"), HttpChannel("push", receiver.url, HTTP_SECRET)]
    with notifier(broker, tmp_path / "outbox.jsonl", channels) as worker:
        wait(lambda: len(box.received) == 1 and worker.outcome_counts["push failed"] == 1, 60,
             "the e-mail after two refusals, and the push failed")
    assert receiver.received == []
    letters = read_all(broker, topics.DLQ, 1)
    assert [dict(m.headers())[topics.DLQ_REASON_HEADER] for m in letters] == [b"delivery_failed"]
    assert orjson.loads(letters[0].value())["command_id"] == "cmd-CUST-R-1"
    assert b"retry@example.com" not in letters[0].value()


def test_a_receiver_that_keeps_failing_is_given_up_after_the_retries(broker, tmp_path, mailbox) -> None:
    box, port = mailbox
    box.script = ["451 4.3.0 Try again later"] * 10
    produce(broker, [preferences("CUST-F", email="flaky@example.com"), command(1, "CUST-F")])
    with notifier(broker, tmp_path / "outbox.jsonl", [SmtpChannel("127.0.0.1", port, "shop@example.com")],
                  RetryPolicy(3, 0.2, 0.5)) as worker:
        wait(lambda: worker.outcome_counts["email failed"] == 1, 60, "the e-mail given up")
    assert box.received == [] and len(box.script) == 7  # three attempts, then no more
    rows = [orjson.loads(m.value())[0] for m in read_all(broker, topics.HISTORY, 1)]
    assert [r["detail"].split(":")[0] for r in rows] == ["failed"]


def test_no_address_for_the_channel_is_recorded_as_suppressed(broker, tmp_path, mailbox) -> None:
    box, port = mailbox
    produce(broker, [preferences("CUST-N", channels=["email"]), command(1, "CUST-N")])
    with notifier(broker, tmp_path / "outbox.jsonl", [SmtpChannel("127.0.0.1", port, "shop@example.com")]) as worker:
        wait(lambda: worker.outcome_counts["email suppressed"] == 1, 60, "the e-mail suppressed")
    assert box.received == []


def test_a_held_entry_that_cannot_be_sent_is_dead_lettered_and_the_rest_go_on(broker, tmp_path, mailbox) -> None:
    """A ledger entry this code cannot send (a command with an unreadable time) would otherwise
    stop the notifier at every start: it goes to the DLQ, and later commands are still sent."""
    from models.delivery import LedgerEntry, State, ledger_key

    box, port = mailbox
    broken = {"command_id": "cmd-broken", "order_id": "ORD-B", "customer_id": "CUST-B", "type": "shipped",
              "occurred_at": "not-a-time", "channels": ["email"]}
    held = LedgerEntry(State.held, datetime.now(UTC), due=datetime.now(UTC) - timedelta(minutes=1), partition=0,
                       command=broken)
    produce(broker, [(topics.DELIVERY_LEDGER, ledger_key("cmd-broken", "email"), held.dump(), []),
                     preferences("CUST-OK", email="ok@example.com"), command(1, "CUST-OK")])
    with notifier(broker, tmp_path / "outbox.jsonl", [SmtpChannel("127.0.0.1", port, "shop@example.com")],
                  group="trackline-notifier-poison"):
        wait(lambda: len(box.received) == 1, 90, "the good command's e-mail")
    letters = read_all(broker, topics.DLQ, 1)
    assert [(dict(m.headers())[topics.DLQ_REASON_HEADER], orjson.loads(m.value())["command_id"]) for m in letters] \
        == [(b"internal_error", "cmd-broken")]
