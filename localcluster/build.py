"""Build the upstream control plane from the Go module proxy, once, into a cache.

k8s.io/kubernetes is not meant to be a dependency: its go.mod points every staging module
(k8s.io/api, k8s.io/client-go, ...) at a folder of its own repository. A small generated wrapper
module requires it and replaces each of those staging modules with its published v0.X.Y, which
lets `go build` fetch everything from the proxy. etcd gets a wrapper of its own, so that its
dependencies do not bend the control plane's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from bridgescale.localcluster.settings import LocalClusterSettings

CONTROL_PLANE_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler")
# kubectl of the same release, with kustomize built in: tests apply deploy/ with it.
KUBERNETES_COMMANDS = (*CONTROL_PLANE_COMMANDS, "kubectl")
ETCD_MODULE = "go.etcd.io/etcd/server/v3"
BINARIES = (*KUBERNETES_COMMANDS, "etcd")
MANIFEST = "build.json"

Progress = Callable[[str], None]


class BuildError(RuntimeError):
    """The control plane could not be built; the message says what to do."""


@dataclass(frozen=True)
class BuildResult:
    binaries_dir: Path
    seconds: float
    cached: bool


def staging_replacements(kubernetes_go_mod: str, kubernetes_version: str) -> dict[str, str]:
    """Map each staging module that k8s.io/kubernetes requires to its published version.

    A staging module appears in k8s.io/kubernetes's go.mod twice: required at v0.0.0 and replaced
    by a folder under ./staging/. Release v1.X.Y of Kubernetes publishes each as v0.X.Y.
    """
    major_minor_patch = kubernetes_version.removeprefix("v").split(".")
    published = f"v0.{major_minor_patch[1]}.{major_minor_patch[2]}"
    staged = set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s*=>\s*\./staging/", kubernetes_go_mod, re.M))
    required = set(re.findall(r"^\s*(k8s\.io/[\w.-]+)\s+v0\.0\.0\s*$", kubernetes_go_mod, re.M))
    return {module: published for module in sorted(staged & required)}


def required_go_version(go_mod: str) -> str:
    """The `go` directive of a go.mod, e.g. "1.26.0"."""
    found = re.search(r"^go\s+(\d+\.\d+(?:\.\d+)?)\s*$", go_mod, re.M)
    if not found:
        raise BuildError("the module's go.mod has no go directive")
    return found.group(1)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def toolchain_for(required: str, local: str) -> str:
    """GOTOOLCHAIN value: the local Go where it is new enough, else the required release."""
    if _version_tuple(local) >= _version_tuple(required):
        return "local"
    return f"go{required}"


def wrapper_go_mod(
    module: str, go_version: str, requires: Mapping[str, str], replacements: Mapping[str, str]
) -> str:
    lines = [f"module {module}", "", f"go {go_version}", "", "require ("]
    lines += [f"\t{path} {version}" for path, version in requires.items()]
    lines.append(")")
    if replacements:
        lines += ["", "replace ("]
        lines += [f"\t{path} => {path} {version}" for path, version in replacements.items()]
        lines.append(")")
    return "\n".join(lines) + "\n"


def version_ldflags(kubernetes_version: str, release_time: str) -> str:
    """Linker flags that stamp the release into the binaries, as upstream's build does."""
    major, minor = kubernetes_version.removeprefix("v").split(".")[:2]
    stamps = {
        "gitVersion": kubernetes_version,
        "gitMajor": major,
        "gitMinor": minor,
        "gitTreeState": "clean",
        "buildDate": release_time,
    }
    flags = ["-s", "-w"]
    for package in ("k8s.io/component-base/version", "k8s.io/client-go/pkg/version"):
        flags += [f"-X {package}.{name}={value}" for name, value in stamps.items()]
    return " ".join(flags)


class ControlPlaneBuild:
    """Builds etcd and the control plane of one Kubernetes release into the cache."""

    def __init__(self, settings: LocalClusterSettings, progress: Progress) -> None:
        self._settings = settings
        self._progress = progress
        self._go = shutil.which("go")

    def is_cached(self) -> bool:
        manifest = self._settings.binaries_dir / MANIFEST
        if not manifest.is_file():
            return False
        recorded = json.loads(manifest.read_text())
        wanted = {
            "kubernetes": self._settings.kubernetes_version,
            "etcd": self._settings.etcd_version,
        }
        present = all((self._settings.binaries_dir / name).is_file() for name in BINARIES)
        return present and all(recorded.get(key) == value for key, value in wanted.items())

    def ensure(self) -> BuildResult:
        """Build unless the cache already holds this release; report how long it took."""
        started = time.monotonic()
        if self.is_cached():
            return BuildResult(self._settings.binaries_dir, time.monotonic() - started, True)
        self._check_go()
        kubernetes = self._download_module("k8s.io/kubernetes", self._settings.kubernetes_version)
        etcd = self._download_module(ETCD_MODULE, self._settings.etcd_version)
        self._build_control_plane(kubernetes)
        self._build_etcd(etcd)
        seconds = time.monotonic() - started
        manifest = {
            "kubernetes": self._settings.kubernetes_version,
            "etcd": self._settings.etcd_version,
            "seconds": round(seconds, 1),
            "built_at": time.time(),
        }
        (self._settings.binaries_dir / MANIFEST).write_text(json.dumps(manifest, indent=2))
        return BuildResult(self._settings.binaries_dir, seconds, False)

    def _check_go(self) -> None:
        if self._go is None:
            raise BuildError(
                "Go is not installed or not on PATH: the local control plane is built from the "
                "Go module proxy. Install Go 1.22 or newer (Debian: apt-get install golang-go) "
                "and run again."
            )

    def _env(self, toolchain: str = "local") -> dict[str, str]:
        cache = self._settings.cache_dir / "go"
        env = dict(os.environ)
        env.update(
            GOMODCACHE=str(cache / "mod"),
            GOCACHE=str(cache / "build"),
            GOFLAGS="-mod=mod -buildvcs=false",
            GOTOOLCHAIN=toolchain,
            CGO_ENABLED="0",
        )
        return env

    def _run_go(self, args: list[str], cwd: Path, env: Mapping[str, str]) -> str:
        assert self._go is not None
        result = subprocess.run(
            [self._go, *args], cwd=cwd, env=dict(env), capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise BuildError(self._explain_failure(args, result.stderr or result.stdout))
        return result.stdout

    @staticmethod
    def _explain_failure(args: list[str], output: str) -> str:
        tail = "\n".join(output.strip().splitlines()[-15:])
        hint = ""
        unreachable = r"dial tcp|no such host|proxyconnect|i/o timeout|refused|disabled by GOPROXY"
        if re.search(unreachable, output):
            hint = (
                "\nThe Go module proxy could not be reached: check GOPROXY "
                f"(now {os.environ.get('GOPROXY', 'unset')}) and the network."
            )
        return f"go {' '.join(args[:2])} failed:\n{tail}{hint}"

    def _download_module(self, path: str, version: str) -> dict[str, str]:
        self._progress(f"fetching {path}@{version} from the Go module proxy")
        scratch = self._settings.cache_dir / "work"
        scratch.mkdir(parents=True, exist_ok=True)
        out = self._run_go(["mod", "download", "-json", f"{path}@{version}"], scratch, self._env())
        info: dict[str, str] = json.loads(out)
        return info

    def _local_go_version(self) -> str:
        out = self._run_go(["env", "GOVERSION"], self._settings.cache_dir, self._env())
        return out.strip().removeprefix("go")

    def _prepare_wrapper(
        self, name: str, module_info: Mapping[str, str], replacements: Mapping[str, str]
    ) -> tuple[Path, str]:
        go_mod = Path(module_info["GoMod"]).read_text()
        go_version = required_go_version(go_mod)
        toolchain = toolchain_for(go_version, self._local_go_version())
        if toolchain != "local":
            self._progress(f"{module_info['Path']} needs Go {go_version}: using {toolchain}")
        folder = self._settings.cache_dir / "work" / f"{name}-{module_info['Version']}"
        folder.mkdir(parents=True, exist_ok=True)
        requires = {module_info["Path"]: module_info["Version"]}
        module = f"bridgescale.dev/localcluster/{name}"
        wrapper = wrapper_go_mod(module, go_version, requires, replacements)
        (folder / "go.mod").write_text(wrapper)
        return folder, toolchain

    def _build(
        self, folder: Path, toolchain: str, packages: list[str], ldflags: str, output: str
    ) -> None:
        """Run `go build`; `output` ending in "/" is a folder that receives one binary each."""
        assert self._go is not None
        self._settings.binaries_dir.mkdir(parents=True, exist_ok=True)
        command = [
            self._go,
            "build",
            "-v",
            "-trimpath",
            "-ldflags",
            ldflags,
            "-o",
            output,
            *packages,
        ]
        with subprocess.Popen(
            command,
            cwd=folder,
            env=self._env(toolchain),
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        ) as build:
            assert build.stderr is not None
            compiled = 0
            log: list[str] = []
            for line in build.stderr:
                log.append(line)
                if not line.startswith("go: downloading"):
                    compiled += 1
                if compiled % 100 == 1:
                    self._progress(f"compiled {compiled} packages ({line.strip()})")
            if build.wait() != 0:
                raise BuildError(self._explain_failure(["build", *packages], "".join(log)))

    def _build_control_plane(self, kubernetes: Mapping[str, str]) -> None:
        version = self._settings.kubernetes_version
        go_mod = Path(kubernetes["GoMod"]).read_text()
        replacements = staging_replacements(go_mod, version)
        folder, toolchain = self._prepare_wrapper("kubernetes", kubernetes, replacements)
        release_time = json.loads(Path(kubernetes["Info"]).read_text())["Time"]
        packages = [f"k8s.io/kubernetes/cmd/{command}" for command in KUBERNETES_COMMANDS]
        self._progress(f"building {', '.join(KUBERNETES_COMMANDS)} {version}")
        ldflags = version_ldflags(version, release_time)
        self._build(folder, toolchain, packages, ldflags, f"{self._settings.binaries_dir}/")

    def _build_etcd(self, etcd: Mapping[str, str]) -> None:
        folder, toolchain = self._prepare_wrapper("etcd", etcd, {})
        self._progress(f"building etcd {self._settings.etcd_version}")
        output = str(self._settings.binaries_dir / "etcd")
        self._build(folder, toolchain, [ETCD_MODULE], "-s -w", output)
