"""consul-tagjoin: keep Consul's join target in an EC2 tag that follows the Raft leader.

`tagjoin.core` runs on the nodes, `tagjoin.tui` is the operator console, `tagjoin.sim` the failover
simulator. In the repository they are the top-level folders core/, tui/ and sim/.
"""


def __getattr__(name: str) -> str:
    # Looked up on first use: importlib.metadata costs tens of milliseconds, which every node
    # command would pay at start-up for a string only `--version` prints.
    if name != "__version__":
        raise AttributeError(f"module 'tagjoin' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("consul-tagjoin")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"
