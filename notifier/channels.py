"""Where a notification goes: e-mail over SMTP, a signed HTTP POST (SMS and push providers, or a
merchant's own service), or the JSON-lines file the demo reads.

Each ``send`` either returns (the receiver took it) or raises ``DeliveryError`` saying whether
trying again can help. Every message carries the idempotency key of its (command, channel).
"""

from __future__ import annotations

import logging
import os
import smtplib
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import Any, Protocol

import orjson

from models.delivery import http_permanent, smtp_permanent, without_contacts
from models.settings import Settings
from models.webhook_signatures import TRACKLINE_HEADER, trackline_signature
from notifier.messages import render

log = logging.getLogger("trackline.notifier")

IDEMPOTENCY_HEADER = "Idempotency-Key"


class DeliveryError(Exception):
    def __init__(self, detail: str, permanent: bool) -> None:
        super().__init__(without_contacts(detail)[:500])  # server messages may echo the address
        self.permanent = permanent


@dataclass(frozen=True)
class Contact:
    """Where a customer is reached, from their preferences: held in the notifier's memory only."""

    email: str | None
    phone: str | None
    time_zone: str


class Channel(Protocol):
    name: str
    schedules: bool  # can the receiver hold a message until send_after itself?

    def address(self, contact: Contact | None) -> str | None:
        """Where this channel sends for the customer; None when there is nowhere (suppressed)."""

    def send(self, command: dict[str, Any], contact: Contact | None, key: str) -> None: ...


class SmtpChannel:
    """E-mail: plain text and HTML, ``Message-ID`` from the idempotency key. SMTP cannot hold a
    message until a time, so the notifier holds deferred ones itself (``schedules`` False)."""

    name = "email"
    schedules = False

    def __init__(self, host: str, port: int, sender: str, username: str = "", password: str = "",
                 starttls: bool = False, timeout: float = 15.0) -> None:
        self.host, self.port, self.sender = host, port, sender
        self.username, self.password, self.starttls, self.timeout = username, password, starttls, timeout

    def address(self, contact: Contact | None) -> str | None:
        return contact.email if contact else None

    def send(self, command: dict[str, Any], contact: Contact | None, key: str) -> None:
        to = self.address(contact)
        assert to and contact is not None
        message = render(command, contact.time_zone)
        email = EmailMessage()
        email["Subject"] = message.subject
        email["From"] = self.sender
        email["To"] = to
        email["Date"] = formatdate(localtime=False)
        email["Message-ID"] = f"<{key}@trackline>"
        email.set_content(message.text)
        email.add_alternative(message.html, subtype="html")
        email["Content-Language"] = message.language  # after the parts: making them moves content headers
        try:
            smtp = self._hand_over(email)
        except smtplib.SMTPRecipientsRefused as refused:
            codes = [code for code, _ in refused.recipients.values()]
            raise DeliveryError(f"recipient refused: {codes}",
                                permanent=all(smtp_permanent(c) for c in codes)) from None
        except smtplib.SMTPResponseException as error:
            raise DeliveryError(f"SMTP {error.smtp_code}: {error.smtp_error!r}",
                                permanent=smtp_permanent(error.smtp_code)) from None
        except (smtplib.SMTPException, OSError) as error:  # refused connection, timeout, dropped
            raise DeliveryError(f"SMTP connection: {error}", permanent=False) from None
        # The server took the message: a failed goodbye (QUIT) does not unsend it, and
        # retrying would send the customer a second copy.
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError) as error:
            log.info("e-mail %s accepted; the server's goodbye failed (%s)", key, error)
            smtp.close()

    def _hand_over(self, email: EmailMessage) -> smtplib.SMTP:
        """The message handed to the server; its session is returned still open, for the goodbye."""
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        try:
            if self.starttls:
                smtp.starttls()
            if self.username:
                smtp.login(self.username, self.password)
            smtp.send_message(email)
        except BaseException:
            smtp.close()
            raise
        return smtp


class HttpChannel:
    """POST the command as JSON, signed with trackline's header, ``Idempotency-Key`` set; the body
    names the channel and, for SMS, the number. ``send_after`` travels in the command: providers
    schedule it (Twilio, FCM, APNs)."""

    schedules = True

    def __init__(self, name: str, url: str, secret: str, timeout: float = 10.0) -> None:
        self.name, self.url, self.secret, self.timeout = name, url, secret, timeout

    def address(self, contact: Contact | None) -> str | None:
        if self.name == "sms":
            return contact.phone if contact else None
        return self.url  # push: the merchant's service knows the customer's devices

    def send(self, command: dict[str, Any], contact: Contact | None, key: str) -> None:
        body = orjson.dumps({**command, "channel": self.name,
                             **({"to": contact.phone} if self.name == "sms" and contact else {})})
        request = urllib.request.Request(self.url, data=body, method="POST", headers={
            "Content-Type": "application/json", IDEMPOTENCY_HEADER: key,
            TRACKLINE_HEADER: trackline_signature(body, self.secret, datetime.now(UTC))})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                answer.read()
        except urllib.error.HTTPError as error:
            raise DeliveryError(f"HTTP {error.code} from {self.name} endpoint",
                                permanent=http_permanent(error.code)) from None
        except (urllib.error.URLError, OSError) as error:  # refused, timeout, reset
            raise DeliveryError(f"{self.name} endpoint unreachable: {error}", permanent=False) from None


class JsonLinesChannel:
    """The demo's channel: one line per command in a file, which drops repeats by command id
    itself, as a receiver drops them by idempotency key."""

    name = "file"
    schedules = True

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.delivered: set[str] = set()
        if path.exists():
            for line in path.read_bytes().splitlines():
                if line.strip():
                    self.delivered.add(orjson.loads(line)["command_id"])
        self._file = open(path, "ab")

    def address(self, contact: Contact | None) -> str | None:
        return str(self.path)

    def send(self, command: dict[str, Any], contact: Contact | None, key: str) -> None:
        if command["command_id"] in self.delivered:
            return
        self._file.write(orjson.dumps(command) + b"\n")
        # Out of this process now: the ledger may say "sent" before the next sync, and a
        # process killed in between must not lose a line the ledger counts as delivered.
        self._file.flush()
        self.delivered.add(command["command_id"])

    def sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()


def configured_channels(settings: Settings) -> list[Channel]:
    """The transports the settings configure; a customer's channel without one uses the file."""
    channels: list[Channel] = []
    if settings.smtp_host:
        channels.append(SmtpChannel(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.smtp_username,
                                    settings.smtp_password.get_secret_value() if settings.smtp_password else "",
                                    settings.smtp_starttls))
    secret = settings.notifier_http_secret.get_secret_value() if settings.notifier_http_secret else ""
    for name, url in (("sms", settings.sms_url), ("push", settings.push_url)):
        if url:
            channels.append(HttpChannel(name, url, secret))
    return channels
