"""``edplog secrets``: make a key, and encrypt a password for ``server.properties``.

``keygen --out FILE`` writes a new AES-256 key (mode 0600, never over an existing file).
``encrypt`` reads the secret from standard input (or asks for it twice at a terminal) and
prints ``ENC[v1:...]`` to put in a property; the key is ``--key-file FILE`` or
``--key-env NAME``, the same key the broker is given by ``config.secret.key.file`` or
``config.secret.key.env``. The secret is never an argument: arguments are visible to every
user of the machine (``ps``) and kept in shell histories.

There is no ``decrypt``: the only reader of an encrypted value is the broker, and a command
that prints secrets would make every copy of the key file a way to read them back at a
prompt. Whoever encrypted a value had it in hand; a lost one is replaced, not recovered.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from ..security.secrets import SecretError, SecretKey


def register(commands: Any, perf: Any) -> None:
    """Add ``secrets keygen`` and ``secrets encrypt``."""
    p = commands.add_parser("secrets", help="encrypted values for server.properties")
    sub = p.add_subparsers(dest="secrets_command", metavar="ACTION")
    p.set_defaults(func=lambda args: _usage(p))

    keygen = sub.add_parser("keygen", help="write a new key to a file (mode 0600)")
    keygen.add_argument("--out", required=True, metavar="FILE", help="a file that does not exist")
    keygen.set_defaults(func=run_keygen)

    encrypt = sub.add_parser(
        "encrypt", help="encrypt a secret read from standard input (or a prompt)"
    )
    where = encrypt.add_mutually_exclusive_group(required=True)
    where.add_argument("--key-file", metavar="FILE", help="a key made by `secrets keygen`")
    where.add_argument("--key-env", metavar="NAME", help="an environment variable holding the key")
    encrypt.set_defaults(func=run_encrypt)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _fail(message: str) -> int:
    print(f"edplog secrets: {message}", file=sys.stderr)
    return 2


def run_keygen(args: argparse.Namespace) -> int:
    key = SecretKey.generate()
    try:
        key.write(args.out)
    except FileExistsError:
        return _fail(f"{args.out} exists: a key is never overwritten (values made with it)")
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc.strerror or exc}")
    print(f"wrote key {key.key_id} to {args.out}", file=sys.stderr)
    return 0


def _read_secret() -> str | None:
    if sys.stdin.isatty():
        first = getpass.getpass("secret: ")
        if getpass.getpass("again: ") != first:
            return None
        return first
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text  # the newline of `echo` or a file


def run_encrypt(args: argparse.Namespace) -> int:
    try:
        key = (
            SecretKey.from_file(args.key_file)
            if args.key_file
            else SecretKey.from_env(args.key_env)
        )
    except SecretError as exc:
        return _fail(str(exc))
    secret = _read_secret()
    if secret is None:
        return _fail("the two entries differ")
    if not secret:
        return _fail("nothing to encrypt (standard input was empty)")
    print(key.encrypt(secret))
    return 0
