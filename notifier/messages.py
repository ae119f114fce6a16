"""What a customer reads: subject, plain text and HTML from the templates per update type and
locale (``templates/<language>.txt.j2``; English and German, English when the locale has none).

Everything a carrier or order system wrote is escaped in the HTML (Jinja2 autoescape).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

LANGUAGES = ("en", "de")
LABELS = {"en": ("Follow your order", "The carrier's tracking page"),
          "de": ("Ihre Bestellung verfolgen", "Sendungsverfolgung des Zustellers")}
_DAY = {"en": "%A %d %B %Y", "de": "%d.%m.%Y"}
_MOMENT = {"en": "%A %d %B %Y, %H:%M", "de": "%d.%m.%Y, %H:%M Uhr"}


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    html: str
    language: str


def _environment(language: str, zone: ZoneInfo) -> Environment:
    env = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                      autoescape=select_autoescape(["html", "html.j2"]), undefined=StrictUndefined,
                      keep_trailing_newline=False)
    env.filters["day"] = lambda value: _as_date(value).strftime(_DAY[language]) if value else ""
    env.filters["moment"] = lambda value: (_as_datetime(value).astimezone(zone).strftime(_MOMENT[language])
                                           if value else "")
    return env


def _as_date(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


def _as_datetime(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def language_of(locale: str) -> str:
    language = (locale or "en").split("-")[0].split("_")[0].lower()
    return language if language in LANGUAGES else "en"


def render(command: dict[str, Any], time_zone: str = "UTC") -> Message:
    """The message for ``command`` (a notification command as JSON) in its locale's language;
    times in the customer's ``time_zone``."""
    language = language_of(command.get("locale") or "")
    env = _environment(language, ZoneInfo(time_zone or "UTC"))
    context = _Command(command)
    subject, _, body = env.get_template(f"{language}.txt.j2").render(c=context).strip().partition("\n")
    paragraphs = [" ".join(line.split()) for line in body.strip().split("\n") if line.strip()]
    links = [(label, url) for label, url in zip(
        LABELS[language], (command.get("tracking_page_url"), command.get("tracking_url")), strict=True) if url]
    text = "\n\n".join(paragraphs + [f"{label}: {url}" for label, url in links])
    track_label, carrier_label = LABELS[language]
    html = env.get_template("email.html.j2").render(
        c=context, subject=subject.strip(), paragraphs=paragraphs, language=language,
        track_label=track_label, carrier_label=carrier_label)
    return Message(subject=subject.strip(), text=text + "\n", html=html, language=language)


class _Command:
    """The command's fields for the templates: absent ones read as empty, never as an error."""

    def __init__(self, command: dict[str, Any]) -> None:
        self._command = command

    def __getattr__(self, name: str) -> Any:
        value = self._command.get(name)
        return "" if value is None else value
