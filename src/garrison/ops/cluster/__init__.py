"""High availability on one machine and its production templates: a Galera cluster behind
HAProxy, asynchronous GTID replicas, and the drills that prove failover (see docs/ha.md)."""

from garrison.ops.cluster.local import ClusterError, ClusterSpec, LocalCluster

__all__ = ["ClusterError", "ClusterSpec", "LocalCluster"]
