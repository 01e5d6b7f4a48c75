"""API tokens in the store: shown once, kept only as a SHA-256, refused once revoked, bound to one project."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from watchkeeper.store import Store
from watchkeeper.store.engine import sqlite_path
from watchkeeper.store.schema import tokens as tokens_table
from watchkeeper.store.tokens import CACHE_SECONDS, TOUCH_EVERY, TokenInfo, Tokens

TOKEN = re.compile(r"^wk_([0-9a-f]{8})_([A-Za-z0-9_-]{43})$")


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def tokens(store: Store, clock: Clock) -> Tokens:
    return Tokens(store, clock=clock)


def test_a_created_token_verifies_and_has_the_documented_format(tokens, clock):
    info, token = tokens.create("fraud", "write", "the scoring service")
    m = TOKEN.match(token)
    assert m is not None and m.group(1) == info.id
    assert info == TokenInfo(info.id, "fraud", "write", "the scoring service", clock.now, None, None)
    found = tokens.verify(token)
    assert (found.id, found.project, found.scope, found.description) == (
        info.id,
        "fraud",
        "write",
        "the scoring service",
    )
    other_info, other = tokens.create("fraud", "read")
    assert other != token and other_info.id != info.id
    assert tokens.verify(other).scope == "read"


def test_the_database_holds_the_hash_and_never_the_token(store, tokens):
    _, token = tokens.create("fraud", "write")
    secret = TOKEN.match(token).group(2)
    with store.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(tokens_table))]
    assert len(rows) == 1
    assert rows[0]["digest"] == hashlib.sha256(token.encode()).hexdigest()
    text = repr(rows)
    assert token not in text and secret not in text
    path = sqlite_path(store.uri)
    if path is not None:  # and not anywhere in the file (or its write-ahead log) either
        store.close()
        for file in (path, Path(f"{path}-wal")):
            if file.exists():
                assert secret.encode() not in file.read_bytes()


def test_a_revoked_token_is_refused_at_once_here_and_within_the_cache_time_elsewhere(store, tokens, clock):
    info, token = tokens.create("fraud", "write")
    assert tokens.verify(token) is not None  # now cached
    elsewhere = Tokens(store, clock=clock)  # another process: the CLI, another worker
    assert elsewhere.revoke(info.id) is True
    assert tokens.verify(token) is not None  # the cache still trusts it ...
    clock.now += CACHE_SECONDS + 1
    assert tokens.verify(token) is None  # ... for at most CACHE_SECONDS

    info2, token2 = tokens.create("fraud", "write")
    assert tokens.verify(token2) is not None
    assert tokens.revoke(info2.id) is True
    assert tokens.verify(token2) is None  # revoked by this object: at once
    assert tokens.revoke(info2.id) is False  # revoked already
    assert tokens.revoke("0badc0de") is False  # no such token
    assert store.tokens.get(info2.id).revoked_at == clock.now


def test_a_whole_token_can_be_given_to_revoke(tokens):
    info, token = tokens.create("fraud", "read")
    assert tokens.revoke(token) is True
    assert tokens.verify(token) is None and tokens.get(info.id).active is False


def test_a_wrong_secret_with_a_real_id_is_refused(tokens):
    info, token = tokens.create("fraud", "write")
    prefix, secret = token[: len("wk_") + 9], token[len("wk_") + 9 :]
    forged = prefix + ("A" if secret[0] != "A" else "B") + secret[1:]
    assert tokens.verify(forged) is None  # not cached yet: checked against the database
    assert tokens.verify(token) is not None
    assert tokens.verify(forged) is None  # cached now: checked against the cached digest
    for junk in ("", "wk_", f"wk_{info.id}_", token.upper(), f"Bearer {token}", token + "\n", "x" * 500):
        assert tokens.verify(junk) is None, junk


def test_list_shows_every_token_of_a_project_and_no_secret(tokens, clock):
    a1, t1 = tokens.create("a", "write")
    clock.now += 1
    a2, t2 = tokens.create("a", "read", "dashboards")
    clock.now += 1
    b1, t3 = tokens.create("b", "write")
    tokens.revoke(a1.id)
    assert [t.id for t in tokens.list()] == [a1.id, a2.id, b1.id]  # oldest first
    listed = tokens.list("a")
    assert [(t.id, t.scope, t.active) for t in listed] == [(a1.id, "write", False), (a2.id, "read", True)]
    assert tokens.list("nobody") == []
    assert "digest" not in TokenInfo.__slots__
    text = repr(tokens.list())
    for token in (t1, t2, t3):
        assert TOKEN.match(token).group(2) not in text


def test_last_use_is_written_at_most_once_a_minute(store, tokens, clock):
    info, token = tokens.create("fraud", "write")
    start = clock.now
    assert store.tokens.get(info.id).last_used_at is None
    tokens.verify(token)
    assert store.tokens.get(info.id).last_used_at == start
    clock.now = start + TOUCH_EVERY / 2
    tokens.verify(token)
    assert store.tokens.get(info.id).last_used_at == start  # not again within the minute
    clock.now = start + TOUCH_EVERY + 1
    tokens.verify(token)
    assert store.tokens.get(info.id).last_used_at == start + TOUCH_EVERY + 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("fraud", "admin"), "scope: expected 'read' or 'write', got 'admin'"),
        (("fraud", "Write"), "scope: expected 'read' or 'write', got 'Write'"),
        (("", "read"), "project: expected a non-empty string of at most 128 characters, got ''"),
        (("p" * 129, "read"), "project: expected a non-empty string of at most 128 characters"),
        ((None, "read"), "project: expected a non-empty string of at most 128 characters, got None"),
        (("fraud", "read", ""), "description: expected a non-empty string of at most 1024 characters"),
    ],
)
def test_bad_input_is_refused_naming_the_field(store, args, message):
    with pytest.raises(ValueError) as info:
        store.tokens.create(*args)
    assert str(info.value).startswith(message)
    assert store.tokens.list() == []
