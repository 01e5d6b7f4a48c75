"""The alerts page's routes: the history of alert states, the log of notifications, and silences.

* ``GET /api/v1/alerts/history``: every state change of every alert series (pending, firing, resolved,
  back to inactive), newest first, with its time and the rule's value then; what the dashboard lists and
  marks on its charts' time axes. The history outlives the states ``GET /api/v1/alerts`` shows.
* ``GET /api/v1/alerts/notifications``: every delivery to a notifier, sent or failed, newest first.
* ``GET /api/v1/silences``, ``POST /api/v1/silences``, ``DELETE /api/v1/silences/{id}``: list, create and
  expire silences; a silenced alert still moves through its states but is not notified.

Who sees what, as ``GET /api/v1/alerts``: an event belongs to the series' ``project`` label, else to its
rule's project; a caller limited to some projects sees the events of those, and events of neither only with
access to every project. A notification belongs to the projects of the alerts it lists (each one's
``project`` label, else its rule's), and shows to a caller who may read all of them. A silence of a project
shows to the readers of that project; a silence of no project applies to every project's alerts, so it
shows to everyone. Creating or expiring a silence needs write access to its project, and for a silence of
no project, write access to every project.

Times are seconds since the epoch; a value that is NaN is ``null`` and the infinities are ``"inf"`` and
``"-inf"``, as in the query routes. Described in ``docs/server.md`` ("Alert history and silences").
"""

from __future__ import annotations

import math
import re
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from watchkeeper.server.auth import Principal, principal
from watchkeeper.server.query import _check_range, _num
from watchkeeper.server.schema import Num, no_nul, problems
from watchkeeper.server.schema import Time as BodyTime
from watchkeeper.store.alerts import NotificationRecord, Silence

router = APIRouter(prefix="/api/v1", tags=["alerts"], responses=problems(401, 503))

Who = Annotated[Principal, Depends(principal)]
Time = Annotated[
    float | None, Query(allow_inf_nan=False, description="Seconds since the epoch; the range is [start, end)")
]
MAX_EVENTS = 10_000
MAX_NOTIFICATIONS = 1000
MATCH_OPS = ("=", "!=", "=~", "!~")


def _named(value: str) -> str:
    # who made a silence is what a person reads to ask about it: spaces alone name no one
    if not value.strip():
        raise ValueError("expected who is making the silence, got only whitespace")
    return value


# Length bounds on the str itself (so a short one is told "at least 1 character"), and no NUL, which
# PostgreSQL cannot hold in text.
ProjectName = Annotated[str, Field(min_length=1, max_length=128), AfterValidator(no_nul)]
LabelName = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(no_nul)]
LabelValue = Annotated[str, Field(max_length=1024), AfterValidator(no_nul)]
Author = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(no_nul), AfterValidator(_named)]
Comment = Annotated[str, Field(max_length=10_000), AfterValidator(no_nul)]


# -- wire models ---------------------------------------------------------------------------------------------


class _Answer(BaseModel):
    # a key the handler adds but the model lacks is an error in the tests, not a silently dropped field
    model_config = ConfigDict(extra="forbid")


class AlertEventOut(_Answer):
    rule: str
    project: str | None
    labels: dict[str, str]
    from_state: str
    to_state: str
    t: float
    value: Num


class AlertHistoryOut(_Answer):
    events: list[AlertEventOut] = Field(description="Newest first")
    truncated: bool = Field(description="More events matched than ``limit``")


class NotificationOut(_Answer):
    rule: str | None = Field(description="The rule of every alert listed; null when they are of several")
    labels: dict[str, Any] = Field(description="The group's labels")
    projects: list[str] = Field(description="The projects of the alerts listed")
    notifier: str
    t: float
    status: str = Field(description="sent or failed")
    error: str | None
    payload: dict[str, Any] = Field(description="title, status, group_labels, alerts, attempts")


class NotificationsOut(_Answer):
    notifications: list[NotificationOut] = Field(description="Newest first")
    truncated: bool


class MatcherIn(BaseModel):
    """One label matcher; a regular expression matches the whole label value, as in PromQL."""

    model_config = ConfigDict(extra="forbid")
    label: LabelName
    op: Literal[MATCH_OPS]  # type: ignore[valid-type]
    value: LabelValue

    @field_validator("value")
    @classmethod
    def _compiles(cls, value: str, info: ValidationInfo) -> str:
        if info.data.get("op") in ("=~", "!~"):
            try:
                re.compile(value)
            except (re.error, RecursionError, OverflowError) as exc:
                raise ValueError(
                    f"expected a regular expression (Python's re), got {value!r:.80}: {exc}"
                ) from None
        return value


class SilenceIn(BaseModel):
    """A new silence: until ``ends_at``, or for ``duration`` seconds from ``starts_at`` (default: now)."""

    model_config = ConfigDict(extra="forbid")
    project: ProjectName | None = Field(None, description="Only this project's alerts; none: every project's")
    matchers: Annotated[list[MatcherIn], Field(min_length=1, max_length=64)]
    starts_at: BodyTime | None = None
    ends_at: BodyTime | None = None
    duration: Annotated[float, Field(gt=0, allow_inf_nan=False)] | None = Field(
        None, description="Seconds, in place of ends_at"
    )
    created_by: Author
    comment: Comment = ""


class MatcherOut(_Answer):
    label: str
    op: str
    value: str


class SilenceOut(_Answer):
    id: str
    project: str | None
    matchers: list[MatcherOut]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float
    state: Literal["pending", "active", "expired"]


class SilencesOut(_Answer):
    silences: list[SilenceOut] = Field(description="Latest start first")


# -- helpers -------------------------------------------------------------------------------------------------


def _alerts(request: Request) -> Any:
    return request.app.state.store.alerts


def _unprocessable(field: str, message: str) -> HTTPException:
    """A 422 in the shape of the app's validation errors: the input at fault and what was wrong."""
    return HTTPException(422, [{"field": field, "message": message}])


def _readable(who: Principal, project: str | None) -> str | frozenset[str] | None:
    """The projects a listing covers: ``project`` once the caller may read it, else every project the
    caller may read (None: every project, and things of no project too)."""
    if project is not None:
        who.check_read(project)
        return project
    return who.projects


def _may_write(who: Principal, project: str | None) -> None:
    if project is None and who.projects is not None:
        raise HTTPException(
            403,
            "a silence of no project silences every project's alerts and needs a token of every project; "
            "give the silence a project",
        )
    who.check_write([] if project is None else [project])


def _silence(s: Silence, now: float) -> dict[str, Any]:
    state = "active" if s.active(now) else ("pending" if now < s.starts_at else "expired")
    return {
        "id": s.id,
        "project": s.project,
        "matchers": [dict(m) for m in s.matchers],
        "starts_at": s.starts_at,
        "ends_at": s.ends_at,
        "created_by": s.created_by,
        "comment": s.comment,
        "created_at": s.created_at,
        "state": state,
    }


def _notification(n: NotificationRecord) -> dict[str, Any]:
    rules = {a.get("rule") for a in n.payload.get("alerts") or () if isinstance(a, dict)}
    rule = n.rule_name if n.rule_name is not None else (rules.pop() if len(rules) == 1 else None)
    labels = n.payload.get("group_labels")
    return {
        "rule": rule if isinstance(rule, str) else None,
        "labels": labels if isinstance(labels, dict) else {},
        "projects": sorted(n.projects),
        "notifier": n.notifier,
        "t": n.t,
        "status": n.status,
        "error": n.error,
        "payload": n.payload,
    }


# -- history and notifications -------------------------------------------------------------------------------


@router.get("/alerts/history", response_model=AlertHistoryOut, responses=problems(403))
def alert_history(
    request: Request,
    who: Who,
    project: str | None = None,
    start: Time = None,
    end: Time = None,
    rule: Annotated[str | None, Query(description="Only the rules of this name")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS)] = 1000,
) -> dict[str, Any]:
    """State changes of alert series at ``t`` in ``[start, end)``, newest first."""
    _check_range(start, end)
    found = _alerts(request).events(
        project=_readable(who, project), start=start, end=end, rule=rule, limit=limit + 1
    )
    return {
        "events": [
            {
                "rule": e.rule_name,
                "project": e.project,
                "labels": e.labels,
                "from_state": e.from_state,
                "to_state": e.to_state,
                "t": e.t,
                "value": _num(e.value),
            }
            for e in found[:limit]
        ],
        "truncated": len(found) > limit,
    }


@router.get("/alerts/notifications", response_model=NotificationsOut, responses=problems(403))
def alert_notifications(
    request: Request,
    who: Who,
    project: str | None = None,
    start: Time = None,
    end: Time = None,
    limit: Annotated[int, Query(ge=1, le=MAX_NOTIFICATIONS)] = 100,
) -> dict[str, Any]:
    """Deliveries to notifiers at ``t`` in ``[start, end)``, newest first: of ``project`` (one of the
    projects of the alerts listed), and only those the caller may read every project of."""
    _check_range(start, end)
    if project is not None:
        who.check_read(project)
    readable = who.projects
    where = None if readable is None else (lambda n: bool(n.projects) and n.projects <= readable)
    found = _alerts(request).notifications(
        limit=limit + 1, start=start, end=end, project=project, where=where
    )
    return {"notifications": [_notification(n) for n in found[:limit]], "truncated": len(found) > limit}


# -- silences ------------------------------------------------------------------------------------------------


@router.get("/silences", response_model=SilencesOut, responses=problems(403))
def list_silences(
    request: Request,
    who: Who,
    project: Annotated[
        str | None, Query(description="This project's silences, and those of every project")
    ] = None,
    active: Annotated[bool | None, Query(description="true: active now; false: pending or expired")] = None,
) -> dict[str, Any]:
    """Silences of the projects the caller may read, and those of no project (they apply to every
    project), latest start first."""
    scope = _readable(who, project)
    shown = {scope} if isinstance(scope, str) else scope
    now = time.time()
    out = []
    for s in reversed(_alerts(request).silences()):
        if s.project is not None and shown is not None and s.project not in shown:
            continue
        if active is not None and s.active(now) != active:
            continue
        out.append(_silence(s, now))
    return {"silences": out}


@router.post(
    "/silences",
    status_code=201,
    response_model=SilenceOut,
    responses=problems(400, 403, 413, 415),
)
def create_silence(body: SilenceIn, request: Request, who: Who) -> dict[str, Any]:
    """A new silence; its alerts are not notified from ``starts_at`` until ``ends_at``."""
    _may_write(who, body.project)
    now = time.time()
    starts = now if body.starts_at is None else body.starts_at
    if (body.ends_at is None) == (body.duration is None):
        raise _unprocessable(
            "ends_at", "give ends_at (seconds since the epoch) or duration (seconds), one of them"
        )
    ends = body.ends_at if body.ends_at is not None else starts + body.duration  # type: ignore[operator]
    field = "ends_at" if body.ends_at is not None else "duration"
    if not math.isfinite(ends):
        raise _unprocessable(
            field, f"starts_at + duration is past the largest time ({starts:g} + {body.duration:g})"
        )
    if ends <= starts:
        raise _unprocessable(field, f"expected an end after starts_at ({starts:g}), got {ends:g}")
    if ends <= now:
        raise _unprocessable(field, f"the silence would end in the past ({ends:g}; now is {now:g})")
    try:
        silence = _alerts(request).add_silence(
            [m.model_dump() for m in body.matchers],
            ends,
            starts_at=starts,
            created_by=body.created_by,
            comment=body.comment,
            project=body.project,
            now=now,
        )
    except ValueError as exc:  # the store's own checks name the field first: "ends_at: expected ..."
        where, _, message = str(exc).partition(": ")
        raise _unprocessable(where, message) from exc
    return _silence(silence, now)


@router.delete(
    "/silences/{silence_id}",
    status_code=204,
    response_class=Response,
    responses={**problems(403, 404), 204: {"description": "The silence is expired (or already was)"}},
)
def expire_silence(silence_id: str, request: Request, who: Who) -> Response:
    """End a silence now; one that has already ended stays as it was."""
    alerts = _alerts(request)
    found = alerts.silence(silence_id)
    if found is None:
        raise HTTPException(404, f"no silence with id {silence_id!r}")
    _may_write(who, found.project)
    alerts.expire_silence(silence_id)
    return Response(status_code=204)
