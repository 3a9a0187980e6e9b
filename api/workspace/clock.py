"""Local time for the workspace: the consortium's calendar day (Europe/London) and its bounds in UTC.

Times are stored in UTC. A person's "day" is a local calendar day, which is 23, 24 or 25 hours long around the
clock changes; its bounds are computed in the zone, never by adding 24 hours to midnight UTC.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

#: The zone of the five trusts (GMT, BST from the last Sunday of March to the last Sunday of October).
DEFAULT_TIMEZONE = "Europe/London"


@lru_cache(maxsize=8)
def zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def local_today(timezone: str = DEFAULT_TIMEZONE, *, now: datetime | None = None) -> date:
    """The calendar date in ``timezone`` at ``now`` (the current time when not given)."""
    moment = now or datetime.now(UTC)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(timezone)).date()


def day_bounds(day: date, timezone: str = DEFAULT_TIMEZONE) -> tuple[datetime, datetime]:
    """The UTC instants at which ``day`` starts and the next day starts, in ``timezone`` (half-open)."""
    tz = zone(timezone)
    start = datetime.combine(day, time(0), tzinfo=tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=tz)
    return start.astimezone(UTC), end.astimezone(UTC)


def local_date_of(moment: datetime | None, timezone: str = DEFAULT_TIMEZONE) -> date | None:
    """The local calendar date of a stored (UTC) instant."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(zone(timezone)).date()
