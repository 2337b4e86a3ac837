"""The local run's servers take ports that no outgoing connection can take first (``local_run.dynamodb_local``)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from local_run import dynamodb_local
from local_run.dynamodb_local import free_port


def test_a_servers_port_lies_below_the_kernels_range_for_outgoing_connections() -> None:
    below = dynamodb_local.ephemeral_ports_from()
    if below is None:
        pytest.skip("this system does not publish its range for outgoing connections (not Linux)")
    ports = {free_port() for _ in range(20)}
    assert all(dynamodb_local.LISTEN_PORTS_FROM <= port < below for port in ports)
    # and each is free: a server can bind it
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_taken_is_not_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # Given candidate ports below a pretend range for outgoing connections, two tried a call, the first one taken
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken_port = taken.getsockname()[1]
        (tmp_path / "range").write_text(f"{taken_port + 66}\t60999\n")
        monkeypatch.setattr(dynamodb_local, "EPHEMERAL_PORT_RANGE", tmp_path / "range")
        monkeypatch.setattr(dynamodb_local, "LISTEN_PORTS_FROM", taken_port)
        monkeypatch.setattr(dynamodb_local, "_TRIES", 2)
        # Then a port of that range is chosen, never the taken one
        chosen = {free_port() for _ in range(20)}
        assert taken_port not in chosen
        assert all(taken_port < port < taken_port + 66 for port in chosen)


def test_without_the_kernels_range_any_free_port_is_chosen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(dynamodb_local, "EPHEMERAL_PORT_RANGE", tmp_path / "absent")
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
