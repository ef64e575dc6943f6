"""consul-tagjoin: keep Consul's join target in an EC2 tag that follows the Raft leader.

`tagjoin.core` runs on the nodes, `tagjoin.tui` is the operator console, `tagjoin.sim` the failover
simulator. In the repository they are the top-level folders core/, tui/ and sim/.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("consul-tagjoin")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"
