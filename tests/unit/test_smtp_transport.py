"""The SMTP transport against real local servers (aiosmtpd): STARTTLS, implicit TLS, login,
and the refusals that must never fall back to plain text or be retried forever.

The servers present a self-signed certificate for 127.0.0.1, made here; the transport is
given a TLS context that trusts it (the default trusts the system's store) and still checks
the host name.
"""

from __future__ import annotations

import datetime
import ipaddress
import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gatehouse.server.mail.transports import MailRejectedError, SmtpSecurity, SmtpTransport
from tests.http.mail import Mailbox, free_port

USER, SECRET = "mailer", "smtp secret"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "gatehouse test smtp")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def _client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USER.encode(),
        SECRET.encode(),
    )
    return AuthResult(success=ok)


@pytest.fixture
def running(request: pytest.FixtureRequest) -> Iterator[Mailbox]:
    box = Mailbox(**request.param)
    box.start()
    try:
        yield box
    finally:
        box.stop()


def _message(to: str = "alice@example.com") -> EmailMessage:
    message = EmailMessage()
    message["From"] = "gatehouse@auth.example.test"
    message["To"] = to
    message["Subject"] = "Hello"
    message.set_content("plain")
    message.add_alternative("<p>html</p>", subtype="html")
    return message


def _transport(
    box: Mailbox,
    security: SmtpSecurity,
    certificate: tuple[Path, Path],
    *,
    username: str | None = USER,
    password: str | None = SECRET,
) -> SmtpTransport:
    return SmtpTransport(
        host="127.0.0.1",
        port=box.port,
        security=security,
        username=username,
        password=password,
        timeout=5,
        tls_context=_client_context(certificate),
    )


async def test_starttls_with_login_delivers_the_message(certificate: tuple[Path, Path]) -> None:
    """A server that requires STARTTLS and authentication receives the message, logged in
    over the encrypted channel."""
    box = Mailbox(
        tls_context=_server_context(certificate),
        require_starttls=True,
        auth_required=True,
        authenticator=_authenticator,
    )
    box.start()
    try:
        await _transport(box, "starttls", certificate).send(_message())
        (received,) = await box.wait_for(1)
    finally:
        box.stop()
    assert received["Subject"] == "Hello"


async def test_implicit_tls_delivers_the_message(certificate: tuple[Path, Path]) -> None:
    """`tls`: TLS from the first byte (SMTPS), certificate checked, then the send."""
    box = Mailbox(ssl_context=_server_context(certificate))
    box.start()
    try:
        await _transport(box, "tls", certificate, username=None).send(_message())
        await box.wait_for(1)
    finally:
        box.stop()


async def test_starttls_refuses_a_server_that_does_not_offer_it(
    certificate: tuple[Path, Path],
) -> None:
    """No STARTTLS offered: the send fails and nothing is sent in plain text."""
    box = Mailbox()
    box.start()
    try:
        with pytest.raises(smtplib.SMTPNotSupportedError):
            await _transport(box, "starttls", certificate, username=None).send(_message())
        assert box.count() == 0
    finally:
        box.stop()


async def test_starttls_refuses_a_certificate_it_does_not_trust(
    certificate: tuple[Path, Path],
) -> None:
    """The default context (system trust) refuses the self-signed certificate."""
    box = Mailbox(tls_context=_server_context(certificate), require_starttls=True)
    box.start()
    try:
        transport = SmtpTransport(
            host="127.0.0.1",
            port=box.port,
            security="starttls",
            username=None,
            password=None,
            timeout=5,
        )
        with pytest.raises(ssl.SSLCertVerificationError):
            await transport.send(_message())
        assert box.count() == 0
    finally:
        box.stop()


class _RefusingHandler:
    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        return "550 5.1.1 No such user"


async def test_a_permanently_refused_recipient_raises_mail_rejected(
    certificate: tuple[Path, Path],
) -> None:
    """A 5xx for the recipient is MailRejectedError (the outbox drops, not retries, it)."""
    port = free_port()
    controller = Controller(_RefusingHandler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        transport = SmtpTransport(
            host="127.0.0.1", port=port, security="none", username=None, password=None, timeout=5
        )
        with pytest.raises(MailRejectedError) as raised:
            await transport.send(_message())
        assert raised.value.code == 550
    finally:
        controller.stop()
