"""A throwaway PKI for the TLS tests, made with the ``openssl`` command line: a CA, a server
certificate for 127.0.0.1 and localhost signed by it, a client certificate signed by it, and a
second CA that signed nothing here (a bundle that trusts the wrong issuer).

P-256 keys, not RSA: an RSA-2048 key costs 50-500 ms to generate, an EC key about 5 ms, and
this runs once per test module on a 2-core machine.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from dataclasses import dataclass
from pathlib import Path

SERVER_NAME = "mpswarm-test-origin"
CLIENT_NAME = "mpswarm-test-client"

# Extensions strict verifiers require (Python 3.13's VERIFY_X509_STRICT among them): a CA
# that says it is one and may sign certificates, leaves that name their issuer's key.
_CA_EXTENSIONS = (
    "basicConstraints=critical,CA:TRUE",
    "keyUsage=critical,keyCertSign,cRLSign",
    "subjectKeyIdentifier=hash",
)
_LEAF_EXTENSIONS = """\
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage={usage}
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
{alt}
"""


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files (all in one temporary folder).

    Attributes:
        ca: the CA certificate (a bundle for ``verify=``).
        ca_dir: a folder holding only the CA under its hash name (for ``verify=<folder>``),
            None where neither ``openssl rehash`` nor ``c_rehash`` works.
        other_ca: a CA that signed nothing here.
        server_cert / server_key: the origin's, for IP 127.0.0.1 and DNS localhost.
        client_cert / client_key: the client's, separately; ``client_combined``: both in one.
    """

    ca: Path
    ca_key: Path
    ca_dir: Path | None
    other_ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    client_combined: Path

    def server_context(self, require_client_cert: bool = False) -> ssl.SSLContext:
        """A server-side TLS context with the CA-signed certificate; with
        ``require_client_cert``, one that demands a client certificate signed by the CA."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.server_cert, self.server_key)
        if require_client_cert:
            context.verify_mode = ssl.CERT_REQUIRED
            context.load_verify_locations(cafile=str(self.ca))
        return context


def _openssl(*args: str | Path, cwd: Path) -> None:
    done = subprocess.run(
        ["openssl", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(map(str, args))} failed:\n{done.stderr}")


def _self_signed_ca(folder: Path, stem: str, name: str) -> None:
    extensions = [arg for ext in _CA_EXTENSIONS for arg in ("-addext", ext)]
    _openssl(
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-days", "2", "-subj", f"/CN={name}", *extensions,
        "-keyout", f"{stem}.key", "-out", f"{stem}.pem",
        cwd=folder,
    )  # fmt: skip


def _signed_leaf(folder: Path, stem: str, name: str, usage: str, alt: str) -> None:
    _openssl(
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-subj", f"/CN={name}", "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
        cwd=folder,
    )  # fmt: skip
    (folder / f"{stem}.ext").write_text(_LEAF_EXTENSIONS.format(usage=usage, alt=alt))
    _openssl(
        "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-extfile", f"{stem}.ext", "-out", f"{stem}.pem",
        cwd=folder,
    )  # fmt: skip


def _rehashed(folder: Path, ca: Path) -> Path | None:
    """A folder with the CA under its subject hash name, as OpenSSL's CApath lookup needs."""
    target = folder / "ca-dir"
    target.mkdir()
    shutil.copy(ca, target / "ca.pem")
    for command in (["openssl", "rehash", str(target)], ["c_rehash", str(target)]):
        if shutil.which(command[0]) is None:
            continue
        done = subprocess.run(command, capture_output=True, timeout=30)
        if done.returncode == 0 and any(p.name.endswith(".0") for p in target.iterdir()):
            return target
    return None


def make_pki(folder: Path) -> Pki:
    """Make every key and certificate in ``folder`` (which must exist and be empty).

    Raises:
        RuntimeError: an openssl command failed (its stderr is in the message).
    """
    _self_signed_ca(folder, "ca", "mpswarm test CA")
    _self_signed_ca(folder, "other-ca", "mpswarm unrelated CA")
    _signed_leaf(
        folder, "server", SERVER_NAME, "serverAuth", "subjectAltName=IP:127.0.0.1,DNS:localhost"
    )
    _signed_leaf(folder, "client", CLIENT_NAME, "clientAuth", "")
    combined = folder / "client-combined.pem"
    combined.write_bytes(
        (folder / "client.pem").read_bytes() + (folder / "client.key").read_bytes()
    )
    return Pki(
        ca=folder / "ca.pem",
        ca_key=folder / "ca.key",
        ca_dir=_rehashed(folder, folder / "ca.pem"),
        other_ca=folder / "other-ca.pem",
        server_cert=folder / "server.pem",
        server_key=folder / "server.key",
        client_cert=folder / "client.pem",
        client_key=folder / "client.key",
        client_combined=combined,
    )
