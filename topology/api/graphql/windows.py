"""The `window` argument: `last` or `from`/`to`, turned into a query Window or BAD_WINDOW."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from queries.window import Window
from topology.api.graphql.errors import BAD_WINDOW, ApiError
from topology.api.graphql.types import TimeRange, WindowInput
from topology.durations import parse_duration

DEFAULT_SECONDS = 3600


def _instant(text: str, name: str) -> int:
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp())
    except (ValueError, OverflowError):
        raise ApiError(BAD_WINDOW, f"window.{name}: {text[:64]!r} is not an ISO 8601 time, "
                       "e.g. 2026-11-21T10:00:00Z") from None


def resolve(window: WindowInput | None, clock: Callable[[], float], longest: float) -> Window:
    """The Window asked for; at most `longest` seconds (the hour retention) long.

    The clock is read only for relative windows: an answer over from/to does not
    depend on the time it is asked at (identical requests share it, see flights.py).
    """
    if window is None or (window.last is None and window.from_ is None and window.to is None):
        return Window.last(DEFAULT_SECONDS, int(clock()))
    if window.last is not None:
        if window.from_ is not None or window.to is not None:
            raise ApiError(BAD_WINDOW, "window: give either last or from/to, not both")
        try:
            seconds = parse_duration(window.last)
        except ValueError as exc:
            raise ApiError(BAD_WINDOW, f"window.last: {str(exc)[:120]}") from None
        if seconds < 1:
            raise ApiError(BAD_WINDOW, "window.last: the window must be at least 1s long")
        now_s = int(clock())
        since, until = now_s - int(seconds), now_s
    else:
        if window.from_ is None or window.to is None:
            raise ApiError(BAD_WINDOW, "window: from and to go together (or use last)")
        since, until = _instant(window.from_, "from"), _instant(window.to, "to")
        if until <= since:
            raise ApiError(BAD_WINDOW, "window: to must be after from")
    if until - since > longest:
        raise ApiError(BAD_WINDOW, f"window: at most {longest / 86400:g} days "
                       "(the data kept) can be asked for at once")
    return Window(since, until)


def time_range(window: Window) -> TimeRange:
    return TimeRange(
        from_=datetime.fromtimestamp(window.since, UTC),
        to=datetime.fromtimestamp(window.until, UTC), seconds=window.seconds,
    )
