#!/usr/bin/env python3
"""The driver of `scripts/cluster-test` (issue #26): three `gatehouse serve` instances behind
nginx, on a throwaway PostgreSQL cluster and a Redis of their own, under a mixed load while
faults are injected; then the figures.

`scripts/cluster-test` creates the PostgreSQL cluster (and drops it) and installs nginx; this
driver does the rest, standard library only:

- an SMTP sink (asyncio, in a thread) recording each message's recipients, Message-ID and
  verification link;
- Redis, the three instances and nginx as child processes (each in its own process group, its
  pid in <run-dir>/pids/ so that the shell's trap can stop whatever is left);
- set-up through the CLI (`gatehouse migrate`, `admin-key create`, `client create`);
- worker threads driving sign-ups, password sign-ins, refresh chains (plus a race probe:
  one refresh token presented twice at once), client_credentials + introspection, admin
  writes and an authorization-code + PKCE flow through the hosted login, every answer recorded
  per operation per phase;
- phases warm -> kill (SIGKILL one instance, restart it) -> pg-restart (immediate-mode crash
  restart) -> redis-stop (stop Redis, keep the load, start it) -> calm;
- the checks: acknowledged writes lost (SQL on the throwaway cluster, and what the API shows),
  refresh tokens rotated twice (SQL: a session with more than one live token; and the race
  probe's answers), verification emails lost or doubled, 5xx other than 503 and 503 without
  Retry-After, panics in the logs, time to recover after each fault;
- a text report on stdout and <run-dir>/report.json. Exit code 1 when a must-be-0 figure is
  not 0, 2 when the set-up failed.

Nothing here sleeps to synchronise: readiness, drains and restarts are polled with bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import email
import email.policy
import hashlib
import html as html_module
import http.client
import json
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
import urllib.parse

HTTP_TIMEOUT = 30.0  # one request through nginx
READY_TIMEOUT = 60.0  # an instance (or nginx, Redis) answering after its start
CLI_TIMEOUT = 60.0
PASSWORD_PREFIX = "Cluster-Run-"
REDIRECT_URI = "http://127.0.0.1:9/callback"  # never fetched: the flow stops at the redirect
MONO0 = time.monotonic()


def now() -> float:
    """Seconds since the driver started (monotonic)."""
    return time.monotonic() - MONO0


def log(message: str) -> None:
    print(f"[{now():7.1f}s] {message}", flush=True)


class SetupError(Exception):
    pass


# ------------------------------------------------------------------------------------------
# Processes


class Proc:
    """A child process in its own process group; its pid is kept in <run>/pids/<name>.pid
    while it runs, so that the shell's trap can stop it if this driver dies."""

    def __init__(self, name: str, argv: list[str], run_dir: str, env: dict | None = None,
                 cwd: str | None = None, log_name: str | None = None) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd or run_dir
        self.run_dir = run_dir
        self.log_path = os.path.join(run_dir, "logs", log_name or f"{name}.log")
        self.pidfile = os.path.join(run_dir, "pids", f"{name}.pid")
        self.process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        with open(self.log_path, "ab") as output:
            output.write(f"\n=== start {self.starts + 1} at {now():.1f}s: "
                         f"{' '.join(self.argv)}\n".encode())
            output.flush()
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdin=subprocess.DEVNULL,
                stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        with open(self.pidfile, "w") as handle:
            handle.write(f"{self.process.pid}\n")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal(self, number: int) -> None:
        if self.alive():
            try:
                os.killpg(self.process.pid, number)
            except ProcessLookupError:
                pass

    def wait_exit(self, timeout: float) -> bool:
        if self.process is None:
            return True
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            return False

    def kill(self) -> None:
        """SIGKILL (the fault): no grace, no clean-up."""
        self.signal(signal.SIGKILL)
        self.wait_exit(10)
        self._forget()

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.signal(signal.SIGTERM)
            if not self.wait_exit(grace):
                self.signal(signal.SIGKILL)
                self.wait_exit(10)
        self._forget()

    def _forget(self) -> None:
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def poll_until(what: str, check, timeout: float, interval: float = 0.2) -> float:
    """Polls `check()` until it is true; answers the seconds it took. Raises SetupError when
    the bound passes."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        try:
            if check():
                return time.monotonic() - started
        except Exception:  # a refused connection is "not yet"
            pass
        if time.monotonic() >= deadline:
            raise SetupError(f"{what}: not ready within {timeout:.0f} s")
        time.sleep(interval)


def http_get_status(port: int, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request("GET", path, headers={"Host": f"localhost:{port}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def redis_ping(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
        conn.sendall(b"PING\r\n")
        return conn.recv(64).startswith(b"+PONG")


# ------------------------------------------------------------------------------------------
# The SMTP sink


class SmtpSink:
    """A small SMTP server (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) recording every
    message it accepts. Runs its own asyncio loop in a thread."""

    LINK = re.compile(r"https?://[^\s\"'<>]+/verify-email\?token=([A-Za-z0-9_\-]+)")

    def __init__(self) -> None:
        self.messages: list[dict] = []
        self.lock = threading.Lock()
        self.port = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server = None
        self.sessions = 0
        self.errors: list[str] = []

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            self.loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self.loop)
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self.session, "127.0.0.1", 0))
            self.port = self.server.sockets[0].getsockname()[1]
            ready.set()
            self.loop.run_forever()

        threading.Thread(target=run, name="smtp-sink", daemon=True).start()
        if not ready.wait(10):
            raise SetupError("the SMTP sink did not start")

    def stop(self) -> None:
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)

    async def session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.sessions += 1
        envelope: dict = {"from": None, "rcpt": []}

        async def reply(line: str) -> None:
            writer.write((line + "\r\n").encode())
            await writer.drain()

        try:
            await reply("220 cluster-sink ESMTP")
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = raw.decode("utf-8", "replace").rstrip("\r\n")
                verb = line[:4].upper()
                if verb == "EHLO":
                    await reply("250-cluster-sink\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 OK")
                elif verb == "HELO":
                    await reply("250 cluster-sink")
                elif verb == "MAIL":
                    envelope = {"from": line[10:].strip(), "rcpt": []}
                    await reply("250 OK")
                elif verb == "RCPT":
                    address = line[8:].strip()
                    envelope["rcpt"].append(address.split()[0].strip("<>"))
                    await reply("250 OK")
                elif verb == "DATA":
                    await reply("354 end with <CRLF>.<CRLF>")
                    lines = []
                    while True:
                        data = await reader.readline()
                        if not data:
                            return
                        if data in (b".\r\n", b".\n"):
                            break
                        if data.startswith(b".."):
                            data = data[1:]
                        lines.append(data)
                    self.record(envelope, b"".join(lines))
                    envelope = {"from": None, "rcpt": []}
                    await reply("250 OK queued")
                elif verb == "RSET":
                    envelope = {"from": None, "rcpt": []}
                    await reply("250 OK")
                elif verb == "NOOP":
                    await reply("250 OK")
                elif verb == "QUIT":
                    await reply("221 bye")
                    break
                else:
                    await reply("502 command not implemented")
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as error:  # never let the sink die; note the problem
            self.errors.append(f"{type(error).__name__}: {error}")
        finally:
            try:
                writer.close()
            except Exception:
                pass

    def record(self, envelope: dict, data: bytes) -> None:
        message = email.message_from_bytes(data, policy=email.policy.default)
        texts = []
        for part in message.walk():
            if part.get_content_maintype() == "text":
                try:
                    texts.append(part.get_content())
                except Exception:
                    texts.append(part.get_payload(decode=True).decode("utf-8", "replace"))
        body = "\n".join(texts).replace("&#x2f;", "/")
        match = self.LINK.search(body)
        entry = {
            "t": round(now(), 3),
            "rcpt": list(envelope["rcpt"]),
            "message_id": message.get("Message-ID"),
            "subject": str(message.get("Subject", "")),
            "verify_token": match.group(1) if match else None,
            "digest": hashlib.sha256(data).hexdigest()[:16],
        }
        with self.lock:
            self.messages.append(entry)

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.messages)


# ------------------------------------------------------------------------------------------
# HTTP through nginx


class Transport(Exception):
    """No HTTP answer: the connection failed, was reset or timed out."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


class Answer:
    def __init__(self, status: int, raw_headers: list[tuple[str, str]], body: bytes) -> None:
        self.status, self.body = status, body
        self.raw_headers = raw_headers
        self.headers = {name.lower(): value for name, value in raw_headers}

    def cookies(self):
        """(name, value) of each Set-Cookie; value None for a deleted cookie."""
        for name, header in self.raw_headers:
            if name.lower() != "set-cookie":
                continue
            pair = header.split(";", 1)[0]
            key, _, value = pair.partition("=")
            expired = "max-age=0" in header.lower()
            yield key.strip(), (None if expired or not value else value)

    def json(self) -> dict:
        try:
            return json.loads(self.body)
        except ValueError:
            return {}

    @property
    def from_gatehouse(self) -> bool:
        # Every answer of gatehouse carries x-request-id; nginx's own error pages do not.
        return "x-request-id" in self.headers


class Http:
    """One keep-alive connection to nginx (reopened after a transport error)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.host = f"localhost:{port}"
        self.connection: http.client.HTTPConnection | None = None

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None

    def request(self, method: str, path: str, *, json_body=None, form=None,
                headers: dict | None = None) -> Answer:
        all_headers = {"Host": self.host, "Accept": "application/json"}
        body = None
        if json_body is not None:
            body = json.dumps(json_body).encode()
            all_headers["Content-Type"] = "application/json"
        elif form is not None:
            body = urllib.parse.urlencode(form).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        all_headers.update(headers or {})
        if self.connection is None:
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port,
                                                         timeout=HTTP_TIMEOUT)
        try:
            self.connection.request(method, path, body=body, headers=all_headers)
            response = self.connection.getresponse()
            data = response.read()
        except socket.timeout:
            self.close()
            raise Transport("timeout") from None
        except (ConnectionError, http.client.HTTPException, OSError) as error:
            self.close()
            raise Transport(type(error).__name__) from None
        answer = Answer(response.status, response.getheaders(), data)
        if response.will_close:
            self.close()
        return answer


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# ------------------------------------------------------------------------------------------
# Recording


class Recorder:
    """Every answer: (start, end, phase, op, outcome, ok, upstream). Outcomes are the status
    code, `transport:<kind>`, or a named check (e.g. `200-inactive`)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple] = []
        self.phase = "setup"
        self.anomalies: list[dict] = []
        self.samples: dict[str, list[dict]] = {}

    def add(self, start: float, phase: str, op: str, outcome: str, ok: bool,
            upstream: str = "", answer: "Answer | None" = None, path: str = "") -> None:
        with self.lock:
            self.events.append((round(start, 3), round(now(), 3), phase, op, outcome, ok,
                                upstream))
            if not ok:
                key = f"{phase} {op} {outcome}"
                samples = self.samples.setdefault(key, [])
                if len(samples) < 3:
                    sample = {"t": round(start, 3), "path": path, "upstream": upstream}
                    if answer is not None:
                        sample["request_id"] = answer.headers.get("x-request-id")
                        sample["retry_after"] = answer.headers.get("retry-after")
                        sample["body"] = answer.body[:240].decode("utf-8", "replace")
                    samples.append(sample)

    def anomaly(self, kind: str, **detail) -> None:
        with self.lock:
            self.anomalies.append({"kind": kind, "t": round(now(), 3), "phase": self.phase,
                                   **detail})


def classify(answer: Answer) -> str:
    """The outcome label of an HTTP answer; flags the 5xx that are worth a look."""
    status = answer.status
    if status >= 500:
        if not answer.from_gatehouse:
            return f"nginx-{status}"  # the proxy's own answer: the upstream failed mid-request
        if status == 503 and "retry-after" not in answer.headers:
            return "503-no-retry-after"
        if status != 503:
            return f"{status}-server"
    return str(status)


# ------------------------------------------------------------------------------------------
# The load


class Shared:
    """What every worker needs: addresses, the client, the admin key, the run's identity."""

    def __init__(self, port: int, client_id: str, client_secret: str, admin_key: str,
                 run_id: str, recorder: Recorder, issuer: str) -> None:
        self.port, self.client_id, self.client_secret = port, client_id, client_secret
        self.admin_key, self.run_id, self.recorder, self.issuer = admin_key, run_id, recorder, issuer
        self.stop = threading.Event()
        self.lock = threading.Lock()
        # Sign-ups: email -> {id, password, status, ...}
        self.signups: dict[str, dict] = {}
        # Admin writes: user id -> [{seq, value, outcome, ok}]
        self.admin_writes: dict[str, list[dict]] = collections.defaultdict(list)
        # Refresh tokens answered 200 (by digest): how many times each was.
        self.refresh_200: collections.Counter = collections.Counter()
        # The newest acknowledged sign-ups of every worker: sign-ins pick from them, so that a
        # sign-in (which writes the user's row) often meets an admin write on the same user.
        self.hot_users: collections.deque = collections.deque(maxlen=8)
        self.race_two_200 = 0
        self.race_probes = 0
        self.race_two_instances = 0


class Worker(threading.Thread):
    def __init__(self, index: int, shared: Shared) -> None:
        super().__init__(name=f"worker-{index}", daemon=True)
        self.index, self.shared = index, shared
        self.http = Http(shared.port)
        self.rng = random.Random(f"{shared.run_id}-{index}")
        self.users: list[dict] = []  # this worker's acknowledged sign-ups
        self.chain: str | None = None  # the refresh token this worker's chain holds
        self.counter = 0
        self.admin_seq = 0
        self.failure: str | None = None

    # -- plumbing

    def call(self, op: str, method: str, path: str, *, ok_status: tuple = (200,),
             **kwargs) -> Answer | None:
        """One request, recorded. Answers the answer (whatever its status), or None after a
        transport error."""
        recorder = self.shared.recorder
        phase, start = recorder.phase, now()
        try:
            answer = self.http.request(method, path, **kwargs)
        except Transport as error:
            recorder.add(start, phase, op, f"transport:{error.kind}", False, path=path)
            return None
        outcome = classify(answer)
        ok = answer.status in ok_status
        recorder.add(start, phase, op, outcome, ok, answer.headers.get("x-upstream", ""),
                     answer, f"{method} {path.split('?')[0]}")
        if answer.status >= 500 and outcome not in ("503",) and not outcome.startswith("nginx-"):
            recorder.anomaly(outcome, op=op, path=path.split("?")[0],
                             request_id=answer.headers.get("x-request-id"),
                             upstream=answer.headers.get("x-upstream"),
                             body=answer.body[:300].decode("utf-8", "replace"))
        return answer

    def admin_headers(self) -> dict:
        return {"Authorization": f"Bearer {self.shared.admin_key}"}

    # -- operations

    def sign_up(self) -> None:
        self.counter += 1
        address = f"cl-{self.shared.run_id}-w{self.index}-{self.counter}@example.com"
        password = f"{PASSWORD_PREFIX}{secrets.token_urlsafe(12)}"
        entry = {"email": address, "password": password, "worker": self.index,
                 "t": round(now(), 3), "phase": self.shared.recorder.phase}
        answer = self.call("sign-up", "POST", "/v1/auth/sign-up", ok_status=(201,),
                           json_body={"email": address, "password": password})
        entry["status"] = answer.status if answer else "transport"
        if answer is not None and answer.status == 201:
            body = answer.json()
            entry["id"] = body.get("user", {}).get("id")
            self.users.append(entry)
            with self.shared.lock:
                self.shared.hot_users.append(entry)
            tokens = body.get("tokens") or {}
            if self.chain is None and tokens.get("refresh_token"):
                self.chain = tokens["refresh_token"]
        with self.shared.lock:
            self.shared.signups[address] = entry

    def sign_in(self) -> dict | None:
        with self.shared.lock:
            hot = list(self.shared.hot_users)
        if not hot:
            return None
        user = self.rng.choice(hot)
        answer = self.call("sign-in", "POST", "/v1/auth/sign-in",
                           json_body={"email": user["email"], "password": user["password"]})
        if answer is None or answer.status != 200:
            return None
        return answer.json()

    def refresh_chain(self) -> None:
        if self.chain is None:
            tokens = self.sign_in()
            if tokens is None:
                return
            self.chain = tokens.get("refresh_token")
            if self.chain is None:
                return
        token = self.chain
        history: list[dict] = []  # this token's answers, for the anomaly reports
        for attempt in range(3):
            answer = self.call("refresh", "POST", "/v1/auth/refresh",
                               json_body={"refresh_token": token})
            if answer is None or answer.status in (502, 504) and not answer.from_gatehouse:
                # No answer from gatehouse: the token may or may not be spent. Not replayed:
                # the worker signs in again.
                self.chain = None
                return
            history.append({"t": round(now(), 3), "status": answer.status,
                            "request_id": answer.headers.get("x-request-id"),
                            "upstream": answer.headers.get("x-upstream")})
            if answer.status == 200:
                self.count_200(token)
                self.chain = answer.json().get("refresh_token")
                return
            if answer.status == 503 and answer.from_gatehouse and attempt < 2:
                # The server's 503 + Retry-After says "not done, try again": the same token
                # again, after the Retry-After (capped at 1 s, so that the load goes on).
                self.retry_wait(answer)
                continue
            if answer.status == 401 and attempt > 0:
                # The retry after a 503 found the token spent: the 503 was not "not done",
                # and presenting it again revoked the session (reuse detection).
                self.shared.recorder.anomaly("refresh-spent-after-503", op="refresh",
                                             request_ids=[h["request_id"] for h in history],
                                             history=history)
            elif answer.status == 401:
                self.shared.recorder.anomaly("refresh-refused-unspent", op="refresh",
                                             request_ids=[h["request_id"] for h in history],
                                             history=history)
            self.chain = None
            return
        self.chain = None

    def retry_wait(self, answer: Answer) -> None:
        try:
            wait = float(answer.headers.get("retry-after", "1"))
        except ValueError:
            wait = 1.0
        self.shared.stop.wait(min(max(wait, 0.2), 1.0))

    def count_200(self, token: str) -> None:
        digest = hashlib.sha256(token.encode()).hexdigest()
        with self.shared.lock:
            self.shared.refresh_200[digest] += 1

    def refresh_race(self) -> None:
        """One fresh refresh token presented twice at the same moment, on two connections
        (nginx sends them to two instances): at most one may be answered 200."""
        tokens = self.sign_in()
        if tokens is None or not tokens.get("refresh_token"):
            return
        token = tokens["refresh_token"]
        phase, start = self.shared.recorder.phase, now()
        results: list = [None, None]
        barrier = threading.Barrier(2)

        def present(slot: int) -> None:
            client = Http(self.shared.port)
            try:
                barrier.wait(5)
                results[slot] = client.request("POST", "/v1/auth/refresh",
                                               json_body={"refresh_token": token})
            except (Transport, threading.BrokenBarrierError) as error:
                results[slot] = error
            finally:
                client.close()

        threads = [threading.Thread(target=present, args=(slot,)) for slot in (0, 1)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(HTTP_TIMEOUT + 10)
        statuses = [r.status if isinstance(r, Answer) else "transport" for r in results]
        oks = sum(1 for status in statuses if status == 200)
        for result in results:
            if isinstance(result, Answer):
                # One 200, and a 401 for the other (the spent token: the session is revoked).
                self.shared.recorder.add(start, phase, "refresh-race", classify(result),
                                         result.status in (200, 401),
                                         result.headers.get("x-upstream", ""), result,
                                         "POST /v1/auth/refresh")
            else:
                self.shared.recorder.add(start, phase, "refresh-race", "transport:race", False)
        upstreams = {r.headers.get("x-upstream") for r in results if isinstance(r, Answer)}
        with self.shared.lock:
            self.shared.race_probes += 1
            if len(upstreams) == 2:
                self.shared.race_two_instances += 1
        if oks == 2:
            with self.shared.lock:
                self.shared.race_two_200 += 1
            self.shared.recorder.anomaly(
                "refresh-race-two-200", op="refresh-race",
                upstreams=[r.headers.get("x-upstream") for r in results
                           if isinstance(r, Answer)])
        for result in results:
            if isinstance(result, Answer) and result.status == 200:
                self.count_200(token)

    def client_credentials(self) -> None:
        shared = self.shared
        auth = {"Authorization": basic(shared.client_id, shared.client_secret)}
        answer = self.call("client-credentials", "POST", "/oauth2/token", headers=auth,
                           form={"grant_type": "client_credentials"})
        if answer is None or answer.status != 200:
            return
        access = answer.json().get("access_token")
        if not access:
            return
        phase, start = shared.recorder.phase, now()
        try:
            result = self.http.request("POST", "/oauth2/introspect", headers=auth,
                                       form={"token": access})
        except Transport as error:
            shared.recorder.add(start, phase, "introspect", f"transport:{error.kind}", False,
                                path="POST /oauth2/introspect")
            return
        outcome = classify(result)
        ok = result.status == 200 and result.json().get("active") is True
        if result.status == 200 and not ok:
            outcome = "200-inactive"
            shared.recorder.anomaly("introspect-inactive", op="introspect",
                                    upstream=result.headers.get("x-upstream"))
        shared.recorder.add(start, phase, "introspect", outcome, ok,
                            result.headers.get("x-upstream", ""), result,
                            "POST /oauth2/introspect")

    def admin_write(self) -> None:
        if not self.users:
            return
        # Only this worker writes its users' metadata (so the writes to one user are in a known
        # order); its newest users, which the other workers are signing in.
        user = self.rng.choice(self.users[-3:])
        if not user.get("id"):
            return
        self.admin_seq += 1
        value = f"w{self.index}-{self.admin_seq}-{secrets.token_hex(4)}"
        metadata = {"cluster_run": self.shared.run_id, "seq": self.admin_seq, "value": value}
        record = {"seq": self.admin_seq, "value": value, "t": round(now(), 3),
                  "phase": self.shared.recorder.phase}
        answer = self.call("admin-write", "PATCH", f"/v1/admin/users/{user['id']}",
                           headers=self.admin_headers(),
                           json_body={"public_metadata": metadata})
        record["status"] = answer.status if answer else "transport"
        record["acked"] = answer is not None and answer.status == 200
        # "unknown": the write may have happened (no answer, or the proxy's 502).
        record["unknown"] = answer is None or not answer.from_gatehouse
        with self.shared.lock:
            self.shared.admin_writes[user["id"]].append(record)

    def authorization_code(self) -> None:
        """Authorization code + PKCE through the hosted login (a cookie-keeping client
        following the forms), then the code exchange. Recorded as one operation whose
        outcome names the step that failed."""
        if not self.users:
            return
        shared = self.shared
        phase, start = shared.recorder.phase, now()
        user = self.rng.choice(self.users)
        browser = Http(shared.port)
        cookies: dict[str, str] = {}
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        state = secrets.token_urlsafe(12)
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": shared.client_id,
            "redirect_uri": REDIRECT_URI, "scope": "openid email", "state": state,
            "nonce": secrets.token_urlsafe(12), "code_challenge": challenge,
            "code_challenge_method": "S256"})

        def fetch(method: str, path: str, form=None) -> Answer:
            headers = {"Accept": "text/html"}
            if cookies:
                headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
            answer = browser.request(method, path, form=form, headers=headers)
            for name, value in answer.cookies():
                if value is None:
                    cookies.pop(name, None)
                else:
                    cookies[name] = value
            return answer

        def local(location: str) -> str | None:
            if location.startswith("/"):
                return location
            for prefix in (shared.issuer, f"http://localhost:{shared.port}"):
                if location.startswith(prefix + "/"):
                    return location[len(prefix):]
            return None

        step, answer = "GET /oauth2/authorize", None
        try:
            answer = fetch("GET", f"/oauth2/authorize?{query}")
            for _ in range(10):  # same-origin redirects to the login form
                path = local(answer.headers.get("location", "")) if answer.status in (
                    302, 303) else None
                if path is None:
                    break
                step = f"GET {path.split('?')[0]}"
                answer = fetch("GET", path)
            if answer.status != 200:
                return self.flow_failed(start, phase, step, answer)
            html = answer.body.decode("utf-8", "replace")
            csrf, return_to = form_field(html, "csrf_token"), form_field(html, "return_to")
            if csrf is None or 'name="password"' not in html:
                return self.flow_failed(start, phase, step, answer, "no login form")
            step = "POST /login"
            answer = fetch("POST", "/login", form={
                "identifier": user["email"], "password": user["password"],
                "csrf_token": csrf, "return_to": return_to or ""})
            for _ in range(10):
                location = answer.headers.get("location", "")
                if answer.status in (302, 303) and location.startswith(REDIRECT_URI):
                    break
                path = local(location) if answer.status in (302, 303) else None
                if path is None:
                    return self.flow_failed(start, phase, step, answer)
                step = f"GET {path.split('?')[0]}"
                answer = fetch("GET", path)
            location = answer.headers.get("location", "")
            params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query))
            if "code" not in params or params.get("state") != state:
                return self.flow_failed(start, phase, step, answer, f"redirect {params}")
            step = "POST /oauth2/token"
            answer = browser.request("POST", "/oauth2/token", form={
                "grant_type": "authorization_code", "code": params["code"],
                "redirect_uri": REDIRECT_URI, "code_verifier": verifier},
                headers={"Authorization": basic(shared.client_id, shared.client_secret)})
            if answer.status != 200 or not answer.json().get("id_token"):
                return self.flow_failed(start, phase, step, answer)
            shared.recorder.add(start, phase, "authcode", "ok", True,
                                answer.headers.get("x-upstream", ""))
        except Transport as error:
            shared.recorder.add(start, phase, "authcode", f"transport:{error.kind}@{step}",
                                False, path=step)
        finally:
            browser.close()

    def flow_failed(self, start: float, phase: str, step: str, answer: Answer,
                    why: str = "") -> None:
        label = classify(answer)
        outcome = f"{label}@{step}"
        self.shared.recorder.add(start, phase, "authcode", outcome, False,
                                 answer.headers.get("x-upstream", ""), answer, step)
        if answer.status < 500 or label not in ("503",) and not label.startswith("nginx-"):
            self.shared.recorder.anomaly(
                "authcode-" + outcome, op="authcode", why=why,
                upstream=answer.headers.get("x-upstream"),
                location=answer.headers.get("location", "")[:200],
                body=answer.body[:300].decode("utf-8", "replace"))

    # -- the loop

    def run(self) -> None:
        try:
            iteration = 0
            while not self.shared.stop.is_set():
                iteration += 1
                steps = [self.sign_up, self.refresh_chain, self.client_credentials,
                         self.admin_write, self.refresh_chain, self.sign_in_only,
                         self.refresh_chain, self.admin_write, self.authorization_code]
                if iteration % 3 == 0:
                    steps.append(self.refresh_race)
                for step in steps:
                    if self.shared.stop.is_set():
                        break
                    step()
        except Exception:
            self.failure = traceback.format_exc()
            log(f"{self.name} crashed:\n{self.failure}")
        finally:
            self.http.close()

    def sign_in_only(self) -> None:
        self.sign_in()


def form_field(html: str, name: str) -> str | None:
    match = re.search(r'<input[^>]*name="' + re.escape(name) + r'"[^>]*>', html)
    if not match:
        return None
    value = re.search(r'value="([^"]*)"', match.group(0))
    if not value:
        return ""
    return html_module.unescape(value.group(1))


# ------------------------------------------------------------------------------------------
# The cluster


PHASES = ["warm", "kill", "pg-restart", "redis-stop", "calm"]


class Cluster:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.run_dir = args.run_dir
        self.binary = args.binary
        self.sink = SmtpSink()
        self.redis: Proc | None = None
        self.nginx: Proc | None = None
        self.instances: list[Proc] = []
        self.instance_ports: list[int] = []
        self.nginx_port = 0
        self.redis_port = 0
        self.issuer = ""
        self.master_key = os.environ.get("CLUSTER_MASTER_KEY") or base64.b64encode(
            secrets.token_bytes(32)).decode()
        self.admin_key = ""
        self.client_id = ""
        self.client_secret = ""

    # -- set-up

    def setup(self) -> None:
        for sub in ("logs", "pids", "data", "nginx", "redis"):
            os.makedirs(os.path.join(self.run_dir, sub), exist_ok=True)
        self.sink.start()
        log(f"SMTP sink on 127.0.0.1:{self.sink.port}")

        self.redis_port = self.args.redis_port if port_free(self.args.redis_port) else free_port()
        self.redis = Proc("redis", [
            "redis-server", "--bind", "127.0.0.1", "--port", str(self.redis_port),
            "--save", "", "--appendonly", "no", "--dir", os.path.join(self.run_dir, "redis"),
            "--daemonize", "no"], self.run_dir)
        self.start_redis()
        log(f"Redis on 127.0.0.1:{self.redis_port}")

        self.nginx_port = free_port()
        self.issuer = f"http://localhost:{self.nginx_port}"
        self.instance_ports = []
        while len(self.instance_ports) < self.args.instances:
            port = free_port()
            if port not in self.instance_ports and port != self.nginx_port:
                self.instance_ports.append(port)

        cli_env = self.env(os.path.join(self.run_dir, "data", "cli"), 0)
        applied = self.cli(cli_env, "migrate")
        log(f"migrated: {len(applied.get('applied_versions', []))} versions")
        self.admin_key = self.cli(cli_env, "admin-key", "create", "--name", "cluster-test")["key"]
        client = self.cli(cli_env, "client", "create", "--name", "cluster-test",
                          "--redirect-uri", REDIRECT_URI, "--grant-type", "authorization_code",
                          "--grant-type", "refresh_token", "--grant-type", "client_credentials",
                          "--skip-consent")
        self.client_id, self.client_secret = client["client_id"], client["client_secret"]

        for index, port in enumerate(self.instance_ports, start=1):
            data_dir = os.path.join(self.run_dir, "data", f"gh{index}")
            os.makedirs(data_dir, exist_ok=True)
            proc = Proc(f"gh{index}", [self.binary, "serve"], self.run_dir,
                        env=self.env(data_dir, port), cwd=data_dir)
            self.instances.append(proc)
            proc.start()
        for proc, port in zip(self.instances, self.instance_ports):
            took = self.wait_instance(proc, port)
            log(f"{proc.name} ready on 127.0.0.1:{port} after {took:.1f} s")

        self.write_nginx_conf()
        nginx_dir = os.path.join(self.run_dir, "nginx")
        self.nginx = Proc("nginx", [
            "nginx", "-c", os.path.join(nginx_dir, "nginx.conf"), "-p", nginx_dir,
            "-e", os.path.join(nginx_dir, "error.log"), "-g", "daemon off;"], self.run_dir)
        self.nginx.start()
        poll_until("nginx", lambda: self.nginx_alive() and
                   http_get_status(self.nginx_port, "/readyz")[0] == 200, READY_TIMEOUT)
        log(f"nginx on {self.issuer} (round robin over {self.instance_ports})")

    def nginx_alive(self) -> bool:
        if not self.nginx.alive():
            raise SetupError(f"nginx exited: see {self.nginx.log_path} and "
                             f"{os.path.join(self.run_dir, 'nginx', 'error.log')}")
        return True

    def start_redis(self) -> float:
        self.redis.start()
        return poll_until("redis", lambda: redis_ping(self.redis_port), READY_TIMEOUT, 0.05)

    def wait_instance(self, proc: Proc, port: int) -> float:
        def ready() -> bool:
            if not proc.alive():
                raise SetupError(f"{proc.name} exited ({proc.process.returncode}): "
                                 f"see {proc.log_path}")
            return http_get_status(port, "/readyz")[0] == 200
        return poll_until(f"{proc.name} /readyz", ready, READY_TIMEOUT, 0.1)

    def env(self, data_dir: str, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("GATEHOUSE_") and k not in ("RUST_LOG", "CLUSTER_MASTER_KEY")}
        high = "1000000"
        env.update({
            "GATEHOUSE_DATA_DIR": data_dir,
            "GATEHOUSE_DATABASE_URL": self.args.database_url,
            "GATEHOUSE_REDIS_URL": f"redis://127.0.0.1:{self.redis_port}",
            "GATEHOUSE_MASTER_KEY": self.master_key,
            "GATEHOUSE_ISSUER": self.issuer,
            "GATEHOUSE_SMTP_URL": f"smtp://127.0.0.1:{self.sink.port}",
            "GATEHOUSE_LOG_FORMAT": "json",
            # Budgets above the load (every request comes from 127.0.0.1 through nginx); the
            # limiter still runs, so Redis stays in the path of every request.
            "GATEHOUSE_RATE_LIMIT_SIGN_IN_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_SIGN_UP_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_REFRESH_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_ACCOUNT_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_TOKEN_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_INTROSPECT_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_API_GET_PER_MINUTE": high,
            "GATEHOUSE_RATE_LIMIT_API_WRITE_PER_MINUTE": high,
            # Only the verification emails are counted; new-device notices would only add noise.
            "GATEHOUSE_NOTICES_NEW_DEVICE": "false",
        })
        if port:
            env["GATEHOUSE_HTTP_ADDR"] = f"127.0.0.1:{port}"
        return env

    def cli(self, env: dict, *arguments: str) -> dict:
        os.makedirs(env["GATEHOUSE_DATA_DIR"], exist_ok=True)
        result = subprocess.run([self.binary, *arguments, "--json"], env=env,
                                cwd=env["GATEHOUSE_DATA_DIR"], capture_output=True, text=True,
                                timeout=CLI_TIMEOUT)
        with open(os.path.join(self.run_dir, "logs", "cli.log"), "a") as handle:
            handle.write(f"$ gatehouse {' '.join(arguments[:2])}\n{result.stderr}\n")
        if result.returncode != 0:
            raise SetupError(f"gatehouse {' '.join(arguments[:2])} failed "
                             f"({result.returncode}): {result.stderr[-2000:]}")
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        if not lines:
            raise SetupError(f"gatehouse {' '.join(arguments[:2])} printed no JSON")
        return json.loads(lines[-1])

    def write_nginx_conf(self) -> None:
        nginx_dir = os.path.join(self.run_dir, "nginx")
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(nginx_dir, "tmp", sub), exist_ok=True)
        servers = "\n".join(f"        server 127.0.0.1:{port} max_fails=1 fail_timeout=5s;"
                            for port in self.instance_ports)
        # Running as root (CI), the workers stay root: the run directory is private (0700).
        user = "user root root;\n" if os.geteuid() == 0 else ""
        conf = f"""# Written by scripts/cluster_driver.py for one run.
{user}worker_processes 1;
pid "{nginx_dir}/nginx.pid";
error_log "{nginx_dir}/error.log" warn;
events {{ worker_connections 1024; }}
http {{
    log_format upstream '$msec $request_method $uri $status up=$upstream_addr '
                        'upstatus=$upstream_status t=$request_time';
    access_log "{nginx_dir}/access.log" upstream;
    client_body_temp_path "{nginx_dir}/tmp/body";
    proxy_temp_path "{nginx_dir}/tmp/proxy";
    fastcgi_temp_path "{nginx_dir}/tmp/fastcgi";
    uwsgi_temp_path "{nginx_dir}/tmp/uwsgi";
    scgi_temp_path "{nginx_dir}/tmp/scgi";
    keepalive_timeout 300s;
    keepalive_requests 1000000;

    upstream gatehouse {{
        # Round robin (the default).
{servers}
    }}

    server {{
        listen 127.0.0.1:{self.nginx_port};
        location / {{
            proxy_pass http://gatehouse;
            # The default: a request is passed to the next instance only when the connection
            # failed or timed out; POST/PATCH already sent are never replayed (no double writes).
            proxy_next_upstream error timeout;
            proxy_connect_timeout 1s;
            proxy_send_timeout 60s;
            proxy_read_timeout 60s;
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""
        with open(os.path.join(nginx_dir, "nginx.conf"), "w") as handle:
            handle.write(conf)

    # -- faults

    def pg_restart(self) -> float:
        started = time.monotonic()
        result = subprocess.run(["pg_ctlcluster", self.args.pg_version, self.args.pg_cluster,
                                 "restart", "-m", "immediate"], capture_output=True, text=True,
                                timeout=120)
        if result.returncode != 0:
            raise SetupError(f"pg_ctlcluster restart failed: {result.stderr}")
        poll_until("PostgreSQL after restart", lambda: subprocess.run(
            ["pg_isready", "-q", "-d", self.args.database_url], timeout=10).returncode == 0,
            READY_TIMEOUT)
        return time.monotonic() - started

    # -- tear-down

    def stop(self) -> None:
        if self.nginx is not None:
            self.nginx.stop(5)
        for proc in self.instances:
            proc.stop(10)
        if self.redis is not None:
            self.redis.stop(5)
        self.sink.stop()


def psql(database_url: str, sql: str) -> list[list[str]]:
    result = subprocess.run(["psql", database_url, "-X", "-A", "-t", "-F", "\t", "-c", sql],
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"psql failed: {result.stderr.strip()}")
    return [line.split("\t") for line in result.stdout.splitlines() if line]


# ------------------------------------------------------------------------------------------
# The run


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.cluster = Cluster(args)
        self.recorder = Recorder()
        self.shared: Shared | None = None
        self.workers: list[Worker] = []
        self.phases: list[dict] = []
        self.faults: list[dict] = []
        self.report: dict = {}

    def wait(self, seconds: float) -> None:
        """The load goes on for this long (a duration of the test, not a synchronisation)."""
        if seconds > 0:
            threading.Event().wait(seconds)

    def execute(self) -> int:
        cluster = self.cluster
        cluster.setup()
        run_id = secrets.token_hex(3)
        self.shared = Shared(cluster.nginx_port, cluster.client_id, cluster.client_secret,
                             cluster.admin_key, run_id, self.recorder, cluster.issuer)
        self.workers = [Worker(index, self.shared) for index in range(1, self.args.workers + 1)]
        log(f"load: {len(self.workers)} workers, phases of {self.args.phase_seconds:.0f} s: "
            f"{' -> '.join(PHASES)}")
        for worker in self.workers:
            worker.start()
        for name in PHASES:
            self.run_phase(name)
        self.shared.stop.set()
        for worker in self.workers:
            worker.join(HTTP_TIMEOUT * 3)
        stuck = [worker.name for worker in self.workers if worker.is_alive()]
        crashed = [worker.name for worker in self.workers if worker.failure]
        log("load stopped" + (f"; workers still running: {stuck}" if stuck else ""))
        self.check(stuck, crashed)
        return self.print_report()

    def run_phase(self, name: str) -> None:
        cluster, args = self.cluster, self.args
        start = now()
        self.recorder.phase = name
        phase = {"name": name, "start": round(start, 3)}
        log(f"phase {name}")
        if name == "kill":
            victim_index = 1  # the second instance
            victim = cluster.instances[victim_index]
            port = cluster.instance_ports[victim_index]
            # A burst of sign-ups through nginx just before the SIGKILL, so that some are in
            # the middle of their Argon2id hash (~0.2 s or more) on the victim when it dies:
            # writes cut short must be all or nothing, and never acknowledged and lost.
            burst = [Worker(100 + slot, self.shared) for slot in range(args.kill_burst)]
            threads = [threading.Thread(target=w.sign_up, name=f"burst-{slot}", daemon=True)
                       for slot, w in enumerate(burst)]
            for thread in threads:
                thread.start()
            self.wait(0.1)
            fault = {"fault": f"SIGKILL {victim.name}", "phase": name, "t": round(now(), 3)}
            victim.kill()
            log(f"  SIGKILL {victim.name} (127.0.0.1:{port}), {len(burst)} sign-ups in flight "
                f"through nginx")
            self.wait(args.restart_after)
            fault["restored"] = round(now(), 3)
            victim.start()
            took = cluster.wait_instance(victim, port)
            fault["ready_after_restart_s"] = round(took, 2)
            for thread in threads:
                thread.join(HTTP_TIMEOUT + 5)
            for worker in burst:
                worker.http.close()
            with self.shared.lock:
                fault["burst"] = dict(collections.Counter(
                    str(e["status"]) for e in self.shared.signups.values() if e["worker"] >= 100))
            fault["upstream"] = f"127.0.0.1:{port}"
            log(f"  {victim.name} restarted, ready after {took:.1f} s")
            self.faults.append(fault)
        elif name == "pg-restart":
            fault = {"fault": "PostgreSQL crash-restart (pg_ctlcluster restart -m immediate)",
                     "phase": name, "t": round(now(), 3)}
            took = cluster.pg_restart()
            fault["restored"] = round(now(), 3)
            fault["restart_took_s"] = round(took, 2)
            log(f"  PostgreSQL restarted (immediate) and accepting connections in {took:.1f} s")
            self.faults.append(fault)
        elif name == "redis-stop":
            fault = {"fault": "Redis stopped", "phase": name, "t": round(now(), 3)}
            cluster.redis.stop(5)
            log(f"  Redis stopped; load goes on for {args.redis_down:.0f} s")
            self.wait(args.redis_down)
            fault["restored"] = round(now(), 3)
            took = cluster.start_redis()
            log(f"  Redis started again ({took:.1f} s to answer PING)")
            self.faults.append(fault)
        remaining = start + args.phase_seconds - now()
        self.wait(remaining)
        phase["end"] = round(now(), 3)
        self.phases.append(phase)

    # -- checks

    def check(self, stuck: list[str], crashed: list[str]) -> None:
        cluster, shared, report = self.cluster, self.shared, self.report
        report["phases"] = self.phases
        report["faults"] = self.faults
        report["config"] = {
            "instances": cluster.instance_ports, "nginx": cluster.issuer,
            "redis_port": cluster.redis_port, "smtp_port": cluster.sink.port,
            "workers": self.args.workers, "phase_seconds": self.args.phase_seconds,
            "database_url": self.args.database_url, "run_dir": cluster.run_dir,
        }
        report["workers_stuck"] = stuck
        report["workers_crashed"] = crashed

        # The instances at the end: alive and ready (a fault they did not recover from).
        readiness = {}
        for proc, port in zip(cluster.instances, cluster.instance_ports):
            state = {"alive": proc.alive(), "starts": proc.starts}
            try:
                status, body = http_get_status(port, "/readyz")
                state["readyz"] = status
                state["checks"] = json.loads(body).get("checks")
            except Exception as error:
                state["readyz"] = f"{type(error).__name__}"
            readiness[proc.name] = state
        report["instances_at_end"] = readiness

        # Every database figure is read from the throwaway cluster itself.
        db = self.args.database_url
        acked_signups = [e for e in shared.signups.values() if e.get("status") == 201]
        users = {row[0]: row[1] for row in psql(db, "SELECT id, public_metadata FROM users")}

        # Verification emails: every acknowledged sign-up's must arrive (the outbox drains).
        expected = {e["email"] for e in acked_signups}
        drain_started = now()

        def drained() -> bool:
            # Every expected email arrived, and the outbox has nothing left to send (a row
            # delivered but not marked, e.g. across the PostgreSQL crash, is sent again when
            # its lease ends: that is the double the at-least-once outbox allows).
            got = {r for m in cluster.sink.snapshot() if m["verify_token"] for r in m["rcpt"]}
            if not expected <= got:
                return False
            left = psql(db, "SELECT count(*) FROM outbox WHERE status IN ('pending', 'sending')")
            return int(left[0][0]) == 0

        drained_in_time = True
        try:
            poll_until("the outbox", drained, self.args.drain_seconds, 0.5)
        except SetupError:
            drained_in_time = False
        drain_took = now() - drain_started
        messages = cluster.sink.snapshot()

        # Acknowledged writes: sign-ups (201) and admin writes (200).
        lost_signups = [e for e in acked_signups if e.get("id") not in users]
        unacked = [e for e in shared.signups.values() if e.get("status") != 201]
        admin_acked = admin_lost = admin_unknown_final = 0
        admin_refused_applied: list[dict] = []
        lost_admin_details = []
        stale_api = []
        for user_id, writes in shared.admin_writes.items():
            acked = [w for w in writes if w["acked"]]
            admin_acked += len(acked)
            stored = users.get(user_id)
            try:
                metadata = json.loads(stored) if stored is not None else None
            except ValueError:
                metadata = None
            final_seq = (metadata or {}).get("seq") if isinstance(metadata, dict) else None
            final_value = (metadata or {}).get("value") if isinstance(metadata, dict) else None
            if not acked:
                continue
            last_acked = acked[-1]
            # Allowed final values: the last acknowledged write, or any later write whose
            # outcome the client does not know (no answer) or that failed after the fact.
            later = [w for w in writes if w["seq"] >= last_acked["seq"]]
            allowed = {w["value"] for w in later}
            if final_value not in allowed:
                admin_lost += sum(1 for w in acked if w["seq"] > (final_seq or 0)) or 1
                lost_admin_details.append({"user": user_id, "stored": metadata,
                                           "last_acked": last_acked})
            elif final_value != last_acked["value"]:
                admin_unknown_final += 1
                final = next(w for w in later if w["value"] == final_value)
                if not final["unknown"]:
                    # Refused by the server (e.g. 503 "try again"), yet applied.
                    admin_refused_applied.append({"user": user_id, "write": final})
        # What the API shows (through nginx, any instance): the stored value, not a stale one.
        http = Http(cluster.nginx_port)
        api_failures = 0
        sample = list(shared.admin_writes.items())
        for user_id, writes in sample:
            try:
                answer = http.request("GET", f"/v1/admin/users/{user_id}",
                                      headers={"Authorization": f"Bearer {cluster.admin_key}"})
            except Transport:
                api_failures += 1
                continue
            if answer.status != 200:
                api_failures += 1
                continue
            shown = answer.json().get("public_metadata")
            stored = users.get(user_id)
            if stored is not None and shown != json.loads(stored):
                stale_api.append({"user": user_id, "api": shown, "stored": json.loads(stored)})
        for entry in unacked:
            try:
                answer = http.request("GET", "/v1/admin/users?" + urllib.parse.urlencode(
                    {"email": entry["email"]}),
                    headers={"Authorization": f"Bearer {cluster.admin_key}"})
            except Transport:
                api_failures += 1
                continue
            found = answer.json().get("data") if answer.status == 200 else None
            entry["stored"] = bool(found)
        emails_checked = 0
        for entry in acked_signups[:200]:
            try:
                answer = http.request("GET", f"/v1/admin/users/{entry['id']}",
                                      headers={"Authorization": f"Bearer {cluster.admin_key}"})
            except Transport:
                api_failures += 1
                continue
            emails_checked += 1
            if answer.status != 200 or answer.json().get("email") != entry["email"]:
                stale_api.append({"user": entry["id"], "api_status": answer.status,
                                  "api_email": answer.json().get("email"),
                                  "expected": entry["email"]})
        http.close()

        # Refresh tokens: a session never holds more than one live (unrotated) token; more
        # means one token was rotated twice (two successors).
        families = psql(db, "SELECT session_id, count(*), count(rotated_at) FROM refresh_tokens "
                            "GROUP BY session_id HAVING count(*) - count(rotated_at) <> 1")
        two_successors = [row for row in families if int(row[1]) - int(row[2]) > 1]
        no_successor = [row for row in families if int(row[1]) - int(row[2]) < 1]
        token_rows = psql(db, "SELECT count(*), count(rotated_at), count(DISTINCT session_id) "
                              "FROM refresh_tokens")[0]
        answered_twice = sum(1 for count in shared.refresh_200.values() if count > 1)

        # The outbox as the database sees it.
        outbox = psql(db, "SELECT kind, status, count(*) FROM outbox GROUP BY kind, status "
                          "ORDER BY kind, status")
        multi_delivered = psql(db, "SELECT count(*) FROM (SELECT outbox_id FROM outbox_attempts "
                                   "WHERE status = 'delivered' GROUP BY outbox_id "
                                   "HAVING count(*) > 1) AS doubled")[0][0]

        # Emails at the sink.
        verify = [m for m in messages if m["verify_token"]]
        by_address = collections.defaultdict(list)
        for message in verify:
            for rcpt in message["rcpt"]:
                by_address[rcpt].append(message)
        lost_emails = sorted(expected - set(by_address))
        doubled = {address: len(items) for address, items in by_address.items()
                   if len(items) > 1}
        message_ids = [m["message_id"] for m in verify if m["message_id"]]
        emails_for_unacked = sum(1 for e in unacked if e["email"] in by_address)

        # Server logs: panics and error lines.
        logs = {}
        for proc in cluster.instances:
            panics, errors, samples = 0, 0, []
            messages_seen: collections.Counter = collections.Counter()
            try:
                with open(proc.log_path, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        if "panicked at" in line:
                            panics += 1
                            samples.append(line.strip()[:400])
                        elif '"level":"ERROR"' in line:
                            errors += 1
                            try:
                                entry = json.loads(line[line.index("{"):])
                                key = entry.get("message", "")
                                if entry.get("route"):
                                    key += f" ({entry.get('route')} {entry.get('status')} "
                                    key += f"{entry.get('code')})"
                                messages_seen[key] += 1
                            except ValueError:
                                messages_seen[line.strip()[:120]] += 1
            except OSError:
                pass
            logs[proc.name] = {"panics": panics, "error_lines": errors,
                               "panic_samples": samples[:5],
                               "error_messages": dict(messages_seen.most_common(15))}

        report["signups"] = {
            "acknowledged": len(acked_signups), "lost": len(lost_signups),
            "lost_ids": [e.get("id") for e in lost_signups][:20],
            "not_acknowledged": len(unacked),
            "not_acknowledged_but_stored": sum(1 for e in unacked if e.get("stored")),
            "not_acknowledged_statuses": dict(collections.Counter(
                str(e.get("status")) for e in unacked)),
        }
        report["admin_writes"] = {
            "acknowledged": admin_acked, "lost": admin_lost, "lost_details": lost_admin_details[:20],
            "final_value_from_unacknowledged_later_write": admin_unknown_final,
            "refused_by_the_server_yet_applied": admin_refused_applied[:20],
            "users_written": len(shared.admin_writes),
        }
        report["api_reads"] = {"stale_or_wrong": len(stale_api), "details": stale_api[:20],
                               "failed": api_failures, "emails_checked": emails_checked}
        report["refresh_tokens"] = {
            "rows": int(token_rows[0]), "rotated": int(token_rows[1]),
            "sessions": int(token_rows[2]),
            "sessions_with_a_token_rotated_twice": len(two_successors),
            "sessions_with_a_rotation_without_successor": len(no_successor),
            "details": families[:20],
            "tokens_answered_200_twice": answered_twice,
            "race_probes": shared.race_probes, "race_probes_both_200": shared.race_two_200,
            "race_probes_on_two_instances": shared.race_two_instances,
        }
        report["emails"] = {
            "verification_expected": len(expected), "lost": len(lost_emails),
            "lost_addresses": lost_emails[:20],
            "raw_deliveries": len(verify),
            "distinct_links": len({m["verify_token"] for m in verify}),
            "distinct_message_ids": len(set(message_ids)),
            "without_message_id": len(verify) - len(message_ids),
            "addresses_doubled": len(doubled), "doubled": dict(list(doubled.items())[:20]),
            "for_unacknowledged_signups": emails_for_unacked,
            "all_messages": len(messages), "drain_seconds": round(drain_took, 1),
            "outbox_drained": drained_in_time,
            "outbox_rows": [[k, s, int(c)] for k, s, c in outbox],
            "outbox_rows_delivered_more_than_once": int(multi_delivered),
            "sink_errors": cluster.sink.errors[:10],
        }
        report["logs"] = logs
        wanted = set()
        for anomaly in self.recorder.anomalies:
            wanted.update(i for i in anomaly.get("request_ids", []) if i)
            if anomaly.get("request_id"):
                wanted.add(anomaly["request_id"])
        for key, samples in self.recorder.samples.items():
            wanted.update(sample["request_id"] for sample in samples if sample.get("request_id"))
        found = self.log_lines(wanted)
        for anomaly in self.recorder.anomalies:
            ids = list(anomaly.get("request_ids", [])) + [anomaly.get("request_id")]
            lines = [found[i] for i in ids if i in found]
            if lines:
                anomaly["server_log"] = lines
        for samples in self.recorder.samples.values():
            for sample in samples:
                if sample.get("request_id") in found:
                    sample["server_log"] = found[sample["request_id"]]
        report["anomalies"] = self.recorder.anomalies[:200]
        report["error_samples"] = self.recorder.samples
        report["timeline"] = self.timeline()
        report["counts"] = self.counts()
        report["recovery"] = self.recovery()


    # -- figures

    def counts(self) -> dict:
        table: dict = {}
        for _, _, phase, op, outcome, _, _ in self.recorder.events:
            table.setdefault(phase, {}).setdefault(op, collections.Counter())[outcome] += 1
        return {phase: {op: dict(sorted(c.items())) for op, c in ops.items()}
                for phase, ops in table.items()}

    def log_lines(self, request_ids: set) -> dict:
        """The instances' log line (the failed request's, with its internal error) of each
        request id."""
        found = {}
        if not request_ids:
            return found
        for proc in self.cluster.instances:
            try:
                with open(proc.log_path, encoding="utf-8", errors="replace") as handle:
                    for line in handle:
                        if '"request_id"' not in line:
                            continue
                        try:
                            entry = json.loads(line[line.index("{"):])
                        except ValueError:
                            continue
                        if entry.get("request_id") in request_ids:
                            entry["instance"] = proc.name
                            found[entry["request_id"]] = entry
            except OSError:
                pass
        return found

    def timeline(self) -> list[list]:
        """[second, requests, errors] for each second of the load (by request start)."""
        seconds: dict[int, list[int]] = {}
        for start, _, _, _, _, ok, _ in self.recorder.events:
            bucket = seconds.setdefault(int(start), [0, 0])
            bucket[0] += 1
            bucket[1] += 0 if ok else 1
        return [[second, *seconds[second]] for second in sorted(seconds)]

    def errors_per_phase(self) -> dict:
        result = {}
        for phase in PHASES:
            events = [e for e in self.recorder.events if e[2] == phase]
            errors = collections.Counter(e[4] for e in events if not e[5])
            result[phase] = {"requests": len(events), "errors": sum(errors.values()),
                             "by_outcome": dict(errors.most_common())}
        return result

    def recovery(self) -> list[dict]:
        events = sorted(self.recorder.events)
        if not events:
            return []
        run_end = max(e[1] for e in events)
        results = []
        for index, fault in enumerate(self.faults):
            t0 = fault["t"]
            t_next = self.faults[index + 1]["t"] if index + 1 < len(self.faults) else run_end
            # The errors of this fault: requests in flight when it struck, and requests started
            # after it that ended before the next fault (those still running then belong to
            # the next one).
            in_flight = [e for e in events if e[0] < t0 <= e[1] and not e[5]]
            errors = in_flight + [e for e in events if t0 <= e[0] and e[1] < t_next
                                  and not e[5]]
            entry = {"fault": fault["fault"], "phase": fault["phase"],
                     "errors": len(errors),
                     "by_outcome": dict(collections.Counter(e[4] for e in errors).most_common()),
                     "by_op": dict(collections.Counter(e[3] for e in errors).most_common())}
            if "restored" in fault:
                entry["service_back_after_s"] = round(fault["restored"] - t0, 2)
                entry["errors_after_service_back"] = sum(
                    1 for e in errors if e[0] >= fault["restored"])
            if not errors:
                entry["time_to_recover_s"] = 0.0
                entry["note"] = "no client-visible error"
            else:
                last_error_end = max(e[1] for e in errors)
                entry["error_window_s"] = [round(min(e[0] for e in errors) - t0, 2),
                                           round(last_error_end - t0, 2)]
                recovered_at = 0.0
                for op in entry["by_op"]:
                    successes = [e[0] for e in events if e[3] == op and e[5]
                                 and e[0] >= last_error_end]
                    if not successes:
                        recovered_at = None
                        break
                    recovered_at = max(recovered_at, min(successes))
                entry["time_to_recover_s"] = (None if recovered_at is None
                                              else round(recovered_at - t0, 2))
            if fault["fault"].startswith("SIGKILL"):
                entry["ready_after_restart_s"] = fault.get("ready_after_restart_s")
                entry["burst"] = fault.get("burst")
                served = [e[0] for e in events if e[0] >= fault.get("restored", t0)
                          and fault["upstream"] in e[6] and e[5]]
                entry["serving_again_after_s"] = (round(min(served) - t0, 2) if served
                                                  else None)
            if "restart_took_s" in fault:
                entry["restart_took_s"] = fault["restart_took_s"]
            results.append(entry)
        return results

    def print_report(self) -> int:
        report = self.report
        report["errors_per_phase"] = self.errors_per_phase()
        # From nginx's access log: requests it passed to another instance (the connection to
        # the first failed before the request was sent; never a POST already sent).
        retried, passed_on = 0, collections.Counter()
        try:
            with open(os.path.join(self.cluster.run_dir, "nginx", "access.log")) as handle:
                for line in handle:
                    match = re.search(r" (GET|POST|PATCH|PUT|DELETE|HEAD) (\S+) .*up=(.*?) "
                                      r"upstatus=(.*?) t=", line)
                    if match and "," in match.group(3):
                        retried += 1
                        passed_on[f"{match.group(1)} {match.group(2)} "
                                  f"(upstream statuses {match.group(4)})"] += 1
        except OSError:
            pass
        report["requests_nginx_passed_on"] = {"count": retried, "by_request": dict(passed_on)}
        all_outcomes = collections.Counter(e[4] for e in self.recorder.events)
        server_5xx = {k: v for k, v in all_outcomes.items()
                      if k.endswith("-server") or "-server@" in k}
        no_retry_after = {k: v for k, v in all_outcomes.items() if k.startswith("503-no-retry")}
        proxy = {k: v for k, v in all_outcomes.items() if k.startswith("nginx-")}
        report["server_5xx_other_than_503"] = server_5xx
        report["503_without_retry_after"] = no_retry_after
        report["nginx_5xx"] = proxy
        report["requests"] = len(self.recorder.events)

        out = []
        label = "short" if self.args.short else "long"
        out.append("")
        out.append(f"== cluster-test report ({label} run: {len(self.cluster.instances)} instances "
                   f"behind nginx, {self.args.workers} workers, phases of "
                   f"{self.args.phase_seconds:.0f} s)")
        out.append(f"   run dir: {self.cluster.run_dir}")
        out.append("")
        out.append("requests per operation and phase (succeeded/sent; every outcome in "
                   "report.json):")
        ops = ["sign-up", "sign-in", "refresh", "refresh-race", "client-credentials",
               "introspect", "admin-write", "authcode"]
        out.append(f"  {'operation':<19}" + "".join(f"{p:>12}" for p in PHASES))
        counts = report["counts"]
        success = {"sign-up": {"201"}, "refresh-race": {"200", "401"}, "authcode": {"ok"}}
        for op in ops:
            cells = []
            for phase in PHASES:
                outcomes = counts.get(phase, {}).get(op, {})
                good = sum(v for k, v in outcomes.items() if k in success.get(op, {"200"}))
                cells.append(f"{good}/{sum(outcomes.values())}")
            out.append(f"  {op:<19}" + "".join(f"{c:>12}" for c in cells))
        out.append("  outcomes other than success:")
        any_failure = False
        for phase in PHASES:
            for op in ops:
                outcomes = counts.get(phase, {}).get(op, {})
                others = {k: v for k, v in outcomes.items() if k not in success.get(op, {"200"})}
                if others:
                    any_failure = True
                    text = ", ".join(f"{k}×{v}" for k, v in others.items())
                    out.append(f"    {phase:<11} {op:<19} {text}")
        if not any_failure:
            out.append("    none")
        out.append("")
        out.append("errors seen by clients, per phase:")
        for phase, figures in report["errors_per_phase"].items():
            detail = ", ".join(f"{k}×{v}" for k, v in figures["by_outcome"].items())
            out.append(f"  {phase:<11} {figures['errors']:>5} of {figures['requests']:>6}"
                       + (f"  ({detail})" if detail else ""))
        out.append("")
        out.append("faults and time to recover (seconds from the fault):")
        for entry in report["recovery"]:
            ttr = entry.get("time_to_recover_s")
            ttr_text = "NOT RECOVERED" if ttr is None else f"{ttr:.2f}"
            extra = []
            if "service_back_after_s" in entry:
                extra.append(f"service back at {entry['service_back_after_s']:.1f}")
            if fault_burst := entry.get("burst"):
                extra.append("sign-ups in flight at the kill: " + ", ".join(
                    f"{k}×{v}" for k, v in fault_burst.items()))
            if entry.get("ready_after_restart_s") is not None:
                extra.append(f"restarted instance ready {entry['ready_after_restart_s']:.1f} s "
                             f"after its start")
            if entry.get("serving_again_after_s") is not None:
                extra.append(f"serving again at {entry['serving_again_after_s']:.1f}")
            if "restart_took_s" in entry:
                extra.append(f"pg_ctlcluster restart took {entry['restart_took_s']:.1f}")
            if "error_window_s" in entry:
                extra.append(f"errors from {entry['error_window_s'][0]:.2f} to "
                             f"{entry['error_window_s'][1]:.2f}")
            out.append(f"  {entry['fault']}: recovered {ttr_text}; {entry['errors']} errors "
                       f"({', '.join(f'{k}×{v}' for k, v in entry['by_outcome'].items()) or '-'})")
            if extra:
                out.append(f"      {'; '.join(extra)}")
        out.append("")
        signups, admin = report["signups"], report["admin_writes"]
        refresh, emails = report["refresh_tokens"], report["emails"]
        panics = sum(entry["panics"] for entry in report["logs"].values())
        not_ready = [name for name, state in report["instances_at_end"].items()
                     if not state["alive"] or state.get("readyz") != 200]
        must_be_zero = [
            ("acknowledged sign-ups lost", signups["lost"],
             f"of {signups['acknowledged']} acknowledged"),
            ("acknowledged admin writes lost", admin["lost"],
             f"of {admin['acknowledged']} acknowledged, on {admin['users_written']} users"),
            ("refresh tokens rotated twice (database)",
             refresh["sessions_with_a_token_rotated_twice"],
             f"{refresh['rows']} tokens in {refresh['sessions']} sessions"),
            ("rotations without a successor (database)",
             refresh["sessions_with_a_rotation_without_successor"], ""),
            ("refresh tokens answered 200 twice", refresh["tokens_answered_200_twice"]
             + refresh["race_probes_both_200"],
             f"{refresh['race_probes']} race probes (one token presented twice at once, "
             f"{refresh['race_probes_on_two_instances']} on two instances)"),
            ("verification emails lost", emails["lost"],
             f"of {emails['verification_expected']} expected"),
            ("panics in the instances' logs", panics, ""),
            ("instances not ready at the end", len(not_ready), ", ".join(not_ready)),
        ]
        out.append("must be 0:")
        failures = []
        for name, value, context in must_be_zero:
            mark = "ok  " if value == 0 else "FAIL"
            if value:
                failures.append(f"{name}: {value}")
            out.append(f"  {mark} {name:<44} {value:>5}   {context}")
        if signups["acknowledged"] == 0:
            failures.append("no sign-up was acknowledged: the load did not run")
        if report["workers_crashed"]:
            failures.append(f"driver workers crashed: {report['workers_crashed']}")
        out.append("")
        out.append("other figures:")
        message_id_text = (f"{emails['distinct_message_ids']} distinct Message-IDs"
                           + (f", {emails['without_message_id']} messages without one"
                              if emails["without_message_id"] else ""))
        out.append(f"  verification emails: {emails['raw_deliveries']} raw deliveries, "
                   f"{emails['distinct_links']} distinct links, {message_id_text}; "
                   f"{emails['addresses_doubled']} addresses got theirs more than once "
                   f"(at-least-once outbox); {emails['for_unacknowledged_signups']} for "
                   f"sign-ups the client saw fail; all arrived {emails['drain_seconds']} s "
                   f"after the load stopped" if not emails["lost"] else
                   f"  verification emails: {emails['raw_deliveries']} raw deliveries")
        out.append(f"  outbox rows delivered more than once (database): "
                   f"{emails['outbox_rows_delivered_more_than_once']}; outbox: "
                   + ", ".join(f"{k}/{s}={c}" for k, s, c in emails["outbox_rows"]))
        out.append(f"  server 5xx other than 503: {sum(server_5xx.values())} {server_5xx or ''}; "
                   f"503 without Retry-After: {sum(no_retry_after.values())}; nginx's own "
                   f"502/504 (upstream failed mid-request): {sum(proxy.values())}")
        for key, samples in sorted(self.recorder.samples.items()):
            if "-server" in key or "503-no-retry" in key:
                sample = samples[0]
                out.append(f"    {key}: e.g. {sample.get('path')} via {sample.get('upstream')}, "
                           f"request id {sample.get('request_id')}")
        out.append(f"  requests nginx passed on to another instance: {retried}; "
                   f"total requests: {len(self.recorder.events)}")
        out.append(f"  sign-ups the client saw fail but stored: "
                   f"{signups['not_acknowledged_but_stored']} of {signups['not_acknowledged']}; "
                   f"admin writes whose final value came from a later unacknowledged write: "
                   f"{admin['final_value_from_unacknowledged_later_write']} (of which refused "
                   f"by the server yet applied: {len(admin['refused_by_the_server_yet_applied'])})")
        out.append(f"  stale or wrong reads through the API after the run: "
                   f"{report['api_reads']['stale_or_wrong']}")
        errors_logged = {name: entry["error_lines"] for name, entry in report["logs"].items()}
        out.append(f"  ERROR lines in the instances' logs: {errors_logged}")
        top: collections.Counter = collections.Counter()
        for entry in report["logs"].values():
            top.update(entry["error_messages"])
        for message, count in top.most_common(6):
            out.append(f"    {count:>5}  {message[:110]}")
        kinds = collections.Counter(a["kind"] for a in report["anomalies"])
        if kinds:
            out.append("  anomalies (details and the servers' log lines in report.json):")
            for kind, count in kinds.most_common():
                example = next(a for a in report["anomalies"] if a["kind"] == kind)
                internal = [line.get("internal") for line in example.get("server_log", [])
                            if line.get("internal")]
                out.append(f"    {count:>4}  {kind}" + (f" (first: {'; '.join(internal)[:150]})"
                                                        if internal else ""))
        out.append("")
        report["failures"] = failures
        report["verdict"] = "FAIL" if failures else "PASS"
        with open(os.path.join(self.cluster.run_dir, "report.json"), "w") as handle:
            json.dump(report, handle, indent=2, default=str)
        out.append(f"verdict: {report['verdict']}" + (f" ({'; '.join(failures)})"
                                                      if failures else ""))
        out.append(f"report: {os.path.join(self.cluster.run_dir, 'report.json')}")
        print("\n".join(out), flush=True)
        return 1 if failures else 0


# ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run-dir", required=True)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--pg-version", default="15")
    parser.add_argument("--pg-cluster", default="gh_cluster")
    parser.add_argument("--redis-port", type=int, default=56379)
    parser.add_argument("--instances", type=int, default=3)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--short", action="store_true", help="the CI size")
    parser.add_argument("--phase-seconds", type=float)
    parser.add_argument("--restart-after", type=float, help="seconds an instance stays dead")
    parser.add_argument("--redis-down", type=float, help="seconds Redis stays down")
    parser.add_argument("--kill-burst", type=int, default=6,
                        help="sign-ups sent through nginx just before the SIGKILL")
    parser.add_argument("--drain-seconds", type=float, default=90.0,
                        help="bound on waiting for the outbox after the load")
    args = parser.parse_args()
    if args.phase_seconds is None:
        args.phase_seconds = 17.0 if args.short else 60.0
    if args.restart_after is None:
        args.restart_after = 3.0 if args.short else 10.0
    if args.redis_down is None:
        args.redis_down = 5.0 if args.short else 20.0

    def interrupted(number, _frame):
        raise KeyboardInterrupt(signal.Signals(number).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    run = Run(args)
    code = 2
    try:
        code = run.execute()
    except SetupError as error:
        log(f"set-up failed: {error}")
        code = 2
    except KeyboardInterrupt as error:
        log(f"interrupted ({error}); stopping everything")
        code = 130
    except Exception:
        log(f"driver failed:\n{traceback.format_exc()}")
        code = 2
    finally:
        if run.shared is not None:
            run.shared.stop.set()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        run.cluster.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
