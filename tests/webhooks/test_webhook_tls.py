"""Attempts share one TLS context per process (issue 7 point 9: building it was most of an
attempt's CPU); sharing it must not loosen verification: a receiver whose certificate no
trusted authority signed is refused on every attempt, and never gets the body."""

from __future__ import annotations

import datetime as dt
import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import free_port
from idp_sync.config import Settings
from idp_sync.webhooks import deliveries
from idp_sync.webhooks import tasks as webhook_tasks

SETTINGS = Settings(IDP_SYNC_WEBHOOK_ALLOW_PRIVATE_DESTINATIONS=True)  # type: ignore[call-arg]


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def untrusted_receiver(tmp_path: Path) -> Iterator[tuple[int, Path, list[bytes]]]:
    """An HTTPS receiver on localhost with a self-signed certificate (its path given, for
    a client that trusts it); records bodies."""
    received: list[bytes] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    port = free_port()
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    cert, key = _self_signed(tmp_path)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield port, cert, received
    server.shutdown()
    server.server_close()


def test_untrusted_certificate_refused_on_every_attempt(
    untrusted_receiver: tuple[int, Path, list[bytes]],
) -> None:
    port, cert, received = untrusted_receiver
    attempt = deliveries.Attempt(
        "wd_x", "we_x", "event_x", f"https://localhost:{port}/hook", "s3cret", b"{}"
    )
    outcomes = [webhook_tasks.post(attempt, SETTINGS) for _ in range(2)]
    assert [(o.ok, o.status_code, o.error) for o in outcomes] == [
        (False, None, "connection error (ConnectError)")
    ] * 2
    assert received == []
    # The receiver itself works, for a client that trusts its certificate.
    trusting = httpx.post(
        attempt.url, content=b"{}", verify=ssl.create_default_context(cafile=cert)
    )
    assert trusting.status_code == 200 and received == [b"{}"]
    assert webhook_tasks.tls_context().verify_mode == ssl.CERT_REQUIRED
