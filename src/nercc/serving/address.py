"""The HTTP address checked before Ray starts: a port in use is one error line, not a traceback
after Ray and Serve have started.

This module imports only the standard library (and the project's ConfigError): the serve command
checks the address before it imports Ray.
"""

from __future__ import annotations

import errno
import os
import socket

from nercc.utils.errors import ConfigError

__all__ = ["check_bind"]


def check_bind(host: str, port: int, key: str = "serving.port") -> None:
    """Refuse, before Ray starts, an HTTP address that the endpoint could not listen on.

    Binds ``(host, port)`` once and lets it go. ``SO_REUSEADDR`` is set as the HTTP server sets
    it: on Linux the bind then fails only while another socket listens there (a port that a
    previous run left in TIME_WAIT is free for the server, and so here).

    Raises
    ------
    ConfigError
        ``serving.port`` in use or not allowed, or ``serving.host`` not an address of this
        machine.
    """
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError, OverflowError) as error:
        raise ConfigError("serving.host", f"not a host name or address ({error})", host) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        if os.name == "posix":  # elsewhere SO_REUSEADDR would let two servers share a port
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ConfigError(key, f"{host}:{port} is already in use", port) from None
            if error.errno == errno.EACCES:
                raise ConfigError(key, f"not allowed to listen on {host}:{port}", port) from None
            if error.errno == errno.EADDRNOTAVAIL:
                raise ConfigError("serving.host", "not an address of this machine", host) from None
            raise ConfigError(key, f"cannot listen on {host}:{port} ({error})", port) from None
