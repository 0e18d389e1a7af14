"""Timers that survive a restart: a store persisted in the state folder, and their announcer.

Each timer's due time is saved as UNIX time, the only clock that survives a restart.
Within one run, the time left is measured on the monotonic clock from when the timer
was set or loaded. So a change of the wall clock (an NTP step, a manual change)
neither fires a timer early nor delays it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from assistant.state import move_aside, read_json, state_dir, write_json_atomic

_LOGGER = logging.getLogger(__name__)

STATE_FILE_NAME = "timers.json"
_FORMAT_VERSION = 1


@dataclass(frozen=True)
class Timer:
    """One countdown."""

    id: int
    duration_seconds: int
    #: UNIX time when the timer was set.
    created: float
    #: UNIX time when the timer falls due.
    due: float


class TimerStore:
    """The running timers, saved to a JSON state file after every change. Thread-safe.

    A missing state file means no timers. A corrupt one is moved aside (see
    assistant.state.move_aside) and the store starts empty. A failed save is logged
    as an ERROR and the timers stay in memory.
    """

    def __init__(
        self,
        path: Path,
        wall_clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._wall_clock = wall_clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._timers: dict[int, Timer] = {}
        # Monotonic-clock deadline of each timer, by id.
        self._deadlines: dict[int, float] = {}
        self._next_id = 1
        self._listeners: list[Callable[[], None]] = []
        self._load()

    @classmethod
    def open_default(cls) -> TimerStore:
        """Open the store in the state folder (see assistant.state.state_dir)."""
        return cls(state_dir() / STATE_FILE_NAME)

    # --- queries ---------------------------------------------------------------------

    def timers(self) -> list[Timer]:
        """Return the timers, the first due first."""
        with self._lock:
            return sorted(self._timers.values(), key=lambda timer: (self._deadlines[timer.id], timer.id))

    def remaining_seconds(self, timer: Timer) -> float:
        """Return the seconds left until `timer` falls due (negative once overdue)."""
        with self._lock:
            deadline = self._deadlines.get(timer.id)
        if deadline is None:
            raise KeyError(f"no timer with id {timer.id}")
        return deadline - self._monotonic()

    def due_timers(self) -> list[Timer]:
        """Return the timers that have fallen due, the first due first."""
        now = self._monotonic()
        return [timer for timer in self.timers() if self._deadlines.get(timer.id, math.inf) <= now]

    def seconds_until_next(self) -> float | None:
        """Return the seconds until the next timer falls due (0 if one is overdue), or None."""
        with self._lock:
            if not self._deadlines:
                return None
            earliest = min(self._deadlines.values())
        return max(0.0, earliest - self._monotonic())

    # --- changes ---------------------------------------------------------------------

    def add(self, duration_seconds: int) -> Timer:
        """Start a timer of `duration_seconds` (at least 1) and save the store."""
        if duration_seconds < 1:
            raise ValueError(f"timer duration must be at least 1 second, got {duration_seconds}")
        with self._lock:
            now = self._wall_clock()
            timer = Timer(self._next_id, duration_seconds, created=now, due=now + duration_seconds)
            self._next_id += 1
            self._timers[timer.id] = timer
            self._deadlines[timer.id] = self._monotonic() + duration_seconds
            self._save_locked()
        _LOGGER.info("Timer %d set for %d s", timer.id, duration_seconds)
        self._notify()
        return timer

    def remove(self, timer_ids: list[int]) -> list[Timer]:
        """Remove the timers with these ids, save the store, and return those removed."""
        with self._lock:
            removed = [self._timers.pop(timer_id) for timer_id in timer_ids if timer_id in self._timers]
            for timer in removed:
                del self._deadlines[timer.id]
            if removed:
                self._save_locked()
        if removed:
            _LOGGER.info("Timers removed: %s", ", ".join(str(timer.id) for timer in removed))
            self._notify()
        return removed

    def add_listener(self, callback: Callable[[], None]) -> None:
        """Call `callback()` after every change, from the thread that made it."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[], None]) -> None:
        self._listeners.remove(callback)

    def _notify(self) -> None:
        for callback in list(self._listeners):
            callback()

    # --- persistence -----------------------------------------------------------------

    def _load(self) -> None:
        try:
            content = read_json(self.path)
        except OSError as error:
            _LOGGER.error("Cannot read the timers in %s: %s; starting without them", self.path, error)
            return
        if content is None:
            return
        try:
            next_id, timers = _parse_state(content)
        except ValueError as error:
            move_aside(self.path, str(error))
            return

        wall_now = self._wall_clock()
        monotonic_now = self._monotonic()
        self._next_id = next_id
        for timer in timers:
            self._timers[timer.id] = timer
            self._deadlines[timer.id] = monotonic_now + (timer.due - wall_now)
        _LOGGER.info("Loaded %d timer(s) from %s", len(timers), self.path)

    def _save_locked(self) -> None:
        content = {
            "version": _FORMAT_VERSION,
            "next_id": self._next_id,
            "timers": [asdict(timer) for timer in sorted(self._timers.values(), key=lambda timer: timer.id)],
        }
        try:
            write_json_atomic(self.path, content)
        except OSError as error:
            _LOGGER.error(
                "Cannot save the timers to %s: %s; they will be lost if the daemon stops", self.path, error
            )


def _parse_state(content: Any) -> tuple[int, list[Timer]]:
    """Check the state file's structure; raise ValueError naming the first problem."""
    if not isinstance(content, dict) or content.get("version") != _FORMAT_VERSION:
        raise ValueError(f"expected a JSON object with version {_FORMAT_VERSION}")
    next_id = content.get("next_id")
    entries = content.get("timers")
    if not _is_count(next_id) or not isinstance(entries, list):
        raise ValueError("expected an integer next_id and a list of timers")

    timers = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict) or set(entry) != {"id", "duration_seconds", "created", "due"}:
            raise ValueError(f"timer {index} must have exactly id, duration_seconds, created and due")
        if not (_is_count(entry["id"]) and _is_count(entry["duration_seconds"])):
            raise ValueError(f"timer {index}: id and duration_seconds must be positive integers")
        if not (_is_time(entry["created"]) and _is_time(entry["due"])):
            raise ValueError(f"timer {index}: created and due must be finite numbers")
        timers.append(Timer(entry["id"], entry["duration_seconds"], float(entry["created"]), float(entry["due"])))

    ids = [timer.id for timer in timers]
    if len(set(ids)) != len(ids) or any(timer_id >= next_id for timer_id in ids):
        raise ValueError("timer ids must be unique and below next_id")
    return next_id, timers


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _is_time(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


class TimerAnnouncer:
    """Announce each timer when it falls due, then remove it from the store.

    A timer is removed only once its announcement has finished or failed, so a
    timer whose announcement was cancelled by a stop is announced at the next start.
    """

    def __init__(self, store: TimerStore, announce: Callable[[Timer], Awaitable[None]]) -> None:
        self.store = store
        self._announce = announce

    async def announce_due(self) -> None:
        """Announce every timer that is due now, such as those that fell due while the daemon was down."""
        for timer in self.store.due_timers():
            try:
                await self._announce(timer)
            except asyncio.CancelledError:
                _LOGGER.info("Announcement of timer %d cancelled; it stays saved", timer.id)
                raise
            except Exception:  # noqa: BLE001 - one failed announcement must not stop the others
                _LOGGER.exception("Announcement of timer %d failed; removing the timer", timer.id)
            self.store.remove([timer.id])

    async def run(self) -> None:
        """Sleep until the next timer falls due, or until the timers change; run until cancelled."""
        loop = asyncio.get_running_loop()
        changed = asyncio.Event()

        def on_change() -> None:
            # Timers may change in another thread (a tool call in the LLM stage).
            loop.call_soon_threadsafe(changed.set)

        self.store.add_listener(on_change)
        try:
            while True:
                changed.clear()
                await self.announce_due()
                delay = self.store.seconds_until_next()
                if delay is None:
                    await changed.wait()
                elif delay > 0:
                    # asyncio.timeout, not wait_for: on Python 3.11, wait_for swallows a
                    # cancellation that arrives as the event is set.
                    try:
                        async with asyncio.timeout(delay):
                            await changed.wait()
                    except TimeoutError:
                        pass
        except asyncio.CancelledError:
            _LOGGER.debug("Timer announcer stopped")
            raise
        except Exception:
            _LOGGER.exception("Timer announcer failed; timers that fall due are no longer announced")
            raise
        finally:
            self.store.remove_listener(on_change)
