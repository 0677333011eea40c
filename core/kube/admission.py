"""Registration of the updater's mutating admission webhook: new pods of opted-in namespaces are
sent to it; failurePolicy Ignore and a short timeout, so a missing updater never blocks a pod."""

from __future__ import annotations

import base64
from typing import Any

from kubernetes import client

from bridgescale.kube import apply

NAME = "bridgescale-updater"
TIMEOUT_SECONDS = 3


def webhook_configuration(url: str, ca_bundle: bytes) -> dict[str, Any]:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": NAME},
        "webhooks": [
            {
                "name": "pods.updater.bridgescale.dev",
                "clientConfig": {"url": url, "caBundle": base64.b64encode(ca_bundle).decode()},
                "rules": [
                    {
                        "apiGroups": [""],
                        "apiVersions": ["v1"],
                        "operations": ["CREATE"],
                        "resources": ["pods"],
                        "scope": "Namespaced",
                    }
                ],
                "namespaceSelector": {"matchLabels": {"bridgescale.dev/enabled": "true"}},
                "failurePolicy": "Ignore",
                "timeoutSeconds": TIMEOUT_SECONDS,
                "sideEffects": "None",
                "admissionReviewVersions": ["v1"],
                "reinvocationPolicy": "IfNeeded",
            }
        ],
    }


def register_webhook(api: client.ApiClient, url: str, ca_bundle: bytes) -> None:
    """Create or update the registration to call `url`, trusting `ca_bundle`."""
    apply(api, [webhook_configuration(url, ca_bundle)])
