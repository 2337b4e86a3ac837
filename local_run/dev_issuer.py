"""A stand-in for the Cognito user pool on one machine: one RSA key, its JWKS, and Cognito-shaped tokens.

The deployed authorizer verifies these tokens unchanged (same algorithm, same claims, same JWKS shape), so
the local run exercises the real verification path instead of a bypass. The key lives in a file so tokens
minted by the CLI stay valid across restarts of the local gateway.

    python -m local_run.dev_issuer --issuer URL --client-id ID [--user-id U] [--expires-in S] [--key-dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

KEY_FILE_NAME: Final = "dev-issuer-key.pem"
DEFAULT_KEY_DIR: Final = Path(".local") / "dev-issuer"
ALGORITHM: Final = "RS256"
KEY_SIZE: Final = 2048


def _load_or_create_key(key_dir: Path) -> rsa.RSAPrivateKey:
    """The key in ``key_dir``, created (mode 0600) on first use; two processes racing end up with one key."""
    path = key_dir / KEY_FILE_NAME
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = rsa.generate_private_key(public_exponent=65537, key_size=KEY_SIZE)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        temporary = key_dir / f".{KEY_FILE_NAME}.{os.getpid()}.{uuid.uuid4().hex}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(pem)
            # A hard link never overwrites: whoever links first owns the key, everyone else reads it.
            with contextlib.suppress(FileExistsError):
                os.link(temporary, path)
        finally:
            temporary.unlink(missing_ok=True)
    loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(loaded, rsa.RSAPrivateKey):
        raise ValueError(f"{path} does not hold an RSA private key")
    return loaded


class DevIssuer:
    """Mints tokens for ``issuer`` and ``client_id`` and publishes the JWKS that verifies them."""

    def __init__(self, key_dir: Path, issuer: str, client_id: str) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self.private_key = _load_or_create_key(Path(key_dir))
        public_der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        # Derived from the key, so the kid is stable across restarts and changes only when the key does.
        self.kid = hashlib.sha256(public_der).hexdigest()[:16]

    def jwks(self) -> dict[str, Any]:
        """The key set, shaped like Cognito's ``/.well-known/jwks.json``."""
        jwk = RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        assert isinstance(jwk, dict)
        return {"keys": [{"kty": "RSA", "kid": self.kid, "use": "sig", "alg": ALGORITHM, "n": jwk["n"], "e": jwk["e"]}]}

    def mint(
        self,
        user_id: str = "local-speaker",
        expires_in: int = 3600,
        *,
        token_use: str | None = "id",
        **claim_overrides: Any,
    ) -> str:
        """A signed token shaped like Cognito's; ``token_use`` or an override of ``None`` removes that claim (for
        tests)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": user_id,
            "iss": self.issuer,
            "token_use": token_use,
            "auth_time": now,
            "iat": now,
            "exp": now + expires_in,
            "jti": str(uuid.uuid4()),
        }
        if token_use == "access":
            # Cognito access tokens name the app client in ``client_id`` and carry no ``aud``.
            claims.update({"client_id": self.client_id, "username": user_id, "scope": "aws.cognito.signin.user.admin"})
        else:
            claims.update({"aud": self.client_id, "cognito:username": user_id})
        if token_use is None:
            del claims["token_use"]
        for name, value in claim_overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.kid})


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m local_run.dev_issuer", description="Mint a speaker token for the local run."
    )
    parser.add_argument("--issuer", required=True, help="the iss claim; must equal the authorizer's TOKEN_ISSUER")
    parser.add_argument("--client-id", required=True, help="the aud claim; must equal TOKEN_CLIENT_ID")
    parser.add_argument("--user-id", default="local-speaker", help="the sub claim (default: local-speaker)")
    parser.add_argument("--expires-in", type=int, default=3600, help="lifetime in seconds (default: 3600)")
    parser.add_argument("--key-dir", type=Path, default=DEFAULT_KEY_DIR, help=f"default: {DEFAULT_KEY_DIR}")
    args = parser.parse_args(argv)
    if args.expires_in <= 0:
        parser.error("--expires-in must be positive")
    issuer = DevIssuer(args.key_dir, args.issuer, args.client_id)
    token = issuer.mint(args.user_id, args.expires_in)
    print(
        f"ID token for sub={args.user_id!r}, valid {args.expires_in} s, signed with kid {issuer.kid} "
        f"from {args.key_dir / KEY_FILE_NAME}; pass it as ?token=... on the WebSocket URL.",
        file=sys.stderr,
    )
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
