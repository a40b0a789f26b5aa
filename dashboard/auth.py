"""The login gate of a dashboard served to a team (``retcore dashboard --auth oidc``).

``RETCORE_AUTH=oidc`` (set by ``retcore dashboard``): every page first asks for Streamlit's
OpenID Connect login (``st.login``, provider in ``secrets.toml`` ``[auth]``) and shows nothing
else until the user is logged in; ``RETCORE_ALLOW`` (``--allow``) then admits only the listed
e-mail addresses and ``@domain``\\ s. Without it (loopback, or an authenticating proxy in
front) the pages are shown as they are.
"""
from __future__ import annotations

import os

import streamlit as st

__all__ = ["allowed", "login_gate"]


def allowed(email: str | None, allow: str | None = None) -> bool:
    """Whether a logged-in ``email`` may see the dashboard under ``allow`` (addresses and
    ``@domain``\\ s, comma-separated; default ``RETCORE_ALLOW``; empty = every account the
    provider logs in)."""
    text = allow if allow is not None else os.environ.get("RETCORE_ALLOW", "")
    rules = [a.strip().lower() for a in text.split(",") if a.strip()]
    if not rules:
        return True
    address = (email or "").strip().lower()
    return bool(address) and any(address == r or (r.startswith("@") and address.endswith(r)) for r in rules)


def login_gate() -> None:
    """Stop the page unless the viewer is logged in and allowed (``RETCORE_AUTH=oidc`` only)."""
    if os.environ.get("RETCORE_AUTH") != "oidc":
        return
    if not st.user.get("is_logged_in"):
        st.title("retcore")
        st.info("This dashboard shows patient photographs: log in to continue.")
        st.button("Log in", on_click=st.login, icon=":material/login:", key="auth-login")
        st.stop()
    email = st.user.get("email")
    if not allowed(email):
        st.title("retcore")
        st.error(f"{email or 'This account'} is not allowed to open this dashboard; ask its owner to add you "
                 "to `--allow`.")
        st.button("Log out", on_click=st.logout, key="auth-logout")
        st.stop()
    st.sidebar.button(f"Log out {email or ''}".strip(), on_click=st.logout, key="auth-logout",
                      icon=":material/logout:")
