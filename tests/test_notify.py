"""Tests for assistant.notify against real AF_UNIX datagram sockets."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import tempfile
import time
import uuid
from collections.abc import Iterator

import pytest

from assistant.notify import SystemdNotifier

# WATCHDOG_USEC for the cadence tests: pings are due every 0.1 s.
WATCHDOG_USEC = 200_000
PING_PERIOD_SECONDS = WATCHDOG_USEC / 1_000_000 / 2

# Upper bound for every single wait in these tests, so that a missing datagram
# fails the test instead of hanging it.
RECEIVE_TIMEOUT_SECONDS = 2.0


@pytest.fixture
def path_socket() -> Iterator[tuple[socket.socket, str]]:
    """Yield a bound datagram socket in a temporary directory and its NOTIFY_SOCKET value."""
    # tempfile's default directory keeps the path well below the 108-byte
    # sun_path limit, which pytest's deeper tmp_path can exceed.
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        path = os.path.join(directory, "notify.sock")
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.bind(path)
        receiver.settimeout(RECEIVE_TIMEOUT_SECONDS)
        try:
            yield receiver, path
        finally:
            receiver.close()


@pytest.fixture
def abstract_socket() -> Iterator[tuple[socket.socket, str]]:
    """Yield a bound abstract datagram socket and its '@' NOTIFY_SOCKET value."""
    name = f"assistant-notify-test-{uuid.uuid4().hex}"
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(b"\0" + name.encode())
    receiver.settimeout(RECEIVE_TIMEOUT_SECONDS)
    try:
        yield receiver, "@" + name
    finally:
        receiver.close()


def receive(receiver: socket.socket) -> bytes:
    return receiver.recv(4096)


def drain(receiver: socket.socket) -> list[bytes]:
    """Return every datagram already queued on receiver without waiting."""
    timeout = receiver.gettimeout()
    receiver.setblocking(False)
    datagrams = []
    try:
        while True:
            datagrams.append(receiver.recv(4096))
    except BlockingIOError:
        return datagrams
    finally:
        receiver.settimeout(timeout)


async def receive_async(receiver: socket.socket) -> bytes:
    receiver.setblocking(False)
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(receiver, 4096), RECEIVE_TIMEOUT_SECONDS)


def test_ready_sends_ready_datagram(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.enabled
    assert notifier.ready() is True
    assert receive(receiver) == b"READY=1"


def test_ready_with_status(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.ready("Listening") is True
    assert receive(receiver) == b"READY=1\nSTATUS=Listening"


def test_status_sends_text(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.status("Loading Whisper model") is True
    assert receive(receiver) == b"STATUS=Loading Whisper model"


def test_status_flattens_line_breaks(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    notifier.status("first line\nREADY=1")
    assert receive(receiver) == b"STATUS=first line READY=1"


def test_status_encodes_utf8(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    notifier.status("Persona: Zoë")
    assert receive(receiver) == "STATUS=Persona: Zoë".encode()


def test_status_replaces_lone_surrogate(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.status("file \udcff") is True
    assert receive(receiver) == b"STATUS=file ?"


def test_stopping_sends_stopping(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.stopping() is True
    assert receive(receiver) == b"STOPPING=1"


def test_watchdog_sends_one_ping(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.watchdog() is True
    assert receive(receiver) == b"WATCHDOG=1"


def test_reloading_carries_monotonic_usec(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    before_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
    assert notifier.reloading() is True
    after_usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    lines = receive(receiver).decode().split("\n")
    assert len(lines) == 2
    assert lines[0] == "RELOADING=1"
    key, _, value = lines[1].partition("=")
    assert key == "MONOTONIC_USEC"
    assert value.isdigit()
    assert before_usec <= int(value) <= after_usec


def test_extend_timeout_in_microseconds(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.extend_timeout(90) is True
    assert receive(receiver) == b"EXTEND_TIMEOUT_USEC=90000000"


def test_extend_timeout_rejects_zero(path_socket):
    _, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    with pytest.raises(ValueError, match="positive"):
        notifier.extend_timeout(0)


def test_abstract_socket_receives_messages(abstract_socket):
    receiver, address = abstract_socket
    assert address.startswith("@")
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.ready() is True
    assert receive(receiver) == b"READY=1"
    assert notifier.status("abstract") is True
    assert receive(receiver) == b"STATUS=abstract"
    assert notifier.stopping() is True
    assert receive(receiver) == b"STOPPING=1"


def test_messages_in_send_order(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    notifier.ready()
    notifier.reloading()
    notifier.ready()
    notifier.stopping()

    datagrams = [receive(receiver) for _ in range(4)]
    assert datagrams[0] == b"READY=1"
    assert datagrams[1].startswith(b"RELOADING=1\nMONOTONIC_USEC=")
    assert datagrams[2] == b"READY=1"
    assert datagrams[3] == b"STOPPING=1"


def test_only_unix_sockets_created(path_socket, monkeypatch):
    """Every message goes out under a guard like the daemon's, which rejects IP sockets."""
    receiver, address = path_socket
    created_families = []
    real_socket = socket.socket

    def guarded_socket(family=socket.AF_INET, *args, **kwargs):
        created_families.append(family)
        if family in (socket.AF_INET, socket.AF_INET6):
            raise PermissionError(f"IP socket rejected by the test guard: {family!r}")
        return real_socket(family, *args, **kwargs)

    monkeypatch.setattr(socket, "socket", guarded_socket)
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    assert notifier.ready() is True
    assert notifier.status("guarded") is True
    assert notifier.reloading() is True
    assert notifier.watchdog() is True
    assert notifier.stopping() is True
    datagrams = [receive(receiver) for _ in range(5)]
    assert len(datagrams) == 5
    assert created_families
    assert set(created_families) == {socket.AF_UNIX}


def test_noop_without_notify_socket(monkeypatch):
    def fail_socket(*args, **kwargs):
        raise AssertionError("no socket may be created without NOTIFY_SOCKET")

    monkeypatch.setattr(socket, "socket", fail_socket)
    notifier = SystemdNotifier({})

    assert not notifier.enabled
    assert notifier.ready() is False
    assert notifier.status("ignored") is False
    assert notifier.reloading() is False
    assert notifier.stopping() is False
    assert notifier.watchdog() is False
    assert notifier.extend_timeout(10) is False


def test_empty_notify_socket_is_unset():
    notifier = SystemdNotifier({"NOTIFY_SOCKET": ""})

    assert not notifier.enabled
    assert notifier.ready() is False


def test_relative_notify_socket_rejected(caplog):
    with caplog.at_level(logging.WARNING, logger="assistant.notify"):
        notifier = SystemdNotifier({"NOTIFY_SOCKET": "relative/notify"})

    assert not notifier.enabled
    assert notifier.ready() is False
    assert "relative/notify" in caplog.text


def test_reads_os_environ_by_default(path_socket, monkeypatch):
    receiver, address = path_socket
    monkeypatch.setenv("NOTIFY_SOCKET", address)
    monkeypatch.setenv("WATCHDOG_USEC", "3000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    notifier = SystemdNotifier()

    assert notifier.ready() is True
    assert receive(receiver) == b"READY=1"
    assert notifier.watchdog_interval_seconds() == 3.0


def test_send_failure_logged_not_raised(caplog):
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        missing = os.path.join(directory, "nobody-listens.sock")
        notifier = SystemdNotifier({"NOTIFY_SOCKET": missing})

        with caplog.at_level(logging.WARNING, logger="assistant.notify"):
            result = notifier.ready()

    assert result is False
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "READY=1" in warnings[0].getMessage()
    assert "nobody-listens.sock" in warnings[0].getMessage()


def test_repeated_failures_rate_limited(caplog):
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        notifier = SystemdNotifier({"NOTIFY_SOCKET": os.path.join(directory, "missing.sock")})

        with caplog.at_level(logging.WARNING, logger="assistant.notify"):
            results = [notifier.watchdog() for _ in range(25)]

    assert results == [False] * 25
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    # The 1st and the 10th failure in a row are logged as warnings.
    assert len(warnings) == 2
    assert "10 times in a row" in warnings[1].getMessage()


def test_recovery_after_failure_logged(caplog):
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        path = os.path.join(directory, "late.sock")
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})

        with caplog.at_level(logging.INFO, logger="assistant.notify"):
            assert notifier.watchdog() is False
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as receiver:
                receiver.bind(path)
                receiver.settimeout(RECEIVE_TIMEOUT_SECONDS)
                assert notifier.watchdog() is True
                assert receive(receiver) == b"WATCHDOG=1"

    assert "works again after 1 failed sends" in caplog.text


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 30.0),
        ({"WATCHDOG_USEC": str(WATCHDOG_USEC)}, 0.2),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "-5"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "not-a-pid"}, None),
    ],
)
def test_watchdog_interval_parsing(environ, expected):
    notifier = SystemdNotifier(environ)

    assert notifier.watchdog_interval_seconds() == expected


def test_watchdog_interval_own_pid():
    notifier = SystemdNotifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid())})

    assert notifier.watchdog_interval_seconds() == 30.0


def test_watchdog_interval_other_pid():
    other_pid = os.getpid() + 1
    notifier = SystemdNotifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(other_pid)})

    assert notifier.watchdog_interval_seconds() is None


@pytest.mark.asyncio
async def test_run_watchdog_returns_when_off(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address})

    await asyncio.wait_for(notifier.run_watchdog(), RECEIVE_TIMEOUT_SECONDS)
    assert drain(receiver) == []


@pytest.mark.asyncio
async def test_run_watchdog_returns_without_socket():
    notifier = SystemdNotifier({"WATCHDOG_USEC": str(WATCHDOG_USEC)})

    await asyncio.wait_for(notifier.run_watchdog(), RECEIVE_TIMEOUT_SECONDS)


@pytest.mark.asyncio
async def test_run_watchdog_pings_repeatedly(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_USEC)})

    task = asyncio.create_task(notifier.run_watchdog())
    try:
        for _ in range(5):
            assert await receive_async(receiver) == b"WATCHDOG=1"
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, RECEIVE_TIMEOUT_SECONDS)


@pytest.mark.asyncio
async def test_run_watchdog_cadence_half_interval(path_socket):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_USEC)})
    window_seconds = 1.0

    task = asyncio.create_task(notifier.run_watchdog())
    await asyncio.sleep(window_seconds)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, RECEIVE_TIMEOUT_SECONDS)

    pings = drain(receiver)
    assert set(pings) == {b"WATCHDOG=1"}
    # One ping at the start, then one per half interval: 11 pings in 1.0 s on
    # an idle machine. asyncio.sleep() never returns early, so more than that
    # (plus one for jitter at the window edge) means the pings come too fast.
    # Pings at the full interval would give at most 6, so 7 or more shows the
    # half-interval cadence while leaving room for a loaded CI runner.
    max_pings = int(window_seconds / PING_PERIOD_SECONDS) + 2
    min_pings = int(window_seconds / (2 * PING_PERIOD_SECONDS)) + 2
    assert len(pings) <= max_pings
    assert len(pings) >= min_pings


@pytest.mark.asyncio
async def test_run_watchdog_stops_on_cancel(path_socket, caplog):
    receiver, address = path_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": address, "WATCHDOG_USEC": str(WATCHDOG_USEC)})

    with caplog.at_level(logging.INFO, logger="assistant.notify"):
        task = asyncio.create_task(notifier.run_watchdog())
        assert await receive_async(receiver) == b"WATCHDOG=1"

        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await asyncio.wait_for(task, RECEIVE_TIMEOUT_SECONDS)

    assert task.cancelled()
    assert "Stopped systemd watchdog pings" in caplog.text

    drain(receiver)
    await asyncio.sleep(3 * PING_PERIOD_SECONDS)
    assert drain(receiver) == []


@pytest.mark.asyncio
async def test_run_watchdog_survives_send_failures(caplog):
    with tempfile.TemporaryDirectory(prefix="notify-") as directory:
        missing = os.path.join(directory, "missing.sock")
        notifier = SystemdNotifier({"NOTIFY_SOCKET": missing, "WATCHDOG_USEC": str(WATCHDOG_USEC)})

        with caplog.at_level(logging.WARNING, logger="assistant.notify"):
            task = asyncio.create_task(notifier.run_watchdog())
            await asyncio.sleep(3 * PING_PERIOD_SECONDS)

            assert not task.done()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await asyncio.wait_for(task, RECEIVE_TIMEOUT_SECONDS)

    assert "Failed to send 'WATCHDOG=1'" in caplog.text
