"""deploy/ installs into a real API server. Its RBAC (exactly what each service uses, checked with
SubjectAccessReviews) and the containers' hardening are tested in test_security.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from bridgescale import kube
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.settings import find_project_root

from .waiting import eventually

ROOT = find_project_root(Path(__file__))
DEPLOY = ROOT / "deploy"
OVERLAY = DEPLOY / "overlays" / "prometheus-operator"
NAMESPACE = "bridgescale-system"
ACCOUNTS = ("bridgescale-recommender", "bridgescale-updater")


def _kubectl(
    local_cluster: LocalEnvironment, *arguments: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    kubectl = local_cluster.settings.binaries_dir / "kubectl"
    env = dict(os.environ, KUBECONFIG=str(local_cluster.admin_kubeconfig))
    return subprocess.run(
        [str(kubectl), *arguments],
        input=stdin,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _dry_run_apply(local_cluster: LocalEnvironment, kustomization: Path) -> list[str]:
    """`kubectl apply --server-side --dry-run=server -k`: what it says of each object."""
    applied = _kubectl(
        local_cluster, "apply", "--server-side", "--dry-run=server", "-k", str(kustomization)
    )
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    print("\n".join(lines))
    assert all(line.endswith("(server dry run)") for line in lines)
    return lines


def test_the_base_applies_with_server_side_dry_run(
    local_cluster: LocalEnvironment, api: client.ApiClient, crds: list[str]
) -> None:
    # A real apply creates the namespace before what goes in it; a dry run cannot, so the
    # namespace (and the CRDs, by the `crds` fixture) exist for real first.
    kube.apply(api, kube.load_manifests(DEPLOY / "system/namespace.yaml"))
    rendered = _kubectl(local_cluster, "kustomize", str(DEPLOY))
    assert rendered.returncode == 0, rendered.stderr
    kinds = sorted({doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc})
    print(f"deploy/ renders: {', '.join(kinds)}")
    assert {"Deployment", "ServiceAccount", "ClusterRole", "CustomResourceDefinition"} <= set(kinds)

    lines = _dry_run_apply(local_cluster, DEPLOY)
    assert any("deployment.apps/bridgescale-updater" in line for line in lines)


@pytest.fixture(scope="module")
def service_monitor_crd(api: client.ApiClient) -> None:
    """The Prometheus operator's ServiceMonitor API, as far as the overlay uses it."""
    crd = kube.apply(
        api, kube.load_manifests(ROOT / "tests/cluster/manifests/servicemonitor-crd.yaml")
    )
    extensions = client.ApiextensionsV1Api(api)

    def established() -> bool:
        conditions = extensions.read_custom_resource_definition(
            crd[0]["metadata"]["name"]
        ).status.conditions
        return any(c.type == "Established" and c.status == "True" for c in conditions or [])

    eventually(established, what="the ServiceMonitor CRD to be established")


def test_the_prometheus_operator_overlay_applies_with_server_side_dry_run(
    local_cluster: LocalEnvironment,
    api: client.ApiClient,
    crds: list[str],
    service_monitor_crd: None,
) -> None:
    kube.apply(api, kube.load_manifests(DEPLOY / "system/namespace.yaml"))
    rendered = _kubectl(local_cluster, "kustomize", str(OVERLAY))
    assert rendered.returncode == 0, rendered.stderr
    documents = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    monitors = [doc for doc in documents if doc["kind"] == "ServiceMonitor"]
    services = [doc for doc in documents if doc["kind"] == "Service"]
    # Each monitor selects exactly one Service of the base, by its labels, and its port exists.
    for monitor in monitors:
        wanted = monitor["spec"]["selector"]["matchLabels"]
        chosen = [s for s in services if wanted.items() <= s["metadata"].get("labels", {}).items()]
        assert len(chosen) == 1, monitor["metadata"]["name"]
        ports = {port["name"] for port in chosen[0]["spec"]["ports"]}
        assert {e["port"] for e in monitor["spec"]["endpoints"]} <= ports
    assert sorted(m["metadata"]["name"] for m in monitors) == sorted(ACCOUNTS)

    lines = _dry_run_apply(local_cluster, OVERLAY)
    for account in ACCOUNTS:
        monitor = (
            f"servicemonitor.monitoring.coreos.com/{account} serverside-applied (server dry run)"
        )
        assert monitor in lines


def test_a_misspelt_service_monitor_is_refused(
    local_cluster: LocalEnvironment, api: client.ApiClient, service_monitor_crd: None
) -> None:
    kube.apply(api, kube.load_manifests(DEPLOY / "system/namespace.yaml"))
    monitor = next(yaml.safe_load_all((OVERLAY / "servicemonitors.yaml").read_text()))
    monitor["spec"]["endpoints"][0]["intervall"] = "30s"
    applied = _kubectl(
        local_cluster, "apply", "--server-side", "--dry-run=server", "-f", "-",
        stdin=yaml.safe_dump(monitor),
    )  # fmt: skip
    assert applied.returncode != 0
    assert "intervall" in applied.stderr
