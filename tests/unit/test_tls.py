import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

from flotilla.settings import ServiceSettings
from flotilla.tls import SERVICES, ensure_dev_certs


def test_dev_certs_are_signed_by_the_ca_with_service_sans(tmp_path: Path) -> None:
    certs = ensure_dev_certs(tmp_path)
    assert set(certs) == set(SERVICES)
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    for name, files in certs.items():
        cert = x509.load_pem_x509_certificate(files.cert.read_bytes())
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert {name, f"flotilla-{name}", "localhost"} <= set(sans.get_values_for_type(x509.DNSName))
        assert ipaddress.ip_address("127.0.0.1") in sans.get_values_for_type(x509.IPAddress)
        usages = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usages)
        assert files.key.stat().st_mode & 0o077 == 0  # private keys are not world/group readable


def test_dev_certs_are_kept_across_runs(tmp_path: Path) -> None:
    first = ensure_dev_certs(tmp_path)["guard"].cert.read_bytes()
    assert ensure_dev_certs(tmp_path)["guard"].cert.read_bytes() == first


def test_tls_paths_default_under_flotilla_home(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FLOTILLA_HOME", str(tmp_path))

    class Svc(ServiceSettings):
        service_name = "guard"

    s = Svc()
    assert s.tls_files().cert == tmp_path / "certs" / "guard.pem"
    assert s.tls_files().ca == tmp_path / "certs" / "ca.pem"
