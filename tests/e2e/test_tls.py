"""`campaignflow serve` terminating TLS itself, with a certificate made for the test."""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from campaignflow.api.edge import HSTS
from tests._support.servers import free_port, stop_process
from tests.e2e.conftest import REPO, STARTUP_SECONDS, TOKEN, cli_env, run_cli

pytestmark = [pytest.mark.slow]


@dataclass(frozen=True)
class CertificatePair:
    cert: Path
    key: Path


def self_signed(directory: Path) -> CertificatePair:
    """A certificate for 127.0.0.1, valid for a day, that is its own issuer."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "campaignflow test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    pair = CertificatePair(directory / "cert.pem", directory / "key.pem")
    pair.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pair.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return pair


@dataclass
class TlsServer:
    port: int
    trust: ssl.SSLContext
    log: Path


def _wait_for_https(url: str, trust: ssl.SSLContext, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/healthz", verify=trust, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    pytest.fail(f"serve did not answer over HTTPS within {STARTUP_SECONDS}s")


@pytest.fixture
def tls_server(sqlite_database_url: str, tmp_path: Path) -> Iterator[TlsServer]:
    pair = self_signed(tmp_path)
    env = cli_env(
        CAMPAIGNFLOW_DATABASE_URL=sqlite_database_url,
        CAMPAIGNFLOW_API_TOKEN=TOKEN,
        CAMPAIGNFLOW_NETWORK__TLS_CERT_FILE=str(pair.cert),
        CAMPAIGNFLOW_NETWORK__TLS_KEY_FILE=str(pair.key),
    )
    port, log = free_port(), tmp_path / "server.log"
    trust = ssl.create_default_context(cafile=str(pair.cert))
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "campaignflow", "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_for_https(f"https://127.0.0.1:{port}", trust, process)
        yield TlsServer(port, trust, log)
    finally:
        stop_process(process)


def test_serve_speaks_https_with_hsts(tls_server: TlsServer) -> None:
    response = httpx.get(f"https://127.0.0.1:{tls_server.port}/healthz", verify=tls_server.trust)

    assert response.status_code == 200
    assert response.headers["strict-transport-security"] == HSTS
    assert f"https://127.0.0.1:{tls_server.port}" in tls_server.log.read_text()


def test_plain_http_to_the_tls_port_gets_no_answer(tls_server: TlsServer) -> None:
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{tls_server.port}/healthz", timeout=5)


def test_a_certificate_without_its_key_is_refused_at_start(tmp_path: Path) -> None:
    pair = self_signed(tmp_path)
    env = cli_env(CAMPAIGNFLOW_API_TOKEN=TOKEN, CAMPAIGNFLOW_NETWORK__TLS_CERT_FILE=str(pair.cert))

    result = run_cli("serve", "--port", str(free_port()), env=env)

    assert result.returncode != 0
    assert "TLS_KEY_FILE" in result.stderr
