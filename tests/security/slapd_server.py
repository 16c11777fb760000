"""A private OpenLDAP server (Debian's ``slapd``) for the tests: its own config directory,
an mdb database loaded with ``slapadd``, listening on a free 127.0.0.1 port, run as a child
process of the test and stopped by its PID."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

SUFFIX = "dc=example,dc=org"
ROOT_DN = f"cn=admin,{SUFFIX}"
ROOT_PASSWORD = "admin-secret"
READER_DN = f"uid=reader,ou=people,{SUFFIX}"
READER_PASSWORD = "reader-secret"
PEOPLE = f"ou=people,{SUFFIX}"
GROUPS = f"ou=groups,{SUFFIX}"

_CONFIG = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
access to attrs=userPassword by self write by anonymous auth by * none
access to * by dn.exact="{reader}" read by * none
database mdb
maxsize 10485760
suffix "{suffix}"
rootdn "{root}"
rootpw {password}
directory {dir}/db
"""


def _tool(name: str) -> str | None:
    # Debian puts slapd and slapadd in /usr/sbin, which a non-root PATH may lack.
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")


def available() -> bool:
    return all(_tool(tool) for tool in ("slapd", "slapadd"))


def person(uid: str, password: str | None = None) -> str:
    entry = (
        f"dn: uid={uid},{PEOPLE}\nobjectClass: inetOrgPerson\nuid: {uid}\ncn: {uid}\nsn: {uid}\n"
    )
    return entry + (f"userPassword: {password}\n" if password else "")


def group(name: str, *uids: str) -> str:
    members = "".join(f"member: uid={u},{PEOPLE}\n" for u in uids)
    return f"dn: cn={name},{GROUPS}\nobjectClass: groupOfNames\ncn: {name}\n{members}"


class SlapdServer:
    """``tls``: (certificate chain file, key file) to listen on ldaps:// instead."""

    def __init__(
        self, directory: Path, entries: list[str], tls: tuple[Path, Path] | None = None
    ) -> None:
        self.dir = directory
        self.entries = entries
        self.tls = tls
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'ldaps' if self.tls else 'ldap'}://127.0.0.1:{self.port}"

    def start(self) -> None:
        (self.dir / "db").mkdir(parents=True)
        conf = self.dir / "slapd.conf"
        text = _CONFIG.format(
            dir=self.dir, suffix=SUFFIX, root=ROOT_DN, password=ROOT_PASSWORD, reader=READER_DN
        )
        if self.tls:
            cert, key = self.tls
            text = f"TLSCertificateFile {cert}\nTLSCertificateKeyFile {key}\n" + text
        conf.write_text(text)
        tree = [
            f"dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\n"
            "dc: example\no: Example\n",
            f"dn: {PEOPLE}\nobjectClass: organizationalUnit\nou: people\n",
            f"dn: {GROUPS}\nobjectClass: organizationalUnit\nou: groups\n",
            person("reader", READER_PASSWORD),
            *self.entries,
        ]
        ldif = self.dir / "tree.ldif"
        ldif.write_text("\n".join(tree))
        subprocess.run(
            [_tool("slapadd") or "slapadd", "-f", str(conf), "-l", str(ldif)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        # -d keeps slapd in the foreground, our child; its log goes to a file.
        log = open(self.dir / "slapd.log", "wb")  # noqa: SIM115 (kept open for the child)
        self.proc = subprocess.Popen(
            [
                _tool("slapd") or "slapd",
                "-f",
                str(conf),
                "-h",
                f"{self.url}/",
                "-d",
                "0",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"slapd exited: {(self.dir / 'slapd.log').read_text()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), 0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("slapd did not listen within 30 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()  # by its PID: the child we started
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
