"""A real IMAP server for the tests: Debian's dovecot, run by the test with a generated config.

TLS on both listeners (IMAPS, and IMAP with STARTTLS) with a self-signed certificate made here;
one user with a password; mail delivered with IMAP APPEND, as an SMS-to-email gateway's mail
would land. Running as root (CI is root) dovecot insists on unprivileged login and mail users:
it gets the `dovecot` / `dovenull` accounts its package creates. As anyone else it runs entirely
as the calling user.
"""

from __future__ import annotations

import imaplib
import os
import pwd
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

USER, PASSWORD = "otp-inbox", "imap-test-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _users() -> tuple[str, str, int, int]:
    """(internal user, login user, mail uid, mail gid)."""
    if os.geteuid() != 0:
        me = pwd.getpwuid(os.geteuid())
        return me.pw_name, me.pw_name, me.pw_uid, me.pw_gid
    mail = pwd.getpwnam("dovecot")
    return "dovecot", "dovenull", mail.pw_uid, mail.pw_gid


@dataclass(frozen=True)
class ImapServer:
    host: str
    imaps_port: int
    imap_port: int
    cafile: str
    log: Path

    def create(self, mailbox: str) -> None:
        context = ssl.create_default_context(cafile=self.cafile)
        with imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=context) as client:
            client.login(USER, PASSWORD)
            status, _ = client.create(mailbox)
            assert status == "OK"

    def deliver(self, raw: bytes, mailbox: str = "INBOX") -> None:
        context = ssl.create_default_context(cafile=self.cafile)
        with imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=context) as client:
            client.login(USER, PASSWORD)
            status, _ = client.append(mailbox, None, imaplib.Time2Internaldate(time.time()), raw)
            assert status == "OK"

    def unseen(self, mailbox: str = "INBOX") -> int:
        context = ssl.create_default_context(cafile=self.cafile)
        with imaplib.IMAP4_SSL(self.host, self.imaps_port, ssl_context=context) as client:
            client.login(USER, PASSWORD)
            client.select(mailbox)
            _, data = client.uid("SEARCH", "UNSEEN")
            return len(data[0].split()) if data and data[0] else 0


def _config(base: Path, imap_port: int, imaps_port: int) -> str:
    internal, login, uid, gid = _users()
    return f"""
protocols = imap
listen = 127.0.0.1
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
ssl = required
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
auth_mechanisms = plain
auth_failure_delay = 0
default_internal_user = {internal}
default_login_user = {login}
first_valid_uid = {min(uid, 500)}
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={base}/home/%u
}}
mail_location = maildir:~/Maildir
service imap-login {{
  chroot =
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = {imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""


def _wait_ready(server: ImapServer, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            break
        try:
            with socket.create_connection((server.host, server.imap_port), timeout=1) as s:
                if s.recv(64).startswith(b"* OK"):
                    return
        except OSError:
            time.sleep(0.1)
    log = server.log.read_text() if server.log.exists() else "(no log)"
    raise RuntimeError(f"dovecot did not start:\n{log}")


@contextmanager
def dovecot() -> Iterator[ImapServer]:
    binary = shutil.which("dovecot") or "/usr/sbin/dovecot"
    if not Path(binary).exists():
        raise RuntimeError("dovecot is not installed (Debian package dovecot-imapd)")
    base = Path(tempfile.mkdtemp(prefix="callerid-dovecot-"))
    base.chmod(0o755)  # the unprivileged login processes must reach the sockets below it
    try:
        keys = ["-keyout", str(base / "key.pem"), "-out", str(base / "cert.pem")]
        subject = ["-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"]
        openssl = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
        subprocess.run([*openssl, *keys, *subject], check=True, capture_output=True)
        (base / "users").write_text(f"{USER}:{{PLAIN}}{PASSWORD}\n")
        _, _, uid, gid = _users()
        (base / "home").mkdir()
        os.chown(base / "home", uid, gid)
        imap_port, imaps_port = _free_port(), _free_port()
        (base / "dovecot.conf").write_text(_config(base, imap_port, imaps_port))
        server = ImapServer(
            "127.0.0.1", imaps_port, imap_port, str(base / "cert.pem"), base / "dovecot.log"
        )
        process = subprocess.Popen(
            [binary, "-F", "-c", str(base / "dovecot.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_ready(server, process, timeout_s=30)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    finally:
        shutil.rmtree(base, ignore_errors=True)
