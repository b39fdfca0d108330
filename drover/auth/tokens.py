"""Issue and verify the API's bearer tokens: JWTs signed with asymmetric keys (PyJWT).

drover's built-in issuer signs with the P-256 key in the data dir; external OIDC issuers are
trusted through their JWKS. A token names its key (``kid``); the key says which issuer, audience
and algorithm the token must match. Verified tokens are remembered until they expire, so a client
reusing its token pays one dictionary lookup per call.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
import unicodedata
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeGuard

import jwt
from cachetools import LRUCache
from cryptography.hazmat.primitives.asymmetric import ec

from drover.auth import keys
from drover.config import AuthConfig, OidcIssuerConfig

log = logging.getLogger(__name__)

# ES256: of the asymmetric JWT algorithms, the cheapest to verify with OpenSSL here (benchmarks/auth.py).
ALGORITHM = "ES256"
ROLES = ("admin", "member", "reader")
MAX_TOKEN_BYTES = 8192
MAX_CLAIM_CHARS = 255
MAX_ROLES = 32
# A JWKS URL is fetched again for an unknown key id at most this often (seconds).
JWKS_REFRESH_INTERVAL = 30.0


class TokenError(Exception):
    """The token is missing, malformed, unsigned by a trusted key, expired or for someone else."""


@dataclass(frozen=True)
class Principal:
    project_id: str
    user_id: str
    roles: frozenset[str]
    # When the token stops being accepted (its exp plus the leeway; epoch seconds): a stream opened
    # with it ends then.
    valid_until: float = field(default=math.inf, compare=False)


def issue(key: ec.EllipticCurvePrivateKey, auth: AuthConfig, *, project: str, user: str, roles: Iterable[str],
          ttl: float) -> str:
    """A token of drover's built-in issuer."""
    roles = sorted(set(roles))
    for value, what in ((project, "project"), (user, "user")):
        if not _valid_name(value):
            raise ValueError(f"{what} must be 1–{MAX_CLAIM_CHARS} characters, none of them a control character")
    if ttl <= 0:
        raise ValueError("ttl must be positive")
    now = int(time.time())
    claims = {"iss": auth.issuer, "aud": auth.audience, "sub": user, "project_id": project, "roles": roles,
              "iat": now, "nbf": now, "exp": now + int(ttl), "jti": uuid.uuid4().hex}
    return jwt.encode(claims, key, algorithm=ALGORITHM, headers={"kid": keys.key_id(key)})


@dataclass(frozen=True)
class _TrustedKey:
    key: Any  # a cryptography public key
    algorithm: str
    issuer: str
    audience: str
    project_claim: str = "project_id"
    user_claim: str = "sub"
    roles_claim: str = "roles"


class _Jwks:
    """One OIDC issuer's key set, from a file or a URL."""

    def __init__(self, cfg: OidcIssuerConfig) -> None:
        self.cfg = cfg
        self.fetched_at = 0.0
        self.keys: dict[str, _TrustedKey] = {}

    def load(self) -> dict[str, _TrustedKey]:
        self.fetched_at = time.monotonic()
        src = self.cfg.jwks
        if src.startswith(("https://", "http://")):
            with urllib.request.urlopen(src, timeout=5) as resp:  # the operator configured it
                doc = json.loads(resp.read(1 << 20))
        else:
            doc = json.loads(Path(src).expanduser().read_text())
        out = {}
        for jwk in jwt.PyJWKSet.from_dict(doc).keys:
            if jwk.key_id and jwk.public_key_use in (None, "sig"):
                out[jwk.key_id] = _TrustedKey(
                    key=jwk.key, algorithm=jwk.algorithm_name, issuer=self.cfg.issuer, audience=self.cfg.audience,
                    project_claim=self.cfg.project_claim, user_claim=self.cfg.user_claim,
                    roles_claim=self.cfg.roles_claim)
        return out


class Verifier:
    def __init__(self, auth: AuthConfig, signing_key: ec.EllipticCurvePrivateKey | None, *,
                 cache_size: int = 65536) -> None:
        self.auth = auth
        self.builtin: dict[str, _TrustedKey] = {}
        if signing_key is not None:
            self.builtin[keys.key_id(signing_key)] = _TrustedKey(
                key=signing_key.public_key(), algorithm=ALGORITHM, issuer=auth.issuer, audience=auth.audience)
        self.jwks = [_Jwks(c) for c in auth.oidc]
        self.trusted: dict[str, _TrustedKey] = dict(self.builtin)
        self._refresh_lock = threading.Lock()  # one fetch at a time; the others then find it done
        self.refresh(force=True)
        self.cache: LRUCache[str, tuple[Principal, float]] = LRUCache(cache_size)

    def refresh(self, *, force: bool = False) -> bool:
        """Reload the JWKS of every OIDC issuer (rate-limited); True when something was reloaded.
        Blocking (a URL fetch): call it from a thread when serving."""
        with self._refresh_lock:
            return self._refresh(force)

    def _refresh(self, force: bool) -> bool:
        reloaded = False
        for source in self.jwks:
            if not force and time.monotonic() - source.fetched_at < JWKS_REFRESH_INTERVAL:
                continue
            try:
                source.keys = source.load()  # a rotated-out key goes with its set
                reloaded = True
            except (OSError, ValueError, jwt.PyJWTError) as exc:  # keep the last good set
                log.warning("cannot load the JWKS of %s from %s: %s", source.cfg.issuer, source.cfg.jwks, exc)
        if reloaded:
            trusted = {kid: k for source in self.jwks for kid, k in source.keys.items()}
            self.trusted = {**trusted, **self.builtin}  # an OIDC key never shadows the built-in one
        return reloaded

    def knows_key(self, token: str) -> bool:
        """False when the token names a key id this verifier has not loaded (a JWKS may have rotated)."""
        try:
            return jwt.get_unverified_header(token).get("kid") in self.trusted
        except jwt.PyJWTError:
            return True

    def verify(self, token: str) -> Principal:
        now = time.time()
        hit = self.cache.get(token)
        if hit is not None and hit[1] > now - self.auth.leeway:
            return hit[0]
        if not token or len(token) > MAX_TOKEN_BYTES:
            raise TokenError("malformed bearer token")
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            trusted = self.trusted.get(kid) if isinstance(kid, str) else None
            if trusted is None:
                raise TokenError("token signed by an unknown key")
            claims = jwt.decode(
                token, trusted.key, algorithms=[trusted.algorithm], audience=trusted.audience,
                issuer=trusted.issuer, leeway=self.auth.leeway,
                options={"require": ["exp", "iss", "aud", trusted.user_claim]})
        except jwt.ExpiredSignatureError:
            raise TokenError("token expired") from None
        except jwt.InvalidAudienceError:
            raise TokenError("token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise TokenError("token from an untrusted issuer") from None
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {exc}") from None
        principal = replace(_principal(claims, trusted), valid_until=float(claims["exp"]) + self.auth.leeway)
        self.cache[token] = (principal, float(claims["exp"]))
        return principal


def _valid_name(value: object) -> TypeGuard[str]:
    """A project or user name: 1–255 characters, no control characters (a NUL cannot even be stored
    in PostgreSQL, and they are stored with every server and action)."""
    return (isinstance(value, str) and 0 < len(value) <= MAX_CLAIM_CHARS
            and not any(unicodedata.category(ch) == "Cc" for ch in value))


def _principal(claims: dict[str, Any], trusted: _TrustedKey) -> Principal:
    project, user = claims.get(trusted.project_claim), claims.get(trusted.user_claim)
    roles = claims.get(trusted.roles_claim, [])
    if isinstance(roles, str):
        roles = roles.split()
    if not (_valid_name(project) and _valid_name(user)):
        raise TokenError("token lacks a valid project or user claim")
    if not isinstance(roles, list) or len(roles) > MAX_ROLES or not all(isinstance(r, str) for r in roles):
        raise TokenError("token's roles claim is not a list of names")
    return Principal(project_id=project, user_id=user, roles=frozenset(roles))


def verifier_for(auth: AuthConfig, data_dir: Path) -> Verifier:
    """The API's verifier: the built-in issuer (its key created on first start) and the OIDC issuers."""
    return Verifier(auth, keys.ensure_signing_key(data_dir))
