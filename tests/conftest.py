"""Shared fixtures. Every test runs offline: opening a network socket fails the test."""

from __future__ import annotations

import os
import socket

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class NetworkBlocked(RuntimeError):
    pass


_real_socket = socket.socket


class _GuardedSocket(_real_socket):
    """Allows local socketpairs (Qt and asyncio use them) but refuses inet connections."""

    def connect(self, address):  # type: ignore[override]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(f"test tried to open a network connection to {address!r}")
        return super().connect(address)

    def connect_ex(self, address):  # type: ignore[override]
        if self.family in (socket.AF_INET, socket.AF_INET6):
            raise NetworkBlocked(f"test tried to open a network connection to {address!r}")
        return super().connect_ex(address)


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    monkeypatch.setattr(socket, "socket", _GuardedSocket)
    monkeypatch.setattr(
        socket,
        "create_connection",
        lambda *a, **k: (_ for _ in ()).throw(NetworkBlocked(f"create_connection{a!r}")),
    )
    yield


@pytest.fixture(autouse=True)
def _isolated_user_data(tmp_path_factory, monkeypatch):
    """Label stores, user models and settings go to a temporary folder, never the real home."""
    data = tmp_path_factory.mktemp("radlens-data")
    monkeypatch.setenv("RADLENS_DATA_DIR", str(data))
    yield data


@pytest.fixture
def fresh_engine_cache():
    """An empty model cache before and after: packages built in tmp folders never leak."""
    from inference import engine

    engine.clear_cache()
    yield
    engine.clear_cache()
