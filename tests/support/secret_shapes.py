"""Credential shapes gitleaks knows, each with the fragment that must never be seen again."""

from __future__ import annotations

import json
from typing import Any

# name: (the text as it appears in the wild, a fragment of the secret in it)
SHAPES: dict[str, tuple[str, str]] = {
    "slack-bot-token": (
        "xoxb-1234567890123-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    "slack-user-token": ("xoxp-1234567890-0987654321-1357924680-ZyXwVuTsRq", "ZyXwVuTsRq"),
    "slack-webhook-url": (
        "https://hooks.slack.com/services/T0AAAAAAA/B0BBBBBBB/WebH00kS3cretPathAbCdEfGh",
        "WebH00kS3cretPathAbCdEfGh",
    ),
    "slack-response-url": (
        "https://hooks.slack.com/commands/T0AAAAAAA/1234567890/RespUrlS3cretPart",
        "RespUrlS3cretPart",
    ),
    "github-pat": ("ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8", "a1B2c3D4e5F6g7H8i9J0"),
    "github-oauth": ("gho_Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2", "Z9y8X7w6V5u4T3s2R1q0"),
    "github-fine-grained-pat": (
        "github_pat_11ABCDEFG0123456789_FineGrainedPatS3cretAbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        "FineGrainedPatS3cret",
    ),
    "stripe-live-key": ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWDarjtT1zdp7dc"),
    "aws-access-key-id": ("AKIAZ7QWERTYUIOP2345", "Z7QWERTYUIOP2345"),
    "aws-secret-key": (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYAwsS3cretKey",
        "wJalrXUtnFEMI/K7MDENG",
    ),
    "gcp-api-key": ("AIzaSyA1B2C3D4E5F6G7H8I9J0KLMNOPQRSTUVW", "SyA1B2C3D4E5F6G7H8I9"),
    "jwt": (
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
        "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3jVmNHl0w5N",
    ),
    "pem-private-key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAPemKeyS3cretBody\n"
        "uIoPasDfGhJkL\n-----END RSA PRIVATE KEY-----",
        "PemKeyS3cretBody",
    ),
    "authorization-bearer": ("Authorization: Bearer BearerS3cret.value-123", "BearerS3cret"),
    "authorization-basic": ("authorization: Basic QmFzaWNTM2NyZXQ6cHc=", "QmFzaWNTM2NyZXQ6cHc"),
    "cookie": ("Cookie: sid=C00kieS3ssionValue; theme=dark", "C00kieS3ssionValue"),
    "set-cookie": ("Set-Cookie: session=SetC00kieS3cret; Path=/; HttpOnly", "SetC00kieS3cret"),
    "dsn-postgres": ("postgresql://forge:PgDsnPa55word@db:5432/cf", "PgDsnPa55word"),
    "dsn-redis": ("redis://:RedisDsnPa55@cache:6379/0", "RedisDsnPa55"),
    "dsn-amqps": ("amqps://user:AmqpDsnS3cret@mq/vhost", "AmqpDsnS3cret"),
    "dsn-mongodb-srv": ("mongodb+srv://app:MongoDsnPa55@cluster0.example.net/db", "MongoDsnPa55"),
    "password-pair": ("login failed password=PwPairHunter2 for user", "PwPairHunter2"),
    "token-in-url": ("GET https://api.example.com/v1/x?user=1&token=T0kenInUrl&x=2", "T0kenInUrl"),
    "api-key-in-json": ('{"api_key": "ApiK3yInJson", "n": 1}', "ApiK3yInJson"),
    "secret-pair": ("client_secret: Cl13ntS3cretPair", "Cl13ntS3cretPair"),
}
# job data values that are secret only by their key's name
NAMED = {"password": "NamedPassw0rdValue", "stripeApiKey": "NamedApiKeyValue"}


def fragments() -> dict[str, str]:
    """Every shape's secret fragment, and the values secret by name, by shape name."""
    return {name: secret for name, (_, secret) in SHAPES.items()} | {
        f"named:{k}": v for k, v in NAMED.items()
    }


def one_line(text: str) -> str:
    """A shape fit for a slash command's words: its line breaks as spaces."""
    return " ".join(text.split())


def job_data() -> dict[str, Any]:
    """Job data with every shape: top level, nested objects, lists, and a JSON string inside."""
    texts = [text for text, _ in SHAPES.values()]
    return {
        "to": "ops@example.com",
        "note": texts[0],
        "headers": {"list": texts[1 : len(texts) // 2]},
        "deep": {"a": {"b": [{"c": texts[len(texts) // 2 :]}]}},
        "raw": json.dumps({"inner": texts}),
        "auth": dict(NAMED),
        **NAMED,
    }


def leaked(text: str) -> dict[str, str]:
    """The shapes whose secret fragment is still in the text."""
    return {name: secret for name, secret in fragments().items() if secret in text}
