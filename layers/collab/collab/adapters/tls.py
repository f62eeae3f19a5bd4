"""The container's TLS client context: the standard trust store, loaded lazily when it can be.

``ssl.create_default_context()`` parses the whole CA bundle (~140 roots) when it is created: 15-25 ms
of CPU on this machine, paid by the first fan-out and the first secret of every new container. With
a hashed certificate directory (``c_rehash`` / ``openssl rehash`` layout, present on Debian and
Amazon Linux 2023) OpenSSL instead reads only the root a server's chain needs, when it needs it.
``SSL_CERT_FILE`` (an explicit bundle) is honoured as the default context honours it.
"""

from __future__ import annotations

import os
import re
import ssl
import threading

_HASHED_DIRS = ("/etc/pki/ca-trust/extracted/pem/directory-hash", "/etc/ssl/certs", "/etc/pki/tls/certs")
_HASH_NAME = re.compile(r"^[0-9a-f]{8}\.[0-9]+$")
_context: ssl.SSLContext | None = None
_lock = threading.Lock()


def _hashed_dir() -> str | None:
    paths = ssl.get_default_verify_paths()
    for folder in (os.environ.get("SSL_CERT_DIR"), paths.capath, paths.openssl_capath, *_HASHED_DIRS):
        if folder and os.path.isdir(folder):
            try:
                if any(_HASH_NAME.match(name) for name in os.listdir(folder)):
                    return folder
            except OSError:
                continue
    return None


def client_context() -> ssl.SSLContext:
    """One verifying client context per container (hostname checked, TLS 1.2+)."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                folder = None if os.environ.get("SSL_CERT_FILE") else _hashed_dir()
                if folder is None:
                    _context = ssl.create_default_context()
                else:
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname
                    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                    ctx.load_verify_locations(capath=folder)
                    _context = ctx
    return _context


def reset() -> None:
    """Forget the context (tests that change the trust store)."""
    global _context
    _context = None
