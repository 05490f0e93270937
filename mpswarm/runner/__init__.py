"""Processes and lifecycle: the parent's Swarm, the fork server, and the workers."""
