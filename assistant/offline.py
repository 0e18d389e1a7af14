"""Keep the process offline: library switches off, and a guard that rejects network sockets.

The guard is installed before any model loads. It rejects the creation of AF_INET
and AF_INET6 sockets and every host name lookup, logging each attempt with its
stack, so a library that tries to reach the network fails at once instead of
leaking a request. AF_UNIX sockets (the sound server, systemd's notify socket)
stay allowed.
"""

from __future__ import annotations

import logging
import os
import socket
import traceback
from typing import Any

_LOGGER = logging.getLogger(__name__)

OFFLINE_ENVIRONMENT = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    # onnxruntime 1.32 on Linux sends usage telemetry to a Microsoft collector from a
    # native thread, where the Python guard cannot see it. This switch turns it off.
    "ORT_DISABLE_TELEMETRY": "1",
}
_BLOCKED_FAMILIES = {socket.AF_INET, socket.AF_INET6}


class NetworkAccessError(OSError):
    """Raised when code in this process tries to use the network."""


_original_socket_init = socket.socket.__init__
_original_getaddrinfo = socket.getaddrinfo
_original_gethostbyname = socket.gethostbyname
_original_gethostbyname_ex = socket.gethostbyname_ex
_installed = False
rejected_attempts = 0


def _reject(attempt: str) -> NetworkAccessError:
    global rejected_attempts
    rejected_attempts += 1
    stack = "".join(traceback.format_stack(limit=12)[:-2])
    _LOGGER.error("Network access rejected: %s; the daemon runs offline. Stack:\n%s", attempt, stack)
    return NetworkAccessError(f"network access is disabled in this process ({attempt})")


def _guarded_socket_init(self: socket.socket, family: Any = -1, type: Any = -1, proto: int = -1, fileno: Any = None) -> None:
    if fileno is None and family in _BLOCKED_FAMILIES:
        raise _reject(f"socket family {socket.AddressFamily(family).name}")
    _original_socket_init(self, family, type, proto, fileno)


def _guarded_lookup(*args: Any, **kwargs: Any) -> Any:
    raise _reject(f"name lookup of {args[0] if args else kwargs.get('host')!r}")


def install_network_guard() -> None:
    """Set the offline switches and reject network sockets and name lookups from now on."""
    global _installed
    for name, value in OFFLINE_ENVIRONMENT.items():
        os.environ[name] = value
    if _installed:
        return
    socket.socket.__init__ = _guarded_socket_init  # type: ignore[method-assign]
    socket.getaddrinfo = _guarded_lookup
    socket.gethostbyname = _guarded_lookup
    socket.gethostbyname_ex = _guarded_lookup
    _installed = True
    _LOGGER.debug("Network guard installed")


def uninstall_network_guard() -> None:
    """Restore the socket module, for tests that install the guard in-process."""
    global _installed
    socket.socket.__init__ = _original_socket_init  # type: ignore[method-assign]
    socket.getaddrinfo = _original_getaddrinfo
    socket.gethostbyname = _original_gethostbyname
    socket.gethostbyname_ex = _original_gethostbyname_ex
    _installed = False
