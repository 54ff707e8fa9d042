"""The docker compose stack's files, checked without a Docker engine.

docker-compose.yml, the Dockerfile and deploy/ refer to each other (service names,
ports, users, passwords, tokens, mounted paths) and hand agentwatch its configuration.
These tests parse the files, resolve every reference and run agentwatch's own
validation on what the stack gives it. Compose's `${VAR:-default}` is resolved as if no
variable were set: the stack must start without a .env.
"""

from __future__ import annotations

import json
import re
import tomllib
import xml.etree.ElementTree as ET
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from agentwatch._addresses import split_host_port
from agentwatch._config_file import load_config_file
from agentwatch.settings import ConfigError, Settings, load_settings
from detectors import DetectorConfig

REPO = Path(__file__).resolve().parent.parent
COMPOSE_FILE = REPO / "docker-compose.yml"
COLLECTOR_FILE = REPO / "deploy" / "otel-collector.yaml"
USERS_FILE = REPO / "deploy" / "clickhouse" / "users.d" / "agentwatch.xml"
AGENTWATCH_CONFIG_FILE = REPO / "deploy" / "agentwatch.yaml"
ENV_EXAMPLE = REPO / "deploy" / "env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"

SERVICES = ("clickhouse", "agentwatch", "otel-collector", "grafana")
WRITER_USER = "agentwatch"
READONLY_USER = "agentwatch_ro"

# `$$`, `${NAME}`, `${NAME:-default}`, `${NAME-default}` and bare `$NAME`, as Compose reads them.
_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}"
    r"|(?P<bare>[A-Za-z_]\w*))"
)


def compose_defaults(text: str) -> str:
    """Compose's interpolation with no variable set; a variable without a default fails."""

    def replace(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        if match["bare"] or match["op"] is None:
            raise AssertionError(f"{match[0]} has no default: the stack must start without .env")
        return match["default"]

    return _VARIABLE.sub(replace, text)


def compose_variables(text: str) -> dict[str, str]:
    """Every variable the compose file reads, with its one default."""
    defaults: dict[str, str] = {}
    for match in _VARIABLE.finditer(text):
        if match["name"] and match["op"] is not None:
            default = defaults.setdefault(match["name"], match["default"])
            assert default == match["default"], f"{match['name']} has two defaults"
    return defaults


@cache
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(compose_defaults(COMPOSE_FILE.read_text()))
    return document


def service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = compose()["services"]
    return services[name]


def environment(name: str) -> dict[str, str]:
    raw = service(name).get("environment") or {}
    assert isinstance(raw, dict), f"{name}: environment as a mapping"
    return {str(key): "" if value is None else str(value) for key, value in raw.items()}


def published_ports(name: str) -> list[tuple[str, int, int]]:
    """(host address, host port, container port) of each `ports:` entry."""
    found = []
    for entry in service(name).get("ports") or []:
        parts = str(entry).split("/")[0].split(":")
        assert len(parts) == 3, f"{name}: {entry!r} should name its host address"
        found.append((parts[0], int(parts[1]), int(parts[2])))
    return found


def mounts(name: str) -> list[tuple[str, str, bool]]:
    """(source, target, is a bind mount) of each `volumes:` entry."""
    found = []
    for entry in service(name).get("volumes") or []:
        assert isinstance(entry, str), f"{name}: volumes in the short syntax"
        source, target = entry.split(":")[:2]
        found.append((source, target, source.startswith((".", "/", "~"))))
    return found


def mount_source(name: str, target: str) -> tuple[str, bool]:
    for source, mounted_at, is_bind in mounts(name):
        if mounted_at == target:
            return source, is_bind
    raise AssertionError(f"{name}: nothing is mounted at {target}")


@cache
def agentwatch_settings() -> Settings:
    """The agentwatch service's AGENTWATCH_* variables, as `load_settings` builds them."""
    return load_settings(agentwatch_overrides())


def agentwatch_overrides() -> dict[str, Any]:
    return {
        name.removeprefix("AGENTWATCH_").lower(): value
        for name, value in environment("agentwatch").items()
        if name.startswith("AGENTWATCH_")
    }


@cache
def collector_config() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COLLECTOR_FILE.read_text())
    return document


def component_type(component_id: str) -> str:
    return component_id.split("/", 1)[0]


@cache
def users_xml() -> ET.Element:
    return ET.parse(USERS_FILE).getroot()


def clickhouse_user(name: str) -> ET.Element:
    user = users_xml().find(f"users/{name}")
    assert user is not None, f"{USERS_FILE.name} defines no user {name}"
    return user


def user_password(name: str) -> str:
    """The password ClickHouse gives a user: its from_env variable in the clickhouse service."""
    password = clickhouse_user(name).find("password")
    assert password is not None, f"{name}: no password"
    variable = password.get("from_env", "")
    assert variable, f"{name}: the password does not come from_env"
    assert variable in environment("clickhouse"), f"clickhouse service does not set {variable}"
    return environment("clickhouse")[variable]


def user_grants(name: str) -> list[str]:
    return [" ".join((query.text or "").split()) for query in clickhouse_user(name).iter("query")]


def go_duration_s(text: str) -> float:
    """`0`, `250ms`, `1s`, `5m`, `1h` (the forms the Collector config uses)."""
    match = re.fullmatch(r"(\d+)(ms|s|m|h)|0", str(text))
    assert match, f"{text!r} is not a duration"
    return int(match[1] or 0) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 0}[match[2]]


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """The Dockerfile's instructions, (KEYWORD, arguments), one list per stage."""
    logical = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[tuple[str, str]]] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, arguments = line.partition(" ")
        if keyword.upper() == "FROM":
            stages.append([])
        assert stages, "the Dockerfile must start with FROM"
        stages[-1].append((keyword.upper(), " ".join(arguments.split())))
    return stages


# -- docker-compose.yml --------------------------------------------------------------------


def test_stack_runs_the_four_services() -> None:
    assert set(SERVICES) <= set(compose()["services"])
    assert "build" in service("agentwatch")


def test_every_image_is_pinned_to_a_version() -> None:
    for name, definition in compose()["services"].items():
        if "image" not in definition:
            assert "build" in definition, f"{name} has neither image nor build"
            continue
        repository, _, tag = str(definition["image"]).rpartition(":")
        assert repository, f"{name}: {definition['image']} has no tag"
        assert "/" not in tag, f"{name}: {definition['image']} has no tag"
        assert re.fullmatch(r"\d+\.\d+(\.\d+)*", tag), f"{name}: {tag!r} is not a version"


def test_clickhouse_is_new_enough_for_agentwatch_server_mode() -> None:
    # The insert sets input_format_protobuf_oneof_presence (ClickHouse 25.9) and corrects
    # spans with lightweight UPDATE (on by default since 25.8).
    repository, _, tag = service("clickhouse")["image"].rpartition(":")
    assert repository == "clickhouse/clickhouse-server"
    assert tuple(int(part) for part in tag.split(".")[:2]) >= (25, 9)


def test_ports_are_published_for_otlp_the_api_and_grafana_only() -> None:
    container_ports = {name: {port for _, _, port in published_ports(name)} for name in SERVICES}
    assert container_ports == {
        "clickhouse": set(),
        "agentwatch": {8000},
        "otel-collector": {4317, 4318},
        "grafana": {3000},
    }
    for name in SERVICES:
        for address, host_port, container_port in published_ports(name):
            assert host_port == container_port
            assert address == "127.0.0.1", f"{name}: publish on loopback unless told otherwise"


def test_bind_mount_sources_exist_in_the_repository() -> None:
    binds = [(name, source) for name in compose()["services"] for source, _, b in mounts(name) if b]
    assert binds
    for name, source in binds:
        assert not source.startswith(("/", "~")), f"{name}: {source} is outside the repository"
        assert (REPO / source).exists(), f"{name}: {source} does not exist"


def test_named_volumes_are_declared() -> None:
    declared = set(compose().get("volumes") or {})
    used = {
        source
        for name in compose()["services"]
        for source, _, is_bind in mounts(name)
        if not is_bind
    }
    assert used
    assert used <= declared, f"undeclared volumes: {sorted(used - declared)}"


def test_every_variable_has_one_default_documented_in_env_example() -> None:
    variables = compose_variables(COMPOSE_FILE.read_text())
    documented = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    )
    assert variables, "docker-compose.yml reads no variable"
    assert documented == variables


# -- agentwatch ----------------------------------------------------------------------------


def test_agentwatch_environment_is_a_valid_configuration() -> None:
    overrides = agentwatch_overrides()
    assert set(overrides) <= set(Settings.model_fields), "not an agentwatch setting"
    settings = agentwatch_settings()
    assert settings.clickhouse_url
    assert settings.clickhouse_query_url
    assert settings.data_dir == Path("/data")
    assert settings.config is not None


def test_agentwatch_binds_beyond_loopback_so_its_tokens_are_required() -> None:
    overrides = agentwatch_overrides()
    del overrides["ingest_tokens"], overrides["api_tokens"]
    with pytest.raises(ConfigError, match="refusing to serve without authentication"):
        load_settings(overrides)


def test_agentwatch_data_dir_and_config_are_mounted() -> None:
    settings = agentwatch_settings()
    _, is_bind = mount_source("agentwatch", str(settings.data_dir))
    assert not is_bind, "the data dir is a named volume"
    assert settings.config is not None
    source, is_bind = mount_source("agentwatch", str(settings.config))
    assert is_bind
    assert (REPO / source).resolve() == AGENTWATCH_CONFIG_FILE


def test_mounted_agentwatch_config_passes_agentwatch_validation() -> None:
    document = load_config_file(AGENTWATCH_CONFIG_FILE)
    assert "detectors" in document
    DetectorConfig.from_dict(document.get("detectors"))


@pytest.mark.parametrize(
    ("setting", "user"),
    [("clickhouse_url", WRITER_USER), ("clickhouse_query_url", READONLY_USER)],
)
def test_clickhouse_urls_name_a_user_clickhouse_has(setting: str, user: str) -> None:
    url = urlsplit(getattr(agentwatch_settings(), setting))
    assert (url.scheme, url.hostname, url.port) == ("http", "clickhouse", 8123)
    assert url.username == user
    assert url.password == user_password(user)
    assert url.path in ("", "/"), "no database in the URL: it may not exist yet"


# -- otel-collector ------------------------------------------------------------------------


def test_collector_pipelines_reference_only_defined_components() -> None:
    config = collector_config()
    service_section = config["service"]
    assert set(service_section["extensions"]) <= set(config.get("extensions") or {})
    pipelines = service_section["pipelines"]
    assert {"traces", "logs"} <= set(pipelines)
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            used = set(pipeline.get(kind) or [])
            assert used <= set(config.get(kind) or {}), f"{name}: undefined {kind} {used}"
        assert pipeline["receivers"], name
        assert pipeline["exporters"], name


def test_collector_pipelines_start_with_memory_limiter() -> None:
    for name, pipeline in collector_config()["service"]["pipelines"].items():
        assert component_type(pipeline["processors"][0]) == "memory_limiter", name
    limiter = collector_config()["processors"]["memory_limiter"]
    assert go_duration_s(limiter["check_interval"]) > 0
    assert 0 < limiter["spike_limit_percentage"] < limiter["limit_percentage"] <= 100


def test_collector_receives_on_the_published_ports_with_authentication() -> None:
    config = collector_config()
    protocols = config["receivers"]["otlp"]["protocols"]
    ports = {split_host_port(p["endpoint"]) for p in protocols.values()}
    assert ports == {("0.0.0.0", 4317), ("0.0.0.0", 4318)}
    assert {("0.0.0.0", port) for _, _, port in published_ports("otel-collector")} == ports
    for protocol in protocols.values():
        # Agents present the same ingest token the Collector forwards to agentwatch.
        authenticator = protocol["auth"]["authenticator"]
        assert authenticator in config["service"]["extensions"]
        assert component_type(authenticator) == "bearertokenauth"
        assert config["extensions"][authenticator]["token"] == "${env:AGENTWATCH_INGEST_TOKEN}"


def test_collector_exports_to_agentwatch_grpc_with_the_ingest_token() -> None:
    config = collector_config()
    exporters = {
        exporter
        for pipeline in config["service"]["pipelines"].values()
        for exporter in pipeline["exporters"]
    }
    assert len(exporters) == 1
    exporter_id = exporters.pop()
    assert component_type(exporter_id) in ("otlp", "otlp_grpc"), "OTLP over gRPC"
    exporter = config["exporters"][exporter_id]
    grpc_port = split_host_port(agentwatch_settings().otlp_grpc)[1]
    assert split_host_port(exporter["endpoint"]) == ("agentwatch", grpc_port)
    assert exporter["tls"]["insecure"] is True
    assert exporter["headers"]["authorization"] == "Bearer ${env:AGENTWATCH_INGEST_TOKEN}"
    token = environment("otel-collector")["AGENTWATCH_INGEST_TOKEN"]
    assert token in agentwatch_settings().ingest_tokens


def test_collector_queue_is_on_disk_and_retries_without_deadline() -> None:
    config = collector_config()
    exporter_id = config["service"]["pipelines"]["traces"]["exporters"][0]
    exporter = config["exporters"][exporter_id]
    queue = exporter["sending_queue"]
    assert queue.get("enabled", True) is True
    storage = queue["storage"]
    assert component_type(storage) == "file_storage"
    assert storage in config["service"]["extensions"]
    directory = config["extensions"][storage]["directory"]
    _, is_bind = mount_source("otel-collector", directory)
    assert not is_bind, "the queue is a named volume"
    retry = exporter["retry_on_failure"]
    assert retry["enabled"] is True
    elapsed = go_duration_s(retry["max_elapsed_time"])
    assert elapsed == 0 or elapsed >= 3600


def test_collector_queue_volume_is_handed_to_the_collector_user() -> None:
    directory = collector_config()["extensions"]["file_storage"]["directory"]
    source, _ = mount_source("otel-collector", directory)
    owners = [
        name
        for name, definition in compose()["services"].items()
        if name != "otel-collector"
        and (source, directory, False) in mounts(name)
        and definition.get("entrypoint", [None])[0] == "chown"
    ]
    assert len(owners) == 1
    condition = service("otel-collector")["depends_on"][owners[0]]["condition"]
    assert condition == "service_completed_successfully"


def test_collector_environment_sets_every_variable_its_config_reads() -> None:
    read = set(re.findall(r"\$\{env:([A-Za-z_]\w*)", COLLECTOR_FILE.read_text()))
    assert read
    assert read <= set(environment("otel-collector"))


# -- ClickHouse users ----------------------------------------------------------------------


def test_clickhouse_writer_owns_the_agentwatch_database() -> None:
    source, is_bind = mount_source("clickhouse", "/etc/clickhouse-server/users.d/agentwatch.xml")
    assert is_bind
    assert (REPO / source).resolve() == USERS_FILE
    assert users_xml().tag == "clickhouse"
    database = Settings.model_fields["clickhouse_database"].default
    assert f"GRANT ALL ON {database}.*" in user_grants(WRITER_USER)
    assert user_password(WRITER_USER)


def test_clickhouse_readonly_user_selects_from_the_agentwatch_database_only() -> None:
    user = clickhouse_user(READONLY_USER)
    profile_name = user.findtext("profile")
    profile = users_xml().find(f"profiles/{profile_name}")
    assert profile is not None, f"no profile {profile_name}"
    assert profile.findtext("readonly") == "2"
    database = Settings.model_fields["clickhouse_database"].default
    assert user_grants(READONLY_USER) == [f"GRANT SELECT ON {database}.*"]
    assert user_password(READONLY_USER) != user_password(WRITER_USER)


# -- Grafana -------------------------------------------------------------------------------


def test_grafana_reaches_agentwatch_and_clickhouse_as_configured() -> None:
    grafana = environment("grafana")
    settings = agentwatch_settings()
    api = urlsplit(grafana["AGENTWATCH_API_URL"])
    assert (api.hostname, api.port) == ("agentwatch", split_host_port(settings.api)[1])
    assert grafana["AGENTWATCH_API_TOKEN"] in settings.api_tokens
    assert grafana["CLICKHOUSE_HOST"] == "clickhouse"
    assert grafana["CLICKHOUSE_RO_USER"] == READONLY_USER
    assert grafana["CLICKHOUSE_RO_PASSWORD"] == user_password(READONLY_USER)


def test_grafana_installs_its_plugins_and_asks_for_a_login() -> None:
    grafana = environment("grafana")
    plugins = set(grafana["GF_PLUGINS_PREINSTALL_SYNC"].split(","))
    assert {"yesoreyeram-infinity-datasource", "grafana-clickhouse-datasource"} <= plugins
    assert grafana["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert grafana["GF_SECURITY_ADMIN_PASSWORD"]
    assert mount_source("grafana", "/etc/grafana/provisioning") == ("./grafana/provisioning", True)
    assert mount_source("grafana", "/var/lib/grafana/dashboards") == ("./grafana/dashboards", True)


def test_grafana_environment_sets_every_variable_its_provisioning_reads() -> None:
    def strings(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [text for value in node.values() for text in strings(value)]
        if isinstance(node, list):
            return [text for value in node for text in strings(value)]
        return [node] if isinstance(node, str) else []

    files = sorted((REPO / "grafana" / "provisioning").rglob("*.y*ml"))
    assert files, "no Grafana provisioning"
    read = {
        name
        for path in files
        for text in strings(yaml.safe_load(path.read_text()))
        for name in re.findall(r"\$\{?([A-Za-z]\w*)", text)
    }
    unset = read - set(environment("grafana"))
    assert read
    assert not unset, f"the grafana service does not set {sorted(unset)}"


# -- Dockerfile ----------------------------------------------------------------------------


def test_dockerfile_runs_agentwatch_serve_as_non_root() -> None:
    stages = dockerfile_stages()
    assert all(stage[0][1].startswith("python:3.11-slim") for stage in stages)
    final = stages[-1]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "no USER: the image would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    exposed = {int(p) for k, a in final if k == "EXPOSE" for p in a.split()}
    assert exposed == {4317, 4318, 8000}
    entrypoints = [json.loads(a) for k, a in final if k == "ENTRYPOINT"]
    assert entrypoints[-1] == ["agentwatch", "serve"]
    assert ("VOLUME", "/data") in final


def test_dockerfile_copies_every_package_pyproject_installs() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    packages = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]}
    needed = packages | {"pyproject.toml", "README.md"}
    copied = {
        source.rstrip("/")
        for keyword, arguments in dockerfile_stages()[0]
        if keyword == "COPY"
        for source in arguments.split()[:-1]
    }
    assert needed <= copied, f"not copied into the build: {sorted(needed - copied)}"


def test_dockerfile_healthcheck_asks_healthz_with_python() -> None:
    healthchecks = [a for k, a in dockerfile_stages()[-1] if k == "HEALTHCHECK"]
    assert len(healthchecks) == 1
    command = json.loads(healthchecks[0].partition("CMD ")[2])
    assert command[0] == "python"
    assert "/healthz" in command[-1]


def test_docker_build_context_leaves_out_host_artifacts() -> None:
    ignored = {
        line.strip()
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    # A host-built extension would shadow the image's own; .env holds the stack's secrets.
    assert {".git", ".venv", ".env", "**/*.so"} <= ignored
