"""The whole local environment behind `bridgescale dev up|down|status`: the control plane, the
node simulator, the demo fleet and a Prometheus that starts with the fleet's history.

A running environment is described by `.bridgescale/env` (shell syntax, `KEY=value` lines), so
tests, the demo and a developer's shell all find the same cluster.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kubernetes import client, config

from bridgescale import kube
from bridgescale.localcluster import backfill, fleet, kubeconfig
from bridgescale.localcluster.build import BuildError, BuildResult, ControlPlaneBuild
from bridgescale.localcluster.controlplane import COMPONENTS, ControlPlane, ControlPlaneError
from bridgescale.localcluster.processes import ProcessSupervisor
from bridgescale.localcluster.prometheus import PrometheusError, PrometheusServer, ScrapeTarget
from bridgescale.localcluster.settings import LocalClusterSettings, find_project_root
from bridgescale.simulator.runner import SIMULATOR_PROCESS, SimulatorNotReady, start_simulator

ENV_FILE = "env"
TOKEN_SECONDS = 24 * 3600
FLEET_READY_SECONDS = 120.0
DAY = 86400.0


class FleetNotReady(RuntimeError):
    """The demo fleet's pods did not all get Running."""


# What `up` raises when a part of the environment cannot start; each message says what to do.
STARTUP_ERRORS = (BuildError, ControlPlaneError, SimulatorNotReady, FleetNotReady, PrometheusError)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    running: bool
    pid: int | None
    log: str | None


@dataclass(frozen=True)
class EnvironmentStatus:
    components: list[ComponentStatus]
    ready: bool
    server_version: str | None
    env_file: Path | None


def crd_manifests(root: Path) -> list[Path]:
    """The files of bridgescale's CustomResourceDefinitions in deploy/crds/ (without the
    folder's kustomization)."""
    folder = root / "deploy" / "crds"
    return sorted(path for path in folder.glob("*.yaml") if path.name != "kustomization.yaml")


class LocalEnvironment:
    def __init__(
        self, settings: LocalClusterSettings, progress: Callable[[str], None] = lambda _: None
    ) -> None:
        self.settings = settings
        self.state_dir = settings.resolved_state_dir()
        self._progress = progress
        self.supervisor = ProcessSupervisor(self.state_dir)
        self.control_plane = ControlPlane(settings, self.supervisor)
        self.prometheus = PrometheusServer(
            self.state_dir,
            self.supervisor,
            settings.prometheus_port,
            settings.scrape_interval_seconds,
        )

    @property
    def env_file(self) -> Path:
        return self.state_dir / ENV_FILE

    @property
    def admin_kubeconfig(self) -> Path:
        return self.control_plane.paths.admin_kubeconfig

    def build(self) -> BuildResult:
        return ControlPlaneBuild(self.settings, self._progress).ensure()

    def up(self) -> None:
        """Build if needed, start what is not running, and write the env file."""
        result = self.build()
        if not result.cached:
            self._progress(f"built the control plane in {result.seconds:.0f} s")
        self._progress("starting etcd and the control plane")
        self.control_plane.start()
        self._progress(f"API server ready at {self.control_plane.server}")
        self._install_crds()
        if self.settings.simulator:
            self._start_simulator()
        if self.settings.fleet:
            self._create_fleet()
        self._start_prometheus()
        self._write_env_file(
            {
                "KUBECONFIG": str(self.admin_kubeconfig.resolve()),
                "PROMETHEUS_URL": self.prometheus.url,
                # What bridgescale's own commands read, so that sourcing this file is enough.
                "BRIDGESCALE_PROMETHEUS_URL": self.prometheus.url,
            }
        )

    def _install_crds(self) -> None:
        """bridgescale's own CustomResourceDefinitions, so its services can run right away."""
        crds = crd_manifests(find_project_root(Path(__file__).resolve().parent))
        if crds:
            with self.api_client() as api:
                kube.apply(api, kube.load_manifests(*crds))

    def _start_simulator(self) -> None:
        if self.supervisor.find(SIMULATOR_PROCESS):
            return
        total = self.settings.nodes + self.settings.mig_nodes + self.settings.shared_gpu_nodes
        self._progress(f"starting the node simulator with {total} nodes")
        with self.api_client() as api:
            start_simulator(
                self.supervisor,
                api,
                self.admin_kubeconfig,
                nodes=self.settings.nodes,
                mig_nodes=self.settings.mig_nodes,
                shared_gpu_nodes=self.settings.shared_gpu_nodes,
                metrics_port=self.settings.simulator_metrics_port,
            )
        self.prometheus.register(self._simulator_target)

    @property
    def _simulator_target(self) -> ScrapeTarget:
        return ScrapeTarget("node-simulator", f"127.0.0.1:{self.settings.simulator_metrics_port}")

    def _create_fleet(self) -> None:
        self._progress(f"creating the demo fleet in the namespace {fleet.NAMESPACE}")
        with self.api_client() as api:
            kube.apply(api, fleet.manifests())
            deadline = time.monotonic() + FLEET_READY_SECONDS
            while not _all_running(api, fleet.NAMESPACE):
                if time.monotonic() > deadline:
                    raise FleetNotReady(
                        f"the demo fleet was not Running within {FLEET_READY_SECONDS:.0f} s; "
                        f"see kubectl get pods -n {fleet.NAMESPACE}"
                    )
                time.sleep(1)

    def _start_prometheus(self) -> None:
        if self.prometheus.is_ready():
            return
        if self.settings.fleet and self.settings.history_days and not self._has_history():
            self._backfill()
        self._progress(f"starting Prometheus at {self.prometheus.url}")
        self.prometheus.start()

    def _has_history(self) -> bool:
        return self.prometheus.data_dir.is_dir() and any(self.prometheus.data_dir.iterdir())

    def _backfill(self) -> None:
        end = time.time()
        # An hour more than asked, so a range query of the last N days finds N full days.
        start = end - self.settings.history_days * DAY - 3600
        self._progress(f"backfilling {self.settings.history_days:g} days of fleet history")
        with self.api_client() as api:
            families = backfill.fleet_history(
                api, [fleet.NAMESPACE], start, end, target=self._simulator_target.labels
            )
        samples = self.prometheus.backfill(families)
        self._progress(f"backfilled {samples} samples")

    def down(self) -> list[str]:
        """Stop every process this environment started; the env file goes with them."""
        stopped = self.supervisor.stop_all()
        self.env_file.unlink(missing_ok=True)
        return stopped

    def clear(self) -> None:
        """Delete etcd's data and Prometheus's blocks, so that the next `up` starts from an empty
        cluster; only while nothing runs."""
        shutil.rmtree(self.control_plane.paths.etcd_data, ignore_errors=True)
        shutil.rmtree(self.prometheus.folder, ignore_errors=True)

    def status(self) -> EnvironmentStatus:
        recorded = {process.name: process for process in self.supervisor.recorded()}
        components = []
        for name in (*COMPONENTS, SIMULATOR_PROCESS, "prometheus"):
            process = recorded.get(name)
            running = process is not None and process.is_running()
            components.append(
                ComponentStatus(
                    name,
                    running,
                    process.pid if process else None,
                    process.log if process else None,
                )
            )
        ready = self.control_plane.is_ready()
        return EnvironmentStatus(
            components=components,
            ready=ready,
            server_version=self.control_plane.server_version() if ready else None,
            env_file=self.env_file if self.env_file.exists() else None,
        )

    def _write_env_file(self, values: dict[str, str]) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / ".gitignore").write_text("*\n")
        lines = [f"{key}={value}" for key, value in values.items()]
        self.env_file.write_text("\n".join(lines) + "\n")

    def api_client(self) -> client.ApiClient:
        """A Kubernetes client authenticated as the cluster admin."""
        api: client.ApiClient = config.new_client_from_config(  # type: ignore[no-untyped-call]
            config_file=str(self.admin_kubeconfig)
        )
        return api

    def mint_kubeconfig(
        self, namespace: str, service_account: str, path: Path | None = None
    ) -> Path:
        """A kubeconfig that authenticates as an existing service account, through a bound
        token from the TokenRequest API, so that it gets exactly that account's RBAC."""
        with self.api_client() as api:
            request = client.AuthenticationV1TokenRequest(
                spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=TOKEN_SECONDS)
            )
            response = client.CoreV1Api(api).create_namespaced_service_account_token(
                service_account, namespace, request
            )
        if response.status is None or not response.status.token:
            raise RuntimeError(
                f"the API server returned no token for {namespace}/{service_account}"
            )
        token = response.status.token
        target = (
            path or self.control_plane.paths.kubeconfigs / f"sa-{namespace}-{service_account}.yaml"
        )
        user = f"system:serviceaccount:{namespace}:{service_account}"
        return kubeconfig.write_for_token(
            target, self.control_plane.server, self.control_plane.pki.ca.cert, user, token
        )


def _all_running(api: client.ApiClient, namespace: str) -> bool:
    """Whether every workload of the namespace has all its pods Running."""
    apps = client.AppsV1Api(api)
    wanted = sum(s.spec.replicas or 0 for s in apps.list_namespaced_stateful_set(namespace).items)
    wanted += sum(d.spec.replicas or 0 for d in apps.list_namespaced_deployment(namespace).items)
    pods = client.CoreV1Api(api).list_namespaced_pod(namespace).items
    running = [p for p in pods if p.status and p.status.phase == "Running"]
    return wanted > 0 and len(running) >= wanted
