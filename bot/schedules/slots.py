"""When a schedule is due: `--every` counts periods from its creation, `--at` goes by days."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MIN_EVERY, MAX_EVERY = 60, 7 * 86400
LOOK_BACK_DAYS = 400


@dataclass(frozen=True)
class When:
    """A schedule's clock: every N seconds from `anchor`, or at a UTC time on ISO weekdays."""

    anchor: datetime
    every_seconds: int | None = None
    at: time | None = None
    days: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)

    def latest(self, now: datetime) -> datetime | None:
        """The most recent slot at or before now (None before the first)."""
        if self.every_seconds:
            periods = int((now - self.anchor).total_seconds() // self.every_seconds)
            return (
                self.anchor + timedelta(seconds=periods * self.every_seconds) if periods else None
            )
        day = now.date()
        for _ in range(LOOK_BACK_DAYS):
            slot = datetime.combine(day, self.at or time(), UTC)
            if slot <= now and slot.isoweekday() in self.days and slot > self.anchor:
                return slot
            day -= timedelta(days=1)
        return None

    def between(self, after: datetime, before: datetime) -> int:
        """How many slots fall strictly between two slots (the ones skipped)."""
        if self.every_seconds:
            return max(0, int((before - after).total_seconds() // self.every_seconds) - 1)
        days = (before.date() - after.date()).days
        skipped = (after.date() + timedelta(days=n) for n in range(1, min(days, LOOK_BACK_DAYS)))
        return sum(1 for d in skipped if d.isoweekday() in self.days)

    def next(self, now: datetime) -> datetime:
        """The first slot after now."""
        if self.every_seconds:
            periods = int((now - self.anchor).total_seconds() // self.every_seconds) + 1
            return self.anchor + timedelta(seconds=periods * self.every_seconds)
        day = now.date()
        while True:
            slot = datetime.combine(day, self.at or time(), UTC)
            if slot > now and slot.isoweekday() in self.days:
                return slot
            day += timedelta(days=1)

    @property
    def grace(self) -> timedelta:
        """How late a slot may still run: an hour, or one period when that is shorter."""
        hour = timedelta(hours=1)
        return min(hour, timedelta(seconds=self.every_seconds)) if self.every_seconds else hour

    def describe(self) -> str:
        """`every 1h`, `at 09:00 UTC on mon-fri`."""
        if self.every_seconds:
            return f"every {span(self.every_seconds)}"
        on = "" if len(self.days) == 7 else f" on {days_text(self.days)}"
        return f"at {self.at:%H:%M} UTC{on}"


def every_seconds(period: timedelta) -> int:
    """A period (`--every`, read as forge reads any duration) in whole seconds, 1m to 7d."""
    seconds = int(period.total_seconds())
    if not MIN_EVERY <= seconds <= MAX_EVERY or seconds % 60:
        raise ValueError("the period is whole minutes, 1m at least and 7d at most")
    return seconds


def parse_at(text: str) -> time:
    """`09:00` (UTC); ValueError otherwise."""
    found = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if not found:
        raise ValueError("expected a UTC time such as 09:00")
    return time(int(found[1]), int(found[2]))


def parse_days(text: str) -> tuple[int, ...]:
    """`mon-fri`, `sat,sun`, `daily` as ISO weekdays; ValueError otherwise."""
    words = text.strip().lower()
    if words in ("daily", "all", "mon-sun"):
        return (1, 2, 3, 4, 5, 6, 7)
    days: set[int] = set()
    for part in words.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise ValueError("expected days such as mon-fri or sat,sun")
        start, end = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        span_days = range(start, end + 1) if start <= end else [*range(start, 7), *range(end + 1)]
        days.update(d + 1 for d in span_days)
    return tuple(sorted(days))


def days_text(days: tuple[int, ...]) -> str:
    """ISO weekdays as `mon-fri` or `sat,sun`."""
    if days == (1, 2, 3, 4, 5):
        return "mon-fri"
    return ",".join(DAY_NAMES[d - 1] for d in days)


def span(seconds: int) -> str:
    """Seconds as the largest whole unit: `90m`, `2h`, `1d`."""
    for unit, size in (("d", 86400), ("h", 3600)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds // 60}m"
