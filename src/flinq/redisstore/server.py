"""A private redis-server for tests and benchmarks: started on a free
loopback port in a directory of its own, optionally with an append-only
file, and stopped (or killed) on request.

Used by the test suite and by `flinq bench`; nothing in the store needs it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from types import TracebackType

__all__ = ["RedisServer", "redis_server_path"]

_START_TIMEOUT = 10.0


def redis_server_path() -> str | None:
    """The redis-server executable on PATH, or None."""
    return shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A redis-server process of our own on 127.0.0.1.

    aof=True turns the append-only file on, with appendfsync always by
    default, so that every write the server acknowledged survives a kill of
    the server ("everysec": up to a second of writes may be lost).
    start() picks a free port (kept across restart()); stop() shuts it down
    cleanly, kill() with SIGKILL. The directory (a temporary one unless
    given) is removed by close() if this object made it.
    """

    def __init__(
        self,
        directory: str | None = None,
        *,
        aof: bool = False,
        appendfsync: str = "always",
        password: str | None = None,
        unix_socket: bool = False,
    ) -> None:
        executable = redis_server_path()
        if executable is None:
            raise FileNotFoundError("redis-server is not on PATH")
        self.executable = executable
        self._own_directory = directory is None
        self.directory = directory or tempfile.mkdtemp(prefix="flinq-redis-")
        if appendfsync not in ("always", "everysec", "no"):
            raise ValueError(f"appendfsync must be always, everysec or no, not {appendfsync!r}")
        self.aof = aof
        self.appendfsync = appendfsync
        self.password = password
        self.port = _free_port()
        #: The server's Unix socket (unix_socket=True), else None.
        self.socket_path = os.path.join(self.directory, "redis.sock") if unix_socket else None
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """redis://[:password@]127.0.0.1:port/0"""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    @property
    def unix_url(self) -> str:
        """unix://<socket>?db=0 (unix_socket=True only)."""
        if self.socket_path is None:
            raise ValueError("this server was started without a Unix socket")
        return f"unix://{self.socket_path}?db=0"

    def _arguments(self) -> list[str]:
        arguments = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--dir", self.directory,
            "--save", "",
            "--daemonize", "no",
            "--protected-mode", "yes",
            "--logfile", os.path.join(self.directory, "redis.log"),
        ]  # fmt: skip
        if self.aof:
            arguments += ["--appendonly", "yes", "--appendfsync", self.appendfsync]
        if self.password:
            arguments += ["--requirepass", self.password]
        if self.socket_path:
            arguments += ["--unixsocket", self.socket_path, "--unixsocketperm", "700"]
        return arguments

    def start(self) -> RedisServer:
        """Start the server and return once it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen(
            self._arguments(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + _START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited at start: {self._log_tail()}")
            if self._answers():
                return self
            time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"redis-server did not start within {_START_TIMEOUT:g} s")

    def _answers(self) -> bool:
        """True once the server answers PING (or asks for the password)."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                reply = sock.recv(64)
        except OSError:
            return False
        return reply.startswith((b"+PONG", b"-NOAUTH"))

    def _log_tail(self) -> str:
        with contextlib.suppress(OSError), open(os.path.join(self.directory, "redis.log")) as log:
            return log.read()[-2000:]
        return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down cleanly (SIGTERM: it writes its files first)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL the server: what it acknowledged survives only through its AOF."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> RedisServer:
        """Kill the server and start it again on the same port and directory."""
        self.kill()
        return self.start()

    def close(self) -> None:
        """Stop the server and remove the directory if it was made here."""
        self.stop()
        if self._own_directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
