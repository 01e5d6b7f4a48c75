"""Who is calling: a principal (which projects it may read or write) from the request's bearer token.

``watchkeeper server`` checks tokens on every ingest and query route; ``--no-auth`` (allowed on a loopback
address only) gives every request full access, which is what a single user on a laptop wants. Tokens are
created with ``watchkeeper token create --project P --scope write|read``; see :mod:`watchkeeper.store.tokens`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from fastapi import HTTPException, Request

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
