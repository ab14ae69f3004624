"""Where dealflow's servers are: the environment first, then a running embedded stack, then
the local defaults. Every command resolves settings the same way, so `dealflow deal ...` finds
the stack that `dealflow dev` started without any configuration."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

DEFAULT_TASK_QUEUE = "dealflow"

# The environment a worker or client reads (docker-compose.yml must provide these to the worker).
ENV_VARS = ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DATABASE_URL", "DEALFLOW_TASK_QUEUE")


def home() -> Path:
    return Path(os.environ.get("DEALFLOW_HOME", ".dealflow")).resolve()


def proposals_dir() -> Path:
    return Path(os.environ.get("DEALFLOW_PROPOSALS_DIR") or home() / "proposals")


def outbox_dir() -> Path:
    return Path(os.environ.get("DEALFLOW_OUTBOX_DIR") or home() / "outbox")


def stack_file() -> Path:
    return home() / "stack.json"


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "127.0.0.1:7233"
    namespace: str = "default"
    database_url: str = "postgresql://postgres@127.0.0.1:55432/dealflow"
    task_queue: str = DEFAULT_TASK_QUEUE
    source: str = "defaults"

    @classmethod
    def resolve(cls) -> Settings:
        settings = cls()
        stack = read_stack()
        if stack is not None:
            settings = replace(settings, source=f"embedded stack ({stack_file()})", **stack)
        env = {
            field: os.environ.get(var)
            for field, var in zip(
                ("temporal_address", "namespace", "database_url", "task_queue"), ENV_VARS, strict=True
            )
        }
        given = {k: v for k, v in env.items() if v}
        if given:
            settings = replace(
                settings, source="environment" if stack is None else settings.source + " + environment", **given
            )
        return settings


def read_stack() -> dict[str, str] | None:
    """The addresses a running `dealflow dev` wrote, if its process is still alive."""
    path = stack_file()
    try:
        data = json.loads(path.read_text())
        os.kill(int(data["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return {k: data[k] for k in ("temporal_address", "namespace", "database_url", "task_queue") if k in data}


def write_stack(settings: Settings, pid: int) -> None:
    path = stack_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {k: v for k, v in asdict(settings).items() if k != "source"} | {"pid": pid}
    path.write_text(json.dumps(data, indent=2))


def clear_stack() -> None:
    stack_file().unlink(missing_ok=True)
