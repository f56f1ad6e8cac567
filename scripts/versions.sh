# The versions of the Go tools built from the module proxy (scripts/build-control-plane,
# scripts/publish-image). Sourced, not run.
# shellcheck shell=bash
# Kubernetes 1.35: covered by k8s-openapi's `v1_35` feature, which host/ enables.
KUBE_VERSION=v1.35.4
ETCD_VERSION=v3.6.5
# Helm 3.22 (built against client-go 0.37).
HELM_VERSION=v3.22.0
# The registry policies are pulled from, and the signer (cosign 2: `sign-blob --key`
# writes the base64 ECDSA signature podlight verifies).
REGISTRY_VERSION=v3.1.2
COSIGN_VERSION=v2.6.5
# Another OCI client, to show other tooling reads what podlight pushes and back; it
# also pushes the multi-platform image (scripts/publish-image).
ORAS_VERSION=v1.3.6
# Alerts as policy input are read from a real Alertmanager. 0.31 is the newest whose
# module builds from the proxy: from 0.32 its UI embeds app/dist, which the module
# does not ship ("pattern app/dist: no matching files found").
ALERTMANAGER_VERSION=v0.31.1
# Prometheus 3.x (its Go module is versioned v0.3xx).
PROMETHEUS_VERSION=v0.316.0
# Simulated nodes for the cluster-scale benchmark (cargo bench --bench cluster_scale).
KWOK_VERSION=v0.8.0
