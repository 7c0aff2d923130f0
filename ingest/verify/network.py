"""Where a request comes from: the client address behind trusted proxies, the IP allowlist, and "HTTPS only".

``X-Forwarded-For`` is believed only when the TCP peer is a trusted proxy, and then read from the right: the first hop
that is not itself a trusted proxy is the client (anything left of it is whatever the client claimed). A spoofed
header from an untrusted peer changes nothing."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from ingest.verify import HTTPS_REQUIRED, IP_NOT_ALLOWED, Inbound, Verifier

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(cidrs: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs)


def contains(nets: Sequence[Network], addr: str) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip().strip("[]"))
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return any(ip in n for n in nets)


def client_address(peer: str, forwarded_for: str | None, trusted: Sequence[Network]) -> str:
    if not forwarded_for or not trusted or not contains(trusted, peer):
        return peer
    hops = [h.strip() for h in forwarded_for.split(",") if h.strip()]
    for hop in reversed(hops):
        if not contains(trusted, hop):
            return hop  # may be malformed: then it matches no allowlist (fails closed)
    return hops[0] if hops else peer


def is_secure(tls: bool, peer: str, forwarded_proto: str | None, trusted: Sequence[Network]) -> bool:
    if tls:
        return True
    if forwarded_proto and trusted and contains(trusted, peer):
        return forwarded_proto.split(",")[-1].strip().lower() == "https"
    return False


def allowlist(cidrs: Iterable[str]) -> Verifier:
    nets = networks(cidrs)

    def check(req: Inbound, now: float) -> str | None:
        return None if contains(nets, req.client) else IP_NOT_ALLOWED

    return check


def https_only(req: Inbound, now: float) -> str | None:
    return None if req.secure else HTTPS_REQUIRED
