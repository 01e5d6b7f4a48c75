"""The module-level API: ``wk.init`` starts a run and makes it current; ``wk.log`` and ``wk.finish`` act on
the current run, as in W&B.

Process exit finishes every open run (``finished``, or ``failed`` with the exception's text when an uncaught
exception ended the interpreter). A process killed outright leaves its run ``running`` until
``Runs.reap`` finds it dead and marks it ``crashed``; the CLI reaps before it lists runs.
"""

from __future__ import annotations

import atexit
import functools
import inspect
import logging
import os
import sys
import threading
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from watchkeeper.errors import UsageError
from watchkeeper.profile import Profile
from watchkeeper.sdk.run import AlertLevel, Run
from watchkeeper.sdk.transport import LocalTransport
from watchkeeper.store import ArtifactVersion, Store

_logger = logging.getLogger("watchkeeper")

_lock = threading.Lock()
_active: list[Run] = []
_current: Run | None = None
_uncaught: BaseException | None = None
_hooks_installed = False


def init(
    project: str | None = None,
    name: str | None = None,
    job_type: str | None = None,
    *,
    config: Mapping[str, Any] | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    group: str | None = None,
    notes: str | None = None,
    model: str | None = None,
    version: str | int | None = None,
    id: str | None = None,
    uri: str | None = None,
    token: str | None = None,
    artifact_root: str | os.PathLike[str] | None = None,
    mode: Literal["online", "disabled"] | None = None,
    reinit: Literal["finish_previous", "create_new"] = "finish_previous",
    flush_interval: float = 0.5,
    max_queue: int = 1_000_000,
    window: float = 60.0,
    system_metrics: bool | float = True,
) -> Run:
    """Start a run and make it the current one.

    The store is ``uri`` or ``WATCHKEEPER_URI`` or ``sqlite:///.watchkeeper/watchkeeper.db``; ``project``
    defaults to ``WATCHKEEPER_PROJECT`` or ``"uncategorized"``. ``mode="disabled"`` (or
    ``WATCHKEEPER_MODE=disabled``) gives a run that checks what is logged and stores nothing.
    With ``reinit="finish_previous"`` (the default) an open current run is finished first.

    A ``uri`` of the form ``http://host:port`` (or ``https://...``) sends everything to a watchkeeper server
    instead (see :mod:`watchkeeper.sdk.http`): ``token`` (or ``WATCHKEEPER_TOKEN``) is the bearer token, and
    ``artifact_root`` is not used. A server that cannot be reached does not make ``init`` fail: the run's
    start is spooled on disk and sent when the server is back; a token the server refuses (401, 403) raises
    ``StoreError``. ``token`` is ignored for a database URI.

    Monitoring: ``window`` is the length in seconds of the windows that watched calls are aggregated into
    (see ``Run.watch``); ``system_metrics`` samples CPU, memory, disk, network (and GPUs) every 10 seconds,
    or every that many seconds when a number, as ``system/...`` signals of the run; False turns it off.
    """
    global _current
    mode = mode or os.environ.get("WATCHKEEPER_MODE", "online")  # type: ignore[assignment]
    if mode not in ("online", "disabled"):
        raise ValueError(f"mode must be 'online' or 'disabled', got {mode!r}")
    if reinit not in ("finish_previous", "create_new"):
        raise ValueError(f"reinit must be 'finish_previous' or 'create_new', got {reinit!r}")
    if reinit == "finish_previous" and _current is not None:
        _current.finish()
    project = project or os.environ.get("WATCHKEEPER_PROJECT") or "uncategorized"
    transport = None
    if mode == "online":
        target = uri or os.environ.get("WATCHKEEPER_URI") or ""
        if target.split(":", 1)[0].lower() in ("http", "https"):
            from watchkeeper.sdk.http import HttpTransport

            transport = HttpTransport(target, token or os.environ.get("WATCHKEEPER_TOKEN") or None)
        else:
            transport = LocalTransport(
                Store(uri, artifact_root=Path(artifact_root) if artifact_root else None)
            )
    try:
        run = Run(
            transport,
            project=project,
            name=name,
            job_type=job_type,
            group=group,
            tags=list(tags) if tags else None,
            config=config,
            notes=notes,
            model=model,
            version=None if version is None else str(version),
            id=id,
            flush_interval=flush_interval,
            max_queue=max_queue,
            window=window,
            system_metrics=system_metrics,
        )
    except BaseException:
        if transport is not None:
            transport.close()
        raise
    _install_hooks()
    with _lock:
        _active.append(run)
        _current = run
    return run


def current_run() -> Run | None:
    """The run that ``wk.log`` writes to, or None."""
    return _current


def _require() -> Run:
    if _current is None:
        raise UsageError("no current run: call wk.init() before wk.log(), wk.finish() or wk.log_artifact()")
    return _current


def log(data: Mapping[str, Any], step: int | None = None, commit: bool | None = None) -> None:
    """``log`` on the current run."""
    _require().log(data, step=step, commit=commit)


def log_artifact(
    path: str | os.PathLike[str],
    name: str | None = None,
    type: str = "artifact",
    metadata: Mapping[str, Any] | None = None,
) -> ArtifactVersion | None:
    """``log_artifact`` on the current run."""
    return _require().log_artifact(path, name=name, type=type, metadata=metadata)


def watch(fn: Callable[..., Any] | None = None, **options: Any) -> Any:
    """``Run.watch`` on whichever run is current when the function is called, so a module can decorate its
    predict function at import time and call ``wk.init`` later. Without a current run, the function is
    called as it is. The options are those of :meth:`Run.watch`."""
    from watchkeeper.sdk.watcher import Watcher

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        if not callable(f):
            raise TypeError(f"watch: expected a function, got {type(f).__name__}")
        Watcher.spec(
            options.get("name") or getattr(f, "__name__", "call"),
            **{k: v for k, v in options.items() if k != "name"},
        )  # refuse bad options now, not at the first call
        bound: list[Any] = [None, f]  # (run, its watched version of f)

        def target() -> Callable[..., Any]:
            run = _current
            if run is None:
                return f
            if bound[0] is not run:
                bound[1] = run.watch(f, **options)
                bound[0] = run
            return bound[1]

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def watched_async(*args: Any, **kwargs: Any) -> Any:
                return await target()(*args, **kwargs)

            return watched_async

        @functools.wraps(f)
        def watched(*args: Any, **kwargs: Any) -> Any:
            return target()(*args, **kwargs)

        return watched

    return decorate if fn is None else decorate(fn)


def log_label(prediction_id: Any, value: Any, *, t: float | None = None) -> None:
    """``log_label`` on the current run."""
    _require().log_label(prediction_id, value, t=t)


def alert(
    title: str, text: str, level: str | AlertLevel = "INFO", wait_duration: float | timedelta | None = None
) -> None:
    """``alert`` on the current run (wandb's ``wandb.alert``)."""
    _require().alert(title, text, level, wait_duration)


def log_usage(
    input_tokens: int = 0, output_tokens: int = 0, *, model: str = "default", cost: float | None = None
) -> None:
    """``log_usage`` on the current run."""
    _require().log_usage(input_tokens, output_tokens, model=model, cost=cost)


def finish(exit_code: int | None = None) -> None:
    """Finish the current run, if there is one."""
    if _current is not None:
        _current.finish(exit_code)


def load_reference(
    model: str,
    version: str | int,
    name: str = "train",
    *,
    project: str | None = None,
    uri: str | None = None,
    token: str | None = None,
) -> Profile:
    """The reference profile ``name`` of a model version, as logged by ``run.log_reference``; KeyError when
    there is none.

    ``uri`` (or ``WATCHKEEPER_URI``) is a database, or a watchkeeper server (``http://host:port``), whose
    query API is asked with ``token`` (or ``WATCHKEEPER_TOKEN``): a read token of the project is enough.
    ``token`` is ignored for a database URI."""
    project = project or os.environ.get("WATCHKEEPER_PROJECT") or "uncategorized"
    target = uri or os.environ.get("WATCHKEEPER_URI") or ""
    if target.split(":", 1)[0].lower() in ("http", "https"):
        from watchkeeper.client import Client

        token = token or os.environ.get("WATCHKEEPER_TOKEN") or None
        with Client(target, token, token_hint="wk.load_reference(token=...) or WATCHKEEPER_TOKEN") as client:
            return Profile.from_bytes(client.reference_profile(project, model, str(version), name))
    with Store(uri) as store:
        stored = store.profiles.reference(project, model, str(version), name)
    return Profile.from_bytes(stored.data)


def _forget(run: Run) -> None:
    global _current
    with _lock:
        if run in _active:
            _active.remove(run)
        if _current is run:
            _current = _active[-1] if _active else None


def _install_hooks() -> None:
    global _hooks_installed
    if _hooks_installed:
        return
    _hooks_installed = True
    previous = sys.excepthook

    def excepthook(exc_type: Any, exc: BaseException, tb: Any) -> None:
        global _uncaught
        _uncaught = exc
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook
    atexit.register(_finish_all_at_exit)
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _finish_all_at_exit() -> None:
    for run in list(_active):
        try:
            if _uncaught is not None and not isinstance(_uncaught, KeyboardInterrupt):
                run._fail_from_exception(_uncaught)
            else:
                run.finish(exit_code=130 if isinstance(_uncaught, KeyboardInterrupt) else None)
        except Exception:  # exiting: report, never raise
            _logger.exception("watchkeeper: could not finish run %s at exit", run.id)


def _after_fork_in_child() -> None:
    """Runs that watch functions go on as new runs in the child (see ``Run._after_fork_in_child``); the
    others belong to the parent and are dropped here."""
    global _current, _lock
    _lock = threading.Lock()
    kept = []
    for run in _active:
        if run._after_fork_in_child():  # still active: a new run of this process
            kept.append(run)
    _active[:] = kept
    if _current not in kept:
        _current = kept[-1] if kept else None
