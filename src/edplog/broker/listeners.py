"""The broker's client listeners as ``listeners``, ``advertised.listeners`` and
``listener.security.protocol.map`` name them: their addresses, their TLS settings
(security/tls.py) and, for SASL listeners, their mechanisms and PLAIN users
(security/sasl.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..client.secure import ClientSecurity
from ..errors import InvalidConfigError
from ..security import oauth, sasl
from ..security.tls import TlsSettings, build_client_context, listener_properties
from . import properties


def parse_listener(value: str) -> tuple[str, int]:
    """``PLAINTEXT://host:port`` (the first of a comma list) or ``host:port`` -> (host, port).

    An empty host means every interface, as in Kafka (``PLAINTEXT://:9092``)."""
    first = value.split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    host, sep, port = first.rpartition(":")
    if not sep:
        raise ValueError(f"listener {value!r} has no port")
    host = host.strip("[]")
    return (host or "0.0.0.0"), _port(port, value)


def _port(text: str, where: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise ValueError(f"listener {where!r}: port {text!r} is not a number from 0 to 65535")
    return int(text)


def parse_listen_flag(value: str) -> tuple[str, int]:
    """``--listen``: ``HOST:PORT``, a listener URL, or a bare ``PORT`` (on 127.0.0.1; port 0
    picks a free one)."""
    if value.strip().isdigit():
        return "127.0.0.1", _port(value.strip(), value)
    return parse_listener(value)


@dataclass
class ListenerConfig:
    """One client listener of ``listeners``: its name, security protocol and address, where
    clients are told to connect to it (``advertised.listeners``), and its TLS settings."""

    name: str
    protocol: str  # PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL
    host: str
    port: int
    tls: TlsSettings | None = None
    advertised_host: str | None = None
    advertised_port: int | None = None
    # SASL listeners: the mechanisms enabled, the PLAIN users of the listener's JAAS, the
    # OAUTHBEARER validation settings and the session lifetime per mechanism (KIP-368).
    sasl_mechanisms: tuple[str, ...] = ()
    plain_users: dict[str, str] = field(default_factory=dict)
    oauth: oauth.OAuthSettings | None = None
    reauth_ms: dict[str, int] = field(default_factory=dict)


def client_listeners(
    props: dict[str, str],
) -> tuple[list[ListenerConfig], tuple[str, int] | None]:
    """Every client listener of ``listeners``, each TLS one with its settings and each SASL
    one with its mechanisms (properties.check has refused what is not served), and the
    advertised address of the first one when ``advertised.listeners`` names it."""
    listeners = []
    seen: set[str] = set()
    for name, protocol, (host, port) in _listener_items("listeners", props):
        if name in seen:
            raise InvalidConfigError(f"listeners: listener {name} is named twice")
        seen.add(name)
        tls = None
        if protocol in ("SSL", "SASL_SSL"):
            tls = TlsSettings.from_properties(name, listener_properties(props, name))
        listener = ListenerConfig(name, protocol, host, port, tls)
        if protocol.startswith("SASL_"):
            listener.sasl_mechanisms, listener.plain_users = _sasl_settings(name, props)
            listener.reauth_ms = _reauth_ms(name, props, listener.sasl_mechanisms)
            if oauth.OAUTHBEARER in listener.sasl_mechanisms:
                listener.oauth = _oauth_settings(name, props)
        listeners.append(listener)
    advertised = {
        name: address for name, _, address in _listener_items("advertised.listeners", props)
    }
    sasl_names = {lc.name.lower() for lc in listeners if lc.protocol.startswith("SASL_")}
    for key in props:
        if key.startswith("listener.name.") and ".sasl." in key:
            owner = key[len("listener.name.") :].partition(".")[0].lower()
            if owner not in sasl_names:
                raise InvalidConfigError(
                    f"{key}: listener {owner.upper()} is not a SASL listener "
                    "(SASL_PLAINTEXT or SASL_SSL), so nothing would read this setting"
                )
    for listener in listeners:
        if listener.name in advertised:
            listener.advertised_host, listener.advertised_port = advertised[listener.name]
    first = advertised.get(listeners[0].name) if listeners else None
    return listeners, first


def _listener_setting(props: dict[str, str], listener: str, key: str) -> str | None:
    """``listener.name.<listener>.<key>`` (the name in any case, as Kafka lower-cases it)."""
    wanted = f"listener.name.{listener}.{key}".lower()
    for name, value in props.items():
        if name.lower() == wanted:
            return value
    return None


def _sasl_settings(listener: str, props: dict[str, str]) -> tuple[tuple[str, ...], dict[str, str]]:
    """A SASL listener's mechanisms and PLAIN users (docs/security.md)."""
    text = _listener_setting(props, listener, "sasl.enabled.mechanisms")
    key = f"listener.name.{listener.lower()}.sasl.enabled.mechanisms"
    if text is None:
        text, key = props.get("sasl.enabled.mechanisms"), "sasl.enabled.mechanisms"
    if text is None:
        raise InvalidConfigError(
            f"listener {listener}: sasl.enabled.mechanisms is not set (Kafka's default, "
            f"GSSAPI, is not implemented): name {', '.join(sasl.MECHANISMS)}"
        )
    mechanisms = tuple(dict.fromkeys(m.strip().upper() for m in text.split(",") if m.strip()))
    unknown = [m for m in mechanisms if m not in sasl.MECHANISMS]
    if unknown or not mechanisms:
        raise InvalidConfigError(
            f"{key}={text!r}: {', '.join(unknown) or 'nothing'} is not implemented (edplog "
            f"serves {', '.join(sasl.MECHANISMS)})"
        )
    users: dict[str, str] = {}
    if sasl.PLAIN in mechanisms:
        jaas = _listener_setting(props, listener, "plain.sasl.jaas.config")
        if jaas is None:
            raise InvalidConfigError(
                f"listener {listener}: PLAIN needs its users in "
                f"listener.name.{listener.lower()}.plain.sasl.jaas.config "
                f'({sasl.PLAIN_LOGIN_MODULE} required user_<name>="<password>";)'
            )
        try:
            users = sasl.plain_users(jaas)
        except sasl.SaslConfigError as exc:
            raise InvalidConfigError(
                f"listener.name.{listener.lower()}.plain.sasl.jaas.config: {exc}"
            ) from None
    for mechanism in sasl.SCRAM_MECHANISMS:
        jaas = _listener_setting(props, listener, f"{mechanism.lower()}.sasl.jaas.config")
        if jaas is None:
            continue
        try:
            module, _, _ = sasl.parse_jaas(jaas)
        except sasl.SaslConfigError as exc:
            raise InvalidConfigError(f"{mechanism.lower()}.sasl.jaas.config: {exc}") from None
        if module != sasl.SCRAM_LOGIN_MODULE:
            raise InvalidConfigError(
                f"{mechanism.lower()}.sasl.jaas.config: {mechanism} uses "
                f"{sasl.SCRAM_LOGIN_MODULE}, not {module}"
            )
    return mechanisms, users


def _mechanism_setting(
    props: dict[str, str], listener: str, mechanism: str, key: str
) -> tuple[str, str | None]:
    """(where, value) of a mechanism's setting: ``listener.name.<l>.<mechanism>.<key>``, else
    ``listener.name.<l>.<key>``, else the broker-wide ``<key>``."""
    for where in (f"{mechanism.lower()}.{key}", key):
        found = _listener_setting(props, listener, where)
        if found is not None:
            return f"listener.name.{listener.lower()}.{where}", found
    return key, props.get(key)


def _reauth_ms(listener: str, props: dict[str, str], mechanisms: tuple[str, ...]) -> dict[str, int]:
    """``connections.max.reauth.ms`` per mechanism (0 or unset: sessions do not end)."""
    out = {}
    for mechanism in mechanisms:
        where, text = _mechanism_setting(props, listener, mechanism, "connections.max.reauth.ms")
        if text is None:
            continue
        try:
            value = int(text.strip())
        except ValueError:
            raise InvalidConfigError(f"{where}={text!r} is not a whole number") from None
        if value < 0:
            raise InvalidConfigError(f"{where}={value}: must be 0 (no limit) or more")
        out[mechanism] = value
    return out


def _oauth_settings(listener: str, props: dict[str, str]) -> oauth.OAuthSettings:
    """An OAUTHBEARER listener's validator settings: Kafka's secured validator class must be
    named (Kafka's default one accepts unsigned tokens, which edplog does not serve), the
    JAAS line names the OAuthBearerLoginModule when given, and the ``sasl.oauthbearer.*``
    settings come per listener or broker-wide."""
    prefix = f"listener.name.{listener.lower()}.oauthbearer"
    handler = _listener_setting(props, listener, "oauthbearer.sasl.server.callback.handler.class")
    if handler is None or handler.strip() not in oauth.VALIDATOR_CLASSES:
        raise InvalidConfigError(
            f"{prefix}.sasl.server.callback.handler.class="
            f"{handler.strip() if handler else '(unset)'}: OAUTHBEARER validates signed JWTs "
            f"only: name {oauth.VALIDATOR_CLASSES[0]} (Kafka's default handler, which "
            "accepts unsigned tokens, is not served)"
        )
    jaas = _listener_setting(props, listener, "oauthbearer.sasl.jaas.config")
    if jaas is not None:
        try:
            module, _, _ = sasl.parse_jaas(jaas)
        except sasl.SaslConfigError as exc:
            raise InvalidConfigError(f"{prefix}.sasl.jaas.config: {exc}") from None
        if module != oauth.LOGIN_MODULE:
            raise InvalidConfigError(
                f"{prefix}.sasl.jaas.config: OAUTHBEARER uses {oauth.LOGIN_MODULE}, not {module}"
            )

    def get(name: str) -> str | None:
        return _mechanism_setting(props, listener, oauth.OAUTHBEARER, name)[1]

    try:
        return oauth.OAuthSettings.from_settings(get)
    except oauth.OAuthConfigError as exc:
        raise InvalidConfigError(f"listener {listener}: {exc}") from None


def _listener_items(key: str, props: dict[str, str]) -> list[tuple[str, str, tuple[str, int]]]:
    """The client listeners of ``listeners`` / ``advertised.listeners``: (name, protocol,
    (host, port)), the controller listener of Kafka's KRaft settings left out."""
    controller = {n.strip().upper() for n in props.get("controller.listener.names", "").split(",")}
    mapping = properties.protocol_map(props)
    out = []
    for name, address in properties.listener_items(props.get(key, "")):
        if name in controller:
            continue
        try:
            out.append((name, mapping.get(name, ""), parse_listener(address)))
        except ValueError as exc:
            raise InvalidConfigError(f"{key}: {exc}") from None
    return out


def client_listener(key: str, value: str, props: dict[str, str]) -> tuple[str, int]:
    """The one client listener of ``listeners`` / ``advertised.listeners`` (a single node's
    controller listener, when Kafka's KRaft settings name one, is left out)."""
    controller = {n.strip().upper() for n in props.get("controller.listener.names", "").split(",")}
    for item in value.split(","):
        item = item.strip()
        name = item.partition("://")[0].upper() if "://" in item else "PLAINTEXT"
        if item and name not in controller:
            try:
                return parse_listener(item)
            except ValueError as exc:
                raise InvalidConfigError(f"{key}: {exc}") from None
    raise InvalidConfigError(f"{key}={value!r}: no client listener")


@dataclass(frozen=True)
class InterBroker:
    """How this broker reaches the others (replica fetches): the listener it connects to on
    each of them (``inter.broker.listener.name``, else the listener named for
    ``security.inter.broker.protocol``), its security protocol and TLS settings (the
    listener's own: its trust store checks the other brokers, its key store answers their
    client-certificate requests), and for a SASL listener the mechanism
    (``sasl.mechanism.inter.broker.protocol``) with the user and password of the listener's
    JAAS configuration for it (``username`` / ``password``, as Kafka's login modules read)."""

    listener: str = "PLAINTEXT"
    protocol: str = "PLAINTEXT"
    tls: TlsSettings | None = None
    sasl_mechanism: str | None = None
    sasl_username: str = ""
    sasl_password: str = field(default="", repr=False)

    def client_security(self) -> ClientSecurity | None:
        """What a connection to another broker's listener does after its connect (None:
        nothing, plaintext). Reads the key and trust stores: call it off the event loop, at
        each new connection, so that replaced certificates are used without a restart."""
        if self.tls is None and self.sasl_mechanism is None:
            return None
        return ClientSecurity(
            build_client_context(self.tls) if self.tls is not None else None,
            sasl_mechanism=self.sasl_mechanism,
            sasl_username=self.sasl_username,
            sasl_password=self.sasl_password,
        )


def inter_broker(props: dict[str, str], listeners: list[ListenerConfig]) -> InterBroker:
    """The inter-broker settings of a clustered broker (see :class:`InterBroker`)."""
    named = props.get("inter.broker.listener.name", "").strip().upper()
    if named and "security.inter.broker.protocol" in props:
        raise InvalidConfigError(
            "inter.broker.listener.name and security.inter.broker.protocol are both set: set "
            "one (Kafka refuses both too)"
        )
    name = named or props.get("security.inter.broker.protocol", "PLAINTEXT").strip().upper()
    found = [lc for lc in listeners if lc.name == name] if listeners else []
    if not listeners and name == "PLAINTEXT":
        return InterBroker()
    if not found:
        key = "inter.broker.listener.name" if named else "security.inter.broker.protocol"
        raise InvalidConfigError(
            f"{key}: brokers reach each other on listener {name}, which is not one of "
            f"listeners ({', '.join(lc.name for lc in listeners)})"
        )
    listener = found[0]
    out = InterBroker(listener.name, listener.protocol, listener.tls)
    if not listener.protocol.startswith("SASL_"):
        return out
    mechanism = props.get("sasl.mechanism.inter.broker.protocol", "").strip().upper()
    if not mechanism:
        raise InvalidConfigError(
            f"sasl.mechanism.inter.broker.protocol is not set: listener {name} is "
            f"{listener.protocol} (Kafka's default, GSSAPI, is not implemented): name one of "
            f"{', '.join(listener.sasl_mechanisms)}"
        )
    if mechanism not in listener.sasl_mechanisms:
        raise InvalidConfigError(
            f"sasl.mechanism.inter.broker.protocol={mechanism}: listener {name} does not "
            f"enable it ({', '.join(listener.sasl_mechanisms)})"
        )
    if mechanism == oauth.OAUTHBEARER:
        raise InvalidConfigError(
            "sasl.mechanism.inter.broker.protocol=OAUTHBEARER: brokers do not fetch tokens "
            "for each other; use SCRAM, PLAIN or mTLS between brokers"
        )
    key = f"listener.name.{name.lower()}.{mechanism.lower()}.sasl.jaas.config"
    jaas = _listener_setting(props, name, f"{mechanism.lower()}.sasl.jaas.config")
    options: dict[str, str] = {}
    if jaas is not None:
        try:
            _, _, options = sasl.parse_jaas(jaas)
        except sasl.SaslConfigError as exc:
            raise InvalidConfigError(f"{key}: {exc}") from None
    if not options.get("username") or not options.get("password"):
        raise InvalidConfigError(
            f"{key}: brokers log in to each other with {mechanism} as the username and "
            'password options of this setting (username="broker" password="...")'
        )
    return replace(
        out,
        sasl_mechanism=mechanism,
        sasl_username=options["username"],
        sasl_password=options["password"],
    )
