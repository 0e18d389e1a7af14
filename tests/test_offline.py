"""The in-process network guard rejects IP sockets and name lookups, and leaves AF_UNIX alone."""

from __future__ import annotations

import os
import socket

import pytest

from assistant import offline


@pytest.fixture
def guard():
    offline.install_network_guard()
    yield
    offline.uninstall_network_guard()


@pytest.mark.parametrize("family", [socket.AF_INET, socket.AF_INET6])
def test_ip_socket_rejected(guard, family):
    with pytest.raises(offline.NetworkAccessError, match="network access is disabled"):
        socket.socket(family, socket.SOCK_STREAM)


def test_name_lookup_rejected(guard):
    with pytest.raises(offline.NetworkAccessError, match="name lookup of 'example.org'"):
        socket.getaddrinfo("example.org", 443)


def test_create_connection_rejected(guard):
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", 9), timeout=1)


def test_unix_socket_allowed(guard):
    left, right = socket.socketpair(socket.AF_UNIX)
    left.sendall(b"ok")
    assert right.recv(2) == b"ok"
    left.close()
    right.close()


def test_offline_switches_set(guard):
    assert os.environ["HF_HUB_OFFLINE"] == "1"


def test_rejection_is_logged_with_stack(guard, caplog):
    with pytest.raises(offline.NetworkAccessError):
        socket.socket(socket.AF_INET)
    assert "Network access rejected" in caplog.text
    assert "test_rejection_is_logged_with_stack" in caplog.text
