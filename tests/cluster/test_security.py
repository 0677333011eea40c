"""Security: each service account has exactly the RBAC its code uses (rules compared with a list
of uses, and SubjectAccessReviews for what it may and may not do, among them no update, patch or
delete of pods and for the updater only `patch` of `pods/resize`); the webhook's TLS is verified
by the API server and refused to clients without its CA; no token or password reaches the logs;
the containers run as non-root on a read-only root filesystem under the `restricted` Pod Security
profile."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from kubernetes import client

from bridgescale import kube
from bridgescale.kube import admission
from bridgescale.kube.updater_cluster import KubeCluster
from bridgescale.localcluster.environment import LocalEnvironment
from bridgescale.localcluster.settings import find_project_root
from bridgescale.updater.webhook import WebhookServer, serving_certificate
from tests.cluster.updater_support import bare_pod, recommend, run_on_node, running_bare_pod

pytestmark = [pytest.mark.cluster, pytest.mark.security]
DEPLOY = find_project_root(Path(__file__)) / "deploy"
NAMESPACE = "bridgescale-system"
Use = tuple[str, str, str]  # API group, resource (with subresource), verb

# What each service's code does with the API, and where; the ClusterRole and Role must grant
# these and nothing else.
NEEDED: dict[str, dict[Use, str]] = {
    "bridgescale-updater": {
        ("", "pods", "get"): "read a pod before acting, restore a saved bare pod",
        ("", "pods", "list"): "a pass lists the pods of each opted-in namespace",
        ("", "pods", "watch"): "a pod change wakes the loop",
        ("", "pods", "create"): "bring a bare pod back from its saved manifest",
        ("", "pods/resize", "patch"): "resize in place",
        ("", "pods/eviction", "create"): "recreate through the Eviction API",
        ("", "nodes", "get"): "room on nodes for a replacement",
        ("", "nodes", "list"): "room on nodes for a replacement",
        ("", "nodes", "watch"): "room on nodes for a replacement",
        ("", "namespaces", "get"): "opted-in namespaces",
        ("", "namespaces", "list"): "opted-in namespaces",
        ("", "namespaces", "watch"): "opted-in namespaces",
        ("", "configmaps", "get"): "a bare pod's saved manifest",
        ("", "configmaps", "list"): "saved manifests of a namespace",
        ("", "configmaps", "create"): "save a bare pod before evicting it",
        ("", "configmaps", "update"): "save it again at a new size",
        ("", "configmaps", "delete"): "forget it once the pod is back",
        **{
            ("apps", resource, verb): "a pod's workload and its annotations"
            for resource in ("deployments", "statefulsets", "replicasets")
            for verb in ("get", "list", "watch")
        },
        ("bridgescale.dev", "resourcerecommendations", "get"): "recommendations",
        ("bridgescale.dev", "resourcerecommendations", "list"): "recommendations",
        ("bridgescale.dev", "resourcerecommendations", "watch"): "recommendations",
        ("events.k8s.io", "events", "create"): "an Event per decision",
        ("events.k8s.io", "events", "patch"): "an Event per decision",
        **{
            ("resource.k8s.io", "resourceclaimtemplates", verb): "GPU claim swaps"
            for verb in ("get", "list", "watch", "create", "delete")
        },
        **{
            ("resource.k8s.io", resource, verb): "room for a larger GPU claim"
            for resource in ("resourceclaims", "resourceslices", "deviceclasses")
            for verb in ("get", "list", "watch")
        },
        **{
            ("resource.k8s.io", "devicetaintrules", verb): "migration off tainted devices"
            for verb in ("get", "list", "watch")
        },
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "get"): "webhook",
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "create"): "webhook",
        ("admissionregistration.k8s.io", "mutatingwebhookconfigurations", "patch"): "webhook",
        ("coordination.k8s.io", "leases", "get"): "leader election",
        ("coordination.k8s.io", "leases", "create"): "leader election",
        ("coordination.k8s.io", "leases", "update"): "leader election",
    },
    "bridgescale-recommender": {
        **{
            ("", resource, verb): "discovery: opted-in namespaces and their pods"
            for resource in ("namespaces", "pods")
            for verb in ("get", "list", "watch")
        },
        **{
            ("apps", resource, verb): "discovery: workloads"
            for resource in ("deployments", "replicasets", "statefulsets")
            for verb in ("get", "list", "watch")
        },
        ("", "events", "create"): "InvalidPolicy Events",
        ("", "events", "get"): "InvalidPolicy Events",
        ("", "events", "patch"): "InvalidPolicy Events",
        **{
            ("bridgescale.dev", resource, verb): "recommendations and checkpoints"
            for resource in ("resourcerecommendations", "recommendercheckpoints")
            for verb in ("get", "list", "watch", "create", "patch")
        },
        ("bridgescale.dev", "resourcerecommendations/status", "get"): "publish",
        ("bridgescale.dev", "resourcerecommendations/status", "patch"): "publish",
        **{
            ("autoscaling.k8s.io", "verticalpodautoscalers", verb): "VPAs naming bridgescale"
            for verb in ("get", "list", "watch")
        },
        ("autoscaling.k8s.io", "verticalpodautoscalers/status", "get"): "VPA status",
        ("autoscaling.k8s.io", "verticalpodautoscalers/status", "patch"): "VPA status",
        ("coordination.k8s.io", "leases", "get"): "leader election",
        ("coordination.k8s.io", "leases", "create"): "leader election",
        ("coordination.k8s.io", "leases", "update"): "leader election",
    },
}
# What neither may do: read secrets, run code in pods, mint tokens, escalate, change pods or
# nodes directly.
FORBIDDEN: list[tuple[Use, str]] = [
    (("", "secrets", "get"), "bridges"),
    (("", "secrets", "list"), "bridges"),
    (("", "pods", "update"), "bridges"),
    (("", "pods", "patch"), "bridges"),
    (("", "pods", "delete"), "bridges"),
    (("", "pods/exec", "create"), "bridges"),
    (("", "pods/resize", "update"), "bridges"),
    (("", "serviceaccounts/token", "create"), "bridges"),
    (("", "nodes", "patch"), ""),
    (("rbac.authorization.k8s.io", "clusterroles", "escalate"), ""),
    (("rbac.authorization.k8s.io", "clusterrolebindings", "create"), ""),
    (("coordination.k8s.io", "leases", "update"), "kube-system"),
]


def _granted(account: str) -> set[Use]:
    """Every (group, resource, verb) the account's roles in deploy/ grant."""
    service = account.removeprefix("bridgescale-")
    granted = set()
    for document in yaml.safe_load_all((DEPLOY / service / "rbac.yaml").read_text()):
        if document and document["kind"] in {"ClusterRole", "Role"}:
            for rule in document["rules"]:
                assert "resourceNames" not in rule or rule["verbs"] != ["create"]
                for group in rule["apiGroups"]:
                    for resource in rule["resources"]:
                        granted |= {(group, resource, verb) for verb in rule["verbs"]}
    return granted


def _can(api: client.ApiClient, account: str, use: Use, namespace: str = "bridges") -> bool:
    group, resource, verb = use
    resource, _, subresource = resource.partition("/")
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": f"system:serviceaccount:{NAMESPACE}:{account}",
            "groups": ["system:serviceaccounts", f"system:serviceaccounts:{NAMESPACE}"],
            "resourceAttributes": {
                "namespace": namespace,
                "group": group,
                "verb": verb,
                "resource": resource,
                "subresource": subresource,
            },
        },
    }
    allowed: bool = (
        client.AuthorizationV1Api(api).create_subject_access_review(review).status.allowed
    )
    return allowed


@pytest.fixture(scope="module")
def deployed_rbac(api: client.ApiClient, crds: list[str]) -> None:
    rbac = [
        DEPLOY / "system/namespace.yaml",
        DEPLOY / "recommender/rbac.yaml",
        DEPLOY / "updater/rbac.yaml",
    ]
    kube.apply(api, kube.load_manifests(*rbac))


@pytest.mark.parametrize("account", sorted(NEEDED))
def test_each_service_account_has_exactly_the_rbac_it_uses(
    api: client.ApiClient, deployed_rbac: None, account: str, checked: Callable[[str], None]
) -> None:
    needed = NEEDED[account]

    assert _granted(account) == set(needed)  # nothing more granted, nothing missing
    refused = [use for use in needed if not _can(api, account, use, _where(use))]
    assert refused == []
    allowed = [use for use, where in FORBIDDEN if _can(api, account, use, where)]
    assert allowed == []
    others = {u for other, uses in NEEDED.items() if other != account for u in uses} - set(needed)
    assert [use for use in others if _can(api, account, use, _where(use))] == []
    checked(
        f"{account}: roles grant exactly the {len(needed)} uses listed; SubjectAccessReviews "
        f"allow all {len(needed)}, refuse the {len(others)} only the other service has and all "
        f"{len(FORBIDDEN)} forbidden ones (secrets, pods update/patch/delete/exec, "
        "pods/resize update, tokens, escalation, nodes, other leases)"
    )


def _where(use: Use) -> str:
    return NAMESPACE if use[0] == "coordination.k8s.io" else "bridges"


# --- the webhook's TLS ------------------------------------------------------------------------


@pytest.fixture
def webhook(as_updater: client.ApiClient, api: client.ApiClient) -> Iterator[WebhookServer]:
    server = WebhookServer(KubeCluster(as_updater))
    server.start()
    yield server
    registrations = client.AdmissionregistrationV1Api(api)
    if any(
        w.metadata.name == admission.NAME
        for w in registrations.list_mutating_webhook_configuration().items
    ):
        registrations.delete_mutating_webhook_configuration(admission.NAME)
    server.stop()


def _create_sized(api: client.ApiClient, namespace: str, node: str, name: str) -> dict[str, str]:
    recommend(api, namespace, "Pod", name, {"cpu": "1", "memory": "512Mi"})
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(namespace, bare_pod(name, node))
    pod = core.read_namespaced_pod(name, namespace)
    return {str(k): str(v) for k, v in pod.spec.containers[0].resources.requests.items()}


@pytest.mark.filterwarnings("ignore:ssl.TLSVersion.TLSv1_1 is deprecated:DeprecationWarning")
def test_the_webhook_tls_is_verified(
    api: client.ApiClient, as_updater: client.ApiClient, bridges: str, node: str,
    webhook: WebhookServer, checked: Callable[[str], None], tmp_path: Path,
) -> None:  # fmt: skip
    url = f"https://127.0.0.1:{webhook.port}/mutate"

    # Registered with another CA, the API server does not trust the webhook: the pod is
    # admitted unsized (failurePolicy Ignore) rather than sized by an unverified server.
    _, _, other_ca = serving_certificate(tmp_path, ("127.0.0.1",))
    admission.register_webhook(as_updater, url, other_ca)
    assert _create_sized(api, bridges, node, "untrusted") == {"cpu": "500m", "memory": "256Mi"}
    admission.register_webhook(as_updater, url, webhook.ca_bundle)
    assert _create_sized(api, bridges, node, "trusted") == {"cpu": "1", "memory": "512Mi"}

    # A client without the CA is refused; with it, the certificate names the host it serves.
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(ssl.create_default_context(), webhook.port)
    trusting = ssl.create_default_context(cadata=webhook.ca_bundle.decode())
    der = _handshake(trusting, webhook.port)
    names = (
        x509.load_der_x509_certificate(der)
        .extensions.get_extension_for_class(x509.SubjectAlternativeName)
        .value
    )
    sans = [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
    sans += names.get_values_for_type(x509.DNSName)
    assert sans == ["127.0.0.1", "localhost"]
    old = ssl.create_default_context(cadata=webhook.ca_bundle.decode())
    old.minimum_version = old.maximum_version = ssl.TLSVersion.TLSv1_1
    with pytest.raises(ssl.SSLError):
        _handshake(old, webhook.port)

    # A client that connects and says nothing does not stop the webhook serving others.
    with socket.create_connection(("127.0.0.1", webhook.port)):
        started = time.monotonic()
        assert _create_sized(api, bridges, node, "meanwhile") == {"cpu": "1", "memory": "512Mi"}
        waited = time.monotonic() - started
    checked(
        "API server sized a pod through the webhook only with its own CA as caBundle (another "
        "CA: admitted unsized); a client without the CA got a verification error; TLS 1.1 "
        f"refused; SANs {sans}; a silent connection did not block it (pod sized in {waited:.2f} s)"
    )


def _handshake(context: ssl.SSLContext, port: int) -> bytes:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
        assert der is not None
        return der


# --- secrets in logs --------------------------------------------------------------------------


def _token(kubeconfig: Path) -> str:
    config = yaml.safe_load(kubeconfig.read_text())
    token: str = config["users"][0]["user"]["token"]
    return token


def _start(arguments: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "bridgescale", "--log-level", "DEBUG", *arguments]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )


def test_no_token_or_password_appears_in_the_logs(
    local_cluster: LocalEnvironment, api: client.ApiClient, deployed_rbac: None,
    updater_kubeconfig: Path, bridges: str, node: str, tmp_path: Path,
    checked: Callable[[str], None],
) -> None:  # fmt: skip
    recommender_kubeconfig = local_cluster.mint_kubeconfig(
        NAMESPACE, "bridgescale-recommender", tmp_path / "recommender.yaml"
    )
    running_bare_pod(api, bridges, node, {"cpu": "1", "memory": "512Mi"})
    bearer, password = f"bearer-{uuid.uuid4().hex}", f"password-{uuid.uuid4().hex}"
    secrets = {
        "recommender token": _token(recommender_kubeconfig),
        "updater token": _token(updater_kubeconfig),
        "Prometheus bearer token": bearer,
        "Prometheus password": password,
        "basic auth header": base64.b64encode(f"bridgescale:{password}".encode()).decode(),
    }
    env = {
        **os.environ,
        "BRIDGESCALE_PROMETHEUS_BEARER_TOKEN": bearer,
        "BRIDGESCALE_PROMETHEUS_USERNAME": "bridgescale",
        "BRIDGESCALE_PROMETHEUS_PASSWORD": password,
        "BRIDGESCALE_PROMETHEUS_RETRIES": "0",
        "BRIDGESCALE_UPDATER_SETTLE_TIMEOUT": "PT5S",
    }
    core = client.CoreV1Api(api)
    core.create_namespaced_pod(bridges, bare_pod("settled", node, cpu="1", memory="512Mi"))
    run_on_node(api, bridges, "settled", node)  # at its recommendation: a debug line
    recommend(api, bridges, "Pod", "settled", {"cpu": "1", "memory": "512Mi"})
    closed = f"http://127.0.0.1:{_free_port()}"  # the error path logs too
    recommender = ["recommender", "--once", "--kubeconfig", str(recommender_kubeconfig)]
    runs = [  # side by side, to keep the test short
        _start([*recommender, "--prometheus-url", local_cluster.prometheus.url], env),
        _start([*recommender, "--prometheus-url", closed], env),
        _start(["updater", "--once", "--kubeconfig", str(updater_kubeconfig)], env),
    ]
    output = "".join(run.communicate(timeout=180)[0] for run in runs)
    print(output[-5000:])
    client.AdmissionregistrationV1Api(api).delete_mutating_webhook_configuration(admission.NAME)

    lines = output.splitlines()
    debug = [line for line in lines if " DEBUG " in line]
    assert any("query " in line for line in debug)  # PromQL payloads, at DEBUG
    assert any("no action" in line for line in debug)
    assert "resized bridge-0" in output  # the updater did its work, with its token
    leaked = [name for name, secret in secrets.items() if secret in output]
    assert leaked == []
    checked(
        f"{len(lines)} lines of output ({len(debug)} at DEBUG) of 2 recommender runs (Prometheus "
        f"up and unreachable) and an updater run hold none of: {', '.join(secrets)}"
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


# --- containers -------------------------------------------------------------------------------


def _deployments() -> list[dict[str, Any]]:
    documents = kube.load_manifests(
        DEPLOY / "recommender/deployment.yaml", DEPLOY / "updater/deployment.yaml"
    )
    return [d for d in documents if d["kind"] == "Deployment"]


def test_the_containers_run_as_non_root_on_a_read_only_root_filesystem(
    api: client.ApiClient, namespace: str, checked: Callable[[str], None]
) -> None:
    core = client.CoreV1Api(api)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    for deployment in _deployments():
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
        # The API server's Pod Security admission at the `restricted` level admits the pod.
        spec = {k: v for k, v in spec.items() if k != "serviceAccountName"}  # not made here
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probe"}, "spec": spec}
        core.create_namespaced_pod(namespace, pod, dry_run="All")
    user = next(
        line.split()[1] for line in (DEPLOY.parent / "Dockerfile").read_text().splitlines()
        if line.startswith("USER ")
    )  # fmt: skip
    assert not user.startswith(("0", "root"))
    checked(
        "both Deployments: runAsNonRoot, uid 65532, readOnlyRootFilesystem, no privilege "
        f"escalation, all capabilities dropped; admitted under Pod Security `restricted` "
        f"(server dry run); image USER {user}"
    )
