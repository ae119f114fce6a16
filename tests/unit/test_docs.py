"""The README is read before the code: its command and configuration tables must say what the
CLI parser and the settings model do, and every dead-letter reason the code can emit must be
explained there. These tests fail when one side changes without the other."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from models.errors import DLQ_REASONS
from models.settings import ENV_PREFIX, WEBHOOK_SOURCES, Settings
from trackline.cli import build_parser

README = (Path(__file__).parents[2] / "README.md").read_text()
COMMON = {"--kafka", "--clickhouse", "--data-dir", "--partitions", "--log-level", "-h", "--help"}


def section(title: str) -> str:
    start = README.index(f"\n## {title}\n")
    end = README.find("\n## ", start + 1)
    return README[start:end if end > 0 else None]


def table_rows(text: str) -> list[list[str]]:
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.lstrip().startswith("|")]
    return [row for row in rows[2:] if not set("".join(row)) <= set("-: ")] if rows else []


def subcommands() -> dict[str, argparse.ArgumentParser]:
    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices)


def options(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings}


def test_the_command_table_names_every_command_and_each_of_its_options() -> None:
    commands = subcommands()
    documented: set[str] = set()
    for command_cell, *_ in table_rows(section("Commands")):
        match = re.match(r"`trackline ([a-z-]+)", command_cell)
        if not match:  # `python -m trackline.chaos`: its own parser
            continue
        name = match[1]
        assert name in commands, f"README documents `trackline {name}`, which the CLI does not have"
        documented.add(name)
        flags = set(re.findall(r"--[a-z][a-z0-9-]*", command_cell))
        assert flags <= options(commands[name]), f"`trackline {name}`: README names {flags - options(commands[name])}"
        missing = options(commands[name]) - COMMON - flags
        assert not missing, f"`trackline {name}` has {sorted(missing)}, not in README's command table"
    assert documented == set(commands), f"commands not in README's table: {sorted(set(commands) - documented)}"


def documented_variables() -> dict[str, str]:
    """Variable -> its row's flag cell, from the configuration table (and the notifier's)."""
    found: dict[str, str] = {}
    for title in ("Configuration", "Notifications out: the reference notifier"):
        for row in table_rows(section(title)):
            for variable in re.findall(r"`(TRACKLINE_[A-Z0-9_<>]+)`", row[0]):
                if variable == "TRACKLINE_SECRET_<SOURCE>":
                    found.update({f"TRACKLINE_SECRET_{s.upper()}": row[1] for s in WEBHOOK_SOURCES})
                else:
                    found[variable] = row[1] if len(row) > 1 else ""
    return found


def test_every_setting_is_in_the_configuration_table_and_nothing_else_is() -> None:
    documented = documented_variables()
    variables = {ENV_PREFIX + name.upper() for name in Settings.model_fields}
    assert not variables - set(documented), f"settings missing from README: {sorted(variables - set(documented))}"
    assert not set(documented) - variables, f"README documents unknown settings: {set(documented) - variables}"
    every_flag = set().union(*(options(p) for p in subcommands().values()))
    for variable, flag_cell in documented.items():
        for flag in re.findall(r"--[a-z][a-z0-9-]*", flag_cell):
            assert flag in every_flag, f"{variable}: README names {flag}, which no command has"


def test_every_dead_letter_reason_is_explained() -> None:
    section_text = section("Guarantees")
    for reason in DLQ_REASONS:
        assert f"`{reason}`" in section_text, f"DLQ reason {reason} is not documented in README's Guarantees"
