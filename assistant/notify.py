"""Client for the systemd service notification protocol (sd_notify(3)).

The service manager passes the address of its notification socket in
``NOTIFY_SOCKET``: a filesystem path, or an abstract socket name written with a
leading ``@``. Each notification is one AF_UNIX datagram of newline-separated
``KEY=VALUE`` assignments. Without ``NOTIFY_SOCKET`` (for example when the daemon
runs in a terminal) every method is a no-op.

Only AF_UNIX sockets are created here, because the daemon rejects AF_INET and
AF_INET6 sockets. ``vsock:`` addresses (systemd 254 and later, for virtual
machines) are not supported and disable notifications with a warning.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Mapping

logger = logging.getLogger(__name__)

# systemd drains its notification socket continuously, so a send only blocks
# when the service manager itself is stalled. The bound keeps such a stall
# from freezing the event loop that calls watchdog().
SEND_TIMEOUT_SECONDS = 1.0


class SystemdNotifier:
    """Sender of readiness, status, reload, stop and watchdog notifications to systemd.

    The environment is read once, at construction. A send failure is logged and
    reported through the boolean return value, never raised.
    """

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        """Read ``NOTIFY_SOCKET``, ``WATCHDOG_USEC`` and ``WATCHDOG_PID`` from environ.

        environ defaults to ``os.environ``.
        """
        if environ is None:
            environ = os.environ
        self._address = _parse_notify_socket(environ.get("NOTIFY_SOCKET", ""))
        self._watchdog_interval = _parse_watchdog_interval(environ)
        self._failure_count = 0

    @property
    def enabled(self) -> bool:
        """Whether a usable ``NOTIFY_SOCKET`` was set."""
        return self._address is not None

    def notify(self, *assignments: str) -> bool:
        """Send one datagram made of the given ``KEY=VALUE`` assignments.

        Returns True when the datagram was sent, and False when notifications are
        disabled or the send failed (the failure is logged).
        """
        if self._address is None:
            return False

        message = "\n".join(assignments)
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.settimeout(SEND_TIMEOUT_SECONDS)
                # "replace" keeps a stray surrogate (from a file name, say) from raising.
                sock.sendto(message.encode("utf-8", errors="replace"), self._address)
        except OSError as error:
            self._log_failure(message, error)
            return False

        if self._failure_count:
            logger.info(
                "Sending to NOTIFY_SOCKET %r works again after %d failed sends",
                self._address,
                self._failure_count,
            )
            self._failure_count = 0
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd that start-up or a reload has finished (``READY=1``)."""
        if status is None:
            return self.notify("READY=1")
        return self.notify("READY=1", _status_assignment(status))

    def status(self, text: str) -> bool:
        """Set the free-form status line that ``systemctl status`` shows (``STATUS=``).

        Line breaks in text become spaces, because each line of a notification
        is a separate assignment.
        """
        return self.notify(_status_assignment(text))

    def reloading(self) -> bool:
        """Tell systemd that a configuration reload has started (``RELOADING=1``).

        Call ready() when the reload has finished. ``MONOTONIC_USEC`` carries the
        CLOCK_MONOTONIC time of the call, which Type=notify-reload (systemd 253
        and later) requires and older versions and Type=notify ignore.
        """
        now_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={now_usec}")

    def stopping(self) -> bool:
        """Tell systemd that the daemon has begun to shut down (``STOPPING=1``)."""
        return self.notify("STOPPING=1")

    def watchdog(self) -> bool:
        """Send one watchdog keep-alive ping (``WATCHDOG=1``)."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask systemd to wait seconds longer for start-up, reload or stop (``EXTEND_TIMEOUT_USEC``).

        Useful before a slow step such as loading a large model, so that
        TimeoutStartSec= does not expire in the middle of it. Raises ValueError
        unless seconds is positive.
        """
        if not seconds > 0:
            raise ValueError(f"extend_timeout() needs a positive number of seconds, got {seconds!r}")
        return self.notify(f"EXTEND_TIMEOUT_USEC={round(seconds * 1_000_000)}")

    def watchdog_interval_seconds(self) -> float | None:
        """Return the watchdog timeout systemd enforces, or None if the watchdog is off.

        The value comes from ``WATCHDOG_USEC``. It is None when that variable is
        unset or invalid, or when ``WATCHDOG_PID`` names another process.
        """
        return self._watchdog_interval

    async def run_watchdog(self) -> None:
        """Send ``WATCHDOG=1`` from the event loop every half interval until cancelled.

        Returns at once when the watchdog is off. Because the pings come from the
        event loop, a loop blocked for longer than WatchdogSec= gets the service
        killed and, with Restart=on-failure, restarted. Cancellation is logged
        and re-raised, so the awaiting task ends as cancelled.
        """
        interval = self._watchdog_interval
        if interval is None or self._address is None:
            logger.debug("systemd watchdog is off; no keep-alive pings are sent")
            return

        period = interval / 2
        logger.info("Sending systemd watchdog pings every %.3f s", period)
        try:
            while True:
                self.watchdog()
                await asyncio.sleep(period)
        except asyncio.CancelledError:
            logger.info("Stopped systemd watchdog pings")
            raise

    def _log_failure(self, message: str, error: OSError) -> None:
        """Log a failed send, rate-limited to the 1st, 10th, 100th, ... in a row."""
        self._failure_count += 1
        count = self._failure_count
        first_line = message.partition("\n")[0]
        if count == 1:
            logger.warning(
                "Failed to send %r to NOTIFY_SOCKET %r: %s",
                first_line,
                self._address,
                error,
            )
        elif _is_power_of_ten(count):
            logger.warning(
                "Failed to send to NOTIFY_SOCKET %r %d times in a row, latest %r: %s",
                self._address,
                count,
                first_line,
                error,
            )
        else:
            logger.debug("Failed to send %r to NOTIFY_SOCKET: %s", first_line, error)


def _parse_notify_socket(value: str) -> bytes | None:
    """Convert ``NOTIFY_SOCKET`` to an AF_UNIX address, or None if it is unset or unsupported."""
    if not value:
        return None
    if value.startswith("@"):
        # Linux names an abstract socket by a leading NUL byte in sun_path.
        return b"\0" + os.fsencode(value[1:])
    if value.startswith("/"):
        return os.fsencode(value)

    logger.warning(
        "Ignoring NOTIFY_SOCKET=%r: expected an absolute path or an abstract name "
        "starting with '@'; systemd notifications are disabled",
        value,
    )
    return None


def _parse_watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Return ``WATCHDOG_USEC`` in seconds, following the rules of sd_watchdog_enabled(3)."""
    usec_text = environ.get("WATCHDOG_USEC", "")
    if not usec_text:
        return None
    try:
        usec = int(usec_text)
    except ValueError:
        logger.warning("Ignoring invalid WATCHDOG_USEC=%r: expected an integer", usec_text)
        return None
    if usec <= 0:
        logger.warning("Ignoring invalid WATCHDOG_USEC=%r: expected a positive value", usec_text)
        return None

    pid_text = environ.get("WATCHDOG_PID", "")
    if pid_text:
        try:
            pid = int(pid_text)
        except ValueError:
            logger.warning("Ignoring the watchdog: invalid WATCHDOG_PID=%r", pid_text)
            return None
        if pid != os.getpid():
            # The variables were meant for another process, typically a parent
            # that passed its environment on to this one.
            logger.debug("Ignoring the watchdog: WATCHDOG_PID=%d is not this process", pid)
            return None

    return usec / 1_000_000


def _status_assignment(text: str) -> str:
    return "STATUS=" + " ".join(text.splitlines())


def _is_power_of_ten(number: int) -> bool:
    while number % 10 == 0:
        number //= 10
    return number == 1
