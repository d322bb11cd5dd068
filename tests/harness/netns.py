"""Hosts on one machine: a network namespace per host, all on one bridge, each with an address of its own.

A `NetworkLab` builds a small "cluster across hosts" for the partition tests: a Linux bridge in the root
namespace (which gets the subnet's first address, so the test process reaches every host as an operator
would), and for each host a namespace joined to the bridge by a veth pair. Processes run in a host with
`ip netns exec` (`Host.prefix`). A partition is a pair of netfilter DROP rules (an nft set in each host's
input hook): packets vanish without an answer, so connections hang as on a real network split rather than
failing at once; `heal` removes the rules and TCP's retransmissions carry on. Needs root, `ip` and `nft`.

Everything the lab made is removed by `close()` (namespaces, then the bridge), which tolerates pieces
that are already gone, so a `finally` can always call it. A lab whose test process was killed before that
is removed by the next lab made on the machine: each lab leaves its creator's pid in `LEFTOVERS`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import random
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import psutil

__all__ = ["LEFTOVERS", "Host", "NetworkLab", "netns_available"]

#: One file per live lab, named by its tag, holding the pid of the process that made it.
LEFTOVERS = Path("/run/chorus-netns")

#: The nft table of every host: an input chain that drops what comes from an address in the set `cut`.
_FIREWALL = """
table inet chorus_chaos {
    set cut { type ipv4_addr; }
    chain input {
        type filter hook input priority 0; policy accept;
        ip saddr @cut drop
    }
}
"""


def netns_available() -> str | None:
    """Why a lab cannot be built here (None when it can): the tools and privileges it needs."""
    for tool in ("ip", "nft"):
        if shutil.which(tool) is None:
            return f"no `{tool}` on PATH (apt-get install iproute2 nftables)"
    probe = f"chorus-probe-{secrets.token_hex(3)}"
    try:
        _run("ip", "netns", "add", probe)
    except subprocess.CalledProcessError as e:
        return f"cannot create a network namespace: {e.stderr.strip()}"
    _run("ip", "netns", "del", probe, check=False)
    return None


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    ip: str

    @property
    def prefix(self) -> list[str]:
        """What runs a command in this host: `[*host.prefix, "redis-server", ...]`."""
        return ["ip", "netns", "exec", self.netns]


class NetworkLab:
    """A bridge and hosts; `add_host`, then `cut`/`heal` pairs, `isolate` one host; `close()` at the end."""

    def __init__(self) -> None:
        _remove_leftovers()
        self.tag = secrets.token_hex(2)  # names must stay short: interface names have 15 bytes
        self.bridge = f"chbr{self.tag}"
        self.network = _free_subnet()
        addresses = self.network.hosts()
        self.gateway = str(next(addresses))  #: the root namespace's address on the bridge (the test process)
        self._addresses = addresses
        self.hosts: dict[str, Host] = {}
        self._cuts: set[frozenset[str]] = set()
        LEFTOVERS.mkdir(parents=True, exist_ok=True)
        (LEFTOVERS / self.tag).write_text(f"{os.getpid()}\n")
        _run("ip", "link", "add", self.bridge, "type", "bridge")
        try:
            _run("ip", "addr", "add", f"{self.gateway}/{self.network.prefixlen}", "dev", self.bridge)
            _run("ip", "link", "set", self.bridge, "up")
        except BaseException:
            self.close()
            raise

    def add_host(self, name: str) -> Host:
        host = Host(name, f"chorus-{self.tag}-{name}", str(next(self._addresses)))
        veth = f"chv{self.tag}{len(self.hosts)}"
        self.hosts[name] = host  # before creating anything: close() removes what exists
        _run("ip", "netns", "add", host.netns)
        _run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
        _run("ip", "link", "set", veth, "master", self.bridge)
        _run("ip", "link", "set", veth, "up")
        inside = ["ip", "-n", host.netns]
        _run(*inside, "addr", "add", f"{host.ip}/{self.network.prefixlen}", "dev", "eth0")
        _run(*inside, "link", "set", "eth0", "up")
        _run(*inside, "link", "set", "lo", "up")
        _run(*host.prefix, "nft", "-f", "-", stdin=_FIREWALL)
        return host

    # ---- partitions ----------------------------------------------------------------------------------

    def cut(self, a: str, b: str) -> None:
        """Drop every packet between hosts `a` and `b`, both ways (each drops what comes from the other)."""
        self._drop(a, self.hosts[b].ip, "add")
        self._drop(b, self.hosts[a].ip, "add")
        self._cuts.add(frozenset((a, b)))

    def heal(self, a: str, b: str) -> None:
        self._drop(a, self.hosts[b].ip, "delete")
        self._drop(b, self.hosts[a].ip, "delete")
        self._cuts.discard(frozenset((a, b)))

    def cut_from_operator(self, name: str) -> None:
        """Drop every packet between host `name` and the test process (the root namespace, at `gateway`)."""
        self._drop(name, self.gateway, "add")

    def heal_from_operator(self, name: str) -> None:
        self._drop(name, self.gateway, "delete")

    def isolate(self, name: str) -> list[str]:
        """Cut `name` from every other host (the test process keeps its view); returns the peers cut."""
        peers = [other for other in self.hosts if other != name]
        for other in peers:
            self.cut(name, other)
        return peers

    def heal_all(self) -> None:
        for pair in list(self._cuts):
            self.heal(*sorted(pair))

    def _drop(self, host: str, source_ip: str, verb: str) -> None:
        _run(*self.hosts[host].prefix, "nft", verb, "element", "inet", "chorus_chaos", "cut", f"{{ {source_ip} }}")

    # ---- teardown ------------------------------------------------------------------------------------

    def close(self) -> None:
        """Delete the namespaces (their veth pairs go with them) and the bridge; missing pieces are fine.

        Stop the processes running in the hosts first: a namespace with processes in it outlives `ip netns del`.
        """
        _remove_lab(self.tag)
        self.hosts.clear()

    def __enter__(self) -> NetworkLab:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _remove_lab(tag: str) -> None:
    for netns in _run("ip", "netns", "list").stdout.split("\n"):
        name = netns.split(" ")[0]
        if name.startswith(f"chorus-{tag}-"):
            _run("ip", "netns", "del", name, check=False)
    _run("ip", "link", "del", f"chbr{tag}", check=False)
    (LEFTOVERS / tag).unlink(missing_ok=True)


def _remove_leftovers() -> None:
    """Remove the labs whose creator is gone (a test process killed before its `finally`), with their processes."""
    for marker in LEFTOVERS.glob("*") if LEFTOVERS.is_dir() else ():
        with contextlib.suppress(OSError, ValueError):
            if psutil.pid_exists(int(marker.read_text())):
                continue
        netns = [n.split(" ")[0] for n in _run("ip", "netns", "list").stdout.split("\n")]
        for name in (n for n in netns if n.startswith(f"chorus-{marker.name}-")):
            for pid in _run("ip", "netns", "pids", name, check=False).stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), 9)
        _remove_lab(marker.name)


def _free_subnet() -> ipaddress.IPv4Network:
    """A /24 in 10.0.0.0/8 that no route or address of the machine overlaps (other labs may run at once)."""
    used = []
    for line in _run("ip", "-4", "route", "show", "table", "all").stdout.splitlines():
        with contextlib.suppress(ValueError):
            used.append(ipaddress.ip_network(line.split()[0], strict=False))
    for _ in range(100):
        candidate = ipaddress.ip_network(f"10.{random.randint(160, 250)}.{random.randint(0, 255)}.0/24")
        if not any(candidate.overlaps(network) for network in used):
            return candidate
    raise RuntimeError("no free 10.x.y.0/24 subnet for the network lab")


def _run(*argv: str, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, check=check, timeout=30)
