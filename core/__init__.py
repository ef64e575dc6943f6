"""Node-side logic of consul-tagjoin: join targets, the leader-tag handoff, the cluster view.

Nothing in this package imports Textual or moto, so the node-side commands start fast on a
small instance.
"""
