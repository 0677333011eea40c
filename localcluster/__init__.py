"""The local cluster for development, tests and the demo: the upstream control plane built from
the Go module proxy, run on loopback with the node simulator and a real Prometheus."""
