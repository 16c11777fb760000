"""The principal of a TLS client: its certificate's subject, mapped by Kafka's rules.

``ssl.principal.mapping.rules`` is Kafka's list (KIP-371) of ``RULE:pattern/replacement/``
items, each optionally ending in ``L`` (lower-case the result) or ``U`` (upper-case it), and
``DEFAULT`` (the subject unchanged); items are separated by commas or new lines. The subject
is the distinguished name in RFC 2253 form, most specific attribute first
(``CN=alice,OU=eng,O=Acme,C=GB``), as Java's ``X500Principal.getName()`` writes it. The first
rule whose pattern matches the *whole* name gives the principal name, ``User:<name>``; a
``replacement`` refers to the pattern's groups as ``$1``, ``$2`` (Java's syntax). When no
rule matches, the connection is refused, as Kafka refuses it (``NoMatchingRule``).

    >>> rules = PrincipalMapper.parse("RULE:^CN=([a-zA-Z.]+),OU=.*$/$1/L,DEFAULT")
    >>> rules.map("CN=Alice,OU=eng,O=Acme")
    'alice'
    >>> rules.map("O=Acme")
    'O=Acme'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cryptography import x509

from ..errors import InvalidConfigError

# Kafka's grammar (SslPrincipalMapper.RULE_PATTERN): DEFAULT, or RULE:<pattern>/<replacement>/
# with an optional L or U, where a backslash escapes the next character (a slash, say).
_RULE = r"(DEFAULT)|RULE:((?:\\.|[^\\/])*)/((?:\\.|[^\\/])*)/([LU]?)"
_SPLITTER = re.compile(r"\s*(" + _RULE + r"|[^,\n]*?)\s*(?:[,\n]\s*|$)")
_BACKREFERENCE = re.compile(r"\$(\d+)")


class NoMatchingRule(Exception):
    """No ``ssl.principal.mapping.rules`` item matches the subject: the client is refused."""


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str] | None  # None: DEFAULT
    replacement: str = ""
    case: str = ""

    def apply(self, name: str) -> str | None:
        if self.pattern is None:
            return name
        if self.pattern.fullmatch(name) is None:
            return None
        result = self.pattern.sub(self.replacement, name)
        if self.case == "L":
            return result.lower()
        if self.case == "U":
            return result.upper()
        return result


def _python_replacement(java: str) -> str:
    """Java's replacement syntax (``$1``, ``\\x`` for a literal x) in Python's (``\\g<1>``)."""
    out = []
    i = 0
    while i < len(java):
        ch = java[i]
        if ch == "\\" and i + 1 < len(java):
            out.append(java[i + 1].replace("\\", "\\\\"))
            i += 2
            continue
        m = _BACKREFERENCE.match(java, i)
        if m is not None:
            out.append(f"\\g<{m.group(1)}>")
            i = m.end()
            continue
        out.append("\\\\" if ch == "\\" else ch)
        i += 1
    return "".join(out)


class PrincipalMapper:
    """The parsed ``ssl.principal.mapping.rules`` (see the module docstring)."""

    def __init__(self, rules: list[_Rule], text: str) -> None:
        self._rules = rules
        self._text = text

    @classmethod
    def parse(cls, text: str | None) -> PrincipalMapper:
        """Parse Kafka's rule list; None or empty means ``DEFAULT``."""
        if text is None or not text.strip():
            return cls([_Rule(None)], "DEFAULT")
        rules: list[_Rule] = []
        pos = 0
        body = text.strip()
        while pos < len(body):
            m = _SPLITTER.match(body, pos)
            if m is None or m.end() == pos:
                raise InvalidConfigError(
                    f"ssl.principal.mapping.rules: cannot parse {body[pos:]!r}"
                )
            pos = m.end()
            item = m.group(1)
            if not item:
                continue
            if m.group(2):
                rules.append(_Rule(None))
            elif m.group(3) is not None:
                try:
                    pattern = re.compile(m.group(3))
                except re.error as exc:
                    raise InvalidConfigError(
                        f"ssl.principal.mapping.rules: bad pattern {m.group(3)!r}: {exc}"
                    ) from None
                replacement = _python_replacement(m.group(4))
                rules.append(_Rule(pattern, replacement, m.group(5)))
            else:
                raise InvalidConfigError(
                    f"ssl.principal.mapping.rules: {item!r} is not DEFAULT or "
                    "RULE:pattern/replacement/[LU]"
                )
        if not rules:
            rules.append(_Rule(None))
        return cls(rules, body)

    def map(self, distinguished_name: str) -> str:
        """The principal name for a subject; raises NoMatchingRule if no rule applies."""
        for rule in self._rules:
            try:
                result = rule.apply(distinguished_name)
            except (re.error, IndexError) as exc:  # a $n beyond the pattern's groups
                raise NoMatchingRule(f"rule failed on {distinguished_name!r}: {exc}") from None
            if result is not None:
                return result
        raise NoMatchingRule(f"no rule of {self._text!r} applies to {distinguished_name!r}")


def subject_dn(der: bytes) -> str:
    """A DER certificate's subject in RFC 2253 form (most specific attribute first)."""
    return x509.load_der_x509_certificate(der).subject.rfc4514_string()
