"""The generated wrapper module and build flags for the control plane."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bridgescale.localcluster.build import (
    BuildError,
    ControlPlaneBuild,
    required_go_version,
    staging_replacements,
    toolchain_for,
    version_ldflags,
    wrapper_go_mod,
)
from bridgescale.localcluster.settings import LocalClusterSettings

KUBERNETES_GO_MOD = """
module k8s.io/kubernetes

go 1.26.0

require (
\tgithub.com/spf13/cobra v1.10.2
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
\tk8s.io/sample-apiserver v0.0.0
\tk8s.io/utils v0.0.0-20260626114624-be93311217bd
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/sample-apiserver => ./staging/src/k8s.io/sample-apiserver
\tk8s.io/sample-controller => ./staging/src/k8s.io/sample-controller
)
"""


def test_replaces_each_required_staging_module_with_its_published_version() -> None:
    replacements = staging_replacements(KUBERNETES_GO_MOD, "v1.37.2")
    assert replacements == {
        "k8s.io/api": "v0.37.2",
        "k8s.io/client-go": "v0.37.2",
        "k8s.io/sample-apiserver": "v0.37.2",
    }


def test_wrapper_go_mod_requires_and_replaces() -> None:
    text = wrapper_go_mod(
        "bridgescale.dev/localcluster/kubernetes",
        "1.26.0",
        {"k8s.io/kubernetes": "v1.37.2"},
        {"k8s.io/api": "v0.37.2"},
    )
    assert "go 1.26.0\n" in text
    assert "\tk8s.io/kubernetes v1.37.2\n" in text
    assert "\tk8s.io/api => k8s.io/api v0.37.2\n" in text


@pytest.mark.parametrize(
    ("required", "local", "expected"),
    [
        ("1.26.0", "1.26.8", "local"),
        ("1.26", "1.26.0", "local"),
        ("1.27.1", "1.26.8", "go1.27.1"),
        ("1.26.9", "1.26.8", "go1.26.9"),
    ],
)
def test_toolchain_switches_only_when_the_local_go_is_too_old(
    required: str, local: str, expected: str
) -> None:
    assert toolchain_for(required, local) == expected


def test_go_directive_is_required() -> None:
    assert required_go_version(KUBERNETES_GO_MOD) == "1.26.0"
    with pytest.raises(BuildError, match="no go directive"):
        required_go_version("module x\n")


def test_ldflags_stamp_the_release() -> None:
    flags = version_ldflags("v1.37.2", "2026-10-27T12:01:04Z")
    assert "-X k8s.io/component-base/version.gitVersion=v1.37.2" in flags
    assert "-X k8s.io/component-base/version.gitMinor=37" in flags
    assert "-X k8s.io/client-go/pkg/version.buildDate=2026-10-27T12:01:04Z" in flags


def test_missing_go_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty PATH: no go on it
    settings = LocalClusterSettings(cache_dir=tmp_path / "cache")
    with pytest.raises(BuildError, match="Go is not installed or not on PATH"):
        ControlPlaneBuild(settings, progress=lambda _: None).ensure()


@pytest.mark.skipif(shutil.which("go") is None, reason="needs a Go toolchain")
def test_unreachable_proxy_is_explained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An empty module cache and a proxy that refuses everything, as on a machine without access.
    monkeypatch.setenv("GOPROXY", "off")
    settings = LocalClusterSettings(cache_dir=tmp_path / "cache")
    with pytest.raises(BuildError) as failure:
        ControlPlaneBuild(settings, progress=lambda _: None).ensure()
    message = str(failure.value)
    assert "go mod download failed" in message
    assert "k8s.io/kubernetes" in message
    assert "The Go module proxy could not be reached" in message
