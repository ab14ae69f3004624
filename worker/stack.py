"""The embedded stack: Temporal's dev server and PostgreSQL, both from pip wheels, with their
state under `.dealflow/`, so one machine with nothing but Python runs the whole system."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from store.embedded import EmbeddedPostgres, free_port
from worker.devserver import TemporalDevServer, port_open
from worker.settings import Settings, clear_stack, home, write_stack


@dataclass
class EmbeddedStack:
    temporal_port: int = 7233
    ui_port: int | None = 8233
    postgres_port: int | None = None
    settings: Settings = field(default_factory=Settings)

    def __post_init__(self) -> None:
        base = home()
        base.mkdir(parents=True, exist_ok=True)
        if port_open("127.0.0.1", self.temporal_port):
            self.temporal_port = free_port()
            self.ui_port = None if self.ui_port is None else free_port()
        self.postgres = EmbeddedPostgres(base / "postgres", self.postgres_port)
        self.temporal = TemporalDevServer(
            base / "temporal.db", port=self.temporal_port, ui_port=self.ui_port, log_file=base / "temporal.log"
        )

    def start(self) -> Settings:
        self.postgres.start()
        try:
            self.temporal.start()
        except BaseException:
            self.postgres.stop()
            raise
        self.settings = Settings(
            temporal_address=self.temporal.address,
            database_url=self.postgres.url,
            source="embedded stack",
        )
        write_stack(self.settings, os.getpid())
        return self.settings

    def stop(self) -> None:
        clear_stack()
        self.temporal.stop()
        self.postgres.stop()

    @property
    def ui_url(self) -> str | None:
        return f"http://127.0.0.1:{self.ui_port}" if self.ui_port else None
