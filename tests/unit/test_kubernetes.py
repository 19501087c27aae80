"""deploy/kubernetes: every overlay renders with `kubectl kustomize`, every object validates offline
against the Kubernetes schemas (kubernetes-validate, pinned), and the invariants hold."""

from __future__ import annotations

import re
import shutil
import subprocess
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from bot.config.settings import Config

ROOT = Path(__file__).resolve().parents[2]
KUBE = ROOT / "deploy" / "kubernetes"
KUBERNETES_VERSION = "1.37.0"
OVERLAYS = ["base", "overlays/production", "overlays/socket-mode", "overlays/monitoring"]
CRDS = {"ServiceMonitor", "PrometheusRule"}
EGRESS_PORTS = {53, 5432, 6379, 9200, 3000, 9090, 443}
SECRET_SHAPES = re.compile(
    r"xox[abposr]-|xapp-|://[^/\s:@]+:[^/\s@]+@|-----BEGIN [A-Z ]*PRIVATE KEY|AKIA[0-9A-Z]{16}"
)
SECRET_NAMES = re.compile(r"TOKEN|SECRET|PASSWORD|DATABASE_URL|REDIS_URL|ACCESS_KEY")

pytestmark = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@cache
def rendered(overlay: str) -> tuple[str, list[dict]]:
    """The overlay as `kubectl kustomize` renders it: the text and its objects."""
    text = subprocess.run(
        ["kubectl", "kustomize", str(KUBE / overlay)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return text, [doc for doc in yaml.safe_load_all(text) if doc]


def one(overlay: str, kind: str, name: str | None = None) -> dict:
    """The overlay's only object of a kind (and name)."""
    found = [
        d
        for d in rendered(overlay)[1]
        if d["kind"] == kind and (name is None or d["metadata"]["name"].startswith(name))
    ]
    assert len(found) == 1, (overlay, kind, [d["metadata"]["name"] for d in found])
    return found[0]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_object_validates_against_the_kubernetes_schemas(overlay):
    """Each rendered object is valid for Kubernetes 1.37, strictly (no unknown fields)."""
    for doc in rendered(overlay)[1]:
        if doc["kind"] not in CRDS:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_validation_catches_a_misspelt_field():
    """The validator is not a no-op: a misspelt probe field fails strict validation."""
    deployment = yaml.safe_load(yaml.safe_dump(one("base", "Deployment")))
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["periodSecond"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_deployment_keeps_replicas_probes_and_a_long_enough_grace(overlay):
    """2+ replicas, no unavailable pod in a rollout, spread over nodes, /healthz for liveness and
    start-up, /readyz for readiness, and a grace period longer than forge's own stop."""
    spec = one(overlay, "Deployment")["spec"]
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert spec["replicas"] >= 2 and spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert "kubernetes.io/hostname" in {c["topologyKey"] for c in pod["topologySpreadConstraints"]}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    config = Config.model_validate(
        yaml.safe_load(one(overlay, "ConfigMap", "forge-config")["data"]["forge.yml"])
    )
    stop = config.replicas.deregister_seconds + config.replicas.drain_seconds
    assert pod["terminationGracePeriodSeconds"] >= stop + 10
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_locked_down(overlay):
    """Non-root, read-only root filesystem, no privilege escalation, every capability dropped;
    writable paths are emptyDir volumes."""
    for kind in ("Deployment", "Job"):
        pod = one(overlay, kind)["spec"]["template"]["spec"]
        assert (
            pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
        )
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"] and sc["runAsNonRoot"]
            writable = {m["mountPath"] for m in container["volumeMounts"] if not m.get("readOnly")}
            assert "/tmp" in writable
            volumes = {v["name"]: v for v in pod["volumes"]}
            assert all(
                "emptyDir" in volumes[m["name"]]
                for m in container["volumeMounts"]
                if not m.get("readOnly")
            )


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_no_secret_value_in_any_manifest(overlay):
    """No Secret object, no token or password in the text, and every secret-like variable comes
    from the existing Secret, never from a literal or a ConfigMap."""
    text, docs = rendered(overlay)
    assert "Secret" not in {d["kind"] for d in docs}
    assert not SECRET_SHAPES.search(text)
    for doc in docs:
        if doc["kind"] == "ConfigMap":
            assert not [k for k in doc.get("data", {}) if SECRET_NAMES.search(k)]
        if doc["kind"] in ("Deployment", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                assert {"secretRef": {"name": "forge"}} in container["envFrom"]
                literal = [e["name"] for e in container.get("env", []) if "value" in e]
                assert not [n for n in literal if SECRET_NAMES.search(n)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_pdb_migration_job_service_and_network_policy(overlay):
    """PodDisruptionBudget minAvailable 1, a Job running `forge migrate`, the Service on the named
    port, ingress only to 3100 and egress only to forge's backends, DNS and HTTPS."""
    assert one(overlay, "PodDisruptionBudget")["spec"]["minAvailable"] == 1
    job = one(overlay, "Job")["spec"]["template"]["spec"]["containers"][0]
    assert job["command"] == ["forge", "migrate"]
    assert one(overlay, "Service")["spec"]["ports"][0]["targetPort"] == "http"
    policy = one(overlay, "NetworkPolicy")["spec"]
    assert set(policy["policyTypes"]) == {"Ingress", "Egress"}
    assert [p["port"] for rule in policy["ingress"] for p in rule["ports"]] == [3100]
    assert {p["port"] for rule in policy["egress"] for p in rule["ports"]} == EGRESS_PORTS
    assert all(rule.get("to") for rule in policy["egress"])


def test_socket_mode_requires_the_app_token_from_the_secret():
    """The Socket Mode overlay takes SLACK_APP_TOKEN from the Secret, required."""
    [container] = one("overlays/socket-mode", "Deployment")["spec"]["template"]["spec"][
        "containers"
    ]
    [token] = [e for e in container["env"] if e["name"] == "SLACK_APP_TOKEN"]
    assert token["valueFrom"]["secretKeyRef"] == {"name": "forge", "key": "SLACK_APP_TOKEN"}


def test_monitoring_rules_are_deploy_prometheus_rules(tmp_path):
    """The PrometheusRule holds exactly deploy/prometheus/queue-alerts.yml, which promtool accepts;
    the ServiceMonitor scrapes the Service's port at /metrics."""
    rules = yaml.safe_load((ROOT / "deploy" / "prometheus" / "queue-alerts.yml").read_text())
    rule = one("overlays/monitoring", "PrometheusRule")
    assert (
        rule["apiVersion"] == "monitoring.coreos.com/v1"
        and rule["spec"]["groups"] == rules["groups"]
    )
    [endpoint] = one("overlays/monitoring", "ServiceMonitor")["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    if shutil.which("promtool"):
        (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        subprocess.run(
            ["promtool", "check", "rules", str(tmp_path / "rules.yml")],
            check=True,
            capture_output=True,
            timeout=60,
        )
