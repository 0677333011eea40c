"""The admission webhook, served over TLS by the updater: the API server sends every new pod of
an opted-in namespace; the answer sizes it from its workload's recommendation.

The serving certificate is made at start by a CA of the updater's own, whose certificate the
registration passes as caBundle; nothing is read from or written to disk but a private folder.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import ssl
import tempfile
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bridgescale.policy import policy_from_annotations
from bridgescale.updater.admission import Sizing, mutate, review_response
from bridgescale.updater.placement import workload_of
from bridgescale.updater.pods import Owner, Pod, PodProblem, QoSClass
from bridgescale.updater.ports import Cluster
from bridgescale.updater.recommendations import RecommendationProblem, recommendation_from_json

logger = logging.getLogger("bridgescale.updater.webhook")
VALIDITY = dt.timedelta(days=30)
MAX_BODY = 4 * 1024 * 1024
CLIENT_SECONDS = 10.0  # the API server gives up on the webhook after 3 s anyway


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _certificate(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[str, ec.EllipticCurvePrivateKey],
    *, ca: bool, hosts: tuple[str, ...] = (),
) -> x509.Certificate:  # fmt: skip
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer[0])]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if hosts:
        names: list[x509.GeneralName] = []
        for host in hosts:
            try:
                names.append(x509.IPAddress(ipaddress.ip_address(host)))
            except ValueError:
                names.append(x509.DNSName(host))
        builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
    return builder.sign(issuer[1], hashes.SHA256())


def serving_certificate(folder: Path, hosts: tuple[str, ...]) -> tuple[Path, Path, bytes]:
    """A new CA and a serving certificate for `hosts`: (cert file, key file, CA PEM)."""
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("bridgescale-updater-ca", ca_key, ("bridgescale-updater-ca", ca_key), ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _certificate(hosts[0], key, ("bridgescale-updater-ca", ca_key), ca=False, hosts=hosts)
    cert_file, key_file = folder / "tls.crt", folder / "tls.key"
    key_file.write_bytes(_pem_key(key))
    key_file.chmod(0o600)
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return cert_file, key_file, ca.public_bytes(serialization.Encoding.PEM)


def _admitted_pod(raw: Mapping[str, Any], namespace: str) -> Pod:
    """Enough of a pod under admission (maybe nameless yet) to find its workload."""
    metadata = raw.get("metadata") or {}
    owner = next(
        (
            Owner(str(ref["kind"]), str(ref["name"]))
            for ref in metadata.get("ownerReferences") or []
            if ref.get("controller")
        ),
        None,
    )
    return Pod(
        namespace, str(metadata.get("name") or ""), "", "", 1, None, QoSClass.BURSTABLE, (),
        owner=owner, labels=dict(metadata.get("labels") or {}),
    )  # fmt: skip


def sizing_for(cluster: Cluster, raw_pod: Mapping[str, Any], namespace: str) -> Sizing:
    """What the webhook knows about a new pod's workload: its recommendation and policy."""
    key = workload_of(_admitted_pod(raw_pod, namespace))
    if key is None:
        return Sizing(None)
    for raw in cluster.list_recommendations(namespace):
        target = (raw.get("spec") or {}).get("targetRef") or {}
        if (target.get("kind"), target.get("name")) == (key.kind, key.name):
            recommendation = recommendation_from_json(raw)
            break
    else:
        return Sizing(None)
    annotations = cluster.workload_annotations(namespace, key.kind, key.name)
    if key.kind == "Pod":
        annotations = (raw_pod.get("metadata") or {}).get("annotations") or {}
    policy, problems = policy_from_annotations(annotations)
    if problems:  # as the updater does: nothing is sized on a policy its owner mistyped
        raise PodProblem("; ".join(p.unusable() for p in problems))
    return Sizing(recommendation, policy, claim_templates=cluster.claim_templates(key))


def review(cluster: Cluster, body: Mapping[str, Any]) -> dict[str, Any]:
    """The answer to one AdmissionReview."""
    request = body.get("request") or {}
    uid = str(request.get("uid", ""))
    pod = request.get("object") or {}
    try:
        sizing = sizing_for(cluster, pod, str(request.get("namespace", "")))
        operations = mutate(pod, sizing)
    except (PodProblem, RecommendationProblem) as error:
        logger.warning("new pod in %s admitted unsized: %s", request.get("namespace"), error)
        return review_response(uid, [], [f"bridgescale did not size this pod: {error}"])
    if operations:
        logger.info("sizing new pod in %s: %s", request.get("namespace"), json.dumps(operations))
    return review_response(uid, operations)


class _TLSServer(ThreadingHTTPServer):
    """HTTPS whose TLS handshake happens in each connection's own thread, with a timeout: a
    client that connects and says nothing cannot stall the accept loop and so every other pod's
    admission (a wrapped listening socket would shake hands in that loop)."""

    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
    ) -> None:  # fmt: skip
        self.context = context
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        request.settimeout(CLIENT_SECONDS)
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as error:
            logger.debug("TLS handshake with %s failed: %s", client_address, error)
            return
        try:
            # typeshed types the handler's server as its own class, not this subclass
            self.RequestHandlerClass(tls, client_address, self)  # type: ignore[arg-type]
        finally:
            tls.close()


class WebhookServer:
    """HTTPS on `port` (0: any free one) in a background thread."""

    def __init__(
        self, cluster: Cluster, *, port: int = 0, host: str = "127.0.0.1",
        hosts: tuple[str, ...] = ("127.0.0.1", "localhost"),
    ) -> None:  # fmt: skip
        self.cluster = cluster
        self._folder = tempfile.TemporaryDirectory(prefix="bridgescale-webhook-")
        cert, key, self.ca_bundle = serving_certificate(Path(self._folder.name), hosts)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(cert, key)
        self.httpd = _TLSServer((host, port), self._handler(), context)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        cluster = self.cluster

        class Handler(BaseHTTPRequestHandler):
            timeout = CLIENT_SECONDS  # a client that stops sending holds its thread no longer

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if not 0 < length <= MAX_BODY:
                    self.send_error(400, "an AdmissionReview body is required")
                    return
                try:
                    answer = review(cluster, json.loads(self.rfile.read(length)))
                except Exception:
                    logger.exception("admission review failed; the pod is admitted unchanged")
                    self.send_error(500)
                    return
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug(format, *args)

        return Handler

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._folder.cleanup()
