"""The deployment kit (deploy/): every file checked by a real linter or schema, and its config run.

- YAML: yamllint (strict), then the compose file against the Compose Specification's JSON
  schema (check-jsonschema's vendored copy) and the Kubernetes manifests against the
  Kubernetes JSON schemas (kubernetes-validate, strict: unknown fields refused), both offline;
- the kustomization built by ``kubectl kustomize`` when kubectl is there, else assembled here
  from its resources and generator (the same checks follow either way);
- prometheus.yml by ``promtool check config`` when Prometheus is installed (.ci/run installs
  it), else parsed and its targets checked;
- the systemd unit by ``systemd-analyze verify`` and ``systemd-analyze security`` when
  systemd is installed, else parsed section by section;
- every TOML by ``automations validate --offline``, and its names resolved by the sandbox;
- the Kubernetes config run by the real daemon on a read-only root (only /tmp and the
  ledger's folder writable), its effects and its memory measured.

No check is skipped: where a tool is missing, the parser check runs instead and says so.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from automations.config import Config, load_config
from automations.digest.config import SMTPSettings
from automations.errors import APIAccessDenied, ConfigError
from automations.notify.config import WebhookChannel, env_prefix
from tests.daemon_process import DaemonProcess
from tests.digest_support import SMTPServer, free_port
from tests.engine_harness import Harness
from tests.http_receiver import Receiver
from tests.secret_values import SMTP_PASSWORD, WEBHOOK_SECRET

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
COMPOSE = DEPLOY / "docker-compose.yml"
UNIT = DEPLOY / "systemd" / "automations.service"
KIT_CONFIGS = sorted(DEPLOY.rglob("*.toml"))
DAEMONS = ("automations-a", "automations-b")
# The oldest Kubernetes still supported by the big providers, and the newest with schemas.
KUBERNETES_VERSIONS = ("1.30", "latest")
YAMLLINT = "{extends: default, rules: {line-length: {max: 100}, document-start: disable}}"
# Peak RSS of `automations run` on the Kubernetes config over 10,000 live incidents (the
# sandbox of bench/live_sandbox.py, two full cycles): measured once, README: Deploying.
MEASURED_PEAK_MIB = 151


def _tool(name: str) -> str | None:
    """A command from PATH or from this virtualenv (pip-installed tools land beside python)."""
    beside = Path(sys.executable).parent / name
    return shutil.which(name) or (str(beside) if beside.exists() else None)


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def _docs(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc is not None]


def _kit_config(path: Path) -> Config:
    return load_config(path)


def _seconds(value: str | int) -> float:
    """A Compose or systemd duration ("90s", "1m30s", "90") in seconds."""
    if isinstance(value, int):
        return value
    units = {"h": 3600, "min": 60, "m": 60, "s": 1, "": 1}
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*(min|h|m|s|)", value.strip())
    assert "".join(n + u for n, u in parts) == value.replace(" ", ""), f"not a duration: {value}"
    return sum(float(number) * units[unit] for number, unit in parts)


def _mebibytes(quantity: str) -> float:
    """A Kubernetes or Compose memory quantity ("256Mi", "256m") in MiB."""
    number, unit = re.fullmatch(r"(\d+)([A-Za-z]*)", quantity).groups()  # type: ignore[union-attr]
    scale = {"Mi": 1, "Gi": 1024, "M": 1e6 / 2**20, "m": 1, "g": 1024}[unit]
    return int(number) * scale


def worst_stop_seconds(config: Config) -> float:
    """How long SIGTERM can take with this config (README: Stopping the daemon).

    The action in progress finishes (its re-read and its edit: two API calls), and a
    delivery in progress is not cut (a mail within [smtp] timeout_seconds, another channel
    within its own); they run side by side, so the longest of them counts.
    """
    api = config.incident_io.timeout_seconds
    longest = [2 * api]
    if config.smtp is not None:
        longest.append(config.smtp.timeout_seconds)
    longest += [max(channel.timeout_seconds, api) for channel in config.channels]
    return max(longest)


# --- the TOML files ---------------------------------------------------------------------


@pytest.mark.parametrize("path", KIT_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kit_config_passes_validate_offline(path: Path) -> None:
    """Each config in deploy/ passes `automations validate --offline`, as a user runs it."""
    result = subprocess.run(
        [sys.executable, "-m", "automations", "validate", "--offline", "--config", str(path)],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{path}: ok (")


def test_the_kit_has_a_config_for_each_way_to_deploy() -> None:
    """Compose, Kubernetes and systemd each ship their own config, and nothing else does."""
    assert [p.relative_to(DEPLOY).as_posix() for p in KIT_CONFIGS] == [
        "automations.toml",
        "kubernetes/automations.toml",
        "systemd/automations.toml",
    ]


@pytest.mark.parametrize("path", KIT_CONFIGS, ids=lambda p: str(p.relative_to(DEPLOY)))
def test_kit_config_names_resolve_against_the_sandbox(harness: Harness, path: Path) -> None:
    """`automations validate` (online) accepts every name in the config against the
    sandbox's organisation: the severities, statuses and categories are real ones."""
    text = _replace_once(
        path.read_text(),
        'base_url = "https://api.incident.io"',
        f'base_url = "{harness.sandbox.base_url}"\nmax_clock_skew = "30d"',
    )
    harness.config_path.write_text(text)

    result = harness.cli(
        "validate",
        AUTOMATIONS_SMTP_PASSWORD=SMTP_PASSWORD,
        AUTOMATIONS_CHANNEL_OPS_HOOK_SECRET=WEBHOOK_SECRET,
    )

    assert result.returncode == 0, result.stderr
    assert "ok" in result.stdout


def _replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"expected {old!r} once in the kit's file"
    return text.replace(old, new)


# --- YAML -------------------------------------------------------------------------------


def _yaml_files() -> list[Path]:
    return sorted(DEPLOY.rglob("*.yml")) + sorted(DEPLOY.rglob("*.yaml"))


def test_every_yaml_file_passes_yamllint() -> None:
    """yamllint in strict mode (warnings fail too) on every YAML file of the kit."""
    files = _yaml_files()
    assert len(files) >= 7
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-d", YAMLLINT, *map(str, files)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_yamllint_catches_what_it_should(tmp_path: Path) -> None:
    """The lint is not vacuous: a duplicated key in a manifest fails it."""
    broken = tmp_path / "deployment.yaml"
    broken.write_text((KUBERNETES / "deployment.yaml").read_text() + "spec: {}\n")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-d", YAMLLINT, str(broken)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 1
    assert "duplication of key" in result.stdout


# --- Docker Compose ---------------------------------------------------------------------


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    tool = _tool("check-jsonschema")
    assert tool is not None, "check-jsonschema is a dev dependency (pip install -e '.[dev]')"
    return subprocess.run(
        [tool, "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_compose_file_matches_the_compose_specification(tmp_path: Path) -> None:
    """check-jsonschema validates docker-compose.yml against the Compose Specification's
    schema, and refuses a copy with a misspelt healthcheck key (the check bites)."""
    result = _check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr

    broken = tmp_path / "docker-compose.yml"
    broken.write_text(_replace_once(COMPOSE.read_text(), "start_period: 60s", "start_perod: 60s"))
    refused = _check_compose(broken)
    assert refused.returncode == 1
    assert "start_perod" in refused.stdout


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = _yaml(COMPOSE)  # the YAML merge keys (<<) resolved
    return compose


def test_compose_runs_two_daemons_from_the_project_image_with_health_checks() -> None:
    """Two daemon services built from the project's Dockerfile, each checked with
    `automations healthcheck`, restarted unless stopped, given the time a stop needs."""
    services = _compose()["services"]
    config = _kit_config(DEPLOY / "automations.toml")
    for name in DAEMONS:
        daemon = services[name]
        assert (COMPOSE.parent / daemon["build"]["context"]).resolve() == REPO
        assert (REPO / "Dockerfile").is_file()
        assert daemon["image"] == services[DAEMONS[0]]["image"]
        assert daemon["command"] == ["run"]
        assert daemon["healthcheck"]["test"] == ["CMD", "automations", "healthcheck"]
        assert daemon["restart"] == "unless-stopped"
        assert daemon["stop_signal"] == "SIGTERM"
        assert _seconds(daemon["stop_grace_period"]) >= worst_stop_seconds(config)
        assert daemon["depends_on"]["postgres"] == {"condition": "service_healthy"}
        assert daemon["read_only"] is True
        assert daemon["cap_drop"] == ["ALL"]
        assert "ports" not in daemon  # two replicas: Prometheus reaches them inside
        assert _mebibytes(daemon["mem_limit"]) >= 1.5 * MEASURED_PEAK_MIB
    assert config.server.enabled
    assert config.server.host == "0.0.0.0"


def test_compose_mounts_the_kit_config_read_only_where_the_image_looks() -> None:
    """Both daemons read deploy/automations.toml, mounted read-only at AUTOMATIONS_CONFIG."""
    for name in DAEMONS:
        daemon = _compose()["services"][name]
        target = daemon["environment"]["AUTOMATIONS_CONFIG"]
        assert target == "/etc/automations/automations.toml"  # the Dockerfile's ENV too
        assert f"./automations.toml:{target}:ro" in daemon["volumes"]
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "AUTOMATIONS_CONFIG=/etc/automations/automations.toml" in dockerfile


def test_compose_secrets_come_from_files_never_from_the_compose_file() -> None:
    """Each secret a daemon or PostgreSQL reads is a *_FILE under /run/secrets/ naming a
    declared file secret; no variable carries a secret value itself."""
    compose = _compose()
    declared = compose["secrets"]
    assert set(declared) == {"incident_io_api_key", "store_url", "postgres_password"}
    for secret in declared.values():
        assert secret["file"].startswith("./secrets/")
    for name in (*DAEMONS, "postgres"):
        service = compose["services"][name]
        environment: dict[str, str] = service["environment"]
        files = {k: v for k, v in environment.items() if k.endswith("_FILE")}
        used = {value.removeprefix("/run/secrets/") for value in files.values()}
        assert used == set(service["secrets"]) <= set(declared), name
        for key in environment:
            assert not re.search(r"PASSWORD$|KEY$|SECRET$|URL$", key), (name, key)
    daemon_env = compose["services"][DAEMONS[0]]["environment"]
    assert set(daemon_env) >= {"INCIDENT_IO_API_KEY_FILE", "AUTOMATIONS_STORE_URL_FILE"}
    for path in KIT_CONFIGS:  # and no TOML of the kit names a secret
        assert not re.search(
            r"(?im)^\s*(password|api_key|secret|url\s*=\s*\"postgres)", path.read_text()
        )


def test_compose_secret_files_are_kept_out_of_git_and_of_the_image_build() -> None:
    """deploy/secrets/ (where the compose secrets live) is ignored by git and left out of
    the Docker build context, which is the whole repository."""
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "deploy/secrets/store_url"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert ignored.returncode == 0, ignored.stderr
    assert "deploy/secrets/" in (REPO / ".dockerignore").read_text().splitlines()


def test_compose_postgres_keeps_its_data_in_a_named_volume_and_reports_health() -> None:
    """The official PostgreSQL image, its data in a named volume, pg_isready as health check."""
    compose = _compose()
    postgres = compose["services"]["postgres"]
    assert postgres["image"].startswith("postgres:")
    volume, target = postgres["volumes"][0].split(":")
    assert volume in compose["volumes"]
    assert target == "/var/lib/postgresql/data"
    assert postgres["healthcheck"]["test"][:2] == ["CMD", "pg_isready"]
    assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/postgres_password"
    assert postgres["restart"] == "unless-stopped"


def test_compose_mail_sink_is_a_marked_placeholder_the_config_points_at() -> None:
    """The SMTP relay is a placeholder mail sink, marked REPLACE in both files, and the
    compose config's [smtp] points at it."""
    compose_text = COMPOSE.read_text()
    assert re.search(r"# REPLACE: a placeholder mail sink", compose_text)
    assert "mail" in _compose()["services"]
    smtp = _kit_config(DEPLOY / "automations.toml").smtp
    assert smtp is not None
    assert (smtp.host, smtp.port) == ("mail", 1025)
    assert "# REPLACE" in (DEPLOY / "automations.toml").read_text()


# --- Prometheus -------------------------------------------------------------------------


def test_prometheus_config_scrapes_both_daemons() -> None:
    """prometheus.yml passes `promtool check config` (where Prometheus is installed; else it
    is parsed), and scrapes /metrics on both daemons at the port their config serves."""
    promtool = _tool("promtool")
    if promtool is not None:
        result = subprocess.run(
            [promtool, "check", "config", str(DEPLOY / "prometheus.yml")],
            capture_output=True, text=True,
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS" in result.stdout
    prometheus = _yaml(DEPLOY / "prometheus.yml")  # the parser check, and the fields
    (job,) = prometheus["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    port = _kit_config(DEPLOY / "automations.toml").server.port
    (targets,) = job["static_configs"]
    assert targets["targets"] == [f"{name}:{port}" for name in DAEMONS]
    service = _compose()["services"]["prometheus"]
    assert "./prometheus.yml:/etc/prometheus/prometheus.yml:ro" in service["volumes"]
    assert prometheus["rule_files"] == ["alerts.yml"]  # beside it, in the container too
    assert "./alerts.yml:/etc/prometheus/alerts.yml:ro" in service["volumes"]


def _alert_case(name: str, series: dict[str, str], at: str, firing: list[str]) -> dict[str, Any]:
    """One `promtool test rules` case: ``series`` (instance -> automations_leader values,
    one a 30 s) evaluated at ``at``; ``firing`` the alerts expected then, the others silent."""
    rules = _yaml(DEPLOY / "alerts.yml")["groups"][0]["rules"]
    return {
        "name": name,
        "interval": "30s",
        "input_series": [
            {"series": f'automations_leader{{job="automations", instance="{i}"}}', "values": v}
            for i, v in series.items()
        ],
        "alert_rule_test": [
            {
                "eval_time": at,
                "alertname": rule["alert"],
                "exp_alerts": [
                    {"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}
                ]
                if rule["alert"] in firing
                else [],
            }
            for rule in rules
            if rule["alert"] in ("AutomationsNoLeader", "AutomationsTwoLeaders")
        ],
    }


def test_alerts_page_when_no_replica_leads_and_not_during_a_failover(tmp_path: Path) -> None:
    """alerts.yml passes `promtool check rules`, and `promtool test rules` shows the leader
    alerts: silent with one leader and through a failover, firing with none (or no replica
    scraped at all) and with two. Without Prometheus installed, the rules are parsed."""
    alerts = _yaml(DEPLOY / "alerts.yml")
    (group,) = alerts["groups"]
    for rule in group["rules"]:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule
        assert rule["labels"]["severity"] in ("page", "ticket")
        assert rule["annotations"]["summary"]
    promtool = _tool("promtool")
    if promtool is None:
        return  # the parser check above
    checked = subprocess.run(
        [promtool, "check", "rules", str(DEPLOY / "alerts.yml")], capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    a, b = "automations-a:9108", "automations-b:9108"
    cases = [
        _alert_case("one leader", {a: "1x10", b: "0x10"}, "4m", []),
        _alert_case("a failover", {a: "1x3 stale", b: "0x3 1x6"}, "4m", []),
        _alert_case("no leader", {a: "0x10", b: "0x10"}, "4m", ["AutomationsNoLeader"]),
        _alert_case("two leaders", {a: "1x10", b: "1x10"}, "4m", ["AutomationsTwoLeaders"]),
        _alert_case("none scraped", {a: "1 stale", b: "0 stale"}, "4m", ["AutomationsNoLeader"]),
    ]
    tests = tmp_path / "alerts.test.yml"
    tests.write_text(
        yaml.safe_dump(
            {"rule_files": [str(DEPLOY / "alerts.yml")], "evaluation_interval": "30s",
             "tests": cases}
        )
    )  # fmt: skip
    result = subprocess.run([promtool, "test", "rules", str(tests)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


# --- Kubernetes -------------------------------------------------------------------------


def _kustomization() -> dict[str, Any]:
    kustomization: dict[str, Any] = _yaml(KUBERNETES / "kustomization.yaml")
    return kustomization


def _built() -> tuple[list[dict[str, Any]], str]:
    """The resources `kubectl apply -k deploy/kubernetes` applies, and how they were built.

    With kubectl: ``kubectl kustomize``. Without: the resources read and the ConfigMap
    generated here (without the hash suffix and the image override that kustomize adds).
    """
    kubectl = shutil.which("kubectl")
    if kubectl is not None:
        result = subprocess.run(
            [kubectl, "kustomize", str(KUBERNETES)], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return _docs(result.stdout), "kubectl kustomize"
    kustomization = _kustomization()
    docs = [
        doc for name in kustomization["resources"] for doc in _docs((KUBERNETES / name).read_text())
    ]
    for generator in kustomization["configMapGenerator"]:
        data = {name: (KUBERNETES / name).read_text() for name in generator["files"]}
        docs.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": generator["name"]},
                "data": data,
            }
        )
    return docs, "assembled in the test (kubectl is not installed)"


@pytest.fixture(scope="module")
def built() -> list[dict[str, Any]]:
    docs, _how = _built()
    return docs


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


def _validate_kubernetes(doc: dict[str, Any]) -> None:
    import kubernetes_validate
    from kubernetes_validate.utils import latest_version

    for version in KUBERNETES_VERSIONS:
        wanted = latest_version() if version == "latest" else version
        kubernetes_validate.validate(doc, wanted, strict=True)


def test_kubernetes_manifests_match_the_kubernetes_schemas(built: list[dict[str, Any]]) -> None:
    """Every resource kustomize applies, and the example Secret, validate against the
    Kubernetes JSON schemas (1.30 and the newest bundled), strictly: no unknown field."""
    secret = _docs((KUBERNETES / "secret.example.yaml").read_text())
    kinds = sorted(doc["kind"] for doc in built)
    assert kinds == ["ConfigMap", "Deployment", "PodDisruptionBudget", "Service"]
    for doc in [*built, *secret]:
        _validate_kubernetes(doc)


def test_kubernetes_schema_check_bites() -> None:
    """The strict schema check refuses a misspelt field and a wrong type in the Deployment."""
    import kubernetes_validate

    deployment = _one(_docs((KUBERNETES / "deployment.yaml").read_text()), "Deployment")
    misspelt = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    wrong_type = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    for broken in (misspelt, wrong_type):
        with pytest.raises(kubernetes_validate.ValidationError):
            _validate_kubernetes(broken)


def test_kustomization_builds_what_kubectl_applies(built: list[dict[str, Any]]) -> None:
    """`kubectl kustomize` builds the kit (where kubectl is installed; else every file it
    names exists and parses): the Deployment mounts the generated ConfigMap, whose TOML
    is deploy/kubernetes/automations.toml, and the Secret is left out of it on purpose."""
    docs, how = _built()
    kustomization = _kustomization()
    for name in kustomization["resources"]:
        assert (KUBERNETES / name).is_file(), name
    assert "secret.example.yaml" not in kustomization["resources"]
    config_map = _one(docs, "ConfigMap")
    assert config_map["data"]["automations.toml"] == (KUBERNETES / "automations.toml").read_text()
    volumes = {
        v["name"]: v for v in _one(docs, "Deployment")["spec"]["template"]["spec"]["volumes"]
    }
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]
    if how == "kubectl kustomize":
        assert re.fullmatch(r"automations-config-[a-z0-9]{10}", config_map["metadata"]["name"])
        image = _one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]["image"]
        override = kustomization["images"][0]
        assert image == f"{override['newName']}:{override['newTag']}"


def _container(built: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = _one(built, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert isinstance(container, dict)
    return container


def test_deployment_runs_two_replicas_that_roll_one_at_a_time(built: list[dict[str, Any]]) -> None:
    """Two replicas; a rolling update starts the new pod before it stops an old one; the
    pods get the time a stop needs; the PodDisruptionBudget keeps one and selects them."""
    deployment = _one(built, "Deployment")
    spec = deployment["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"] == {
        "type": "RollingUpdate",
        "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
    }
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    config = _kit_config(KUBERNETES / "automations.toml")
    pod = spec["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] >= worst_stop_seconds(config)
    pdb = _one(built, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = _one(built, "Service")
    assert service["spec"]["selector"].items() <= labels.items()


def test_deployment_probes_ask_healthz_on_the_configured_port(built: list[dict[str, Any]]) -> None:
    """Start-up, readiness and liveness probes GET /healthz on the port [server] serves;
    liveness waits far longer than readiness (an API outage fails /healthz too)."""
    container = _container(built)
    config = _kit_config(KUBERNETES / "automations.toml")
    assert config.server.enabled
    assert config.server.host == "0.0.0.0"
    (port,) = container["ports"]
    assert port["containerPort"] == config.server.port
    probes = {kind: container[kind] for kind in ("startupProbe", "readinessProbe", "livenessProbe")}
    for probe in probes.values():
        assert probe["httpGet"] == {"path": "/healthz", "port": port["name"]}
        assert probe["timeoutSeconds"] < probe["periodSeconds"]

    def patience(probe: dict[str, Any]) -> int:
        return int(probe["periodSeconds"] * probe["failureThreshold"])

    assert patience(probes["livenessProbe"]) >= 10 * patience(probes["readinessProbe"])
    service_port = _one(built, "Service")["spec"]["ports"][0]
    assert (service_port["port"], service_port["targetPort"]) == (config.server.port, port["name"])


def test_deployment_reads_every_secret_from_a_key_of_the_secret(
    built: list[dict[str, Any]],
) -> None:
    """Each *_FILE variable names a file of the mounted Secret whose key the example Secret
    has, and the variables are the ones the product reads (the channel's from its name)."""
    container = _container(built)
    pod = _one(built, "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    secret_name = volumes["secrets"]["secret"]["secretName"]
    (secret,) = _docs((KUBERNETES / "secret.example.yaml").read_text())
    assert secret["metadata"]["name"] == secret_name
    directory = mounts["secrets"]["mountPath"]
    files = {e["name"]: e["value"] for e in container["env"] if e["name"].endswith("_FILE")}
    keys = {path.removeprefix(directory + "/") for path in files.values()}
    assert keys == set(secret["stringData"]), (keys, secret["stringData"])
    assert all("value" in e for e in container["env"])  # no secretKeyRef: files only
    config = _kit_config(KUBERNETES / "automations.toml")
    expected = {
        "INCIDENT_IO_API_KEY_FILE",
        "AUTOMATIONS_SMTP_PASSWORD_FILE",
        "AUTOMATIONS_STORE_URL_FILE",
    }
    expected |= {
        f"{env_prefix(c.name)}SECRET_FILE" for c in config.channels if isinstance(c, WebhookChannel)
    }
    assert set(files) == expected


def test_deployment_runs_unprivileged_on_a_read_only_root(built: list[dict[str, Any]]) -> None:
    """Non-root as the image's user, no privilege escalation, no capability, a read-only
    root with /tmp the only writable mount, no service account token."""
    pod = _one(built, "Deployment")["spec"]["template"]["spec"]
    container = _container(built)
    dockerfile_user = re.search(r"^USER (\d+):(\d+)$", (REPO / "Dockerfile").read_text(), re.M)
    assert dockerfile_user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(dockerfile_user[1])
    assert pod["securityContext"]["runAsGroup"] == int(dockerfile_user[2])
    assert pod["automountServiceAccountToken"] is False
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    writable = [m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")]
    assert writable == ["/tmp"]


def test_deployment_resources_fit_the_measured_process(built: list[dict[str, Any]]) -> None:
    """The memory request covers the peak measured over 10,000 live incidents and the limit
    leaves half as much again; a CPU limit of one core (a cycle uses one at most)."""
    resources = _container(built)["resources"]
    assert _mebibytes(resources["requests"]["memory"]) >= MEASURED_PEAK_MIB
    assert _mebibytes(resources["limits"]["memory"]) >= 1.5 * MEASURED_PEAK_MIB
    assert resources["limits"]["cpu"] == "1"
    assert resources["requests"]["cpu"] == "100m"


# --- systemd ----------------------------------------------------------------------------


def _unit() -> dict[str, dict[str, list[str]]]:
    """The unit's sections and keys (a key may repeat), parsed as systemd reads the file:
    comments start with # or ;, a trailing backslash continues a line."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] | None = None
    text = re.sub(r"\\\n", " ", UNIT.read_text())
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        header = re.fullmatch(r"\[([A-Za-z]+)\]", line)
        if header:
            current = sections.setdefault(header[1], {})
            continue
        pair = re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)=(.*)", line)
        assert pair is not None, f"{UNIT}:{number}: not a section, comment or Key=value: {line!r}"
        assert current is not None, f"{UNIT}:{number}: {line!r} comes before any [Section]"
        current.setdefault(pair[1], []).append(pair[2].strip())
    return sections


def _unit_value(section: str, key: str) -> str:
    (value,) = _unit()[section][key]
    return value


def _unit_root(tmp_path: Path) -> Path:
    """A root for `systemd-analyze --root`: the unit, the system's own units, and each
    program the unit starts (the installed `automations` at the unit's path)."""
    root = tmp_path / "root"
    shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
    (root / "etc/systemd/system").mkdir(parents=True)
    shutil.copy(UNIT, root / "etc/systemd/system" / UNIT.name)
    for key in ("ExecStart", "ExecReload"):
        program = Path(_unit_value("Service", key).split()[0])
        source = (
            Path(sys.executable).parent / "automations"
            if program.name == "automations"
            else program
        )
        (root / program.relative_to("/")).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / program.relative_to("/"))
    return root


def test_systemd_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds nothing to say about the unit (where systemd is
    installed: warnings about unknown keys or bad values fail too; else the parser check)."""
    sections = _unit()  # the parser check: every line a section, a comment or Key=value
    assert list(sections) == ["Unit", "Service", "Install"]
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return  # the parser check above is what a machine without systemd can do
    root = _unit_root(tmp_path)
    result = subprocess.run(
        [analyze, "verify", f"--root={root}", f"/etc/systemd/system/{UNIT.name}"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout + result.stderr == ""


def test_systemd_unit_exposure_is_rated_ok(tmp_path: Path) -> None:
    """`systemd-analyze security --offline` rates the sandboxing at most 2.0 ("OK"), where
    systemd is installed; the sandboxing keys are checked either way."""
    service = _unit()["Service"]
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "CapabilityBoundingSet": "",
        "RestrictSUIDSGID": "yes",
        "SystemCallArchitectures": "native",
    }.items():
        assert service[key] == [value], key
    assert "ProcSubset" not in service  # it would hide /proc/locks (the lock holder's PID)
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        return
    root = _unit_root(tmp_path)
    result = subprocess.run(
        [analyze, "security", "--offline=true", f"--root={root}", "--threshold=20", UNIT.name],
        capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr
    assert re.search(r"Overall exposure level for automations.service: [01]\.\d OK", result.stdout)


def test_systemd_unit_runs_the_daemon_on_the_kit_config_with_its_secrets_outside() -> None:
    """The unit runs `automations run` on the systemd config's install path, as the
    automations user, its secrets from an EnvironmentFile, the ledger in its StateDirectory."""
    service = _unit()["Service"]
    exec_start = _unit_value("Service", "ExecStart").split()
    assert exec_start[1:3] == ["run", "--config"]
    config = _kit_config(DEPLOY / "systemd" / "automations.toml")
    assert exec_start[3] == "/etc/automations/automations.toml"
    assert service["User"] == ["automations"]
    assert service["Type"] == ["exec"]
    assert service["EnvironmentFile"] == ["/etc/automations/automations.env"]
    (state,) = service["StateDirectory"]
    assert config.store.path.parent == Path("/var/lib") / state
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    example = (DEPLOY / "systemd" / "automations.env.example").read_text()
    assert re.search(r"(?m)^INCIDENT_IO_API_KEY=", example)
    assert re.search(r"(?m)^AUTOMATIONS_SMTP_PASSWORD=", example)  # [smtp] username is set
    assert config.smtp is not None
    assert config.smtp.username


def test_systemd_unit_stops_and_restarts_as_the_daemon_needs() -> None:
    """SIGTERM with time for the slowest stop; restart on failure but not on a refused key
    (77) or a bad config (78), which a restart cannot fix."""
    service = _unit()["Service"]
    config = _kit_config(DEPLOY / "systemd" / "automations.toml")
    assert service["KillSignal"] == ["SIGTERM"]
    assert _seconds(_unit_value("Service", "TimeoutStopSec")) >= worst_stop_seconds(config)
    assert service["Restart"] == ["on-failure"]
    prevented = set(_unit_value("Service", "RestartPreventExitStatus").split())
    assert prevented == {str(APIAccessDenied.exit_code), str(ConfigError.exit_code)}


def test_stop_times_cover_the_default_timeouts() -> None:
    """The kit's stop times (90 s) cover the worst stop with the defaults (two API calls of
    30 s); raising a default timeout fails here, so the kit is revisited with it."""
    defaults = SMTPSettings(host="mail", sender="a@example.com")
    assert defaults.timeout_seconds <= 30
    for path in KIT_CONFIGS:
        assert worst_stop_seconds(_kit_config(path)) == 60, path


# --- the Kubernetes config, run ---------------------------------------------------------


def _kubernetes_secrets(directory: Path, files: dict[str, str]) -> None:
    """The Secret's files laid out as the kubelet does: each key a symlink into ..data."""
    version = directory / "..2026_01_01_00_00_00.000000001"
    version.mkdir(parents=True)
    for key, value in files.items():
        (version / key).write_text(value)
    (directory / "..data").symlink_to(version.name)
    for key in files:
        (directory / key).symlink_to(f"..data/{key}")


def _vm_hwm_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    match = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
    assert match is not None
    return int(match[1]) / 1024


@pytest.fixture
def smtp_sink() -> Iterator[SMTPServer]:
    server = SMTPServer().start()
    try:
        yield server
    finally:
        server.stop()


def test_kubernetes_config_runs_on_a_read_only_root(
    harness: Harness, receiver: Receiver, smtp_sink: SMTPServer, tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory, built: list[dict[str, Any]],
) -> None:  # fmt: skip
    """The Kubernetes config, its secrets as the kubelet mounts them and the Deployment's
    variables, run by the real daemon with / read-only (unshare) and only TMPDIR and the
    ledger's folder writable: it escalates, mails, posts a signed webhook, reports healthy,
    stays under the memory limit, and stops cleanly on SIGTERM."""
    incident = harness.add("Checkout down", age=timedelta(hours=3))
    state, tmp = tmp_path / "state", tmp_path / "tmp"
    state.mkdir()
    tmp.mkdir()
    port = free_port()
    text = (KUBERNETES / "automations.toml").read_text()
    for old, new in (
        (
            'base_url = "https://api.incident.io"',
            f'base_url = "{harness.sandbox.base_url}"\nmax_clock_skew = "30d"',
        ),
        # The ledger: SQLite in the one writable folder besides TMPDIR.
        ('retention = "400d"', f'retention = "400d"\npath = "{state / "automations.db"}"'),
        ("port = 9108", f"port = {port}"),
        ('host = "smtp.example.com"', 'host = "127.0.0.1"'),
        ("port = 587", f"port = {smtp_sink.port}"),
        ('security = "starttls"', 'security = "none"'),
        ('username = "incident-bot"', ""),  # the test's SMTP server takes no login
        ("https://hooks.example.com/incidents", f"{receiver.url}/incidents"),
    ):
        text = _replace_once(text, old, new)
    harness.config_path.write_text(text)
    container = _container(built)
    secret_dir = Path(
        next(m for m in container["volumeMounts"] if m["name"] == "secrets")["mountPath"]
    )
    # Outside tmp_path, whose files the leak check reads: these files are meant to hold them.
    secrets = tmp_path_factory.mktemp("secrets") / "automations"
    _kubernetes_secrets(
        secrets,
        {
            "incident-io-api-key": harness.sandbox.api_key,
            "store-url": "postgresql://unused@127.0.0.1:1/unused",
            "smtp-password": SMTP_PASSWORD,
            "ops-hook-secret": WEBHOOK_SECRET,
        },
    )
    receiver.verify_with = WEBHOOK_SECRET
    # The Deployment's variables, pointed at these files; the config is --config, and the
    # ledger is the SQLite file above rather than the store-url's PostgreSQL.
    env = {
        e["name"]: e["value"].replace(str(secret_dir), str(secrets))
        for e in container["env"]
        if e["name"] not in ("AUTOMATIONS_CONFIG", "AUTOMATIONS_STORE_URL_FILE")
    }
    # In a private mount namespace: the two folders stay writable (bind-mounted onto
    # themselves), then / is remounted read-only; the daemon starts only if it really is.
    read_only = (
        'mount --bind "$1" "$1" && mount --bind "$2" "$2" && mount -o remount,bind,ro / '
        '&& [ ! -w / ] && [ ! -w "$3" ] && [ -w "$1" ] && shift 3 && exec "$@"'
    )
    daemon = DaemonProcess(
        harness,
        wrapper=["unshare", "--mount", "--propagation", "private", "sh", "-c", read_only,
                 "sh", str(state), str(tmp), str(tmp_path)],
        env={**env, "INCIDENT_IO_API_KEY": "", "TMPDIR": str(tmp)},
    )  # fmt: skip
    try:
        daemon.wait_for(lambda: harness.severity(incident["id"]) == "Major", "escalation")
        daemon.wait_for(lambda: len(smtp_sink.received) == 1, "mail")
        daemon.wait_for(lambda: len(receiver.received) == 1, "webhook")
        healthy = harness.cli("healthcheck")
        peak = _vm_hwm_mib(daemon.process.pid)
        code = daemon.stop(timeout=60)
    finally:
        daemon.kill()
    assert healthy.returncode == 0, healthy.stderr
    assert receiver.received[0].verified is not None, receiver.received[0].verify_error
    assert code == 0, daemon.log
    assert "Read-only file system" not in daemon.log
    assert not re.search(r"\b(ERROR|Traceback)\b", daemon.log), daemon.log
    limit = _mebibytes(container["resources"]["limits"]["memory"])
    print(f"peak RSS of the daemon: {peak:.1f} MiB")  # shown with -s; measured for the kit
    assert peak < limit / 2, f"peak RSS {peak:.0f} MiB against a {limit:.0f} MiB limit"
    # Nothing was written outside the ledger's folder and TMPDIR: the rest was read-only.
    assert {p.name for p in state.iterdir()} <= {
        "automations.db",
        "automations.db-wal",
        "automations.db-shm",
    }
