"""Who may reach the dashboard: loopback by default, a login (or a proxy) before anything else.

The dashboard shows patient photographs. Bound to a loopback address it is reachable from this
machine only; bound to any other address it must not start without an authentication setting:

- ``oidc``: Streamlit's built-in OpenID Connect login (``st.login``); the provider is configured
  in a ``secrets.toml`` ``[auth]`` section (``redirect_uri``, ``cookie_secret``, and
  ``client_id``, ``client_secret``, ``server_metadata_url`` there or in one
  ``[auth.<provider>]`` section). Every page then asks for a login first, and
  ``--allow`` restricts it to some e-mail addresses or ``@domain``\\ s.
- ``proxy``: a reverse proxy with authentication (nginx + oauth2-proxy, Caddy, ...) in front of
  a **loopback-bound** server; retcore refuses ``proxy`` with a non-loopback host, since the
  server would then be reachable around the proxy.
"""
from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["AUTH_CHOICES", "OIDC_KEYS", "ServeSettings", "check_serve", "default_secrets", "is_loopback",
           "missing_oidc_keys"]

AUTH_CHOICES = ("none", "oidc", "proxy")
#: Keys of the provider Streamlit's ``st.login`` needs (in ``[auth]`` or one ``[auth.<provider>]``).
OIDC_KEYS = ("client_id", "client_secret", "server_metadata_url")


def is_loopback(host: str) -> bool:
    """True for addresses only this machine reaches (127.0.0.0/8, ::1, ``localhost``)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to any interface
        return False


def default_secrets(cwd: Path | None = None) -> Path:
    """Where Streamlit looks first: ``.streamlit/secrets.toml`` in the working folder, else the
    user's ``~/.streamlit/secrets.toml`` when only that one exists."""
    local = (cwd or Path.cwd()) / ".streamlit" / "secrets.toml"
    home = Path.home() / ".streamlit" / "secrets.toml"
    return home if not local.exists() and home.exists() else local


def missing_oidc_keys(secrets: dict) -> list[str]:
    """What ``[auth]`` of a parsed ``secrets.toml`` lacks for ``st.login`` (empty = complete)."""
    auth = secrets.get("auth")
    if not isinstance(auth, dict):
        return ["[auth] section"]
    missing = [f"auth.{k}" for k in ("redirect_uri", "cookie_secret") if not auth.get(k)]
    if all(auth.get(k) for k in OIDC_KEYS):
        return missing
    providers = {name: v for name, v in auth.items() if isinstance(v, dict)}
    if any(all(v.get(k) for k in OIDC_KEYS) for v in providers.values()):
        return missing
    name, section = next(iter(providers.items())) if len(providers) == 1 else (None, auth)
    prefix = f"auth.{name}" if name else "auth"
    missing += [f"{prefix}.{k}" for k in OIDC_KEYS if not section.get(k)]
    return missing


@dataclass(frozen=True)
class ServeSettings:
    """What the dashboard process is started with: the Streamlit options and the environment
    variables the app reads (``RETCORE_AUTH``, ``RETCORE_ALLOW``)."""

    options: list[str]
    env: dict[str, str]


def check_serve(host: str, auth: str, *, secrets: Path | None = None, allow: str | None = None) -> ServeSettings:
    """Validate the exposure settings; raise ``RetcoreError`` (one line, with the fix) when the
    dashboard would be reachable without a login.

    Args:
        host: bind address.
        auth: ``none`` | ``oidc`` | ``proxy`` (see the module docstring).
        secrets: the ``secrets.toml`` holding ``[auth]`` (default :func:`default_secrets`).
        allow: comma-separated e-mail addresses or ``@domain``\\ s allowed after an OIDC login
            (None = any account the provider accepts).
    """
    from retcore.errors import RetcoreError

    if auth not in AUTH_CHOICES:
        raise RetcoreError(f"--auth {auth!r}: choose one of {', '.join(AUTH_CHOICES)}")
    loopback = is_loopback(host)
    if auth == "none" and not loopback:
        raise RetcoreError(
            f"--host {host} exposes patient images to the network without a login: add --auth oidc (Streamlit "
            "login, configured in .streamlit/secrets.toml [auth]) or bind 127.0.0.1 behind an authenticating "
            "reverse proxy (--auth proxy); see the README, 'A team server'")
    if auth == "proxy" and not loopback:
        raise RetcoreError(f"--auth proxy needs a loopback --host (127.0.0.1), not {host}: the proxy must be the "
                           "only way in")
    if allow and auth != "oidc":
        raise RetcoreError("--allow restricts OIDC logins: use it with --auth oidc")
    options: list[str] = []
    env = {"RETCORE_AUTH": auth}
    if auth == "oidc":
        path = secrets or default_secrets()
        if not path.is_file():
            raise RetcoreError(f"--auth oidc needs {path} with an [auth] section (redirect_uri, cookie_secret, "
                               "client_id, client_secret, server_metadata_url); create it or pass --secrets PATH")
        try:
            parsed = tomllib.loads(path.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise RetcoreError(f"{path} is not valid TOML ({str(exc).splitlines()[0]}); fix the file") from exc
        missing = missing_oidc_keys(parsed)
        if missing:
            raise RetcoreError(f"{path} lacks {', '.join(missing)} for --auth oidc; add them (README, "
                               "'A team server')")
        options += ["--secrets.files", str(path.resolve())]
        if allow:
            env["RETCORE_ALLOW"] = ",".join(a.strip().lower() for a in allow.split(",") if a.strip())
    return ServeSettings(options, env)

