"""The Helm chart: it lints, renders valid manifests, and cannot drift from the settings or the topic catalog."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from pydantic import SecretStr

from service.catalog import load_catalog
from service.settings import PACKAGE, Settings
from tests.deploy.conftest import (
    CHART,
    CRD_SCHEMAS,
    KUBE_VERSIONS,
    NAMESPACE,
    PRODUCTION,
    ROOT,
    Render,
    by_kind,
    one,
    run_helm,
)
from tests.unit.test_catalog import FIXED

pytestmark = pytest.mark.deploy

CATALOG = ROOT / "topics" / "catalog.json"
VALUES = yaml.safe_load((CHART / "values.yaml").read_text())
CRDS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafkatopic_v1beta2.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject_v1alpha1.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "triggerauthentication_v1alpha1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor_v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule_v1.json",
}
# Settings the chart leaves to the image on purpose: the catalog and schemas ship inside the package.
PACKAGED = {"OUTBOUND_TOPIC_CATALOG", "OUTBOUND_SCHEMAS_DIR"}
# Settings the chart sets only when their Secret is named (CA certificates).
ONLY_WHEN_CONFIGURED = {"OUTBOUND_SSL_CAFILE", "OUTBOUND_SMTP_CAFILE"}


def settings_env() -> set[str]:
    return {f"OUTBOUND_{name.upper()}" for name in Settings.model_fields}


def worker(manifests: list[dict[str, Any]]) -> dict[str, Any]:
    return one(manifests, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]


def env_names(container: dict[str, Any]) -> set[str]:
    return {e["name"] for e in container["env"] if e["name"].startswith("OUTBOUND_")}


@pytest.mark.parametrize("values", [(), (PRODUCTION,)], ids=["default", "production"])
def test_helm_lint_strict(helm: str, values: tuple[Path, ...]) -> None:
    args = ["lint", "--strict", str(CHART)] + [a for v in values for a in ("--values", str(v))]
    result = run_helm(helm, *args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("kube_version", KUBE_VERSIONS)
@pytest.mark.parametrize("values", [(), (PRODUCTION,)], ids=["default", "production"])
def test_every_manifest_validates_offline(render: Render, values: tuple[Path, ...], kube_version: str) -> None:
    manifests = render(*values, kube_version=kube_version)
    for manifest in manifests:
        crd = CRDS.get((manifest["apiVersion"], manifest["kind"]))
        if crd:
            schema = json.loads((CRD_SCHEMAS / crd).read_text())
            jsonschema.validate(manifest, schema)
        else:
            kubernetes_validate.validate(manifest, kube_version, strict=True)


def test_production_renders_every_optional_part(render: Render) -> None:
    kinds = {m["kind"] for m in render(PRODUCTION)}
    assert kinds == {
        "StatefulSet",
        "Service",
        "ServiceAccount",
        "PodDisruptionBudget",
        "NetworkPolicy",
        "ServiceMonitor",
        "PrometheusRule",
        "ScaledObject",
        "TriggerAuthentication",
        "KafkaTopic",
    }, "production values use an existing Secret and Strimzi: no Secret and no topics Job"


def test_strimzi_topics_are_exactly_the_catalog(render: Render) -> None:
    production = yaml.safe_load(PRODUCTION.read_text())["kafka"]
    wanted = load_catalog(CATALOG, production["topicPrefix"], production["replicationFactor"], production["appId"])
    manifests = render(PRODUCTION)
    rendered = {
        t["spec"]["topicName"]: (t["spec"]["partitions"], t["spec"]["replicas"], t["spec"].get("config", {}))
        for t in by_kind(manifests, "KafkaTopic")
    }
    assert rendered == {s.name: (s.partitions, s.replication, s.configs) for s in wanted}
    assert len(by_kind(manifests, "KafkaTopic")) == len(rendered), "a topic is rendered twice"
    assert {t["metadata"]["labels"]["strimzi.io/cluster"] for t in by_kind(manifests, "KafkaTopic")} == {"prod"}


def test_strimzi_topics_follow_prefix_and_app_id(render: Render) -> None:
    sets = {"kafka.topicPrefix": "stage.", "kafka.appId": "outbound-stage", "kafka.replicationFactor": 2}
    manifests = render(PRODUCTION, sets=sets)
    wanted = load_catalog(CATALOG, "stage.", 2, "outbound-stage")
    assert {t["spec"]["topicName"] for t in by_kind(manifests, "KafkaTopic")} == {s.name for s in wanted}
    assert {t["spec"]["replicas"] for t in by_kind(manifests, "KafkaTopic")} == {2}


def test_the_chart_reads_the_one_topic_catalog() -> None:
    assert (CHART / "files" / "catalog.json").read_bytes() == CATALOG.read_bytes()


def test_topics_job_applies_the_catalog_before_install_and_upgrade(render: Render) -> None:
    manifests = render()
    job = one(manifests, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    container = job["spec"]["template"]["spec"]["containers"][0]
    assert container["args"] == ["topics", "apply"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["OUTBOUND_TOPIC_PREFIX"] == VALUES["kafka"]["topicPrefix"]
    assert env["OUTBOUND_REPLICATION_FACTOR"] == str(VALUES["kafka"]["replicationFactor"])
    assert env["OUTBOUND_APP_ID"] == VALUES["kafka"]["appId"]
    assert env["OUTBOUND_PARTITIONS"] == str(VALUES["kafka"]["partitions"])
    assert env["OUTBOUND_PARTITIONS"] == worker_env(manifests)["OUTBOUND_PARTITIONS"]
    assert env["OUTBOUND_BROKER"] == worker_env(manifests)["OUTBOUND_BROKER"]
    assert not by_kind(manifests, "KafkaTopic")


def worker_env(manifests: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in worker(manifests)["env"] if "value" in e}


def test_chart_sets_exactly_the_settings_the_service_reads(render: Render) -> None:
    rendered = env_names(worker(render(PRODUCTION)))
    expected = settings_env() - PACKAGED
    assert not rendered - settings_env(), f"the chart sets variables no setting reads: {sorted(rendered - expected)}"
    assert not expected - rendered, (
        f"settings the chart does not set: {sorted(expected - rendered)}; add each under `config` in "
        "deploy/helm/recipe-outbound/values.yaml (and its type in values.schema.json), or, if it is a secret, "
        "under `secrets.keys`"
    )
    default = env_names(worker(render()))
    assert default <= settings_env()
    assert settings_env() - default == PACKAGED | ONLY_WHEN_CONFIGURED


def test_catalog_and_schemas_come_from_the_package() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.topic_catalog.parent.parent == PACKAGE and settings.topic_catalog.is_file()
    assert settings.schemas_dir.parent == PACKAGE and any(settings.schemas_dir.glob("*.schema.json"))


def test_every_value_parses_as_the_setting_it_sets(render: Render, monkeypatch: pytest.MonkeyPatch) -> None:
    manifests = render()
    env = worker_env(manifests)
    for name in list(os.environ):
        if name.startswith("OUTBOUND_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value.replace("$(POD_NAME)", "r-recipe-outbound-0"))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for name, value in VALUES["config"].items():
        assert getattr(settings, name) == value, name
    assert (
        settings.canonical_url
        == f"http://r-recipe-outbound-0.r-recipe-outbound-peers.{NAMESPACE}.svc.cluster.local:6066"
    )
    assert settings.web_host == "0.0.0.0"
    assert settings.bootstrap_servers() == VALUES["kafka"]["bootstrapServers"]
    assert settings.partitions == VALUES["kafka"]["partitions"]
    assert settings.instance_id == "r-recipe-outbound-0"


def test_each_worker_is_a_static_member_named_after_its_pod(render: Render) -> None:
    manifests = render(PRODUCTION)
    env = [e["name"] for e in worker(manifests)["env"]]
    assert worker_env(manifests)["OUTBOUND_INSTANCE_ID"] == "$(POD_NAME)"
    assert env.index("POD_NAME") < env.index("OUTBOUND_INSTANCE_ID"), "Kubernetes expands only earlier variables"
    assert one(manifests, "StatefulSet")["kind"] == "StatefulSet", "a pod's name survives its restarts"
    assert "OUTBOUND_INSTANCE_ID" not in worker_env(render(sets={"staticMembership": False}))


def test_several_bootstrap_servers(render: Render) -> None:
    env = worker_env(render(sets={"kafka.bootstrapServers": r"k0:9092\, k1:9092"}))
    assert env["OUTBOUND_BROKER"] == "kafka://k0:9092;kafka://k1:9092"


def test_secrets_come_from_kubernetes_secrets(render: Render) -> None:
    secret_settings = {f"OUTBOUND_{n.upper()}" for n, f in Settings.model_fields.items() if f.annotation is SecretStr}
    assert secret_settings <= set(VALUES["secrets"]["keys"]), "a secret setting would have to be a plain value"
    manifests = render(PRODUCTION)
    assert not by_kind(manifests, "Secret")
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in worker(manifests)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    for name in secret_settings | {"OUTBOUND_SASL_USERNAME", "OUTBOUND_SMTP_USERNAME"}:
        assert refs[name]["name"] == "recipe-outbound-credentials", name
    created = render(sets={"secrets.values.secret-keys": "k1", "secrets.values.api-token": "t"})
    assert [s["metadata"]["name"] for s in by_kind(created, "Secret")] == ["r-recipe-outbound"]
    assert one(created, "Secret")["stringData"] == {"secret-keys": "k1", "api-token": "t"}
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]
        for e in worker(created)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["OUTBOUND_SECRET_KEYS"] == {"name": "r-recipe-outbound", "key": "secret-keys", "optional": True}


def test_topics_job_gets_the_kafka_credentials_before_the_release_secret_exists(render: Render) -> None:
    sets = {"secrets.values.kafka-sasl-password": "p", "secrets.values.secret-keys": "k1"}
    manifests = render(sets=sets)
    hook = next(s for s in by_kind(manifests, "Secret") if s["metadata"]["name"] == "r-recipe-outbound-topics")
    assert hook["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert hook["stringData"] == {"kafka-sasl-password": "p"}, "only what the Job needs"
    job = one(manifests, "Job")["spec"]["template"]["spec"]["containers"][0]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in job["env"] if "valueFrom" in e}
    assert refs["OUTBOUND_SASL_PASSWORD"]["name"] == "r-recipe-outbound-topics"
    assert "OUTBOUND_SECRET_KEYS" not in refs


def test_a_new_token_is_one_line_of_values(render: Render) -> None:
    manifests = render(sets={"secrets.keys.OUTBOUND_API_OPERATE_TOKEN": "api-operate-token"})
    refs = {
        e["name"]: e["valueFrom"]["secretKeyRef"]["key"]
        for e in worker(manifests)["env"]
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert refs["OUTBOUND_API_OPERATE_TOKEN"] == "api-operate-token"


def test_worker_pod_is_hardened_and_probed(render: Render) -> None:
    manifests = render(PRODUCTION)
    statefulset = one(manifests, "StatefulSet")
    pod = statefulset["spec"]["template"]["spec"]
    container = worker(manifests)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert set(container["resources"]) == {"requests", "limits"}
    mounts = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
    env = worker_env(manifests)
    assert mounts == {env["OUTBOUND_DATA_DIR"], env["OUTBOUND_SPOOL_DIR"], "/tmp"}
    assert env["OUTBOUND_LOCAL_DELIVERY_ROOT"].startswith(env["OUTBOUND_DATA_DIR"] + "/")
    claims = statefulset["spec"]["volumeClaimTemplates"]
    assert [c["metadata"]["name"] for c in claims] == ["data"]
    assert claims[0]["spec"]["resources"]["requests"]["storage"] == "50Gi"
    assert pod["terminationGracePeriodSeconds"] >= VALUES["config"]["shutdown_grace_seconds"] + 15
    assert one(manifests, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    assert "replicas" not in statefulset["spec"], "KEDA owns the replica count"
    assert render()[0] and one(render(), "StatefulSet")["spec"]["replicas"] == 1


def test_image_user_is_the_pod_user() -> None:
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user, "the image runs as a numeric user"
    assert (int(user.group(1)), int(user.group(2))) == (
        VALUES["podSecurityContext"]["runAsUser"],
        VALUES["podSecurityContext"]["runAsGroup"],
    )


def test_workers_reach_each_other_through_the_headless_service(render: Render) -> None:
    manifests = render(PRODUCTION)
    services = {s["metadata"]["name"]: s for s in by_kind(manifests, "Service")}
    peers = services[one(manifests, "StatefulSet")["spec"]["serviceName"]]
    assert peers["spec"]["clusterIP"] == "None" and peers["spec"]["publishNotReadyAddresses"] is True
    assert worker_env(manifests)["OUTBOUND_CANONICAL_URL"].startswith(
        f"http://$(POD_NAME).{peers['metadata']['name']}.{NAMESPACE}.svc."
    )
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= peers["metadata"]["labels"].items()
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert "r-recipe-outbound" in services, "the API and page Service"


def test_autoscaling_is_capped_at_the_partition_count(render: Render, refused: Any) -> None:
    partitions = max(s.partitions for s in load_catalog(CATALOG, "", 1))
    scaled = one(render(PRODUCTION), "ScaledObject")
    assert scaled["spec"]["scaleTargetRef"]["kind"] == "StatefulSet"
    assert scaled["spec"]["maxReplicaCount"] <= partitions
    assert scaled["spec"]["triggers"][0]["metadata"]["allowIdleConsumers"] == "false"
    assert "partition count" in refused(PRODUCTION, sets={"autoscaling.maxReplicas": partitions + 1})


def test_kafka_partitions_sets_the_family_the_jobs_and_workers_count_and_the_replica_limit(
    render: Render, refused: Any
) -> None:
    strimzi = {"topics.mode": "strimzi", "topics.strimzi.cluster": "c", "kafka.partitions": 12}
    manifests = render(sets={**strimzi, "replicaCount": 12})
    wanted = load_catalog(CATALOG, "", VALUES["kafka"]["replicationFactor"], VALUES["kafka"]["appId"], partitions=12)
    rendered = {t["spec"]["topicName"]: t["spec"]["partitions"] for t in by_kind(manifests, "KafkaTopic")}
    assert rendered == {s.name: s.partitions for s in wanted}, "the chart and the service apply one rule"
    family = {s.name for s in wanted if s.follows_setting}
    assert {rendered[name] for name in family} == {12}
    assert {"recipes", "order-links", "orders", "deliveries", "recipe-outbound-orders-changelog"} <= family
    assert {name: n for name, n in rendered.items() if name not in family} == FIXED
    assert one(manifests, "StatefulSet")["spec"]["replicas"] == 12
    assert worker_env(manifests)["OUTBOUND_PARTITIONS"] == "12"
    job = one(render(sets={"kafka.partitions": 12}), "Job")["spec"]["template"]["spec"]["containers"][0]
    assert {e["name"]: e.get("value") for e in job["env"]}["OUTBOUND_PARTITIONS"] == "12"
    assert "partition count (12" in refused(sets={**strimzi, "replicaCount": 13})
    scaled = one(render(PRODUCTION, sets={"kafka.partitions": 12, "autoscaling.maxReplicas": 12}), "ScaledObject")
    assert scaled["spec"]["maxReplicaCount"] == 12
    assert "partition count (12" in refused(PRODUCTION, sets={"kafka.partitions": 12, "autoscaling.maxReplicas": 13})
    assert "kafka/partitions" in refused(sets={"kafka.partitions": 1001})


def test_alerts_cover_what_matters(render: Render) -> None:
    rules = one(render(PRODUCTION), "PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {
        "OutboundDeliveriesFailing",
        "OutboundTimeToDeliverSlow",
        "OutboundConsumerLagGrowing",
        "OutboundInvalidEventsSpiking",
        "OutboundNotificationsLost",
        "OutboundDeliveriesLate",
        "OutboundIntegrationDisabled",
    }


def test_alerts_use_metrics_the_service_exports(render: Render) -> None:
    source = "\n".join(p.read_text() for p in (ROOT / "service").rglob("*.py"))
    if "prometheus_client" not in source:
        pytest.skip("the service exports no metrics yet")
    rules = one(render(PRODUCTION), "PrometheusRule")["spec"]["groups"][0]["rules"]
    names = {n for r in rules for n in re.findall(r"\boutbound_[a-z_]+", r["expr"])}
    missing = {n for n in names if re.sub(r"_(total|bucket|count|sum)$", "", n) not in source}
    assert not missing, f"alerts on metrics the service does not define: {sorted(missing)}"


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        ({"replicaCount": 0}, "replicaCount"),
        ({"config.log_level": "verbose"}, "log_level"),
        ({"config.max_atempts": 3}, "max_atempts"),
        ({"kafka.securityProtocol": "TLS"}, "securityProtocol"),
        ({"kafka.bootstrapServers": "kafka://k:9092"}, "bootstrapServers"),
        ({"topics.mode": "strimzi"}, "topics.strimzi.cluster"),
        ({"terminationGracePeriodSeconds": 30}, "terminationGracePeriodSeconds"),
        ({"securityContext.readOnlyRootFilesystem": False}, "readOnlyRootFilesystem"),
        ({"replicaCount": 7}, "partition count"),
    ],
)
def test_bad_values_fail_with_a_clear_message(refused: Any, sets: dict[str, Any], message: str) -> None:
    assert message in refused(sets=sets)


def test_schema_knows_every_config_value() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    assert set(schema["properties"]["config"]["properties"]) == set(VALUES["config"])
