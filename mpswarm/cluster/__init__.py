"""``--ray``: one run over the nodes of a Ray cluster (see docs/ray.md).

``launch`` starts the run's Ray bridge from the coordinator; ``bridge`` is that Ray driver (a
clean interpreter); ``agent`` the actor on each node; ``collector`` the actor that gathers
every node's copies for the bridge; ``host`` the node's fork server; ``delta`` the segment
copies that travel; ``nodes`` whether the cluster and each node answer on the network;
``simulate`` a local cluster of several nodes.
"""
