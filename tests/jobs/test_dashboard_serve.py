"""retcore dashboard on a network: refused without a login, OIDC settings checked, the login gate."""
from __future__ import annotations

import pytest
from typer.testing import CliRunner

from jobs._serve import check_serve, is_loopback, missing_oidc_keys
from retcore.errors import RetcoreError

OIDC = """[auth]
redirect_uri = "https://retcore.example.org/oauth2callback"
cookie_secret = "a-long-random-string"
client_id = "retcore"
client_secret = "s3cret"
server_metadata_url = "https://login.example.org/.well-known/openid-configuration"
"""


@pytest.mark.parametrize("host, expected", [("127.0.0.1", True), ("127.0.1.5", True), ("::1", True),
                                            ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                            ("::", False), ("192.168.1.10", False), ("retcore.lab", False)])
def test_loopback_addresses(host, expected):
    assert is_loopback(host) is expected


def test_network_hosts_need_a_login():
    assert check_serve("127.0.0.1", "none").env == {"RETCORE_AUTH": "none"}
    with pytest.raises(RetcoreError, match=r"--host 0.0.0.0 exposes patient images .* --auth oidc"):
        check_serve("0.0.0.0", "none")
    with pytest.raises(RetcoreError, match="--auth proxy needs a loopback --host"):
        check_serve("0.0.0.0", "proxy")
    assert check_serve("127.0.0.1", "proxy").env == {"RETCORE_AUTH": "proxy"}
    with pytest.raises(RetcoreError, match="--auth 'basic'"):
        check_serve("127.0.0.1", "basic")
    with pytest.raises(RetcoreError, match="--allow restricts OIDC logins"):
        check_serve("127.0.0.1", "none", allow="a@b.org")


def test_oidc_settings_are_checked_before_serving(tmp_path):
    secrets = tmp_path / "secrets.toml"
    with pytest.raises(RetcoreError, match=f"needs {secrets} with an \\[auth\\] section"):
        check_serve("0.0.0.0", "oidc", secrets=secrets)
    secrets.write_text(OIDC.replace('client_secret = "s3cret"\n', ""))
    with pytest.raises(RetcoreError, match="lacks auth.client_secret for --auth oidc"):
        check_serve("0.0.0.0", "oidc", secrets=secrets)
    secrets.write_text("[auth\n")
    with pytest.raises(RetcoreError, match="is not valid TOML"):
        check_serve("0.0.0.0", "oidc", secrets=secrets)
    secrets.write_text(OIDC)
    serve = check_serve("0.0.0.0", "oidc", secrets=secrets, allow="Ann@Clinic.org, @eye.example.org")
    assert serve.options == ["--secrets.files", str(secrets.resolve())]
    assert serve.env == {"RETCORE_AUTH": "oidc", "RETCORE_ALLOW": "ann@clinic.org,@eye.example.org"}


def test_named_providers_are_complete_too():
    assert missing_oidc_keys({}) == ["[auth] section"]
    named = {"auth": {"redirect_uri": "u", "cookie_secret": "c",
                      "microsoft": {"client_id": "i", "client_secret": "s", "server_metadata_url": "m"}}}
    assert missing_oidc_keys(named) == []
    named["auth"]["microsoft"].pop("client_secret")
    assert missing_oidc_keys(named) == ["auth.microsoft.client_secret"]


def test_cli_refuses_a_network_host_in_one_line(tmp_path):
    from jobs.cli import app

    out = CliRunner().invoke(app, ["dashboard", "--host", "0.0.0.0", "--db", str(tmp_path / "r.duckdb")])
    assert out.exit_code == 2
    assert len(out.stderr.strip().splitlines()) == 1 and "--auth oidc" in out.stderr


def test_the_command_carries_the_settings(tmp_path):
    from jobs.dashboard import dashboard_command

    args, env = dashboard_command("127.0.0.1", 8600, tmp_path / "r.duckdb")
    assert args[args.index("--server.address") + 1] == "127.0.0.1" and "--secrets.files" not in args
    assert env["RETCORE_AUTH"] == "none" and env["RETCORE_DB"] == str((tmp_path / "r.duckdb").resolve())
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(OIDC)
    args, env = dashboard_command("0.0.0.0", 8600, tmp_path / "r.duckdb", auth="oidc", secrets=secrets,
                                  allow="@eye.example.org")
    assert args[args.index("--secrets.files") + 1] == str(secrets.resolve())
    assert env["RETCORE_AUTH"] == "oidc" and env["RETCORE_ALLOW"] == "@eye.example.org"


@pytest.mark.parametrize("email, rules, ok", [("ann@clinic.org", "", True), ("ann@clinic.org", "ann@clinic.org", True),
                                              ("Ann@Clinic.org", "ann@clinic.org", True),
                                              ("bob@clinic.org", "ann@clinic.org", False),
                                              ("bob@eye.example.org", "@eye.example.org", True),
                                              ("bob@evil-eye.example.org.com", "@eye.example.org", False),
                                              (None, "@eye.example.org", False)])
def test_allow_list(email, rules, ok):
    from dashboard.auth import allowed

    assert allowed(email, rules) is ok
