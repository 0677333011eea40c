"""bridgescale: vertical autoscaling without restarts for stateful Kubernetes workloads.

This folder is the `bridgescale` package itself: the pieces shared by every part (settings,
logging, quantities, the one module that talks to the Kubernetes API) and the `bridgescale`
console script. The other top-level folders are its subpackages.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("bridgescale")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
