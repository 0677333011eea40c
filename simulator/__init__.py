"""The node simulator: kubelets without a container runtime. It registers nodes, runs the pods
bound to them, resizes them in place as the upstream kubelet does, publishes DRA slices for
simulated GPUs, and serves cAdvisor, kube-state-metrics and DCGM style metrics of simulated
bridge workloads."""
