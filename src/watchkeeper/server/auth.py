"""Who is calling: a principal (which projects it may read or write) from the request's bearer token.

``watchkeeper server`` checks tokens on every ingest and query route; ``--no-auth`` (allowed on a loopback
address only) gives every request full access, which is what a single user on a laptop wants. Tokens are
created with ``watchkeeper token create --project P --scope write|read``; see :mod:`watchkeeper.store.tokens`.

Also here: :func:`token_verifier`, which turns the store's tokens into principals for ``create_app``, the
loopback test that guards ``--no-auth``, and :func:`app_from_env`, the app factory of a multi-worker server.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from watchkeeper.errors import StoreError

if TYPE_CHECKING:
    from fastapi import FastAPI

    from watchkeeper.store.tokens import Tokens

SCOPES = ("read", "write")


@dataclass(frozen=True, slots=True)
class Principal:
    """What a request may do: ``projects`` it may touch (None: every project) with ``scope`` ("write"
    implies "read")."""

    projects: frozenset[str] | None
    scope: str
    token_id: str | None = None

    def can_read(self, project: str) -> bool:
        return self.projects is None or project in self.projects

    def can_write(self, project: str) -> bool:
        return self.scope == "write" and self.can_read(project)

    def check_read(self, project: str) -> None:
        if not self.can_read(project):
            raise HTTPException(403, f"this token may not read project {project!r}")

    def check_write(self, projects: Iterable[str]) -> None:
        if self.scope != "write":
            raise HTTPException(403, "this token has the read scope; writing needs a token with scope write")
        denied = sorted(p for p in projects if not self.can_write(p))
        if denied:
            raise HTTPException(403, f"this token may not write to project(s) {', '.join(map(repr, denied))}")


EVERYTHING = Principal(None, "write")


def principal(request: Request) -> Principal:
    """FastAPI dependency: the caller's principal, or 401."""
    verify = getattr(request.app.state, "verify_token", None)
    if verify is None:  # --no-auth
        return EVERYTHING
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(
            401,
            "missing bearer token (Authorization: Bearer <token>)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    found = verify(token.strip())
    if found is None:
        raise HTTPException(401, "unknown or revoked token", headers={"WWW-Authenticate": "Bearer"})
    return found


def token_verifier(tokens: Tokens) -> Callable[[str], Principal | None]:
    """``verify_token`` for :func:`~watchkeeper.server.create_app` over the store's tokens: a token grants
    its one project with its scope. A store that cannot be asked answers 503, which clients retry."""

    def verify(token: str) -> Principal | None:
        try:
            info = tokens.verify(token)
        except StoreError as exc:
            raise HTTPException(503, f"cannot check the token, the store is unavailable: {exc}") from exc
        if info is None:
            return None
        return Principal(projects=frozenset({info.project}), scope=info.scope, token_id=info.id)

    return verify


def is_loopback(host: str) -> bool:
    """True for an address only this machine can reach: 127.0.0.0/8, ::1 or ``localhost``."""
    host = host.strip().strip("[]")
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ENV_NO_AUTH = "WATCHKEEPER_SERVER_NO_AUTH"
ENV_MAX_BODY = "WATCHKEEPER_SERVER_MAX_BODY"


def app_from_env() -> FastAPI:
    """The app of one worker of ``watchkeeper server --workers N``: uvicorn starts each worker from an import
    string (``watchkeeper.server.auth:app_from_env``, a factory), so the command hands its options over in
    the environment: ``WATCHKEEPER_URI``, ``WATCHKEEPER_SERVER_NO_AUTH`` ("1": no token checks) and
    ``WATCHKEEPER_SERVER_MAX_BODY`` (bytes). Read when called, never at import."""
    from watchkeeper.server.app import create_app
    from watchkeeper.server.body import DEFAULT_MAX_BODY
    from watchkeeper.store import Store, default_uri

    store = Store(default_uri())
    no_auth = os.environ.get(ENV_NO_AUTH, "") == "1"
    max_body = int(os.environ.get(ENV_MAX_BODY) or DEFAULT_MAX_BODY)
    return create_app(
        store, verify_token=None if no_auth else token_verifier(store.tokens), max_body=max_body
    )
