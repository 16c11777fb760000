"""An identity provider for the OAUTHBEARER tests: signing keys, their JWKS (as a file or over
HTTP from a server the test starts) and tokens, made with PyJWT and cryptography."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

ISSUER = "https://idp.test.example"
AUDIENCE = "edplog-test"
VALIDATOR = "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"


@dataclass
class SigningKey:
    kid: str
    alg: str
    private: Any

    @classmethod
    def rsa(cls, kid: str, alg: str = "RS256") -> SigningKey:
        return cls(kid, alg, rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.get_algorithm_by_name(self.alg)
        entry = json.loads(algorithm.to_jwk(self.private.public_key()))
        return {**entry, "kid": self.kid, "alg": self.alg, "use": "sig"}


@dataclass
class Provider:
    """Keys, the JWKS document that publishes them, and tokens signed with them."""

    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.rsa("k1")])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.jwk() for k in self.keys]}

    def write(self, path: Path) -> str:
        """Write the JWKS to ``path``; its file:// URL."""
        path.write_text(json.dumps(self.jwks()))
        return path.as_uri()

    def token(
        self,
        sub: str | None = "alice",
        *,
        key: SigningKey | None = None,
        expires_in_s: float = 300,
        aud: str | None = AUDIENCE,
        iss: str | None = ISSUER,
        kid: str | None = "",
        **claims: Any,
    ) -> str:
        signer = key or self.keys[0]
        now = int(time.time())
        body: dict[str, Any] = {"iat": now, "exp": now + int(expires_in_s), **claims}
        if sub is not None:
            body["sub"] = sub
        if aud is not None:
            body["aud"] = aud
        if iss is not None:
            body["iss"] = iss
        headers = {"kid": signer.kid if kid == "" else kid} if kid is not None else {}
        return jwt.encode(body, signer.private, signer.alg, headers=headers)


class JwksServer:
    """The provider's JWKS over HTTP on loopback; counts the requests it answered."""

    def __init__(self, provider: Provider) -> None:
        self.provider = provider
        self.requests = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                outer.requests += 1
                body = json.dumps(outer.provider.jwks()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/.well-known/jwks.json"

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def oauth_props(jwks_url: str, **extra: str) -> dict[str, str]:
    """A broker with a PLAINTEXT listener (the test administers it) and an OAUTHBEARER one."""
    return {
        "listeners": "PLAINTEXT://127.0.0.1:0,CLIENTS://127.0.0.1:0",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CLIENTS:SASL_PLAINTEXT",
        "listener.name.clients.sasl.enabled.mechanisms": "OAUTHBEARER",
        "listener.name.clients.oauthbearer.sasl.server.callback.handler.class": VALIDATOR,
        "listener.name.clients.oauthbearer.sasl.jaas.config": (
            "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required ;"
        ),
        "listener.name.clients.oauthbearer.sasl.oauthbearer.jwks.endpoint.url": jwks_url,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "sasl.oauthbearer.expected.issuer": ISSUER,
        "connection.failed.authentication.delay.ms": "0",
        "group.initial.rebalance.delay.ms": "0",
        **extra,
    }
