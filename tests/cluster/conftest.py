"""The local cluster for the tests: the real control plane, started once per test session in a
state folder and on ports of its own, so that a developer's `bridgescale dev up` keeps running."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from bridgescale import kube
from bridgescale.localcluster.environment import LocalEnvironment, crd_manifests
from bridgescale.localcluster.prometheus import ScrapeTarget
from bridgescale.localcluster.settings import LocalClusterSettings, find_project_root
from bridgescale.simulator.runner import SIMULATOR_PROCESS, start_simulator
from tests.cluster.updater_support import (
    UPDATER_ACCOUNT,
    UPDATER_NAMESPACE,
    apply_updater_rbac,
    create_node,
    opt_in,
)

# Another checkout's tests on the same machine may use the default ports: set
# BRIDGESCALE_TEST_PORT_BASE to run on others.
TEST_PORT_BASE = int(os.environ.get("BRIDGESCALE_TEST_PORT_BASE", "17440"))
SIMULATOR_METRICS_PORT = TEST_PORT_BASE + 10
DEFERRED_RETRY_SECONDS = 6
# The simulated nodes of the tests: plain nodes sim-0..sim-3 (tests that count on free capacity
# each take one of their own), sim-4 with the static CPU manager, one MIG and one shared GPU node,
# then sim-swap-0 with swap and sim-memory-manager-0 with the static memory manager.
SIMULATOR_SETTINGS = {
    "nodes": 5,
    "static_cpu_manager_nodes": 1,
    "swap_nodes": 1,
    "static_memory_manager_nodes": 1,
    "mig_nodes": 1,
    "shared_gpu_nodes": 1,
    "node_cpu": "4",
    "node_memory": "8Gi",
    "deferred_retry_initial_seconds": 2,
    "deferred_retry_seconds": DEFERRED_RETRY_SECONDS,
    "actuation_seconds": 0.3,
    "resync_seconds": 1,
    "usage_seconds": 1,
    "metrics_port": SIMULATOR_METRICS_PORT,
}
SIMULATED_NODES = [
    *(f"sim-{i}" for i in range(5)),
    "sim-mig-0",
    "sim-shared-0",
    "sim-swap-0",
    "sim-memory-manager-0",
]


def cluster_settings(name: str = "test", port_base: int = TEST_PORT_BASE) -> LocalClusterSettings:
    state_dir = find_project_root(Path(__file__)) / ".bridgescale" / name
    # The tests start the simulator with settings of their own (the `simulator` fixture) and
    # create the objects each test needs.
    return LocalClusterSettings(
        state_dir=state_dir, port_base=port_base, simulator=False, fleet=False
    )


@pytest.fixture(scope="session")
def local_cluster(request: pytest.FixtureRequest) -> Iterator[LocalEnvironment]:
    environment = LocalEnvironment(cluster_settings(), progress=print)
    if not environment.control_plane.is_ready():
        # Every session starts from an empty cluster, as CI does, unless one kept by
        # --keep-cluster is still running.
        environment.clear()
    environment.up()
    yield environment
    if not request.config.getoption("--keep-cluster"):
        environment.down()


@pytest.fixture(scope="session")
def api(local_cluster: LocalEnvironment) -> Iterator[client.ApiClient]:
    with local_cluster.api_client() as api_client:
        yield api_client


@pytest.fixture(scope="session")
def crds(api: client.ApiClient) -> list[str]:
    """bridgescale's CustomResourceDefinitions from deploy/, installed and established."""
    paths = crd_manifests(find_project_root(Path(__file__)))
    names = [crd["metadata"]["name"] for crd in kube.apply(api, kube.load_manifests(*paths))]
    extensions = client.ApiextensionsV1Api(api)
    for name in names:
        for _ in range(100):
            conditions = extensions.read_custom_resource_definition(name).status.conditions or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"CRD {name} was not established")
    return names


@pytest.fixture(scope="session")
def simulator(local_cluster: LocalEnvironment, api: client.ApiClient) -> Iterator[list[str]]:
    """The node simulator, started as `dev up` starts it; yields the names of its nodes."""
    supervisor = local_cluster.supervisor
    start_simulator(supervisor, api, local_cluster.admin_kubeconfig, **SIMULATOR_SETTINGS)
    local_cluster.prometheus.register(
        ScrapeTarget("node-simulator", f"127.0.0.1:{SIMULATOR_METRICS_PORT}")
    )
    yield SIMULATED_NODES
    supervisor.stop(SIMULATOR_PROCESS)


def wait_for_default_account(api: client.ApiClient, namespace: str) -> None:
    """Pods are refused until the controller-manager has made the namespace's default account."""
    core = client.CoreV1Api(api)
    selector = "metadata.name=default"
    for _ in range(600):
        if core.list_namespaced_service_account(namespace, field_selector=selector).items:
            return
        time.sleep(0.1)
    pytest.fail(f"namespace {namespace} got no default service account")


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    wait_for_default_account(api, name)
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="module")
def updater_kubeconfig(
    local_cluster: LocalEnvironment, api: client.ApiClient, crds: list[str]
) -> Path:
    """A kubeconfig of the updater's service account, with the RBAC from deploy/updater/."""
    apply_updater_rbac(api)
    path: Path = local_cluster.mint_kubeconfig(UPDATER_NAMESPACE, UPDATER_ACCOUNT)
    return path


@pytest.fixture
def as_updater(updater_kubeconfig: Path) -> Iterator[client.ApiClient]:
    with kube.new_client(updater_kubeconfig) as api_client:
        yield api_client


@pytest.fixture
def node(api: client.ApiClient, namespace: str) -> Iterator[str]:
    """A node no simulator runs: the test writes its pods' status as a kubelet would."""
    name = f"node-{namespace}"
    create_node(api, name)
    yield name
    client.CoreV1Api(api).delete_node(name)


@pytest.fixture
def bridges(api: client.ApiClient, namespace: str) -> Iterator[str]:
    """An opted-in namespace; its pods are removed at once afterwards (no kubelet waits)."""
    opt_in(api, namespace)
    yield namespace
    core = client.CoreV1Api(api)
    core.patch_namespace(namespace, {"metadata": {"labels": {"bridgescale.dev/enabled": None}}})
    client.AppsV1Api(api).delete_collection_namespaced_deployment(namespace)
    core.delete_collection_namespaced_pod(namespace, grace_period_seconds=0)
