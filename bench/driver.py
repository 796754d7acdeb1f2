#!/usr/bin/env python3
"""Load drivers for the scenarios wrk cannot play (Python standard library only).

Each scenario runs C workers (one keep-alive HTTP/1.1 connection each) on one asyncio loop for
a warm-up, then for the measured duration, and prints one line
`BENCH_JSON {...}` in the same shape as bench/wrk/request.lua (requests = completed
operations, latency of a whole operation in microseconds) plus `http_requests`.

  driver.py codeflow  URL --email E --password P --client-id ID --client-secret S
                      [--signed-in] [-c 32] [-d 15] [--warmup 3]
      The whole authorization-code flow with PKCE: /oauth2/authorize, the hosted login form
      (GET + POST /login), /oauth2/authorize again, the code at the redirect, POST /oauth2/token.
      With --signed-in each worker signs in once and then only repeats authorize + token (a
      browser that already has a session).
  driver.py user-token URL --email E --password P --client-id ID --client-secret S
      One code flow; prints the token response (JSON) for the userinfo scenario.
  driver.py browser-cookie URL --email E --password P --client-id ID --client-secret S
      One code flow with the hosted login; prints the signed-in browser's Cookie header value
      (bench/wrk/codeflow.lua repeats authorize + token with it).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import html
import json
import secrets
import sys
import time
from html.parser import HTMLParser
from urllib.parse import parse_qs, urlencode, urlsplit

REDIRECT_URI = "http://127.0.0.1:9/cb"
IO_TIMEOUT = 60.0  # seconds for one HTTP exchange


class HttpError(Exception):
    pass


class Connection:
    """A minimal keep-alive HTTP/1.1 client connection (Content-Length and chunked bodies)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.requests = 0

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except Exception:
                pass
        self.reader = self.writer = None

    async def request(self, method: str, target: str, headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, dict[str, list[str]], bytes]:
        for attempt in (0, 1):
            if self.writer is None:
                self.reader, self.writer = await asyncio.wait_for(
                    asyncio.open_connection(self.host, self.port), IO_TIMEOUT)
            try:
                return await asyncio.wait_for(self._exchange(method, target, headers or {}, body),
                                              IO_TIMEOUT)
            except (ConnectionError, asyncio.IncompleteReadError) as error:
                await self.close()
                if attempt == 1:
                    raise HttpError(f"{method} {target}: {error}") from error
        raise HttpError("unreachable")

    async def _exchange(self, method, target, headers, body):
        assert self.reader is not None and self.writer is not None
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        if body or method == "POST":
            lines.append(f"Content-Length: {len(body)}")
        self.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        await self.writer.drain()
        self.requests += 1
        status_line = await self.reader.readuntil(b"\r\n")
        if not status_line:
            raise ConnectionError("closed")
        status = int(status_line.split()[1])
        response_headers: dict[str, list[str]] = {}
        while True:
            line = await self.reader.readuntil(b"\r\n")
            if line == b"\r\n":
                break
            name, _, value = line.decode("latin-1").partition(":")
            response_headers.setdefault(name.strip().lower(), []).append(value.strip())
        if "chunked" in ",".join(response_headers.get("transfer-encoding", [])).lower():
            chunks = []
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                if size == 0:
                    while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                        pass
                    break
                chunks.append(await self.reader.readexactly(size))
                await self.reader.readexactly(2)
            data = b"".join(chunks)
        else:
            length = int(response_headers.get("content-length", ["0"])[0])
            data = await self.reader.readexactly(length) if length else b""
        if "close" in ",".join(response_headers.get("connection", [])).lower():
            await self.close()
        return status, response_headers, data


def header(headers: dict[str, list[str]], name: str) -> str:
    values = headers.get(name)
    return values[0] if values else ""


class FormParser(HTMLParser):
    """Each <form>'s action and named <input> values."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict] = []
        self.current: dict | None = None

    def handle_starttag(self, tag, attrs):
        attributes = {name: (value or "") for name, value in attrs}
        if tag == "form":
            self.current = {"action": attributes.get("action", ""), "fields": {}}
            self.forms.append(self.current)
        elif self.current is not None and tag == "input" and "name" in attributes:
            if attributes.get("type") not in ("submit", "checkbox", "radio"):
                self.current["fields"].setdefault(attributes["name"], attributes.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "form":
            self.current = None


class Browser:
    """A cookie jar over one connection; paths only (same origin)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.cookies: dict[str, str] = {}

    async def send(self, method: str, target: str, form: dict | None = None,
                   extra: dict[str, str] | None = None):
        headers = dict(extra or {})
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        status, response_headers, data = await self.conn.request(method, target, headers, body)
        for cookie in response_headers.get("set-cookie", []):
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in cookie.lower() or value == "":
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value
        return status, response_headers, data


def local_path(location: str, base: str) -> str:
    return location[len(base):] if location.startswith(base) else location


class CodeFlow:
    def __init__(self, args, base: str, conn: Connection) -> None:
        self.args, self.base = args, base
        self.browser = Browser(conn)
        basic = base64.b64encode(f"{args.client_id}:{args.client_secret}".encode()).decode()
        self.basic = f"Basic {basic}"

    async def run(self, login: bool) -> dict:
        """One flow; answers the token response. Raises HttpError on any unexpected answer."""
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(
            hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        state = secrets.token_urlsafe(12)
        query = urlencode({
            "response_type": "code", "client_id": self.args.client_id,
            "redirect_uri": REDIRECT_URI, "scope": self.args.scope, "state": state,
            "nonce": secrets.token_urlsafe(12), "code_challenge": challenge,
            "code_challenge_method": "S256",
        })
        target = f"/oauth2/authorize?{query}"
        code = None
        for _ in range(8):  # bounded: authorize -> login page -> POST login -> authorize -> cb
            status, headers, data = await self.browser.send("GET", target)
            location = header(headers, "location")
            if status in (302, 303) and location.startswith(REDIRECT_URI):
                params = parse_qs(urlsplit(location).query)
                if params.get("state") != [state] or "code" not in params:
                    raise HttpError(f"bad redirect {location}")
                code = params["code"][0]
                break
            if status in (301, 302, 303, 307):
                target = local_path(location, self.base)
                continue
            if status == 200 and b'name="password"' in data:
                if not login:
                    raise HttpError("asked to sign in again")
                parser = FormParser()
                parser.feed(data.decode("utf-8", "replace"))
                form = next((f for f in parser.forms if "password" in f["fields"]), None)
                if form is None:
                    raise HttpError("no login form")
                fields = dict(form["fields"], identifier=self.args.email,
                              password=self.args.password)
                status, headers, data = await self.browser.send(
                    "POST", html.unescape(form["action"]) or "/login", fields)
                if status not in (302, 303):
                    raise HttpError(f"login answered {status}: {data[:300]!r}")
                target = local_path(header(headers, "location"), self.base)
                continue
            raise HttpError(f"GET {target[:60]} answered {status}: {data[:300]!r}")
        if code is None:
            raise HttpError("no code after 8 steps")
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
                "code_verifier": verifier}
        status, _, data = await self.browser.conn.request(
            "POST", "/oauth2/token",
            {"Authorization": self.basic, "Content-Type": "application/x-www-form-urlencoded"},
            urlencode(form).encode())
        if status != 200:
            raise HttpError(f"token answered {status}: {data[:300]!r}")
        return json.loads(data)


class Stats:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.errors = 0
        self.recording = False


async def worker(args, base, host, port, stats: Stats, stop: asyncio.Event, index: int):
    conn = Connection(host, port)
    try:
        flow = CodeFlow(args, base, conn)
        if args.signed_in:
            await flow.run(login=True)

        async def operation():
            await flow.run(login=not args.signed_in)
            if not args.signed_in:
                flow.browser.cookies.clear()  # the next flow is a new browser

        while not stop.is_set():
            started = time.perf_counter()
            try:
                await operation()
                ok = True
            except (HttpError, KeyError, ValueError, asyncio.TimeoutError) as error:
                ok = False
                if stats.errors < 3 and stats.recording:
                    print(f"driver: {error}", file=sys.stderr)
            if stats.recording and not stop.is_set():
                if ok:
                    stats.latencies.append(time.perf_counter() - started)
                else:
                    stats.errors += 1
    finally:
        stats.http_requests = getattr(stats, "http_requests", 0) + conn.requests
        await conn.close()


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def load(args) -> None:
    parts = urlsplit(args.url)
    base = f"{parts.scheme}://{parts.netloc}"
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    stats, stop = Stats(), asyncio.Event()
    tasks = [asyncio.create_task(worker(args, base, host, port, stats, stop, i))
             for i in range(args.connections)]
    await asyncio.sleep(args.warmup)
    stats.recording = True
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    stop.set()
    elapsed = time.perf_counter() - started
    done, pending = await asyncio.wait(tasks, timeout=IO_TIMEOUT + 5)
    for task in pending:
        task.cancel()
    for task in done:
        if task.exception() is not None:
            print(f"driver: worker failed: {task.exception()!r}", file=sys.stderr)
            stats.errors += 1
    lat = stats.latencies
    summary = {
        "requests": len(lat), "duration_us": int(elapsed * 1e6), "bytes": 0,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": stats.errors, "timeout": 0},
        "latency_us": {"p50": int(percentile(lat, 0.50) * 1e6),
                       "p90": int(percentile(lat, 0.90) * 1e6),
                       "p99": int(percentile(lat, 0.99) * 1e6),
                       "max": int(max(lat, default=0) * 1e6),
                       "mean": (sum(lat) / len(lat) * 1e6) if lat else 0.0},
        "http_requests": getattr(stats, "http_requests", 0),
    }
    print("BENCH_JSON " + json.dumps(summary), flush=True)


async def browser_cookie(args) -> None:
    """Signs a browser in through one whole code flow and prints its Cookie header value (for
    bench/wrk/codeflow.lua, which repeats the signed-in part of the flow)."""
    parts = urlsplit(args.url)
    conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        flow = CodeFlow(args, f"{parts.scheme}://{parts.netloc}", conn)
        await flow.run(login=True)
        print("; ".join(f"{k}={v}" for k, v in flow.browser.cookies.items()))
    finally:
        await conn.close()


async def user_token(args) -> None:
    parts = urlsplit(args.url)
    conn = Connection(parts.hostname or "127.0.0.1", parts.port or 80)
    try:
        print(json.dumps(await CodeFlow(args, f"{parts.scheme}://{parts.netloc}", conn)
                         .run(login=True)))
    finally:
        await conn.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenario", choices=["codeflow", "user-token", "browser-cookie"])
    parser.add_argument("url")
    parser.add_argument("--email", required=True)
    parser.add_argument("--password", required=True)
    parser.add_argument("--client-id")
    parser.add_argument("--client-secret")
    parser.add_argument("--scope", default="openid profile email")
    parser.add_argument("--signed-in", action="store_true")
    parser.add_argument("-c", "--connections", type=int, default=32)
    parser.add_argument("-d", "--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=3)
    args = parser.parse_args()
    if args.scenario == "user-token":
        asyncio.run(user_token(args))
    elif args.scenario == "browser-cookie":
        asyncio.run(browser_cookie(args))
    else:
        asyncio.run(load(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
