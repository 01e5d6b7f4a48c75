"""API tokens of the server: created once, stored as a hash, checked on every ingest and query request.

A token reads ``wk_<id>_<secret>``: ``id`` is 8 hex digits that name the token in logs, ``token list`` and
``token revoke`` without revealing it; ``secret`` is 32 random bytes from :func:`secrets.token_urlsafe`
(43 characters). The prefix makes a leaked token easy to recognise for a person or a secret scanner, as
GitHub's token formats do ("Behind GitHub's new authentication token formats", GitHub blog, 2021).

The store keeps the SHA-256 of the whole token, never the token. A slow, salted key derivation (bcrypt,
scrypt, Argon2) is what low-entropy secrets such as passwords need, because an attacker with the hashes can
try likely passwords; a 256-bit random secret has no likely values to try, so one fast hash is as safe. NIST
SP 800-63B, section 5.1.2.2, says the same of look-up secrets: with at least 112 bits of entropy they are
hashed with an approved one-way function; only weaker ones need salt and a costly key derivation. A fast
hash also keeps verification off the request path's budget. Digests are compared with
:func:`hmac.compare_digest`.

So that a request does not cost a query, a verified token is remembered in memory for ``cache_seconds``
(30 s): a token revoked in another process (the CLI, another server worker) is refused by this one within
that time; :meth:`Tokens.revoke` on this object takes effect at once. ``last_used_at`` is written at most
once a minute per token and process, not on every request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from watchkeeper.errors import StoreError
from watchkeeper.store.schema import tokens

if TYPE_CHECKING:
    from watchkeeper.store.store import Store

SCOPES = ("read", "write")
CACHE_SECONDS = 30.0
"""How long a verified token is trusted without asking the database: the longest a revocation made
elsewhere takes to reach a running server."""
TOUCH_EVERY = 60.0
"""Seconds between two writes of a token's ``last_used_at`` by one process."""
MAX_PROJECT = 128
MAX_DESCRIPTION = 1024

_TOKEN = re.compile(r"wk_([0-9a-f]{8})_([A-Za-z0-9_-]{32,128})")
_ID = re.compile(r"[0-9a-f]{8}")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What is known of a token, without its secret."""

    id: str
    project: str
    scope: str
    description: str | None
    created_at: float
    last_used_at: float | None
    revoked_at: float | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def prefix(self) -> str:
        """The token's public beginning, ``wk_<id>_``, as it appears in the token itself."""
        return f"wk_{self.id}_"


def digest(token: str) -> str:
    """The SHA-256 of ``token`` as 64 hex digits: what the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def id_of(token: str) -> str | None:
    """The id of a well-formed token (``wk_<id>_<secret>``), or None."""
    m = _TOKEN.fullmatch(token)
    return m.group(1) if m else None


def _info(row: sa.Row) -> TokenInfo:
    m = row._mapping
    return TokenInfo(
        id=m["id"],
        project=m["project"],
        scope=m["scope"],
        description=m["description"],
        created_at=m["created_at"],
        last_used_at=m["last_used_at"],
        revoked_at=m["revoked_at"],
    )


_COLUMNS = [c for c in tokens.c if c.name != "digest"]


class Tokens:
    """Create, verify, list and revoke API tokens.

    ``clock`` (seconds, ``time.time`` by default) dates tokens and expires the cache; tests pass their own.

    >>> from watchkeeper.store import Store
    >>> store = Store("sqlite://")
    >>> info, token = store.tokens.create("fraud", "write")
    >>> token.startswith(f"wk_{info.id}_"), len(token) == 3 + 8 + 1 + 43
    (True, True)
    >>> found = store.tokens.verify(token)
    >>> found.id == info.id, found.project, found.scope
    (True, 'fraud', 'write')
    >>> store.tokens.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    True
    >>> store.tokens.revoke(info.id), store.tokens.verify(token)
    (True, None)
    >>> store.close()
    """

    def __init__(
        self,
        store: Store,
        *,
        cache_seconds: float = CACHE_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._store = store
        self.cache_seconds = cache_seconds
        self.clock = clock
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[str, TokenInfo, float]] = {}  # id -> (digest, info, expires at)
        self._touched: dict[str, float] = {}  # id -> when this process last wrote last_used_at

    def create(self, project: str, scope: str, description: str | None = None) -> tuple[TokenInfo, str]:
        """A new token for ``project`` with ``scope`` ("read" or "write"): its info and the token itself,
        which is not stored and cannot be shown again."""
        _check("project", project, MAX_PROJECT)
        if scope not in SCOPES:
            raise ValueError(f"scope: expected 'read' or 'write', got {scope!r:.80}")
        if description is not None:
            _check("description", description, MAX_DESCRIPTION)
        now = self.clock()
        for _ in range(5):  # 8 hex digits: a clash is rare, and then another id is drawn
            tid = secrets.token_hex(4)
            token = f"wk_{tid}_{secrets.token_urlsafe(32)}"
            row = {
                "id": tid,
                "project": project,
                "scope": scope,
                "digest": digest(token),
                "description": description,
                "created_at": now,
                "last_used_at": None,
                "revoked_at": None,
            }
            try:
                with self._store.begin_write() as conn:
                    if conn.execute(sa.select(tokens.c.id).where(tokens.c.id == tid)).first() is not None:
                        continue
                    conn.execute(tokens.insert().values(row))
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"creating a token in {self._store.display_uri} failed: {exc}") from exc
            del row["digest"]
            return TokenInfo(**row), token
        raise StoreError("creating a token failed: no free token id after 5 tries")

    def verify(self, token: str) -> TokenInfo | None:
        """The info of ``token`` when it is known and not revoked, else None. Raises ``StoreError`` when the
        database cannot be asked."""
        tid = id_of(token)
        if tid is None:
            return None
        want = digest(token)
        now = self.clock()
        with self._lock:
            cached = self._cache.get(tid)
        if cached is not None and cached[2] > now and hmac.compare_digest(cached[0], want):
            info = cached[1]
        else:
            try:
                with self._store.connect() as conn:
                    row = conn.execute(sa.select(tokens).where(tokens.c.id == tid)).first()
            except sa.exc.SQLAlchemyError as exc:
                raise StoreError(f"checking a token in {self._store.display_uri} failed: {exc}") from exc
            if row is None or row.revoked_at is not None or not hmac.compare_digest(row.digest, want):
                return None
            info = _info(row)
            with self._lock:
                self._cache[tid] = (row.digest, info, now + self.cache_seconds)
        self._touch(tid, now)
        return info

    def _touch(self, tid: str, now: float) -> None:
        with self._lock:
            if now - self._touched.get(tid, -float("inf")) < TOUCH_EVERY:
                return
            self._touched[tid] = now
        try:
            with self._store.begin_write() as conn:
                conn.execute(tokens.update().where(tokens.c.id == tid).values(last_used_at=now))
        except sa.exc.SQLAlchemyError as exc:
            # bookkeeping only: a request is not refused because its token's last use could not be noted
            log.warning("could not note the use of token %s: %s", tid, exc)

    def get(self, token_id: str) -> TokenInfo | None:
        """The token with this id (revoked or not), or None."""
        with self._store.connect() as conn:
            row = conn.execute(sa.select(*_COLUMNS).where(tokens.c.id == token_id)).first()
        return None if row is None else _info(row)

    def list(self, project: str | None = None) -> list[TokenInfo]:
        """Every token (of ``project`` when given), revoked ones too, oldest first; never a secret."""
        q = sa.select(*_COLUMNS).order_by(tokens.c.created_at, tokens.c.id)
        if project is not None:
            q = q.where(tokens.c.project == project)
        with self._store.connect() as conn:
            return [_info(r) for r in conn.execute(q)]

    def revoke(self, token_id: str) -> bool:
        """Revoke the token with this id (a whole token is accepted too). True when a token was active and
        is revoked now; False when there is no such token or it was revoked already."""
        tid = token_id.strip()
        if not _ID.fullmatch(tid):
            tid = id_of(tid) or tid
        try:
            with self._store.begin_write() as conn:
                done = conn.execute(
                    tokens.update()
                    .where(tokens.c.id == tid, tokens.c.revoked_at.is_(None))
                    .values(revoked_at=self.clock())
                    .returning(tokens.c.id)
                ).first()
        except sa.exc.SQLAlchemyError as exc:
            where = self._store.display_uri
            raise StoreError(f"revoking token {tid!r:.40} in {where} failed: {exc}") from exc
        with self._lock:
            self._cache.pop(tid, None)
        return done is not None


def _check(field: str, value: object, longest: int) -> None:
    if not isinstance(value, str) or not 0 < len(value) <= longest:
        raise ValueError(
            f"{field}: expected a non-empty string of at most {longest} characters, got {value!r:.80}"
        )
