"""Run etcd, kube-apiserver, kube-controller-manager and kube-scheduler on loopback."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from bridgescale.localcluster import kubeconfig
from bridgescale.localcluster.certs import ClusterPKI
from bridgescale.localcluster.processes import ManagedProcess, ProcessSupervisor
from bridgescale.localcluster.settings import LocalClusterSettings

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")


class ControlPlaneError(RuntimeError):
    """The control plane did not come up; the message names the component and its log."""


@dataclass(frozen=True)
class ControlPlanePaths:
    state_dir: Path

    @property
    def pki(self) -> Path:
        return self.state_dir / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.state_dir / "etcd"

    @property
    def kubeconfigs(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.kubeconfigs / "admin.yaml"


class ControlPlane:
    def __init__(self, settings: LocalClusterSettings, supervisor: ProcessSupervisor) -> None:
        self._settings = settings
        self._supervisor = supervisor
        self.paths = ControlPlanePaths(settings.resolved_state_dir())
        self.pki = ClusterPKI(self.paths.pki)

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self._settings.apiserver_port}"

    def start(self) -> None:
        """Start whatever is not running yet, and return once the API server is ready."""
        self.pki.ensure()
        self._write_component_kubeconfigs()
        self._start("etcd", self._etcd_command())
        self._start("kube-apiserver", self._apiserver_command())
        self.wait_ready()
        self._start("kube-controller-manager", self._controller_manager_command())
        self._start("kube-scheduler", self._scheduler_command())

    def _start(self, name: str, command: list[str]) -> ManagedProcess:
        return self._supervisor.start(name, command)

    def _binary(self, name: str) -> str:
        return str(self._settings.binaries_dir / name)

    def _write_component_kubeconfigs(self) -> None:
        users = {
            "admin": ("bridgescale-admin", self.pki.pair("admin")),
            "controller-manager": (
                "system:kube-controller-manager",
                self.pki.pair("controller-manager"),
            ),
            "scheduler": ("system:kube-scheduler", self.pki.pair("scheduler")),
        }
        for file_name, (user, pair) in users.items():
            kubeconfig.write_for_certificate(
                self.paths.kubeconfigs / f"{file_name}.yaml",
                server=self.server,
                ca_cert=self.pki.ca.cert,
                user=user,
                cert=pair.cert,
                key=pair.key,
            )

    def _etcd_command(self) -> list[str]:
        client = f"http://127.0.0.1:{self._settings.etcd_port}"
        peer = f"http://127.0.0.1:{self._settings.etcd_peer_port}"
        command = [
            self._binary("etcd"),
            "--name=bridgescale-local",
            f"--data-dir={self.paths.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=bridgescale-local={peer}",
            "--listen-metrics-urls=",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]
        if self._settings.etcd_unsafe_no_fsync:
            command.append("--unsafe-no-fsync")
        return command

    def _apiserver_command(self) -> list[str]:
        pki = self.pki
        serving = pki.pair("apiserver")
        kubelet_client = pki.pair("apiserver-kubelet-client")
        return [
            self._binary("kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{self._settings.etcd_port}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self._settings.apiserver_port}",
            f"--tls-cert-file={serving.cert}",
            f"--tls-private-key-file={serving.key}",
            f"--client-ca-file={pki.ca.cert}",
            f"--kubelet-client-certificate={kubelet_client.cert}",
            f"--kubelet-client-key={kubelet_client.key}",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki.service_account_public_key}",
            f"--service-account-signing-key-file={pki.service_account_key}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--authorization-mode=Node,RBAC",
            # The default admission plugins stay on; NodeRestriction is added as kubeadm does.
            "--enable-admission-plugins=NodeRestriction",
            "--runtime-config=resource.k8s.io/v1=true",
            "--allow-privileged=true",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            "--v=1",
        ]

    def _component_auth_flags(self, kubeconfig_name: str, port: int) -> list[str]:
        path = self.paths.kubeconfigs / f"{kubeconfig_name}.yaml"
        return [
            f"--kubeconfig={path}",
            f"--authentication-kubeconfig={path}",
            f"--authorization-kubeconfig={path}",
            "--bind-address=127.0.0.1",
            f"--secure-port={port}",
            f"--cert-dir={self.paths.state_dir / kubeconfig_name}",
            "--leader-elect=false",
            "--v=1",
        ]

    def _controller_manager_command(self) -> list[str]:
        return [
            self._binary("kube-controller-manager"),
            *self._component_auth_flags(
                "controller-manager", self._settings.controller_manager_port
            ),
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca.cert}",
            f"--cluster-signing-cert-file={self.pki.ca.cert}",
            f"--cluster-signing-key-file={self.pki.ca.key}",
            "--use-service-account-credentials=true",
            "--controllers=*",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            "--cluster-name=bridgescale-local",
        ]

    def _scheduler_command(self) -> list[str]:
        return [
            self._binary("kube-scheduler"),
            *self._component_auth_flags("scheduler", self._settings.scheduler_port),
        ]

    def _admin_ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.pki.ca.cert))
        admin = self.pki.pair("admin")
        context.load_cert_chain(str(admin.cert), str(admin.key))
        return context

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        """GET `path` from the API server as the admin; raises urllib errors."""
        request = urllib.request.Request(self.server + path)  # noqa: S310 (https only)
        with urllib.request.urlopen(  # noqa: S310
            request, context=self._admin_ssl_context(), timeout=timeout
        ) as response:
            body: bytes = response.read()
            return body

    def is_ready(self) -> bool:
        try:
            return self.get("/readyz", timeout=2.0) == b"ok"
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def server_version(self) -> str | None:
        try:
            version: str = json.loads(self.get("/version"))["gitVersion"]
        except (urllib.error.URLError, OSError, ssl.SSLError, ValueError, KeyError):
            return None
        return version

    def wait_ready(self) -> None:
        deadline = time.monotonic() + self._settings.ready_timeout_seconds
        while time.monotonic() < deadline:
            if self.is_ready():
                return
            for name in ("etcd", "kube-apiserver"):
                self._check_alive(name)
            time.sleep(0.5)
        raise ControlPlaneError(
            f"kube-apiserver was not ready within {self._settings.ready_timeout_seconds:.0f} s; "
            f"see {self._supervisor.logs_dir / 'kube-apiserver.log'}"
        )

    def _check_alive(self, name: str) -> None:
        if self._supervisor.find(name) is None:
            log = self._supervisor.logs_dir / f"{name}.log"
            tail = (
                "\n".join(log.read_text(errors="replace").splitlines()[-10:])
                if log.exists()
                else "(no log)"
            )
            raise ControlPlaneError(f"{name} exited during start-up; last lines of {log}:\n{tail}")
