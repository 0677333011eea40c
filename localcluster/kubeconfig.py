"""Kubeconfig files for the local cluster: certificate users, and tokens minted for service
accounts so that each service is tested with exactly the RBAC that `deploy/` grants it."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

CLUSTER = "bridgescale-local"


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def render(server: str, ca_cert: Path, user: str, credentials: dict[str, str]) -> str:
    """A kubeconfig with one cluster, one user and one current context."""
    config: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": CLUSTER,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_cert)},
            }
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": user, "context": {"cluster": CLUSTER, "user": user}}],
        "current-context": user,
    }
    return yaml.safe_dump(config, sort_keys=False)


def write_for_certificate(
    path: Path, *, server: str, ca_cert: Path, user: str, cert: Path, key: Path
) -> Path:
    credentials = {"client-certificate-data": _b64(cert), "client-key-data": _b64(key)}
    _write_private(path, render(server, ca_cert, user, credentials))
    return path


def write_for_token(path: Path, server: str, ca_cert: Path, user: str, token: str) -> Path:
    _write_private(path, render(server, ca_cert, user, {"token": token}))
    return path


def _write_private(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o600)
