"""Leases: one holder at a time for a job that must run once per store, whatever the number of processes.

Several ``watchkeeper server`` replicas over one PostgreSQL database all ingest, but the monitor runner and
the alert engine must run in one of them only (two would each process every window and could each send a
notification). Each replica asks for the lease ``"monitor"`` every few seconds; the one that holds it renews
it, the others stand by, and when the holder stops (it releases the lease) or dies (it stops renewing, and the
lease expires after ``ttl`` seconds) the next replica to ask takes it over.

How it is decided: one row per lease name. :meth:`Leases.acquire` inserts the row if there is none (an
insert that ignores a conflict), then runs one conditional update::

    UPDATE leases SET holder = :me, expires_at = now + ttl, ...
     WHERE name = :name AND ((holder = :me AND expires_at > now) OR expires_at <= now)

and holds the lease when that update changed a row. The row is the lock: on PostgreSQL two replicas updating
it at once are serialised by its row lock, and the second one re-checks the condition against the row the
first one wrote (READ COMMITTED re-evaluates an updated row), finds another holder whose lease has not
expired, and changes nothing; on SQLite writers are serialised by the database. So at most one holder is
granted a lease at any moment of the database's clock.

Times are the database's clock (``now`` is read in the same transaction), never the replicas' own, so clock
skew between machines cannot give two holders. ``epoch`` grows by one each time the lease changes hands, a
fencing number a holder can log or check (a holder that lets its lease lapse and takes it again gets a new
epoch too: another may have held it in between). The limit of any lease: a holder that stalls longer than
``ttl`` (a long pause) may still be finishing work when its successor starts; the monitor runner's results do
not depend on which process computes them (a window processed twice writes the same points), and callers renew
well within ``ttl`` and check the lease before each pass, so the overlap is at most one pass. """

from __future__ import annotations

import math
import os
import socket
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

import sqlalchemy as sa

from watchkeeper.store.engine import insert_ignore
from watchkeeper.store.schema import leases

if TYPE_CHECKING:
    from watchkeeper.store.store import Store


def new_holder() -> str:
    """A holder name unique to this process and call: host, pid and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    holder: str
    epoch: int
    acquired_at: float
    renewed_at: float
    expires_at: float


def db_now(conn: sa.Connection) -> float:
    """The database's clock, in epoch seconds (PostgreSQL: the statement's time; SQLite: the host's)."""
    if conn.dialect.name == "postgresql":
        return float(conn.exec_driver_sql("SELECT extract(epoch FROM clock_timestamp())").scalar_one())
    # julianday('now') has millisecond resolution in SQLite; 2440587.5 is the Julian day of 1970-01-01
    return float(conn.exec_driver_sql("SELECT (julianday('now') - 2440587.5) * 86400.0").scalar_one())


class Leases:
    def __init__(self, store: Store) -> None:
        self._store = store

    def acquire(self, name: str, holder: str, ttl: float) -> Lease | None:
        """Take or renew lease ``name`` for ``ttl`` seconds: the lease when ``holder`` holds it now, else
        None (another holder's lease has not expired)."""
        if not (isinstance(ttl, int | float) and math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"ttl: expected a positive number of seconds, got {ttl!r}")
        if not name or not holder:
            raise ValueError("name and holder: expected non-empty strings")
        c = leases.c
        with self._store.begin_write() as conn:
            now = db_now(conn)
            conn.execute(
                insert_ignore(conn.dialect, leases),
                [
                    {
                        "name": name,
                        "holder": "",  # nobody: the first holder gets epoch 1
                        "epoch": 0,
                        "acquired_at": now,
                        "renewed_at": now,
                        # born expired: the update below grants it, to whoever asks first
                        "expires_at": now - 1.0,
                    }
                ],
            )
            renewal = sa.and_(c.holder == holder, c.expires_at > now)
            changed = conn.execute(
                leases.update()
                .where(c.name == name, sa.or_(renewal, c.expires_at <= now))
                .values(
                    holder=holder,
                    epoch=sa.case((renewal, c.epoch), else_=c.epoch + 1),
                    acquired_at=sa.case((renewal, c.acquired_at), else_=now),
                    renewed_at=now,
                    expires_at=now + float(ttl),
                )
            ).rowcount
            if not changed:
                return None
            row = conn.execute(sa.select(leases).where(c.name == name)).one()
        return Lease(**row._mapping)

    def release(self, name: str, holder: str) -> bool:
        """Give lease ``name`` up now if ``holder`` holds it (the next replica to ask takes it over at once);
        True when it was released."""
        c = leases.c
        with self._store.begin_write() as conn:
            now = db_now(conn)
            return bool(
                conn.execute(
                    leases.update()
                    .where(c.name == name, c.holder == holder, c.expires_at > now)
                    .values(expires_at=now)
                ).rowcount
            )

    def get(self, name: str) -> Lease | None:
        """Lease ``name`` as stored (its holder may have let it expire: compare ``expires_at`` with
        :meth:`now`), or None when nobody ever took it."""
        with self._store.connect() as conn:
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
        return None if row is None else Lease(**row._mapping)

    def list(self) -> list[Lease]:
        """Every lease ever taken, by name (compare ``expires_at`` with :meth:`now` for who holds one now)."""
        with self._store.connect() as conn:
            return [Lease(**r._mapping) for r in conn.execute(sa.select(leases).order_by(leases.c.name))]

    def holder(self, name: str) -> str | None:
        """Who holds lease ``name`` now, by the database's clock; None when nobody does."""
        with self._store.connect() as conn:
            now = db_now(conn)
            return conn.execute(
                sa.select(leases.c.holder).where(leases.c.name == name, leases.c.expires_at > now)
            ).scalar()

    def now(self) -> float:
        """The database's clock."""
        with self._store.connect() as conn:
            return db_now(conn)
