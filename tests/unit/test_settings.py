"""Configuration as an operator meets it: variables, container secret files, one-line errors,
and secrets that never show."""

from __future__ import annotations

import subprocess
import sys

import pytest

from models.settings import ConfigError, Settings

TOKEN = "support-4f9c1b7e"


def test_a_bad_value_names_its_variable_and_what_it_accepts_in_one_line():
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({"TRACKLINE_PARTITIONS": "twelve", "TRACKLINE_LOG_LEVEL": "loud"})
    message = str(raised.value)
    assert "\n" not in message
    assert "TRACKLINE_PARTITIONS" in message and "'twelve'" in message and "integer" in message
    assert "TRACKLINE_LOG_LEVEL" in message and "'debug'" in message


def test_secrets_come_from_files_for_container_secrets_and_rotate_by_commas(tmp_path):
    (tmp_path / "easypost").write_text("whsec_new,whsec_old\n")
    (tmp_path / "token").write_text(TOKEN + "\n")
    settings = Settings.from_env({"TRACKLINE_SECRET_EASYPOST_FILE": str(tmp_path / "easypost"),
                                  "TRACKLINE_SUPPORT_TOKEN_FILE": str(tmp_path / "token"),
                                  "TRACKLINE_SECRET_X12_214": "x12-secret"})
    assert settings.webhook_secrets("easypost") == ["whsec_new", "whsec_old"]
    assert settings.webhook_secrets("x12-214") == ["x12-secret"]
    assert settings.webhook_secrets("shippo") == []
    assert settings.support_token is not None and settings.support_token.get_secret_value() == TOKEN
    # A variable set directly wins over its file, as with any other setting.
    assert Settings.from_env({"TRACKLINE_SUPPORT_TOKEN": "direct",
                              "TRACKLINE_SUPPORT_TOKEN_FILE": str(tmp_path / "token")}
                             ).support_token.get_secret_value() == "direct"  # type: ignore[union-attr]


def test_an_unreadable_secret_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="TRACKLINE_SECRET_SHIPPO_FILE: cannot read"):
        Settings.from_env({"TRACKLINE_SECRET_SHIPPO_FILE": str(tmp_path / "missing")})


def test_secrets_never_show_in_the_settings_printout_or_their_repr():
    settings = Settings.from_env({"TRACKLINE_SUPPORT_TOKEN": TOKEN, "TRACKLINE_SECRET_AFTERSHIP": "as-1,as-2"})
    shown = settings.effective()
    assert shown["support_token"] == "********" and shown["secret_aftership"] == "2 secret(s) set"
    for text in (str(shown), repr(settings), str(settings)):
        assert TOKEN not in text and "as-1" not in text


def test_trackline_config_prints_the_effective_values_with_secrets_masked(tmp_path):
    (tmp_path / "fc").write_text("fc-secret-value")
    env = {"PATH": "/usr/bin:/bin", "TRACKLINE_SUPPORT_TOKEN": TOKEN, "TRACKLINE_PARTITIONS": "8",
           "TRACKLINE_SECRET_FC_FILE": str(tmp_path / "fc")}
    done = subprocess.run([sys.executable, "-m", "trackline", "config", "--partitions", "12"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert '"partitions": 12' in done.stdout  # the flag over the variable
    assert '"secret_fc": "1 secret(s) set"' in done.stdout
    assert TOKEN not in done.stdout + done.stderr and "fc-secret-value" not in done.stdout + done.stderr


def test_a_process_refuses_to_start_on_a_bad_setting_with_one_line():
    done = subprocess.run([sys.executable, "-m", "trackline", "config"], capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "TRACKLINE_WEB_PORT": "99999",
                               "TRACKLINE_SUPPORT_TOKEN": "x" * 3})
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0
    assert "TRACKLINE_WEB_PORT" in done.stderr and "65535" in done.stderr


def test_a_variable_set_empty_is_unset(tmp_path):
    """Compose writes ``${VAR:-}`` as an empty value: the default applies, and a secret still
    comes from its file; an empty HTTP-channel secret is no secret at all."""
    secret = tmp_path / "token"
    secret.write_text("from-the-file\n")
    settings = Settings.from_env({"TRACKLINE_SMTP_PORT": "", "TRACKLINE_SUPPORT_TOKEN": "",
                                  "TRACKLINE_SUPPORT_TOKEN_FILE": str(secret)})
    assert settings.smtp_port == 25
    assert settings.support_token.get_secret_value() == "from-the-file"
    with pytest.raises(ConfigError, match="TRACKLINE_NOTIFIER_HTTP_SECRET is required"):
        Settings.from_env({"TRACKLINE_SMS_URL": "https://sms.example/send", "TRACKLINE_NOTIFIER_HTTP_SECRET": ""})


def test_a_worker_advertises_where_other_workers_can_reach_it():
    """Order lookups and tracking pages are forwarded to the owning worker at this address."""
    import socket

    assert Settings.from_env({}).advertised_web_host == "127.0.0.1"
    assert Settings.from_env({"TRACKLINE_WEB_BIND": "0.0.0.0"}).advertised_web_host == socket.getfqdn()
    assert Settings.from_env({"TRACKLINE_WEB_BIND": "0.0.0.0",
                              "TRACKLINE_WEB_HOST": "worker-3.trackline"}).advertised_web_host == "worker-3.trackline"
