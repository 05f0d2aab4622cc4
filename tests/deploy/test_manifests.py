"""The deployment recipe (deploy/): none of it can run here, so its structure is checked against the
real schemas and against the service it deploys: BentoML's deployment schema, the Kubernetes API's
(kubernetes-validate's JSON schemas), the service's settings, health endpoints and metric names.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attr
import cattrs
import kubernetes_validate
import pytest
import yaml
from bentoml._internal.cloud.deployment import DeploymentAPI
from bentoml._internal.cloud.schemas.schemasv2 import CreateDeploymentSchema
from bentoml._internal.utils.cattr import bentoml_cattr
from cattrs.gen import make_dict_structure_fn

from serving.paths import REPO_ROOT
from serving.settings import ServiceSettings

DEPLOY = REPO_ROOT / "deploy"
K8S = DEPLOY / "kubernetes"
DASHBOARD = DEPLOY / "grafana" / "dashboard.json"
# Files in deploy/kubernetes that are not applied by `kubectl apply -k` (templates, Helm values).
NOT_APPLIED = {
    "kustomization.yaml",
    "secret.example.yaml",
    "prometheus-adapter-values.yaml",
    "prometheus-scrape-config.yaml",
}
# The oldest and the newest Kubernetes API the validator ships schemas for.
K8S_VERSIONS = ["1.25.0", "1.37.0"]

# Settings being added to serving/settings.py by colleagues right now; remove each name here when its
# field lands (the lead's call).
PENDING_SETTINGS = {"ADAPTER_STORE"}
# Metrics being added by colleagues (extraction jobs); remove when they land.
PENDING_METRICS = {"extraction_job_records_total", "extraction_jobs_running"}
# BentoML 1.4.39's HTTP metrics for a new-style service: RunnerTrafficMetricsMiddleware
# (bentoml/_internal/server/http/instruments.py) under the `bentoml_service` namespace of its default
# configuration (bentoml/_internal/configuration/v2/default_configuration.yaml, api_server.metrics).
BENTOML_METRICS = {
    "bentoml_service_request_total",
    "bentoml_service_request_in_progress",
    *(f"bentoml_service_request_duration_seconds{suffix}" for suffix in ("_bucket", "_sum", "_count")),
}
# Source folders whose prometheus_client metrics end up on the service's /metrics.
SERVICE_SOURCES = ["service.py", "serving", "ner", "viggo", "jobs"]


def load_yaml(path: Path) -> dict[str, Any]:
    document = yaml.safe_load(path.read_text())
    assert isinstance(document, dict), f"{path} is not one YAML mapping"
    return document


def env_list(entries: list[dict[str, str]]) -> dict[str, str]:
    return {entry["name"]: entry["value"] for entry in entries}


@pytest.fixture(scope="module")
def service_name() -> str:
    import service

    return str(service.llm_service.name)


# --- every file ------------------------------------------------------------------------------


def test_every_deploy_file_parses() -> None:
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in {".yaml", ".yml", ".json"})
    assert {p.relative_to(DEPLOY).as_posix() for p in files} >= {
        "bentocloud.yaml",
        "grafana/dashboard.json",
        "kubernetes/deployment.yaml",
        "kubernetes/hpa.yaml",
    }
    for path in files:
        parsed = json.loads(path.read_text()) if path.suffix == ".json" else list(yaml.safe_load_all(path.read_text()))
        assert parsed, f"{path} is empty"


def environment_variables() -> Iterator[tuple[str, str]]:
    """Every environment variable a deploy file sets, and where: YAML fields and `KEY=` in commands."""
    cloud = load_yaml(DEPLOY / "bentocloud.yaml")
    for name in env_list(cloud["envs"]):
        yield name, "bentocloud.yaml envs"
    for service in cloud["services"].values():
        for name in env_list(service.get("envs") or []):
            yield name, "bentocloud.yaml service envs"
    yield from ((name, "configmap.yaml") for name in load_yaml(K8S / "configmap.yaml")["data"])
    yield from ((name, "secret.example.yaml") for name in load_yaml(K8S / "secret.example.yaml")["stringData"])
    for container in load_yaml(K8S / "deployment.yaml")["spec"]["template"]["spec"]["containers"]:
        yield from ((entry["name"], "deployment.yaml env") for entry in container.get("env", []))
    # `bentoml secret create NAME KEY=...`, `--from-literal=KEY=...`, `MODEL=...` in comments and the README.
    for path in [*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.md")]:
        for name in re.findall(r"(?<![\w-])([A-Z][A-Z0-9_]{2,})=", path.read_text()):
            yield name, str(path.relative_to(DEPLOY))


def test_every_environment_variable_is_a_setting_or_aws() -> None:
    fields = {name.upper() for name in ServiceSettings.model_fields}
    used = dict(environment_variables())
    assert len(used) >= 10
    unknown = {
        name: where
        for name, where in used.items()
        if name not in fields and name not in PENDING_SETTINGS and not name.startswith("AWS_")
    }
    assert not unknown, f"not settings of serving/settings.py: {unknown}"


def settings_from(values: dict[str, str]) -> ServiceSettings:
    """The settings a replica gets from these variables, validated as the service validates them."""
    known = {name.lower(): value for name, value in values.items() if name.lower() in ServiceSettings.model_fields}
    return ServiceSettings.model_validate(known)


# --- BentoCloud --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cloud() -> dict[str, Any]:
    return load_yaml(DEPLOY / "bentocloud.yaml")


def strict_converter() -> cattrs.Converter:
    """BentoML's own converter ignores unknown keys (`__forbid_extra_keys__ = False`): a misspelt
    field would deploy without a word. This one refuses them."""
    converter = cattrs.Converter()
    converter.register_structure_hook_factory(
        attr.has, lambda cls: make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True)
    )
    return converter


def test_bentocloud_file_has_only_fields_bentoml_knows(cloud: dict[str, Any]) -> None:
    # The CLI fills `bento` (built from the current folder) before structuring the file.
    config = {**cloud, "bento": "llm-extraction:test"}
    strict_converter().structure(config, CreateDeploymentSchema)
    schema = bentoml_cattr.structure(config, CreateDeploymentSchema)  # what `bentoml deploy -f` does
    DeploymentAPI._fix_and_validate_schema(schema)
    assert schema.secrets and schema.envs


def test_bentocloud_config_overrides_are_a_valid_service_config(cloud: dict[str, Any], service_name: str) -> None:
    from _bentoml_sdk.service.config import validate

    assert set(cloud["services"]) == {service_name}
    for service in cloud["services"].values():
        validate(service["config_overrides"])


def test_bentocloud_scales_from_zero_on_one_engine_batch_per_replica(cloud: dict[str, Any]) -> None:
    service = next(iter(cloud["services"].values()))
    settings = settings_from(env_list(cloud["envs"]))
    traffic = service["config_overrides"]["traffic"]
    assert service["instance_type"].startswith("gpu.")
    assert service["scaling"]["min_replicas"] == 0 < service["scaling"]["max_replicas"]
    assert traffic["concurrency"] == settings.max_num_seqs
    # A replica admits a second batch beyond the autoscaling target before it refuses with 429.
    assert settings.admitted_concurrency >= 2 * traffic["concurrency"]
    assert traffic["timeout"] == settings.request_timeout_s
    assert service["extras"]["bento_function_overrides"]["extraPodSpec"]["terminationGracePeriodSeconds"] > (
        settings.shutdown_grace_s
    )


def test_bentocloud_secrets_are_created_as_documented(cloud: dict[str, Any]) -> None:
    """The header's `bentoml secret create` commands make exactly the secrets the file attaches, and
    they hold the API key and the S3 credentials."""
    created = dict(re.findall(r"bentoml secret create (\S+) (.+)", (DEPLOY / "bentocloud.yaml").read_text()))
    assert set(created) == set(cloud["secrets"])
    keys = {key for line in created.values() for key in re.findall(r"([A-Z][A-Z0-9_]+)=", line)}
    assert keys == {"API_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
    assert not keys & set(env_list(cloud["envs"])), "a secret's key is also set in plain text"


# --- Kubernetes --------------------------------------------------------------------------------


def manifests() -> dict[str, dict[str, Any]]:
    """The applied manifests and the Secret's template."""
    validated = NOT_APPLIED - {"secret.example.yaml"}
    return {path.name: load_yaml(path) for path in sorted(K8S.glob("*.yaml")) if path.name not in validated}


def test_kustomization_applies_every_manifest() -> None:
    resources = load_yaml(K8S / "kustomization.yaml")["resources"]
    assert sorted(resources) == sorted(p.name for p in K8S.glob("*.yaml") if p.name not in NOT_APPLIED)


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_kubernetes_manifests_match_the_api_schema(version: str) -> None:
    kinds = set()
    for name, document in manifests().items():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{name} (Kubernetes {version}): {error.message} at {list(error.path)}")
        kinds.add(document["kind"])
    assert kinds == {
        "ConfigMap",
        "Secret",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    }


@pytest.fixture(scope="module")
def k8s() -> dict[str, dict[str, Any]]:
    return {document["kind"]: document for document in manifests().values()}


@pytest.fixture(scope="module")
def pod(k8s: dict[str, dict[str, Any]]) -> dict[str, Any]:
    return dict(k8s["Deployment"]["spec"]["template"]["spec"])


@pytest.fixture(scope="module")
def container(pod: dict[str, Any]) -> dict[str, Any]:
    (only,) = pod["containers"]
    return dict(only)


@pytest.fixture(scope="module")
def replica_settings(k8s: dict[str, dict[str, Any]]) -> ServiceSettings:
    return settings_from({**k8s["ConfigMap"]["data"], **k8s["Secret"]["stringData"]})


def test_pod_gets_its_settings_from_the_configmap_and_the_secret(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any], replica_settings: ServiceSettings
) -> None:
    sources = {next(iter(source)): next(iter(source.values()))["name"] for source in container["envFrom"]}
    assert sources == {
        "configMapRef": k8s["ConfigMap"]["metadata"]["name"],
        "secretRef": k8s["Secret"]["metadata"]["name"],
    }
    assert replica_settings.api_key is not None
    assert replica_settings.results_uri.startswith("s3://")


def test_probes_are_the_service_health_endpoints_on_its_port(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    import service

    endpoints = service.llm_service.config["endpoints"]
    (port,) = container["ports"]
    # BentoML's image serves on 3000 (its Dockerfile template's EXPOSE; `bentoml serve`'s default).
    assert port["containerPort"] == 3000
    for probe, path in [
        ("readinessProbe", endpoints["readyz"]),
        ("livenessProbe", endpoints["livez"]),
        ("startupProbe", endpoints["livez"]),
    ]:
        assert container[probe]["httpGet"] == {"path": path, "port": port["name"]}, probe
    assert (endpoints["readyz"], endpoints["livez"]) == ("/readyz", "/livez")
    (service_port,) = k8s["Service"]["spec"]["ports"]
    assert service_port["targetPort"] == port["name"]
    # Model download and engine start: at least 10 minutes before the pod is declared failed.
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 600


def test_termination_grace_outlasts_the_drain(
    pod: dict[str, Any], container: dict[str, Any], replica_settings: ServiceSettings
) -> None:
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop_s = float(command[1])
    # The engine's stop and the processes' exit take ~10 s after the drain (tests/lifecycle measured 5-7 s).
    assert pod["terminationGracePeriodSeconds"] >= pre_stop_s + replica_settings.shutdown_grace_s + 10
    assert replica_settings.shutdown_grace_s == ServiceSettings().shutdown_grace_s  # the documented default


def test_spool_lives_on_the_shared_claim_at_spool_dir(
    k8s: dict[str, dict[str, Any]], pod: dict[str, Any], container: dict[str, Any], replica_settings: ServiceSettings
) -> None:
    mounts = {mount["name"]: Path(mount["mountPath"]) for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert replica_settings.resolved_spool_dir in mounts.values()
    (spool,) = [name for name, path in mounts.items() if path == replica_settings.resolved_spool_dir]
    claim = k8s["PersistentVolumeClaim"]
    assert volumes[spool]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]
    # Every replica mounts the same claim: a lost replica's spool is uploaded by the others.
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    assert replica_settings.cache_dir in mounts.values()
    assert not replica_settings.resolved_spool_dir.is_relative_to(replica_settings.cache_dir)
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsUser"]


def test_one_gpu_per_replica(container: dict[str, Any], replica_settings: ServiceSettings) -> None:
    resources = container["resources"]
    assert resources["limits"]["nvidia.com/gpu"] == str(replica_settings.tensor_parallel_size)
    assert resources["requests"]["nvidia.com/gpu"] == resources["limits"]["nvidia.com/gpu"]


def test_prometheus_scrapes_the_pods_with_the_api_key(
    k8s: dict[str, dict[str, Any]], container: dict[str, Any]
) -> None:
    (job,) = load_yaml(K8S / "prometheus-scrape-config.yaml")["scrape_configs"]
    keep = {
        tuple(rule["source_labels"]): rule["regex"] for rule in job["relabel_configs"] if rule.get("action") == "keep"
    }
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert keep[("__meta_kubernetes_pod_label_app_kubernetes_io_name",)] == labels["app.kubernetes.io/name"]
    assert keep[("__meta_kubernetes_pod_container_port_name",)] == container["ports"][0]["name"]
    assert job["metrics_path"] == "/metrics"
    # /metrics is behind the API key: the credentials file is the Secret's API_KEY, mounted.
    secret = k8s["Secret"]
    credentials = Path(job["authorization"]["credentials_file"])
    assert (credentials.parent.name, credentials.name) == (secret["metadata"]["name"], "API_KEY")
    assert "API_KEY" in secret["stringData"]
    # The adapter rules (and so the HPA) select series by these two labels.
    targets = {rule.get("target_label") for rule in job["relabel_configs"]}
    assert {"namespace", "pod"} <= targets


def test_rollout_never_drops_below_current_capacity(k8s: dict[str, dict[str, Any]]) -> None:
    assert k8s["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_selectors_match_the_pods(k8s: dict[str, dict[str, Any]]) -> None:
    labels = k8s["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert k8s["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k8s["Service"]["spec"]["selector"].items() <= labels.items()
    assert k8s["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()


def test_hpa_scales_the_deployment_on_requests_in_flight(
    k8s: dict[str, dict[str, Any]], replica_settings: ServiceSettings
) -> None:
    hpa = k8s["HorizontalPodAutoscaler"]["spec"]
    target = hpa["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", k8s["Deployment"]["metadata"]["name"])
    assert 1 <= hpa["minReplicas"] < hpa["maxReplicas"]
    targets = {metric["pods"]["metric"]["name"]: metric["pods"]["target"] for metric in hpa["metrics"]}
    # The adapter rules define every metric the HPA reads, from series the service exports.
    rules = load_yaml(K8S / "prometheus-adapter-values.yaml")["rules"]["custom"]
    sources: dict[str, str] = {}
    for rule in rules:
        series = re.fullmatch(r"\^(.+)\$", rule["name"]["matches"])
        assert series is not None, rule["name"]["matches"]
        sources[rule["name"]["as"]] = series.group(1)
    assert set(targets) == set(sources)
    for rule in rules:
        assert sources[rule["name"]["as"]] in rule["seriesQuery"]
    assert set(sources.values()) <= exported_metrics()
    in_flight = next(name for name, series in sources.items() if series == "bentoml_service_request_in_progress")
    # One engine batch in flight per replica, as BentoCloud's `concurrency`.
    assert targets[in_flight] == {"type": "AverageValue", "averageValue": str(replica_settings.max_num_seqs)}
    assert replica_settings.admitted_concurrency > replica_settings.max_num_seqs


# --- metric names ------------------------------------------------------------------------------


def service_metric_names() -> set[str]:
    """The series the service's own prometheus_client metrics export, read from its source."""
    kinds = {
        "Counter": ["_total"],
        "Gauge": [""],
        "Histogram": ["_bucket", "_sum", "_count"],
        "Summary": ["_sum", "_count"],
    }
    names: set[str] = set()
    files = [p for source in SERVICE_SOURCES for p in sorted((REPO_ROOT / source).glob("**/*.py"))]
    files += [REPO_ROOT / source for source in SERVICE_SOURCES if source.endswith(".py")]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in kinds):
                continue
            args = [*node.args[:1], *(keyword.value for keyword in node.keywords if keyword.arg == "name")]
            for arg in args:
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    base = arg.value.removesuffix("_total") if node.func.id == "Counter" else arg.value
                    names |= {base + suffix for suffix in kinds[node.func.id]}
    return names


def vllm_metric_names() -> set[str]:
    """vLLM's `vllm:*` series, read from the installed vLLM's metrics code (not imported: slow)."""
    spec = importlib.util.find_spec("vllm")
    assert spec is not None and spec.origin is not None
    source = (Path(spec.origin).parent / "v1" / "metrics" / "loggers.py").read_text()
    suffixes = {"gauge": [""], "counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
    found = re.findall(r"self\._(gauge|counter|histogram)_cls\(\s*name=\"(vllm:\w+)\"", source)
    assert len(found) > 20, "vLLM's metric definitions moved: update this parser"
    return {name + suffix for kind, name in found for suffix in suffixes[kind]}


def exported_metrics() -> set[str]:
    return service_metric_names() | vllm_metric_names() | BENTOML_METRICS | PENDING_METRICS


def dashboard_queries() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def metric_names(expr: str) -> set[str]:
    # Every selector in the dashboard filters by replica (`{instance=~"$instance"}`), so a metric
    # name is the identifier before a `{`.
    return set(re.findall(r"([A-Za-z_:][\w:]*)\{", expr))


def test_service_metrics_are_found_in_its_source() -> None:
    assert {"ner_dropped_entities_total", "results_spool_pending", "admission_rejected_total"} <= service_metric_names()


def test_dashboard_queries_only_metrics_the_service_exports() -> None:
    exported = exported_metrics()
    queries = dashboard_queries()
    assert len(queries) >= 15
    for expr in queries:
        assert metric_names(expr), f"no metric selector in {expr!r}"
        assert metric_names(expr) <= exported, f"{expr!r} queries {metric_names(expr) - exported}"


def test_dashboard_covers_what_operators_watch() -> None:
    used = set().union(*(metric_names(expr) for expr in dashboard_queries()))
    assert used >= {
        "bentoml_service_request_total",
        "bentoml_service_request_duration_seconds_bucket",
        "bentoml_service_request_in_progress",
        "vllm:num_requests_running",
        "vllm:num_requests_waiting",
        "vllm:kv_cache_usage_perc",
        "vllm:time_to_first_token_seconds_bucket",
        "vllm:request_time_per_output_token_seconds_bucket",
        "ner_dropped_entities_total",
        "results_spool_pending",
        "admission_rejected_total",
        "extraction_job_records_total",
        "extraction_jobs_running",
        "viggo_ungrounded_values_total",
        "viggo_redecoded_answers_total",
    }


def test_dashboard_is_importable_into_grafana() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and dashboard["schemaVersion"] >= 36
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        columns, rows = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        cell = {(x, y) for x in columns for y in rows}
        assert not cell & cells, f"{panel['title']} overlaps another panel"
        cells |= cell
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
            assert all(target["datasource"]["uid"] == "${datasource}" for target in panel["targets"])
