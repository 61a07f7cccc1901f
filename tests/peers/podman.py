"""A real Docker Engine API for tests: podman's Docker-compatible service, fully contained.

Why podman and not a fake: the container backend talks to the Docker API through the
`docker` SDK; podman serves that API unchanged, needs no daemon set up on the machine and
no registry (images are built locally from busybox).

Everything podman touches lives in one per-run state folder (storage, runtime files, events
log, socket), so runs never share images or containers, and `stop()` leaves nothing behind:

* containers.conf / storage.conf written into the state folder and selected through
  CONTAINERS_CONF / CONTAINERS_STORAGE_CONF, with the settings this sandbox needs
  (runc, cgroupfs, vfs, no network, fixed ulimits: the sandbox cannot raise RLIMIT_NOFILE);
* the service runs as PID 1's child in its own PID and mount namespace
  (`unshare --pid --fork --kill-child --mount-proc`) in its own session, so the `conmon`
  that every exec leaves alive for 300 s is killed with the namespace, and SIGKILL of the
  `unshare` process takes the whole tree down.

Usage::

    svc = PodmanService()
    try:
        client = docker.DockerClient(base_url=svc.start(tmp_path / "podman"))
        svc.build_image("hive-busybox")
        c = svc.run_container("c1", "hive-busybox", host_runtime_binds())
        c.exec_run(["echo", "hi"])
    finally:
        svc.stop()
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import docker
from docker.models.containers import Container

REPO_ROOT = Path(__file__).resolve().parents[2]
AGENTS_DIR = REPO_ROOT / ".agents"
INSTALL_SCRIPT = REPO_ROOT / "scripts" / "install-podman.sh"

#: busybox applets linked into the image; enough for shell scripts and health probes.
# fmt: off
APPLETS = (
    "sh", "ash", "echo", "sleep", "cat", "ls", "env", "true", "false", "mkdir", "rm", "cp", "mv", "ps",
    "kill", "id", "pwd", "test", "[", "grep", "sed", "head", "tail", "wc", "touch", "date", "uname",
    "printf", "which", "stat", "find", "xargs", "tr", "cut",
)
# fmt: on
#: top-level folders that merged-/usr hosts (Debian 12) make symlinks into /usr.
USR_LINKS = ("lib", "lib32", "lib64", "libx32", "sbin")

MAX_SOCKET_PATH = 107  # sun_path is 108 bytes including the NUL


class PodmanError(RuntimeError):
    """The podman service could not be started or used; the message says why."""


def ensure_podman() -> str:
    """Return podman's path, installing it with scripts/install-podman.sh when missing.

    Raises PodmanError (tests turn it into a failure, never a skip: a skipped peer test
    reads as green in CI while nothing was tested).
    """
    found = shutil.which("podman")
    if found:
        return found
    proc = subprocess.run(["bash", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=600, check=False)
    found = shutil.which("podman")
    if proc.returncode != 0 or not found:
        raise PodmanError(
            f"podman is not installed and {INSTALL_SCRIPT.name} could not install it "
            f"(exit {proc.returncode}):\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}"
        )
    return found


def host_runtime_binds(extra: Iterable[str | Path] = (), agents_dir: Path = AGENTS_DIR) -> dict[str, dict[str, str]]:
    """Read-only bind mounts that let a busybox container run the host's node + claude-flow.

    The image holds only busybox; node is dynamically linked against the host's glibc and
    libstdc++, and its ELF interpreter is the absolute path /lib64/ld-linux-x86-64.so.2.
    On a merged-/usr host (/lib, /lib64 are symlinks into /usr) binding /usr and giving the
    image the same symlinks (build_image does) provides node, its loader and every library
    it and the native addons (better-sqlite3) load. On a host where /lib or /lib64 are real
    folders they are bound too. A node outside /usr (nvm, /opt) gets its prefix bound.
    `agents_dir` (claude-flow's node_modules) is bound at the same path, so the host's
    absolute paths work unchanged inside the container.

    Returns the `volumes=` mapping of the docker SDK: {host_path: {"bind": path, "mode": "ro"}}.
    """
    paths: list[Path] = [Path("/usr")]
    for name in USR_LINKS:
        p = Path("/") / name
        if p.exists() and not p.is_symlink():
            paths.append(p)
    node = shutil.which("node")
    if node:
        prefix = Path(node).resolve().parent.parent  # <prefix>/bin/node
        if not any(prefix == p or p in prefix.parents for p in paths):
            paths.append(prefix)
    paths.append(Path(agents_dir).resolve())
    paths.extend(Path(e).resolve() for e in extra)
    return {str(p): {"bind": str(p), "mode": "ro"} for p in paths}


def _ping(sock: Path, timeout: float = 1.0) -> bool:
    """GET /_ping over the unix socket with a raw HTTP/1.0 request (no client needed yet)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(str(sock))
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
            data = s.recv(4096)
        return data.startswith(b"HTTP/1.") and b" 200 " in data.split(b"\r\n", 1)[0] + b" "
    except OSError:
        return False


class PodmanService:
    """One private `podman system service` with its own storage, namespace and socket."""

    def __init__(self) -> None:
        self.state_dir: Path | None = None
        self.socket_path: Path | None = None
        self.base_url: str | None = None
        self.proc: subprocess.Popen[bytes] | None = None
        self.pidns: str | None = None  # e.g. "pid:[4026532251]", to find stragglers
        self.ns_init_pid: int | None = None  # host PID of the service (PID 1 inside)
        self._client: docker.DockerClient | None = None
        self._env: dict[str, str] = {}
        self._log: Any = None
        self.timings: dict[str, float] = {}

    # ---- configuration -------------------------------------------------------------
    def _write_config(self, state: Path) -> None:
        """containers.conf + storage.conf; every path podman writes lands under `state`."""
        for sub in ("tmp", "run", "graph", "images"):
            (state / sub).mkdir(parents=True, exist_ok=True)
        (state / "containers.conf").write_text(
            "[containers]\n"
            'netns = "none"\n'  # no CNI/netavark setup; tests need no network
            'log_driver = "k8s-file"\n'  # journald is not available here
            # The sandbox cannot raise RLIMIT_NOFILE; podman's default tries to and fails.
            # A per-container `ulimits=` replaces this list and fails again: don't pass one.
            'default_ulimits = ["nofile=20000:20000", "nproc=10000:10000"]\n'
            "\n[engine]\n"
            'runtime = "runc"\n'  # crun: "cgroups in hybrid mode not supported"
            'cgroup_manager = "cgroupfs"\n'  # no systemd
            'events_logger = "file"\n'
            f'events_logfile_path = "{state}/events.log"\n'
            f'tmp_dir = "{state}/tmp"\n'
        )
        (state / "storage.conf").write_text(
            "[storage]\n"
            'driver = "vfs"\n'  # no overlay/fuse inside the sandbox; images here are tiny
            f'runroot = "{state}/run"\n'
            f'graphroot = "{state}/graph"\n'
        )
        self._env = {
            **os.environ,
            "CONTAINERS_CONF": str(state / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(state / "storage.conf"),
            "TMPDIR": str(state / "tmp"),
        }

    # ---- lifecycle -----------------------------------------------------------------
    def start(self, state_dir: str | Path, timeout: float = 30.0) -> str:
        """Start the service with all its state in `state_dir`; return its unix:// URL.

        Waits until `/_ping` answers. On any failure the half-started service is torn
        down before the error propagates, so callers only need stop() after success
        (calling it anyway is harmless).
        """
        if self.proc is not None:
            raise PodmanError("already started")
        podman = ensure_podman()
        t0 = time.perf_counter()
        state = Path(state_dir).resolve()
        sock = state / "podman.sock"
        if len(str(sock)) > MAX_SOCKET_PATH:
            raise PodmanError(f"socket path too long for AF_UNIX ({len(str(sock))} bytes): {sock}")
        state.mkdir(parents=True, exist_ok=True)
        self.state_dir, self.socket_path = state, sock
        self._write_config(state)
        self._log = open(state / "service.log", "wb")  # noqa: SIM115 - closed in stop()
        # start_new_session = setsid(): Ctrl-C in the test terminal does not hit it and
        # it cannot take the test's process group with it. unshare --fork makes the
        # service PID 1's child in a new PID namespace; --kill-child makes unshare's death
        # (our SIGKILL) kill that namespace's init, which kills everything inside.
        self.proc = subprocess.Popen(
            [
                "unshare",
                "--pid",
                "--fork",
                "--kill-child",
                "--mount-proc",
                podman,
                "system",
                "service",
                "--time=0",
                f"unix://{sock}",
            ],
            env=self._env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            deadline = time.monotonic() + timeout
            while not _ping(sock):
                if self.proc.poll() is not None:
                    raise PodmanError(f"podman service exited with {self.proc.returncode}:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    raise PodmanError(f"podman service did not answer /_ping in {timeout} s:\n{self.log_tail()}")
                time.sleep(0.02)
            self.ns_init_pid, self.pidns = self._namespace_of_child()
        except BaseException:
            self.stop()
            raise
        self.base_url = f"unix://{sock}"
        self.timings["start"] = time.perf_counter() - t0
        return self.base_url

    def _namespace_of_child(self) -> tuple[int | None, str | None]:
        """Host PID and PID namespace of unshare's child (the service, PID 1 inside)."""
        assert self.proc is not None
        try:
            children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
            child = int(children.split()[0])
            return child, os.readlink(f"/proc/{child}/ns/pid")
        except (OSError, IndexError, ValueError):
            return None, None

    def leftover_pids(self) -> list[int]:
        """Host PIDs still alive in the service's namespace (plus unshare itself)."""
        if self.proc is None:
            return []
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            try:
                if pid == self.proc.pid:
                    if (entry / "stat").read_text().split(") ", 1)[1][0] != "Z":
                        pids.append(pid)
                elif self.pidns and os.readlink(entry / "ns" / "pid") == self.pidns:
                    pids.append(pid)
            except (OSError, IndexError):
                continue
        return pids

    @property
    def client(self) -> docker.DockerClient:
        """A docker SDK client bound to this service (created on first use)."""
        if self.base_url is None:
            raise PodmanError("service not started")
        if self._client is None:
            self._client = docker.DockerClient(base_url=self.base_url, timeout=60)
        return self._client

    def podman(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run the podman CLI against the same storage (same config env) as the service."""
        if self.state_dir is None:
            raise PodmanError("service not started")
        proc = subprocess.run(
            ["podman", *args],
            env=self._env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if proc.returncode != 0:
            raise PodmanError(f"podman {' '.join(args)} failed ({proc.returncode}): {proc.stderr}")
        return proc

    # ---- images and containers ---------------------------------------------------------
    def exec_count(self) -> int:
        """How many execs the engine has started so far (its events log, one line each)."""
        assert self.state_dir is not None
        log = self.state_dir / "events.log"
        if not log.exists():
            return 0
        return sum(1 for line in log.read_text().splitlines()
                   if '"Status":"exec"' in line or "exec_start" in line or '"exec"' in line)

    def build_image(self, name: str, cmd: tuple[str, ...] = ("/bin/sleep", "3600")) -> str:
        """Build `localhost/<name>:latest` from the host's static busybox; return the tag.

        No registry is reachable, so the image is a rootfs tarball: /bin/busybox plus
        applet symlinks, the empty mount points runc needs, and, on merged-/usr hosts,
        the same lib -> usr/lib style symlinks as the host so that binding /usr read-only
        (host_runtime_binds) makes host binaries runnable. The default CMD sleeps so the
        container stays up for exec_run.
        """
        if self.state_dir is None:
            raise PodmanError("service not started")
        t0 = time.perf_counter()
        busybox = Path("/bin/busybox")
        if not busybox.exists():
            raise PodmanError("/bin/busybox missing: run scripts/install-podman.sh (busybox-static)")
        root = self.state_dir / "images" / name
        shutil.rmtree(root, ignore_errors=True)
        for d in ("bin", "usr", "etc", "tmp", "root", "proc", "sys", "dev", "work", "var/tmp"):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "tmp").chmod(0o1777)
        shutil.copy2(busybox, root / "bin" / "busybox")
        for applet in APPLETS:
            (root / "bin" / applet).symlink_to("busybox")
        for link in USR_LINKS:
            host = Path("/") / link
            if host.is_symlink():
                (root / link).symlink_to(os.readlink(host))
        (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (root / "etc" / "group").write_text("root:x:0:\n")
        tar_path = self.state_dir / "images" / f"{name}.tar"
        with tarfile.open(tar_path, "w") as tar:
            tar.add(root, arcname=".")
        tag = f"localhost/{name}:latest"
        self.podman(
            "import",
            "--change",
            f"CMD {json.dumps(list(cmd))}",
            "--change",
            "ENV PATH=/bin:/usr/local/bin:/usr/bin",
            str(tar_path),
            tag,
        )
        self.timings["build_image"] = time.perf_counter() - t0
        return tag

    def run_container(
        self,
        name: str,
        image: str,
        binds: Mapping[str, Mapping[str, str]] | None = None,
        **kwargs: Any,
    ) -> Container:
        """Start a detached container through the Docker API (the path the backend uses).

        network_mode="none" because the service has no network backend configured. Do not
        pass `ulimits=`: it replaces containers.conf's default_ulimits and the sandbox
        refuses to raise the limit.
        """
        if ":" not in image.rsplit("/", 1)[-1]:
            image = f"localhost/{image}:latest" if "/" not in image else f"{image}:latest"
        t0 = time.perf_counter()
        container = self.client.containers.run(
            image,
            name=name,
            detach=True,
            network_mode="none",
            volumes=dict(binds or {}),
            **kwargs,
        )
        self.timings["run_container"] = time.perf_counter() - t0
        return container

    # ---- teardown ------------------------------------------------------------------
    def stop(self, timeout: float = 10.0) -> None:
        """Remove every container, kill the namespace, delete the state folder.

        Order matters: containers go through the API first so podman unmounts their
        storage cleanly; then SIGKILL to the namespace's PID 1 (the service), which makes
        the kernel kill every conmon and container process in the namespace; then the
        folder, once nothing holds files in it. Safe to call twice and after a failed start.

        Why the service and not `unshare` first: unshare (which ignores SIGTERM) is the
        service's parent and reaps it at once, so the namespace is gone in ~5 ms. Killing
        unshare first orphans the dying service to the host's PID 1, which on this sandbox
        reaps orphans slowly (1.4 s measured). unshare exits by itself when its child
        dies; it gets SIGKILL only if it does not.
        """
        t0 = time.perf_counter()
        errors: list[str] = []
        alive = self.proc is not None and self.proc.poll() is None
        if alive and self.base_url:
            try:
                for c in self.client.containers.list(all=True):
                    try:
                        c.remove(force=True)
                    except docker.errors.APIError as exc:
                        errors.append(f"remove {c.name}: {exc}")
            except Exception as exc:  # noqa: BLE001 - the kill below still cleans up
                errors.append(f"list containers: {exc}")
        if self._client is not None:
            self._client.close()
            self._client = None
        if self.proc is not None:
            if self.proc.poll() is None and self.ns_init_pid is not None:
                # Still unshare's unreaped child while unshare lives: the PID is not reused.
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.ns_init_pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(2)
            if self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)  # --kill-child takes the namespace down
            self.proc.wait(timeout)
            deadline = time.monotonic() + timeout
            while (left := self.leftover_pids()) and time.monotonic() < deadline:
                time.sleep(0.02)
            if left:
                errors.append(f"processes left in the namespace: {left}")
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.state_dir is not None and self.state_dir.exists():
            shutil.rmtree(self.state_dir, ignore_errors=True)
            if self.state_dir.exists():
                errors.append(f"could not remove {self.state_dir}")
        self.base_url = None
        self.timings["stop"] = time.perf_counter() - t0
        if errors:
            raise PodmanError("; ".join(errors))

    def kill(self, timeout: float = 10.0) -> None:
        """SIGKILL the service's namespace as a crash would (its containers die with it), keeping
        the storage: ``start(state_dir)`` on the same folder brings the engine back, containers
        stopped. For chaos tests: the engine gone mid-call."""
        if self.proc is None:
            raise PodmanError("service not started")
        running = [c.id for c in self.client.containers.list()]
        if self.ns_init_pid is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.ns_init_pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(2)
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout)
        if self._client is not None:
            self._client.close()
            self._client = None
        if self._log is not None:
            self._log.close()
            self._log = None
        self.proc = self.base_url = None
        self.ns_init_pid = self.pidns = None
        # The namespace's containers died with it, as at a host's reboot; podman learns of a
        # reboot from its missing "alive" file (on a tmpfs elsewhere) and resets their states.
        # runc keeps its own record of each container on the host (/run/runc), not in our folder.
        if self.state_dir is not None:
            (self.state_dir / "tmp" / "alive").unlink(missing_ok=True)
        for container_id in running:
            subprocess.run(["runc", "delete", "--force", container_id], capture_output=True,
                           check=False, timeout=30)

    def log_tail(self, n: int = 4000) -> str:
        """The end of the service's own log (start-up errors land here)."""
        if self.state_dir is None:
            return ""
        try:
            return (self.state_dir / "service.log").read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""
