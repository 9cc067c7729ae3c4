import socket

import pytest

from tests.conftest import NetworkBlocked


def test_network_connections_are_refused_in_tests():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(NetworkBlocked):
        s.connect(("127.0.0.1", 9))
    s.close()
