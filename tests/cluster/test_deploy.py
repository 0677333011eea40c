"""deploy/ installs into a real API server. Its RBAC (exactly what each service uses, checked with
SubjectAccessReviews) and the containers' hardening are tested in test_security.py."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from kubernetes import client

from bridgescale import kube
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.settings import find_project_root

DEPLOY = find_project_root(Path(__file__)) / "deploy"
NAMESPACE = "bridgescale-system"
ACCOUNTS = ("bridgescale-recommender", "bridgescale-updater")


def _kubectl(local_cluster: LocalEnvironment, *arguments: str) -> subprocess.CompletedProcess[str]:
    kubectl = local_cluster.settings.binaries_dir / "kubectl"
    env = dict(os.environ, KUBECONFIG=str(local_cluster.admin_kubeconfig))
    return subprocess.run(
        [str(kubectl), *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_base_applies_with_server_side_dry_run(
    local_cluster: LocalEnvironment, api: client.ApiClient, crds: list[str]
) -> None:
    # A real apply creates the namespace before what goes in it; a dry run cannot, so the
    # namespace (and the CRDs, by the `crds` fixture) exist for real first.
    kube.apply(api, kube.load_manifests(DEPLOY / "namespace.yaml"))
    rendered = _kubectl(local_cluster, "kustomize", str(DEPLOY))
    assert rendered.returncode == 0, rendered.stderr
    kinds = sorted({doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc})
    print(f"deploy/ renders: {', '.join(kinds)}")
    assert {"Deployment", "ServiceAccount", "ClusterRole", "CustomResourceDefinition"} <= set(kinds)

    applied = _kubectl(
        local_cluster, "apply", "--server-side", "--dry-run=server", "-k", str(DEPLOY)
    )
    assert applied.returncode == 0, applied.stderr
    lines = applied.stdout.splitlines()
    print("\n".join(lines))
    assert all(line.endswith("(server dry run)") for line in lines)
    assert any("deployment.apps/bridgescale-updater" in line for line in lines)
