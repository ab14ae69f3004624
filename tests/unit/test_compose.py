"""docker-compose.yml is not run here (no Docker engine on these machines), so it is checked:
services, pinned images, start order, and that the worker gets exactly what the code reads."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from tests.support import ROOT
from worker.devserver import SEARCH_ATTRIBUTE_TYPES
from worker.settings import ENV_VARS, METRICS_ENV_VAR, OBSERVABILITY_ENV_VARS, TLS_ENV_VARS, metrics_address


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(data, dict)
    return data


def test_services_and_pinned_images() -> None:
    services = _compose()["services"]
    assert set(services) == {"postgresql", "temporal", "temporal-setup", "temporal-ui", "worker", "web"}
    for name, svc in services.items():
        if "build" in svc or svc.get("image") == services["worker"]["image"]:  # built here
            continue
        image = svc["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name} must pin its image, got {image}"
    assert services["temporal"]["image"].startswith("temporalio/auto-setup:")
    assert services["temporal-ui"]["image"].startswith("temporalio/ui:")


def test_start_order() -> None:
    services = _compose()["services"]
    assert services["temporal"]["depends_on"]["postgresql"]["condition"] == "service_healthy"
    worker = services["worker"]["depends_on"]
    assert worker["postgresql"]["condition"] == "service_healthy"
    assert worker["temporal"]["condition"] == "service_healthy"
    assert worker["temporal-setup"]["condition"] == "service_completed_successfully"
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown service {dep}"
            if svc["depends_on"][dep]["condition"] == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} needs a healthcheck"


# What temporalio/docker-compose's docker-compose-postgres12.yml gives the auto-setup image and
# the UI: the same variable names, so the published setup's documentation applies here.
PUBLISHED_TEMPORAL_ENV = {
    "DB",
    "DB_PORT",
    "POSTGRES_USER",
    "POSTGRES_PWD",
    "POSTGRES_SEEDS",
    "DYNAMIC_CONFIG_FILE_PATH",
}
PUBLISHED_UI_ENV = {"TEMPORAL_ADDRESS", "TEMPORAL_CORS_ORIGINS"}


def test_the_temporal_services_are_configured_as_the_published_setup() -> None:
    services = _compose()["services"]
    assert set(services["temporal"]["environment"]) == PUBLISHED_TEMPORAL_ENV
    assert set(services["temporal-ui"]["environment"]) == PUBLISHED_UI_ENV
    assert services["temporal"]["ports"] == ["7233:7233"]
    assert services["temporal"]["volumes"] == ["./deploy/dynamicconfig:/etc/temporal/config/dynamicconfig"]
    tools = services["temporal-setup"]["image"]
    assert tools.startswith("temporalio/admin-tools:")
    server_version = services["temporal"]["image"].split(":")[1]
    assert tools.split(":")[1].startswith(server_version), "admin tools must match the server version"


def test_temporal_uses_the_compose_postgresql() -> None:
    services = _compose()["services"]
    env = services["temporal"]["environment"]
    pg = services["postgresql"]["environment"]
    assert env["DB"] == "postgres12" and env["POSTGRES_SEEDS"] == "postgresql"
    assert (env["POSTGRES_USER"], env["POSTGRES_PWD"]) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    config = env["DYNAMIC_CONFIG_FILE_PATH"].removeprefix("config/dynamicconfig/")
    assert (ROOT / "deploy" / "dynamicconfig" / config).exists()


def test_worker_environment_matches_what_the_code_reads() -> None:
    services = _compose()["services"]
    worker = services["worker"]
    optional = set(TLS_ENV_VARS) | set(OBSERVABILITY_ENV_VARS)
    assert set(ENV_VARS) <= set(worker["environment"]) <= set(ENV_VARS) | optional
    assert worker["environment"]["TEMPORAL_ADDRESS"] == "temporal:7233"
    db = urlparse(worker["environment"]["DATABASE_URL"])
    pg = services["postgresql"]["environment"]
    assert (db.hostname, db.port, db.path.lstrip("/")) == ("postgresql", 5432, pg["POSTGRES_DB"])
    assert (db.username, db.password) == (pg["POSTGRES_USER"], pg["POSTGRES_PASSWORD"])
    assert worker["command"] == ["dealflow", "worker"]
    assert (ROOT / worker["build"]["dockerfile"]).exists()


def test_setup_registers_every_search_attribute_the_workflow_sets() -> None:
    command = " ".join(_compose()["services"]["temporal-setup"]["command"])
    for name, kind in SEARCH_ATTRIBUTE_TYPES.items():
        assert name in command
        assert f"--type {kind}" in command


def test_the_web_app_runs_on_the_worker_image_with_access_control_on() -> None:
    from web.settings import PORT_ENV_VAR, SECRET_ENV_VAR

    web = _compose()["services"]["web"]
    assert web["image"] == _compose()["services"]["worker"]["image"]
    assert web["command"] == ["dealflow", "serve", "--host", "0.0.0.0"]
    env = web["environment"]
    assert env["DEALFLOW_IDENTITIES"], "beyond loopback the server refuses to run with access control off"
    assert {PORT_ENV_VAR, SECRET_ENV_VAR, *ENV_VARS} <= set(env)
    assert web["ports"] == [f"{env[PORT_ENV_VAR]}:{env[PORT_ENV_VAR]}"]
    assert web["depends_on"]["worker"]["condition"] == "service_healthy"


def test_dockerfile_copies_every_package() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    pyproject = (ROOT / "pyproject.toml").read_text()
    packages = pyproject.split("packages = [", 1)[1].split("]", 1)[0]
    for pkg in [p.strip().strip('"') for p in packages.split(",")]:
        assert f"COPY {pkg} ./{pkg}" in dockerfile


def test_the_worker_exposes_its_metrics_and_is_healthy_when_ready(monkeypatch: pytest.MonkeyPatch) -> None:
    worker = _compose()["services"]["worker"]
    env = worker["environment"]
    monkeypatch.setenv(METRICS_ENV_VAR, env[METRICS_ENV_VAR])
    address = metrics_address("off")  # read as the worker reads it
    assert address is not None and address[0] == "0.0.0.0", "the endpoint must be reachable from other containers"
    port = address[1]
    # published without a host port, so that workers scale
    assert worker["ports"] == [str(port)]
    assert env["DEALFLOW_LOG_FORMAT"] == "json"
    check = worker["healthcheck"]
    assert check["test"][:3] == ["CMD", "python", "-c"]
    assert f"urlopen('http://127.0.0.1:{port}/readyz'" in check["test"][3]
    assert {"interval", "timeout", "retries", "start_period"} <= set(check)
