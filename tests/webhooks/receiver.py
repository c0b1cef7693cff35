"""A webhook receiver for the test suite (tests/pipeline/webhooks.rs): it
verifies order-sync's signature with the recipe the README documents, and
misbehaves on purpose by path. Every request is logged as a JSON line.

  python3 receiver.py PORT SECRET LOG [CERT KEY]   # HTTPS with CERT and KEY

Paths: /ok (200 when the signature verifies, else 401), /fail (500),
/slow (answers after 5 s), /slow-ok (200 after 1.5 s), /redirect (302 to /ok),
/huge (200 streaming 50 MB), /reset (closes the connection unanswered).
"""

import json
import os
import socket
import ssl
import struct
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


# The documented recipe itself (docs/webhooks/verify.py), not a copy.
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "docs", "webhooks"))
from verify import verify  # noqa: E402


def main() -> None:
    port, secret, log = int(sys.argv[1]), sys.argv[2], open(sys.argv[3], "a", buffering=1)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("content-length", 0)))
            header = self.headers.get("x-order-sync-signature", "")
            ok = verify(secret, header, body, time.time())
            if self.path == "/ok":
                # A real request kept for the PHP and Node recipes to check.
                with open(sys.argv[3] + ".body", "wb") as f:
                    f.write(body)
                with open(sys.argv[3] + ".header", "w") as f:
                    f.write(header)
            # The same body and header replayed ten minutes on, and a forged
            # one, are both rejected by the recipe.
            replay_rejected = not verify(secret, header, body, time.time() + 600)
            forged_rejected = not verify(secret, header, body + b" ", time.time())
            message = json.loads(body) if body else {}
            ce_headers = {k.lower(): v for k, v in self.headers.items() if k.lower().startswith("ce-")}
            event = None
            if ce_headers:
                # The official SDK, HTTP binding, binary content mode.
                from cloudevents.core.bindings import http as ce_http
                ce_headers["content-type"] = self.headers.get("content-type", "")
                parsed = ce_http.from_binary_event(ce_http.HTTPMessage(headers=ce_headers, body=body))
                event = {k: str(v) for k, v in parsed.get_attributes().items()}
            log.write(json.dumps({
                "path": self.path,
                "verified": ok,
                "replay_rejected": replay_rejected,
                "forged_rejected": forged_rejected,
                "message_id": message.get("message_id"),
                "cloudevent": event,
            }) + "\n")
            if self.path == "/reset":
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
                return
            if self.path == "/slow":
                time.sleep(5)
            if self.path == "/slow-ok":
                time.sleep(1.5)
            if self.path == "/redirect":
                self.send_response(302)
                self.send_header("location", "/ok")
                self.send_header("content-length", "0")
                self.end_headers()
                return
            if self.path == "/fail":
                self.answer(500, b"ERP down")
                return
            if self.path == "/huge":
                self.send_response(200)
                self.end_headers()
                chunk = b"x" * 65536
                try:
                    for _ in range(800):
                        self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                return
            self.answer(200 if ok else 401, b"ok" if ok else b"bad signature")

        def answer(self, status: int, body: bytes) -> None:
            # A length, so the answer's end is not the connection's (a TLS
            # client takes an unannounced close as a truncation).
            self.send_response(status)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    if len(sys.argv) > 5:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(sys.argv[4], sys.argv[5])
        server.socket = context.wrap_socket(server.socket, server_side=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
