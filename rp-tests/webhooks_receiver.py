#!/usr/bin/env python3
"""A webhook receiver in another language: Gatehouse's deliveries verified by the Standard
Webhooks reference library for Python (`standardwebhooks` on PyPI), not by our code.

Starts `gatehouse serve` on a temporary SQLite database, creates an admin key with the CLI,
starts a local HTTP receiver, registers it through `POST /v1/admin/webhooks`, causes events
(a profile change, an organization), and verifies every delivery with
`standardwebhooks.webhooks.Webhook(secret).verify(body, headers)`; a wrong secret must fail; after
`rotate-secret` a delivery verifies with the new secret and with the old one.

Usage: python rp-tests/webhooks_receiver.py [--no-build] [--binary PATH] [--verbose]

Ends with `webhooks receiver: N passed, M failed`; exits non-zero when any check failed.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import signal
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import authlib_rp  # noqa: E402  (the shared server, CLI and environment helpers)

PASSWORD = "Webhook-Receiver-81!x"
WAIT = 30  # seconds for a delivery to arrive


class Received:
    """What the receiver got, and a condition to wait on."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.condition = threading.Condition()

    def add(self, headers: dict[str, str], body: bytes) -> None:
        with self.condition:
            self.requests.append((headers, body))
            self.condition.notify_all()

    def wait_for(self, event_type: str) -> tuple[dict[str, str], bytes]:
        deadline = time.monotonic() + WAIT
        with self.condition:
            while True:
                for headers, body in self.requests:
                    if json.loads(body).get("type") == event_type:
                        return headers, body
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise RuntimeError(f"no {event_type} delivery within {WAIT} s")
                self.condition.wait(remaining)


def start_receiver(received: Received) -> str:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server API)
            length = int(self.headers.get("content-length", "0"))
            body = self.rfile.read(length)
            received.add({key.lower(): value for key, value in self.headers.items()}, body)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/hooks"


def verifies(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def run(checks: authlib_rp.Tally, binary: str, workdir: str) -> None:
    env = authlib_rp.server_env(workdir, GATEHOUSE_OUTBOUND_ALLOW_PRIVATE_TARGETS="true",
                                GATEHOUSE_OUTBOX_POLL_INTERVAL_MS="100")
    admin_key = authlib_rp.cli(binary, env, workdir, "admin-key", "create", "--name", "receiver")
    admin = {"authorization": f"Bearer {admin_key['key']}"}
    server = authlib_rp.Server(binary, env, workdir, "gatehouse")
    base = server.start()
    received = Received()
    receiver_url = start_receiver(received)

    created = requests.post(f"{base}/v1/admin/webhooks", headers=admin, timeout=30,
                            json={"url": receiver_url, "events": ["user.updated", "organization.*"]})
    checks.equal(created.status_code, 201, "the endpoint is registered")
    webhook = created.json()
    secret = webhook["secret"]
    checks.ok(secret.startswith("whsec_"), "the signing secret is a whsec_ secret")

    signed_up = requests.post(f"{base}/v1/auth/sign-up", timeout=30,
                              json={"email": "receiver@example.com", "password": PASSWORD})
    token = signed_up.json()["tokens"]["access_token"]
    user = {"authorization": f"Bearer {token}"}
    requests.patch(f"{base}/v1/me", headers=user, json={"first_name": "Ada"}, timeout=30)
    requests.post(f"{base}/v1/organizations", headers=user, timeout=30,
                  json={"name": "Receivers", "slug": "receivers"})
    for event_type in ("user.updated", "organization.created"):
        headers, body = received.wait_for(event_type)
        checks.ok(verifies(secret, headers, body),
                  f"{event_type}: standardwebhooks verifies the signature", headers)
        checks.ok(not verifies("whsec_" + "A" * 43 + "=", headers, body),
                  f"{event_type}: a wrong secret does not verify")
        message = json.loads(body)
        checks.equal(message["id"], headers.get("webhook-id"), f"{event_type}: body id = webhook-id")

    rotated = requests.post(f"{base}/v1/admin/webhooks/{webhook['id']}/rotate-secret",
                            headers=admin, timeout=30)
    checks.equal(rotated.status_code, 200, "the secret is rotated")
    new_secret = rotated.json()["secret"]
    tested = requests.post(f"{base}/v1/admin/webhooks/{webhook['id']}/test", headers=admin,
                           timeout=30)
    checks.equal(tested.status_code, 202, "a test message is sent")
    headers, body = received.wait_for("webhook.test")
    checks.ok(verifies(new_secret, headers, body), "after rotation: the new secret verifies")
    checks.ok(verifies(secret, headers, body), "after rotation: the old secret still verifies")
    server.stop()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-build", action="store_true", help="do not run cargo build")
    parser.add_argument("--binary", help="the gatehouse binary (implies --no-build)")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args()
    authlib_rp.VERBOSE = args.verbose
    atexit.register(authlib_rp.stop_all_servers)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))
    checks = authlib_rp.Tally()
    binary = authlib_rp.gatehouse_binary(args)
    workdir = tempfile.mkdtemp(prefix="gatehouse-webhooks-")
    checks.scenario("deliveries verified by the standardwebhooks library", run, checks, binary,
                    workdir)
    authlib_rp.stop_all_servers()
    print(f"webhooks receiver: {checks.passed} passed, {checks.failed} failed")
    return 0 if checks.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
