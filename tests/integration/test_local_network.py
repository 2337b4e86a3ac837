"""The local run listens on loopback only: nothing it opens (the WebSocket gateway, the @connections API and
dev issuer's JWKS, DynamoDB Local, Apertium's translation server, the S3-API server) can be reached through the
machine's other addresses."""

from __future__ import annotations

import ipaddress
import os
import socket
import subprocess
from pathlib import Path

import pytest

from tests.integration.conftest import RunningService

pytestmark = pytest.mark.integration

_TCP_LISTEN = "0A"


def _descendants(pid: int) -> set[int]:
    """``pid`` and every process below it (Linux /proc)."""
    found, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        for task in Path(f"/proc/{parent}/task").iterdir():
            children = (task / "children").read_text().split() if (task / "children").exists() else []
            for child in map(int, children):
                if child not in found:
                    found.add(child)
                    frontier.append(child)
    return found


def _socket_inodes(pids: set[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[len("socket:[") : -1])
        except (FileNotFoundError, PermissionError, ProcessLookupError):
            continue
    return inodes


def _address(hex_address: str) -> str:
    raw = bytes.fromhex(hex_address)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    # /proc/net/tcp6: four 32-bit words, each in host (little-endian) order
    return str(ipaddress.IPv6Address(b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))))


def listening_sockets(pid: int) -> set[tuple[str, int]]:
    """(local address, port) of every listening TCP socket held by ``pid`` or a process below it."""
    inodes = _socket_inodes(_descendants(pid))
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == _TCP_LISTEN and inode in inodes:
                address, port = local.split(":")
                found.add((_address(address), int(port, 16)))
    return found


def non_loopback_addresses() -> set[str]:
    """This machine's own addresses other than loopback (and IPv6 link-local, which needs a scope)."""
    candidates = set(subprocess.run(["hostname", "-I"], capture_output=True, text=True, check=False).stdout.split())
    for family, probe in ((socket.AF_INET, "192.0.2.1"), (socket.AF_INET6, "2001:db8::1")):
        with socket.socket(family, socket.SOCK_DGRAM) as udp:
            try:
                udp.connect((probe, 9))  # no packet is sent: this only picks the outgoing address
                candidates.add(udp.getsockname()[0])
            except OSError:
                continue
    usable = set()
    for candidate in candidates:
        address = ipaddress.ip_address(candidate.split("%")[0])
        if not (address.is_loopback or address.is_link_local or address.is_unspecified):
            usable.add(str(address))
    return usable


def _refused(address: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(3)
        try:
            sock.connect((address, port))
        except ConnectionRefusedError:
            return True
        return False


def _is_loopback(address: str) -> bool:
    parsed = ipaddress.ip_address(address)
    mapped = getattr(parsed, "ipv4_mapped", None)
    return (mapped or parsed).is_loopback


def test_every_port_the_local_run_opens_is_refused_from_other_addresses(service: RunningService) -> None:
    # Given the running local service (gateway, @connections/JWKS server, DynamoDB Local, Apertium's server, the
    # S3-API server) and
    # every TCP port this process and the processes it started listen on
    run = service.run
    listening = listening_sockets(os.getpid())
    ports = {port for _, port in listening}
    assert run.translator is not None
    assert {run.port, run.http_port, run.database.port, run.translator.port, run.storage.port} <= ports, listening
    addresses = non_loopback_addresses()
    assert addresses, "this machine has no address but loopback to test from"

    # Then connecting to any of them through each of the machine's other addresses is refused
    reachable = {
        (address, port) for port in sorted(ports) for address in sorted(addresses) if not _refused(address, port)
    }
    assert reachable == set()
    # And every one of them is bound to a loopback address
    assert {(address, port) for address, port in listening if not _is_loopback(address)} == set()
