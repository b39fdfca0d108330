"""Token issue and verification (the pieces; the API's enforcement is tested over real processes)."""

from __future__ import annotations

import json
import os
import stat
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from drover.auth import keys, tokens
from drover.config import AuthConfig, OidcIssuerConfig


@pytest.fixture
def key(tmp_path):
    return keys.ensure_signing_key(tmp_path)


def test_the_signing_key_is_created_once_and_private(tmp_path) -> None:
    first = keys.ensure_signing_key(tmp_path)
    path = keys.signing_key_path(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert keys.key_id(keys.ensure_signing_key(tmp_path)) == keys.key_id(first)


def test_a_token_names_its_project_user_and_roles(key) -> None:
    auth = AuthConfig()
    token = tokens.issue(key, auth, project="p1", user="alice", roles=["member", "reader"], ttl=60)
    who = tokens.Verifier(auth, key).verify(token)
    assert who == tokens.Principal("p1", "alice", frozenset({"member", "reader"}))


@pytest.mark.parametrize("change, reason", [
    ({"exp": int(time.time()) - 3600}, "expired"),
    ({"iss": "someone-else"}, "untrusted issuer"),
    ({"aud": "another-service"}, "another audience"),
])
def test_expired_foreign_or_misaddressed_tokens_are_refused(key, change, reason) -> None:
    auth = AuthConfig()
    claims = {"iss": auth.issuer, "aud": auth.audience, "sub": "u", "project_id": "p", "roles": ["admin"],
              "exp": int(time.time()) + 60, **change}
    token = jwt.encode(claims, key, algorithm=tokens.ALGORITHM, headers={"kid": keys.key_id(key)})
    with pytest.raises(tokens.TokenError, match=reason):
        tokens.Verifier(auth, key).verify(token)


def test_a_token_signed_by_another_key_or_unsigned_is_refused(key, tmp_path) -> None:
    auth = AuthConfig()
    other = keys.ensure_signing_key(tmp_path / "other")
    forged = tokens.issue(other, auth, project="p", user="u", roles=["admin"], ttl=60)
    verifier = tokens.Verifier(auth, key)
    with pytest.raises(tokens.TokenError, match="unknown key"):
        verifier.verify(forged)
    # Same key id, wrong key: the signature fails.
    claims = jwt.decode(forged, options={"verify_signature": False})
    swapped = jwt.encode(claims, other, algorithm=tokens.ALGORITHM, headers={"kid": keys.key_id(key)})
    with pytest.raises(tokens.TokenError, match="invalid token"):
        verifier.verify(swapped)
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": keys.key_id(key)})
    with pytest.raises(tokens.TokenError):
        verifier.verify(unsigned)
    for garbage in ("", "x", "a.b.c", "A" * 10000):
        with pytest.raises(tokens.TokenError):
            verifier.verify(garbage)


def test_an_oidc_issuer_is_trusted_through_its_jwks_file(key, tmp_path) -> None:
    idp_key = ec.generate_private_key(ec.SECP256R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(idp_key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "idp-1", "alg": "ES256", "use": "sig"}]}))
    auth = AuthConfig(oidc=[OidcIssuerConfig(issuer="https://idp.example", audience="drover-api",
                                             jwks=str(tmp_path / "jwks.json"), project_claim="tenant",
                                             roles_claim="groups")])
    verifier = tokens.Verifier(auth, key)
    claims = {"iss": "https://idp.example", "aud": "drover-api", "sub": "carol", "tenant": "t9",
              "groups": ["reader"], "exp": int(time.time()) + 60}
    token = jwt.encode(claims, idp_key, algorithm="ES256", headers={"kid": "idp-1"})
    assert verifier.verify(token) == tokens.Principal("t9", "carol", frozenset({"reader"}))
    # The IdP's key cannot mint tokens claiming drover's own issuer.
    own = jwt.encode({**claims, "iss": auth.issuer, "aud": auth.audience}, idp_key, algorithm="ES256",
                     headers={"kid": "idp-1"})
    with pytest.raises(tokens.TokenError, match="untrusted issuer"):
        verifier.verify(own)


def test_verification_is_remembered_until_expiry(key) -> None:
    auth = AuthConfig(leeway=0)
    verifier = tokens.Verifier(auth, key)
    token = tokens.issue(key, auth, project="p", user="u", roles=["member"], ttl=1)
    verifier.verify(token)
    assert token in verifier.cache
    time.sleep(1.1)
    with pytest.raises(tokens.TokenError, match="expired"):
        verifier.verify(token)
