"""Who is calling: GitHub App JWTs, installation tokens, anonymous.

Checks follow GitHub's: a JWT must be RS256-signed by the App's key, name the
App (Client ID or App ID) as issuer, live at most ten minutes and not be
expired or issued in the future on the forge's clock. Installation tokens
expire after an hour on the forge's clock and can be revoked.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from cloud_runs.forge.state import ForgeApp, TokenRecord, token_digest

if TYPE_CHECKING:
    from cloud_runs.forge.forge import Forge

JWT_MAX_LIFETIME = 600
# GitHub tolerates a little clock drift for `iat`; it recommends backdating it by 60 s.
CLOCK_SKEW = 60
TOKEN_LIFETIME = 3600


class AuthFailure(Exception):
    """A credential was presented and rejected (401)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Caller:
    """The authenticated party of one request.

    ``kind`` is "jwt", "installation_token" or "anonymous".
    """

    kind: str
    app: ForgeApp | None = None
    token: TokenRecord | None = None


def generate_key_pair() -> tuple[str, str]:
    """A fresh 2048-bit RSA key: (PKCS#1 private PEM, SubjectPublicKeyInfo PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private, public


def new_token() -> str:
    """A ``ghs_`` token in GitHub's long 2026 format: about 520 characters with dots."""
    parts = [secrets.token_urlsafe(96), secrets.token_urlsafe(192), secrets.token_urlsafe(96)]
    return "ghs_" + ".".join(parts)


def parse_authorization(header: str | None) -> str | None:
    """Extracts the credential from ``token X``, ``Bearer X`` or ``Basic b64(user:X)``."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme in ("token", "bearer"):
        return value or None
    if scheme == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return ""
        _user, _, password = decoded.partition(":")
        return password
    return ""


def looks_like_jwt(credential: str) -> bool:
    return credential.startswith("eyJ") and credential.count(".") == 2


def verify_jwt(forge: Forge, credential: str) -> ForgeApp:
    """Returns the App a JWT authenticates, or raises :class:`AuthFailure`."""
    undecodable = "A JSON web token could not be decoded"
    try:
        claims = jwt.decode(credential, options={"verify_signature": False})
        header = jwt.get_unverified_header(credential)
    except jwt.PyJWTError as e:
        raise AuthFailure(undecodable) from e
    if header.get("alg") != "RS256":
        raise AuthFailure(undecodable)
    app = forge._app_by_issuer(str(claims.get("iss", "")))
    if app is None:
        raise AuthFailure(undecodable)
    try:
        jwt.decode(
            credential,
            app.public_key_pem,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False, "verify_iss": False},
        )
    except jwt.PyJWTError as e:
        raise AuthFailure(undecodable) from e
    iat, exp = claims.get("iat"), claims.get("exp")
    now = forge.now()
    if not isinstance(iat, int) or iat > now + CLOCK_SKEW:
        raise AuthFailure("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued")
    if not isinstance(exp, int) or exp <= now:
        raise AuthFailure(
            "'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires"
        )
    if exp - iat > JWT_MAX_LIFETIME:
        raise AuthFailure("'Expiration time' claim ('exp') is too far in the future")
    return app


def resolve_caller(forge: Forge, header: str | None) -> Caller:
    """Identifies the caller from an ``Authorization`` header; raises :class:`AuthFailure` for bad credentials."""
    credential = parse_authorization(header)
    if credential is None:
        return Caller("anonymous")
    if looks_like_jwt(credential):
        return Caller("jwt", app=verify_jwt(forge, credential))
    record = forge._token_by_digest(token_digest(credential)) if credential else None
    if record is None or record.revoked or record.expires_at <= forge.now():
        raise AuthFailure("Bad credentials")
    return Caller("installation_token", token=record, app=forge._app_of_installation(record.installation_id))
