"""The Kubernetes manifests: rendered like `kubectl kustomize` would (deploy/kubernetes/render.py),
every built-in object validated strictly by kubernetes-validate against the Kubernetes API schemas,
KEDA's objects against a schema of the fields KEDA's CRD defines, and the wiring between them
checked: commands, probes, ports, names, queue names, grace periods, security."""

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from schemas.topology import Topology
from tests.support.tools import ROOT
from workers.__main__ import ROLES

KUBE = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes still maintained upstream when this was written, and the newest schema shipped.
VERSIONS = ["1.31.0", "1.37.0"]


def _load_renderer() -> Any:
    spec = importlib.util.spec_from_file_location("render", KUBE / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["render"] = module
    spec.loader.exec_module(module)
    return module


render = _load_renderer()
Doc = dict[str, Any]


@pytest.fixture(scope="module", params=["base", "overlays/example"])
def rendered(request: pytest.FixtureRequest) -> list[Doc]:
    return list(render.render(KUBE / request.param))


@pytest.fixture(scope="module")
def overlay() -> list[Doc]:
    return list(render.render(KUBE / "overlays" / "example"))


def by_kind(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    for d in docs:
        if d["kind"] in ("Deployment", "Job"):
            yield d["metadata"]["name"], d["spec"]["template"]["spec"]


# What KEDA's CRDs (keda.sh/v1alpha1) define for the fields used here; unknown fields are refused,
# as the API server would with a structural schema.
_TRIGGER = {
    "type": "object",
    "required": ["type", "metadata"],
    "additionalProperties": False,
    "properties": {
        "type": {"type": "string"},
        "name": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        "authenticationRef": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "kind": {"type": "string"}},
        },
    },
}
_INT = {"type": "integer", "minimum": 0}
KEDA_SCHEMAS = {
    "ScaledObject": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "required": ["scaleTargetRef", "triggers"],
                "additionalProperties": False,
                "properties": {
                    "scaleTargetRef": {
                        "type": "object",
                        "required": ["name"],
                        "additionalProperties": False,
                        "properties": {
                            k: {"type": "string"}
                            for k in ("apiVersion", "kind", "name", "envSourceContainerName")
                        },
                    },
                    "pollingInterval": _INT,
                    "cooldownPeriod": _INT,
                    "minReplicaCount": _INT,
                    "maxReplicaCount": _INT,
                    "idleReplicaCount": _INT,
                    "advanced": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "restoreToOriginalReplicaCount": {"type": "boolean"},
                            "horizontalPodAutoscalerConfig": {
                                "type": "object",
                                "additionalProperties": False,
                                "properties": {"name": {"type": "string"}, "behavior": {"type": "object"}},
                            },
                        },
                    },
                    "triggers": {"type": "array", "minItems": 1, "items": _TRIGGER},
                },
            }
        },
    },
    "TriggerAuthentication": {
        "type": "object",
        "required": ["spec"],
        "properties": {
            "spec": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "secretTargetRef": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["parameter", "name", "key"],
                            "additionalProperties": False,
                            "properties": {k: {"type": "string"} for k in ("parameter", "name", "key")},
                        },
                    }
                },
            }
        },
    },
}


def test_every_manifest_is_valid_for_kubernetes(rendered: list[Doc]) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install '.[dev]'")
    checked = 0
    for doc in rendered:
        if doc["apiVersion"].startswith("keda.sh/"):
            jsonschema.validate(doc, KEDA_SCHEMAS[doc["kind"]])
            continue
        for version in VERSIONS:
            kubernetes_validate.validate(doc, version, strict=True)
        checked += 1
    assert checked >= 15


def test_the_validator_can_fail() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="pip install '.[dev]'")
    deployment = by_kind(render.render(KUBE / "base"), "Deployment")["resultbus-router"]
    deployment["spec"]["template"]["spec"]["containers"][0]["livenesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(
            {
                "spec": {
                    "scaleTargetRef": {"name": "x"},
                    "triggers": [{"type": "rabbitmq", "metadata": {"value": 3}}],
                }
            },
            KEDA_SCHEMAS["ScaledObject"],
        )


def test_one_deployment_per_role_each_running_a_real_command(overlay: list[Doc]) -> None:
    deployments = by_kind(overlay, "Deployment")
    assert set(deployments) == {
        f"resultbus-{r}"
        for r in ("ingress", "router", "delivery", "checker", "retention", "fulfillment", "admin")
    }
    images = set()
    for name, pod in pod_specs(overlay):
        for container in pod.get("initContainers", []) + pod["containers"]:
            images.add(container["image"])
            command = container["command"]
            assert command[:2] == ["python", "-m"] and command[2] in {"ingress", "workers", "admin"}, name
            if command[2] == "workers":
                assert command[3] in {*ROLES, "migrate"}, name
    assert images == {"registry.example.edu/resultbus:0.1.0"}


def test_workers_migrate_before_they_start(overlay: list[Doc]) -> None:
    assert by_kind(overlay, "Job")["resultbus-migrate"]["spec"]["template"]["spec"]["containers"][0][
        "command"
    ] == ["python", "-m", "workers", "migrate"]
    for name, pod in pod_specs(overlay):
        if name not in ("resultbus-ingress", "resultbus-migrate"):
            assert [c["command"][-1] for c in pod["initContainers"]] == ["migrate"], name


def test_every_container_is_locked_down_and_bounded(overlay: list[Doc]) -> None:
    for name, pod in pod_specs(overlay):
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["automountServiceAccountToken"] is False
        for c in pod.get("initContainers", []) + pod["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["capabilities"]["drop"] == ["ALL"], name
            assert set(c["resources"]["requests"]) == set(c["resources"]["limits"]) == {"cpu", "memory"}, name


def _seconds(value: str) -> float:
    return float(value)


def test_grace_outlasts_the_shutdown_timeout(overlay: list[Doc]) -> None:
    settings = by_kind(overlay, "ConfigMap")["resultbus-settings"]["data"]
    shutdown = _seconds(settings["RESULTBUS_SHUTDOWN_TIMEOUT"])
    for name, pod in pod_specs(overlay):
        if name == "resultbus-migrate":
            continue
        pause = 0.0
        for c in pod["containers"]:
            if "lifecycle" in c:
                pause = float(c["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] > pause + shutdown, name


def test_probes_use_ports_the_container_declares(overlay: list[Doc]) -> None:
    for name, pod in pod_specs(overlay):
        if name == "resultbus-migrate":
            continue
        for c in pod["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c.get("ports", [])}
            for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
                assert c[probe]["httpGet"]["path"] == path, name
                assert c[probe]["httpGet"]["port"] in ports, name
            # The ingress's on its supervisor's port, which answers for all its processes.
            expected = {"resultbus-admin": 8081}.get(name, 9100)
            assert ports[c["readinessProbe"]["httpGet"]["port"]] == expected, name
            assert ports["metrics"] == 9100


def test_the_ingress_runs_one_process_per_cpu_of_its_limit(overlay: list[Doc]) -> None:
    pod = by_kind(overlay, "Deployment")["resultbus-ingress"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    [processes] = [e for e in container["env"] if e["name"] == "RESULTBUS_INGRESS_PROCESSES"]
    # The downward API gives the limit in whole CPUs, rounded up (divisor 1): 2 for '2', 1 for 500m.
    assert processes["valueFrom"]["resourceFieldRef"] == {
        "containerName": container["name"], "resource": "limits.cpu", "divisor": "1"
    }  # fmt: skip
    limit = container["resources"]["limits"]["cpu"]
    assert limit == "2"  # two processes: what `make bench` measures (ingress_2_processes)
    settings = by_kind(overlay, "ConfigMap")["resultbus-settings"]["data"]
    assert "RESULTBUS_INGRESS_PROCESSES" not in settings  # env beats envFrom, but say it once
    annotations = by_kind(overlay, "Deployment")["resultbus-ingress"]["spec"]["template"]["metadata"][
        "annotations"
    ]
    assert annotations["prometheus.io/port"] == "9100"  # the supervisor's: every process's series


def test_every_reference_resolves(overlay: list[Doc]) -> None:
    config_maps, secrets = by_kind(overlay, "ConfigMap"), by_kind(overlay, "Secret")
    deployments = by_kind(overlay, "Deployment")
    for name, pod in pod_specs(overlay):
        for c in pod.get("initContainers", []) + pod["containers"]:
            for source in c["envFrom"]:
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                else:
                    assert source["secretRef"]["name"] in secrets, name
        for volume in pod.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
    pod_labels = {n: d["spec"]["template"]["metadata"]["labels"] for n, d in deployments.items()}

    def selects(selector: dict[str, str]) -> list[str]:
        return [n for n, labels in pod_labels.items() if selector.items() <= labels.items()]

    for service in by_kind(overlay, "Service").values():
        [target] = selects(service["spec"]["selector"])
        ports = {
            p["name"]
            for c in deployments[target]["spec"]["template"]["spec"]["containers"]
            for p in c["ports"]
        }
        assert all(p["targetPort"] in ports for p in service["spec"]["ports"])
    for pdb in by_kind(overlay, "PodDisruptionBudget").values():
        assert len(selects(pdb["spec"]["selector"]["matchLabels"])) == 1
    for so in by_kind(overlay, "ScaledObject").values():
        assert so["spec"]["scaleTargetRef"]["name"] in deployments
        for trigger in so["spec"]["triggers"]:
            assert trigger["authenticationRef"]["name"] in by_kind(overlay, "TriggerAuthentication")
    for ta in by_kind(overlay, "TriggerAuthentication").values():
        for ref in ta["spec"]["secretTargetRef"]:
            assert ref["key"] in secrets[ref["name"]]["stringData"]
    assert (
        by_kind(overlay, "HorizontalPodAutoscaler")["resultbus-ingress"]["spec"]["scaleTargetRef"]["name"]
        in deployments
    )
    [ingress] = by_kind(overlay, "Ingress").values()
    for rule in ingress["spec"]["rules"]:
        for path in rule["http"]["paths"]:
            assert path["backend"]["service"]["name"] in by_kind(overlay, "Service")


def test_autoscalers_watch_the_queues_the_code_declares(overlay: list[Doc]) -> None:
    topology = Topology()
    scaled = by_kind(overlay, "ScaledObject")
    queues = {
        name: {t["metadata"]["queueName"] for t in so["spec"]["triggers"]} for name, so in scaled.items()
    }
    assert queues == {
        "resultbus-router": {topology.raw_queue},
        "resultbus-delivery": {topology.deliveries_queue, topology.delivery_attempts_queue},
    }
    assert scaled["resultbus-router"]["spec"]["maxReplicaCount"] == 16  # the overlay's patch applied


def test_admin_api_is_reachable_only_from_the_namespace(overlay: list[Doc]) -> None:
    policy = by_kind(overlay, "NetworkPolicy")["resultbus-admin"]
    admin_rules = [r for r in policy["spec"]["ingress"] if {"port": "admin", "protocol": "TCP"} in r["ports"]]
    assert admin_rules and all(r["from"] == [{"podSelector": {}}] for r in admin_rules)
    assert by_kind(overlay, "Service")["resultbus-admin"]["spec"]["type"] == "ClusterIP"
    assert all(d["metadata"]["namespace"] == "exams" for d in overlay)


def test_the_sources_file_comes_from_the_config_map(overlay: list[Doc]) -> None:
    settings = by_kind(overlay, "ConfigMap")["resultbus-settings"]["data"]
    pod = by_kind(overlay, "Deployment")["resultbus-ingress"]["spec"]["template"]["spec"]
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "sources"]
    assert settings["RESULTBUS_SOURCES"] == f"{mount['mountPath']}/sources.toml"
    sources = by_kind(overlay, "ConfigMap")["resultbus-sources"]["data"]["sources.toml"]
    secret_names = set(by_kind(overlay, "Secret")["resultbus-source-secrets"]["stringData"])
    assert '"ITEP_ACME_PASSWORD"' in sources and "ITEP_ACME_PASSWORD" in secret_names


def test_renderer_refuses_what_it_does_not_implement(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\ncommonLabels: {a: b}\n")
    with pytest.raises(render.RenderError, match="commonLabels"):
        render.render(tmp_path)


def test_renderer_json_patch_operations() -> None:
    doc: Doc = {"spec": {"list": [1, 2], "value": "a"}}
    render.apply_operation(doc, {"op": "add", "path": "/spec/list/-", "value": 3})
    render.apply_operation(doc, {"op": "replace", "path": "/spec/value", "value": "b"})
    render.apply_operation(doc, {"op": "remove", "path": "/spec/list/0"})
    assert doc == {"spec": {"list": [2, 3], "value": "b"}}
    with pytest.raises(render.RenderError):
        render.apply_operation(doc, {"op": "replace", "path": "/spec/missing", "value": 1})
