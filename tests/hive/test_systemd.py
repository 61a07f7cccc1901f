"""systemd's notify protocol, unit by unit, over real sockets (the daemon's own use of it is in
tests/hive/test_service.py)."""

from __future__ import annotations

import os
import socket
import uuid

from hive.systemd import Notifier


def test_an_abstract_socket_name_and_one_datagram_per_message() -> None:
    name = f"hive-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        notifier = Notifier({"NOTIFY_SOCKET": f"@{name}"})
        notifier.ready("serving")
        assert sock.recv(4096).decode().splitlines() == [
            "READY=1", "STATUS=serving", f"MAINPID={os.getpid()}"]
        notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1\nSTATUS=stopping"


def test_without_systemd_nothing_is_sent_and_nothing_fails() -> None:
    notifier = Notifier({})
    assert not notifier.enabled and notifier.send("READY=1") is False


def test_a_gone_socket_is_logged_not_raised(tmp_path: object) -> None:
    assert Notifier({"NOTIFY_SOCKET": "/nonexistent/notify.sock"}).send("READY=1") is False


def test_the_watchdog_interval_is_for_this_process_only() -> None:
    assert Notifier({"WATCHDOG_USEC": "3000000"}).watchdog_s == 3.0
    assert Notifier({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}).watchdog_s == 3.0
    assert Notifier({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "soon"}).watchdog_s is None
