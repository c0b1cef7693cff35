"""Verifying order-sync's webhook signature in Python.

  python3 verify.py SECRET SIGNATURE_HEADER BODY_FILE [NOW]   # exit 0: genuine
"""

import hashlib
import hmac
import sys
import time


def verify(secret: str, header: str, body: bytes, now: float, tolerance: int = 300) -> bool:
    """True when `header` (X-Order-Sync-Signature: t=<unix>,v1=<hex>) signs the
    raw `body` with `secret` and is at most `tolerance` seconds old: a forged
    body fails the HMAC, a replayed request the age check."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
        given = parts["v1"]
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


if __name__ == "__main__":
    secret, header, path = sys.argv[1:4]
    now = float(sys.argv[4]) if len(sys.argv) > 4 else time.time()
    sys.exit(0 if verify(secret, header, open(path, "rb").read(), now) else 1)
