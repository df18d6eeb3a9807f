"""What the lab generates once per start: an SSH key pair, a TLS CA (openssl) and server certificates,
and the database password. Everything lives under the state directory, never in the repository."""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path


def _run(*args: str) -> None:
    proc = subprocess.run(list(args), capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} {args[1]} failed: {proc.stderr.strip()[-400:]}")


def ssh_key(directory: Path) -> Path:
    """An ed25519 key pair for the lab's instances (the playbooks import the .pub as the key pair)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = directory / "id_ed25519"
    if not key.exists():
        _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "ec2-fleet-lab", "-f", str(key))
    return key


def ca(directory: Path, common_name: str = "ec2-fleet lab CA") -> tuple[Path, Path]:
    """The lab CA (certificate, key): signs the certificates of the lab's Redis endpoints; with another
    directory and name, another CA (the AWS endpoints' root, aws_endpoints.py)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key = directory / "ca.crt", directory / "ca.key"
    if not cert.exists():
        _run(
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "30",
            "-subj",
            f"/CN={common_name}",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        )
        key.chmod(0o600)
        cert.chmod(0o644)
    return cert, key


def server_cert(ca_cert: Path, ca_key: Path, directory: Path, names: list[str], ips: list[str]) -> tuple[Path, Path]:
    """A server certificate for names/ips signed by the lab CA, in directory (server.crt, server.key)."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    cert, key, csr, ext = (directory / n for n in ("server.crt", "server.key", "server.csr", "server.ext"))
    san = ",".join([f"DNS:{n}" for n in names] + [f"IP:{i}" for i in ips])
    ext.write_text(
        f"subjectAltName={san}\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
        "basicConstraints=critical,CA:FALSE\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n"
    )
    _run(
        "openssl",
        "req",
        "-new",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        str(key),
        "-out",
        str(csr),
        "-subj",
        f"/CN={names[0]}",
    )
    _run(
        "openssl",
        "x509",
        "-req",
        "-in",
        str(csr),
        "-CA",
        str(ca_cert),
        "-CAkey",
        str(ca_key),
        "-CAcreateserial",
        "-days",
        "30",
        "-extfile",
        str(ext),
        "-out",
        str(cert),
    )
    csr.unlink()
    key.chmod(0o600)
    return cert, key


def password(path: Path) -> str:
    """A random password kept in path (hex: safe in URLs and SQL)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not path.exists():
        path.write_text(secrets.token_hex(16))
        path.chmod(0o600)
    return path.read_text().strip()
