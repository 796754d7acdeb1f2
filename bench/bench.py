#!/usr/bin/env python3
"""Gatehouse benchmark harness: the orchestrator behind `bench/run` (Python standard library only).

Starts every server itself (Gatehouse on SQLite and on PostgreSQL + Redis, the peers, the HTTP
ceiling), seeds it, drives each scenario with wrk (or bench/driver.py where a scenario chains
state), samples the server's CPU and memory from /proc, measures the crypto ceilings, and writes
the table (markdown), the raw results (JSON) and the chart (SVG, bench/chart.py).

Run it through `bench/run`, which installs wrk, builds the binaries and installs the peers.
Every process started here is stopped on every exit path (its own process group, SIGTERM then
SIGKILL).
"""

from __future__ import annotations

import argparse
import atexit
import base64
import concurrent.futures
import datetime
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KIB = 1024

STARTUP_TIMEOUT = 60.0  # seconds until a server answers 200
CLI_TIMEOUT = 180  # seconds for one gatehouse CLI command
# The data-scale import of 999,000 users: 173.6 s in one run, over 180 s in the next.
IMPORT_TIMEOUT = 420
OTHER_LOAD_LIMIT = 10.0  # % of the machine used by other processes that flags a row (⚠)
INTERLEAVED_WINDOW = 2  # seconds per window when scenarios are measured interleaved
SIGN_IN_WINDOWS = 2  # sign-in windows, each between two windows of the Argon2id ceiling
# The shortest sign-in window: with the smoke run's 2 s, a window was 1 s, shorter than the
# queue of 32 sign-ups waiting on two Argon2 workers (p50 1.5 s on the debug build), so whether
# any request finished inside it was chance (a window with none reads as "no throughput").
MIN_SIGN_IN_WINDOW_SECONDS = 3
# Refresh and the signed-in code flow: this many windows, each between two windows of the
# RS256 signing ceiling (issue #26's ratios; the ceiling alone moved between 1,994 and 2,554
# signatures/s from one run to the next here, so one sample of it could pass or fail a target).
SIGNING_WINDOWS = 4
IDLE_THRESHOLD = 0.15  # fraction of all cores busy above which the machine is "not idle"

SEED_ARGON2 = (65536, 3, 4)  # Gatehouse's defaults (m KiB, t, p)
OWASP_ARGON2 = (19456, 2, 1)  # the OWASP minimum for Argon2id


def argon2_key(params: tuple[int, int, int]) -> str:
    """The ceilings' key of the Argon2id rate with these parameters ("argon2-M/T/P")."""
    return "argon2-" + "/".join(map(str, params))


EMAIL = "bench@example.com"
PASSWORD = "Bench-" + secrets.token_urlsafe(12)


def log(message: str) -> None:
    print(message, flush=True)


def rate_text(rate: float) -> str:
    return f"{rate:.0f}" if rate >= 100 else f"{rate:.1f}"


def windows_text(result: dict) -> str:
    """Each interleaved window's rate, for the log ("" for a single window)."""
    if not result.get("window_rps"):
        return ""
    return f"  (windows: {', '.join(map(rate_text, result['window_rps']))} req/s)"


# --------------------------------------------------------------------------------------------
# /proc


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds."""
    with open(f"/proc/{pid}/stat") as handle:
        fields = handle.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def hashing_cpu_seconds(pid: int) -> tuple[float, float]:
    """(Argon2 workers, every other thread) utime + stime of a Gatehouse process, in seconds:
    the hashing pool's threads are named `gatehouse-argon2-<n>` (15 characters in /proc)."""
    hashing = other = 0.0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0, 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as handle:
                text = handle.read()
        except OSError:
            continue  # the thread exited
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
        if name.startswith("gatehouse-argon"):
            hashing += seconds
        else:
            other += seconds
    return hashing, other


def wait_until_idle(pid: int, limit: float = 10.0) -> None:
    """Returns once the process used less than 5 % of a core over 0.2 s (at most `limit` s)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            before = cpu_seconds(pid)
            time.sleep(0.2)
            if cpu_seconds(pid) - before < 0.01:
                return
        except OSError:
            return  # the process is gone


def memory_mib(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) in MiB."""
    values = {}
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(("VmRSS:", "VmHWM:")):
                name, amount = line.split(":")
                values[name] = int(amount.split()[0]) / 1024
    return values.get("VmRSS", 0.0), values.get("VmHWM", 0.0)


def host_cpu() -> tuple[float, float]:
    """(busy seconds, total seconds) of all cores since boot, from /proc/stat."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK_TCK, sum(values) / CLK_TCK


SERVICES = ("postgres", "redis-server")


def services_cpu() -> float:
    """utime + stime of the PostgreSQL and Redis processes (part of the system under test in
    the PostgreSQL section, so not "other" load), in seconds."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                text = handle.read()
        except OSError:
            continue
        name = text[text.find("(") + 1:text.rfind(")")]
        if name.startswith(SERVICES):
            fields = text.rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def children_cpu() -> float:
    """CPU of the finished child processes (the load generators), plus the database services."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime + services_cpu()


def machine_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over `seconds` (from /proc/stat)."""
    def sample():
        with open("/proc/stat") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        idle = values[3] + values[4]  # idle + iowait
        return sum(values), idle
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    total = max(1, total1 - total0)
    return 1.0 - (idle1 - idle0) / total


def busiest_processes(count: int = 3) -> str:
    try:
        output = subprocess.run(["ps", "-eo", "pid,pcpu,comm", "--sort=-pcpu"],
                                capture_output=True, text=True, timeout=10).stdout
        return "; ".join(" ".join(line.split()) for line in output.splitlines()[1:count + 1])
    except Exception:
        return "?"


def idle_check(label: str, max_wait: float) -> dict:
    """Samples the machine for 1 s; while busy, waits (bounded) and samples again."""
    waited = 0.0
    busy = machine_busy()
    while busy > IDLE_THRESHOLD and waited < max_wait:
        log(f"   ! machine busy ({busy:.0%} of all cores) before {label}: "
            f"{busiest_processes()}; waiting")
        time.sleep(2)
        waited += 3
        busy = machine_busy()
    idle = busy <= IDLE_THRESHOLD
    log(f"   idle check before {label}: {busy:.0%} busy"
        + ("" if idle else f" — NOT idle after waiting {waited:.0f} s; measuring anyway"))
    return {"section": label, "busy": round(busy, 3), "idle": idle, "waited_s": waited}


# --------------------------------------------------------------------------------------------
# Processes


class Server:
    """A server process in its own process group; `start` measures the time to the first 200."""

    running: list["Server"] = []

    def __init__(self, name: str, argv: list[str], env: dict[str, str], cwd: str,
                 ready_url: str, log_path: str) -> None:
        self.name, self.argv, self.env, self.cwd = name, argv, env, cwd
        self.ready_url, self.log_path = ready_url, log_path
        self.process: subprocess.Popen | None = None
        self.startup_ms = 0.0
        self.rss_idle = 0.0

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self) -> "Server":
        out = open(self.log_path, "ab")
        started = time.perf_counter()
        self.process = subprocess.Popen(self.argv, cwd=self.cwd, env=self.env, stdout=out,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        start_new_session=True)
        out.close()
        Server.running.append(self)
        deadline = started + STARTUP_TIMEOUT
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited ({self.process.returncode}) before "
                                   f"answering{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.ready_url, timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{self.name}: no 200 from {self.ready_url} within "
                                   f"{STARTUP_TIMEOUT:.0f} s{self.log_tail()}")
            time.sleep(0.005)
        self.startup_ms = (time.perf_counter() - started) * 1000
        return self

    def settle(self) -> None:
        """Records the idle RSS (after a short pause with no load)."""
        time.sleep(0.5)
        self.rss_idle = memory_mib(self.pid)[0]

    def log_tail(self, lines: int = 15) -> str:
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as handle:
                tail = handle.read().splitlines()[-lines:]
        except OSError:
            return ""
        return ("\n    " + "\n    ".join(tail)) if tail else ""

    def stop(self) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                log(f"   {self.name}: still running 15 s after SIGTERM; killing it")
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=10)
        if self in Server.running:
            Server.running.remove(self)


def stop_all() -> None:
    for server in list(Server.running):
        try:
            server.stop()
        except Exception as error:
            log(f"could not stop {server.name}: {error}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http(method: str, url: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, dict(response.headers.items()), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers.items()), error.read()


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


def json_ok(method: str, url: str, body=None, headers=None, expect=(200, 201)) -> dict:
    status, _, data = http(method, url, body, headers)
    if status not in expect:
        raise RuntimeError(f"{method} {url} answered {status}: {data[:300]!r}")
    return json.loads(data) if data else {}


# --------------------------------------------------------------------------------------------
# Load


def parse_bench_json(output: str) -> dict:
    """The `BENCH_JSON {...}` line that bench/wrk/request.lua and bench/driver.py print."""
    match = re.search(r"^BENCH_JSON (.*)$", output, re.M)
    if not match:
        raise RuntimeError(f"no BENCH_JSON in the load generator's output:\n{output[-1500:]}")
    return json.loads(match.group(1))


class Side:
    """One server and one request shape: what a wrk window loads."""

    def __init__(self, server: Server, url: str, method: str = "GET", content_type: str = "",
                 body: str = "", headers: list[str] | None = None, script: str = "request.lua",
                 script_args: list[str] | None = None, env: dict[str, str] | None = None) -> None:
        self.server, self.url, self.method = server, url, method
        self.content_type, self.body, self.headers = content_type, body, headers or []
        # The wrk script (bench/wrk/) and its arguments; request.lua takes the request shape.
        self.script = script
        self.script_args = [method, content_type, body] if script_args is None else script_args
        self.env = {**os.environ, **env} if env else None


class Load:
    def __init__(self, args) -> None:
        self.args = args
        self.threads, self.connections = args.threads, args.connections
        self.duration, self.warmup = args.duration, args.warmup

    def argv(self, side: Side, seconds: float, connections: int | None = None) -> list[str]:
        connections = connections or self.connections
        threads = min(self.threads, connections)
        argv = ["wrk", f"-t{threads}", f"-c{connections}", "--timeout", "30s",
                f"-d{max(1, round(seconds))}s"]
        for value in side.headers:
            argv += ["-H", value]
        return argv + ["-s", os.path.join(BENCH, "wrk", side.script), side.url, "--",
                       *side.script_args]

    def warm(self, side: Side, connections: int | None = None,
             seconds: float | None = None) -> None:
        seconds = self.warmup if seconds is None else seconds
        if seconds > 0:
            subprocess.run(self.argv(side, seconds, connections), capture_output=True,
                           timeout=seconds + 60, env=side.env)

    def window(self, side: Side, seconds: float, connections: int | None = None) -> dict:
        """One measured wrk window: its BENCH_JSON and what /proc says about it."""
        pid = side.server.pid
        cpu0, t0 = cpu_seconds(pid), time.perf_counter()
        host0, load0, threads0 = host_cpu(), children_cpu(), hashing_cpu_seconds(pid)
        result = subprocess.run(self.argv(side, seconds, connections), capture_output=True,
                                text=True, timeout=seconds + 90, env=side.env)
        cpu1, t1 = cpu_seconds(pid), time.perf_counter()
        host1, load1, threads1 = host_cpu(), children_cpu(), hashing_cpu_seconds(pid)
        return {"data": parse_bench_json(result.stdout + result.stderr),
                "cpu": cpu1 - cpu0, "wall": t1 - t0, "busy": host1[0] - host0[0],
                "total": host1[1] - host0[1], "load": load1 - load0,
                "hashing": threads1[0] - threads0[0], "other_threads": threads1[1] - threads0[1]}

    def wrk(self, server: Server, url: str, method: str = "GET", content_type: str = "",
            body: str = "", headers: list[str] | None = None,
            connections: int | None = None) -> dict:
        side = Side(server, url, method, content_type, body, headers)
        self.warm(side, connections)
        return self.combine(side, [self.window(side, self.duration, connections)])

    def side(self, side: Side, seconds: float | None = None) -> dict:
        """A warm-up, then one measured window (of `seconds`, else the run's duration), of one
        side (its own script and all)."""
        self.warm(side)
        return self.combine(side, [self.window(side, seconds or self.duration)])

    def interleaved(self, sides: list[Side]) -> list[dict]:
        """Measures several servers in alternating windows of about 2 s (A B … Z, Z … B A,
        A B … Z, …), each side's windows adding up to the usual duration. This machine's speed
        swings by ±25 % within seconds (two consecutive 5 s windows of the HTTP ceiling: 65 k
        and 114 k req/s) and drifts over minutes; short windows spread over the same stretch
        of time make the sides of a ratio see the same machine, where figures measured in
        separate windows, let alone minutes apart, each keep their own share of the noise.
        Each side is warmed up for 1 s first (the windows themselves keep it warm)."""
        if len(sides) == 1:
            return [self.wrk(sides[0].server, sides[0].url, sides[0].method,
                             sides[0].content_type, sides[0].body, sides[0].headers)]
        for side in sides:
            self.warm(side, seconds=min(self.warmup, 1))
        rounds = max(2, round(self.duration / INTERLEAVED_WINDOW))
        seconds = max(1, round(self.duration / rounds))
        windows: list[list[dict]] = [[] for _ in sides]
        for round_number in range(rounds):
            order = list(range(len(sides)))
            if round_number % 2:
                order.reverse()
            for index in order:
                windows[index].append(self.window(sides[index], seconds))
        return [self.combine(side, measured) for side, measured in zip(sides, windows)]

    def combine(self, side: Side, windows: list[dict]) -> dict:
        """The summary of a side over its windows: rates over the summed time; p50 and p99 the
        means of the windows' percentiles weighted by their requests (wrk gives no histogram to
        merge; with windows this short, the worst window's p99 would overstate the tail); CPU
        over the summed wall time."""
        requests = sum(w["data"]["requests"] for w in windows)
        weights = [w["data"]["requests"] or 1 for w in windows]
        data = {
            "requests": requests,
            "duration_us": sum(w["data"]["duration_us"] for w in windows),
            "errors": {"all": sum(sum(w["data"]["errors"].values()) for w in windows)},
            "latency_us": {
                "p50": sum(w["data"]["latency_us"]["p50"] * k for w, k in zip(windows, weights))
                / sum(weights),
                "p99": sum(w["data"]["latency_us"]["p99"] * k for w, k in zip(windows, weights))
                / sum(weights),
            },
        }
        cpu, wall = sum(w["cpu"] for w in windows), sum(w["wall"] for w in windows)
        summary = self.summarise(side.server, data, cpu, wall)
        if len(windows) > 1:
            summary["windows"] = len(windows)
            summary["window_rps"] = [
                round(w["data"]["requests"] / (w["data"]["duration_us"] / 1e6), 1)
                if w["data"]["duration_us"] else 0.0 for w in windows]
        machine = sum(w["total"] for w in windows)
        hashing = sum(w["hashing"] for w in windows)
        if hashing > 0 and machine > 0:
            # Where the machine's CPU went during the window: a figure the machine's speed
            # drift does not move, unlike a ratio of two rates measured seconds apart.
            summary["hashing_machine_pct"] = round(100 * hashing / machine, 1)
            summary["server_other_machine_pct"] = round(
                100 * sum(w["other_threads"] for w in windows) / machine, 1)
        return self.foreign(summary, sum(w["busy"] for w in windows), machine, cpu,
                            sum(w["load"] for w in windows))

    @staticmethod
    def foreign(summary: dict, busy: float, total: float, server_cpu: float,
                load_cpu: float) -> dict:
        """CPU used by other processes during the window (`busy` and `total`: the machine's
        busy and elapsed CPU seconds over it), as a share of the whole machine."""
        other = max(0.0, busy - server_cpu - load_cpu)
        summary["other_cpu_pct"] = round(100 * other / total, 1) if total > 0 else 0.0
        return summary

    def driver(self, server: Server, arguments: list[str]) -> dict:
        argv = [sys.executable, os.path.join(BENCH, "driver.py"), *arguments,
                "-c", str(self.connections), "-d", str(self.duration),
                "--warmup", str(self.warmup)]
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   text=True, start_new_session=True)
        try:
            # The driver signs in (or warms up) first; CPU is sampled over the whole run minus
            # the warm-up, as the driver measures.
            time.sleep(self.warmup)
            cpu0, t0 = cpu_seconds(server.pid), time.perf_counter()
            host0, load0, services0 = host_cpu(), children_cpu(), services_cpu()
            stdout, stderr = process.communicate(timeout=self.duration + 240)
            cpu1, t1 = cpu_seconds(server.pid), time.perf_counter()
            host1, load1 = host_cpu(), children_cpu()
            self.services_delta = services_cpu() - services0
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        if stderr.strip():
            log("   driver: " + stderr.strip().splitlines()[-1][:300])
        summary = self.summarise(server, parse_bench_json(stdout), cpu1 - cpu0, t1 - t0)
        # The driver's own CPU includes its warm-up: count only the measured share of it.
        share = self.duration / max(1e-9, self.duration + self.warmup)
        services = self.services_delta
        return self.foreign(summary, host1[0] - host0[0], host1[1] - host0[1], cpu1 - cpu0,
                            (load1 - load0 - services) * share + services)

    @staticmethod
    def summarise(server: Server, data: dict, cpu: float, wall: float) -> dict:
        seconds = data["duration_us"] / 1e6
        errors = sum(data["errors"].values())
        return {
            "rps": data["requests"] / seconds if seconds else 0.0,
            "requests": data["requests"],
            "p50_ms": data["latency_us"]["p50"] / 1000,
            "p99_ms": data["latency_us"]["p99"] / 1000,
            "errors": errors,
            "cpu_pct": 100 * cpu / wall if wall else 0.0,
            "rss_idle_mib": server.rss_idle,
            "rss_peak_mib": memory_mib(server.pid)[1],
            "startup_ms": server.startup_ms,
        }


class HealthProbe:
    """GETs a health URL every 20 ms on its own keep-alive connection while a scenario runs;
    `stop` returns the p99 latency in ms (the "/healthz stays responsive" target)."""

    def __init__(self, url: str) -> None:
        import http.client
        import threading
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        self.path = parts.path
        self.connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        self.samples: list[float] = []
        self.failures = 0
        # Answers are timed only while active; inactive, the probe keeps GETting (so whatever
        # is measured beside the scenario bears the same side load) but records nothing.
        self.active = True
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.loop, daemon=True)
        self.thread.start()

    def loop(self) -> None:
        while not self.done.wait(0.02):
            started = time.perf_counter()
            active = self.active
            try:
                self.connection.request("GET", self.path)
                response = self.connection.getresponse()
                response.read()
                if active and response.status != 200:
                    self.failures += 1
                if active:
                    self.samples.append((time.perf_counter() - started) * 1000)
            except OSError:
                self.failures += active
                self.connection.close()

    def stop(self) -> dict:
        self.done.set()
        self.thread.join(timeout=35)
        self.connection.close()
        ordered = sorted(self.samples)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] if ordered else None
        return {"healthz_p99_ms": p99, "healthz_samples": len(ordered),
                "healthz_failures": self.failures}


def with_health_probe(server_url: str, function) -> dict:
    probe = HealthProbe(server_url + "/healthz")
    try:
        result = function()
    finally:
        health = probe.stop()
    result.update(health)
    log_health(health)
    return result


def log_health(health: dict) -> None:
    log(f"   /healthz during the run: p99 {health['healthz_p99_ms'] or 0:.2f} ms over "
        f"{health['healthz_samples']} probes, {health['healthz_failures']} failed")


# --------------------------------------------------------------------------------------------
# Gatehouse


class Gatehouse:
    def __init__(self, args, workdir: str, name: str, algorithm: str = "RS256",
                 argon2: tuple[int, int, int] = SEED_ARGON2, postgres: bool = False) -> None:
        self.args, self.name = args, name
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = None
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        env.update({
            "GATEHOUSE_HTTP_ADDR": f"127.0.0.1:{self.port}",
            "GATEHOUSE_DATA_DIR": self.dir,
            "GATEHOUSE_MASTER_KEY": secrets.token_hex(32),
            "GATEHOUSE_RATE_LIMIT_ENABLED": "false",
            "GATEHOUSE_SIGNING_ALGORITHM": algorithm,
            "GATEHOUSE_PASSWORD_MEMORY_KIB": str(argon2[0]),
            "GATEHOUSE_PASSWORD_ITERATIONS": str(argon2[1]),
            "GATEHOUSE_PASSWORD_PARALLELISM": str(argon2[2]),
            "GATEHOUSE_LOG_LEVEL": "warn",
        })
        env.pop("RUST_LOG", None)
        if postgres:
            self.database = f"bench_{os.getpid()}_{secrets.token_hex(3)}"
            psql(f"CREATE DATABASE {self.database}")
            env["GATEHOUSE_DATABASE_URL"] = f"{args.postgres_url.rstrip('/')}/{self.database}"
            env["GATEHOUSE_REDIS_URL"] = args.redis_url
            env["GATEHOUSE_REDIS_KEY_PREFIX"] = f"{self.database}:"
            DATABASES.append(self.database)
        # Profiling aid (never for a report): BENCH_GATEHOUSE_ENV="NAME=VALUE NAME=VALUE" adds
        # settings to every Gatehouse instance, e.g. a pool size to compare.
        for setting in os.environ.get("BENCH_GATEHOUSE_ENV", "").split():
            name, _, value = setting.partition("=")
            env[name] = value
        self.env = env
        self.server = Server(f"gatehouse ({name})", [args.gatehouse, "serve"], env, self.dir,
                             self.url + "/healthz", os.path.join(self.dir, "server.log"))

    def cli(self, *arguments: str, timeout: float = CLI_TIMEOUT) -> dict:
        result = subprocess.run([self.args.gatehouse, *arguments, "--json"], cwd=self.dir,
                                env=self.env, capture_output=True, text=True,
                                timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"gatehouse {' '.join(arguments[:2])} failed:\n"
                               f"{result.stdout}{result.stderr}")
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        return json.loads(lines[-1])

    def seed(self, user: bool = True, web: bool = True) -> None:
        self.cc = self.cli("client", "create", "--name", "bench service", "--grant-type",
                           "client_credentials", "--scope", "api:read")
        if user:
            self.cli("user", "create", "--email", EMAIL, "--password", PASSWORD, "--verified")
        if web:
            self.web = self.cli("client", "create", "--name", "bench web", "--redirect-uri",
                                "http://127.0.0.1:9/cb", "--grant-type", "authorization_code",
                                "--grant-type", "refresh_token", "--skip-consent")
            self.admin_key = self.cli("admin-key", "create", "--name", "bench")["key"]

    def start(self) -> "Gatehouse":
        self.server.start()
        self.server.settle()
        return self

    def stop(self) -> None:
        self.server.stop()

    def cc_token(self) -> str:
        answer = json_ok("POST", self.url + "/oauth2/token",
                         b"grant_type=client_credentials&scope=api%3Aread",
                         {"Authorization": basic(self.cc["client_id"], self.cc["client_secret"]),
                          "Content-Type": "application/x-www-form-urlencoded"})
        return answer["access_token"]

    def sign_in(self) -> dict:
        answer = json_ok("POST", self.url + "/v1/auth/sign-in",
                         json.dumps({"email": EMAIL, "password": PASSWORD}).encode(),
                         {"Content-Type": "application/json"})
        return answer.get("tokens", answer)


DATABASES: list[str] = []


def psql(sql: str) -> None:
    subprocess.run(["psql", ARGS.postgres_url.rstrip("/") + "/postgres", "-v",
                    "ON_ERROR_STOP=1", "-qAtc", sql], check=True, capture_output=True,
                   timeout=60)


def drop_databases() -> None:
    for name in list(DATABASES):
        try:
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            DATABASES.remove(name)
        except Exception as error:
            log(f"could not drop database {name}: {error}")


def refresh_side(instance: "Gatehouse") -> tuple[Side, "callable"]:
    """Chained refresh rotation through bench/wrk/refresh.lua: three sessions per connection
    and two more (each its own chain), their refresh tokens in a file the script shares out
    and writes back. Each wrk run strands the tokens in flight when it stops (one per
    connection) and wrk's own check of the script spends one; a thread whose pool ran dry would
    send requests that must fail, so the pools always keep more tokens than connections: the
    second answer, run before each wrk run, tops the file up with fresh sessions."""
    connections = ARGS.connections
    path = os.path.join(instance.dir, "refresh-tokens.txt")
    wanted_tokens = 3 * connections + 2

    def top_up() -> None:
        try:
            with open(path) as handle:
                have = sum(1 for line in handle if line.strip())
        except FileNotFoundError:
            have = 0
        missing = max(0, wanted_tokens - have)
        # As many sign-ins at once as the server hashes passwords at once (one per core).
        with concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1) as pool:
            fresh = list(pool.map(lambda _: instance.sign_in()["refresh_token"], range(missing)))
        with open(path, "a") as handle:
            handle.writelines(token + "\n" for token in fresh)

    side = Side(instance.server, instance.url + "/v1/auth/refresh", "POST", script="refresh.lua",
                script_args=[], env={"BENCH_TOKENS_FILE": path,
                                     "BENCH_THREADS": str(min(ARGS.threads, connections))})
    return side, top_up


def dpop_proofs(instance: "Gatehouse", count: int, htm: str, htu: str) -> str:
    """`count` single-use DPoP proofs of one fresh key for `htm` `htu`, made by the
    crypto-ceiling program, in a file of the instance's directory (one per line). Their `iat`
    is 30 s ahead, so they verify from 30 s before now to 90 s after (the server accepts an
    `iat` within 60 s of its clock): long enough for the group of windows that spends them."""
    if not ARGS.crypto_ceiling:
        raise RuntimeError("the DPoP scenarios need --crypto-ceiling (it signs the proofs)")
    path = os.path.join(instance.dir, f"dpop-proofs-{secrets.token_hex(3)}.txt")
    with open(path, "w") as handle:
        subprocess.run([ARGS.crypto_ceiling, "--dpop-proofs", str(count), "--htm", htm,
                        "--htu", htu, "--iat", str(int(time.time()) + 30)],
                       stdout=handle, check=True, timeout=CLI_TIMEOUT)
    return path


def token_endpoint(instance: "Gatehouse") -> str:
    """The token endpoint as discovery names it: a proof's `htu` is that URL (the issuer's
    host, `localhost` on loopback), not the address the load generator connects to."""
    discovery = json_ok("GET", instance.url + "/.well-known/openid-configuration", None, {})
    return discovery["token_endpoint"]


def dpop_cc_side(instance: "Gatehouse", cc_auth: str) -> Side:
    """client_credentials with a DPoP proof on every request (bench/wrk/dpop.lua): enough
    proofs for the warm-up and every window at up to 5,000 requests per second."""
    url = instance.url + "/oauth2/token"
    count = int(5000 * (ARGS.duration + ARGS.warmup + 2))
    path = dpop_proofs(instance, count, "POST", token_endpoint(instance))
    return Side(instance.server, url, "POST", "application/x-www-form-urlencoded",
                "grant_type=client_credentials&scope=api%3Aread", [cc_auth], script="dpop.lua",
                env={"BENCH_PROOFS_FILE": path,
                     "BENCH_THREADS": str(min(ARGS.threads, ARGS.connections))})


def dpop_introspect_side(instance: "Gatehouse", cc_auth: str) -> Side:
    """Introspection of a DPoP-bound access token (checked to introspect with its `cnf`)."""
    url = instance.url + "/oauth2/token"
    with open(dpop_proofs(instance, 1, "POST", token_endpoint(instance))) as handle:
        proof = handle.read().strip()
    answer = json_ok("POST", url, b"grant_type=client_credentials&scope=api%3Aread",
                     {"Authorization": cc_auth.split(": ", 1)[1], "DPoP": proof,
                      "Content-Type": "application/x-www-form-urlencoded"})
    if answer.get("token_type") != "DPoP":
        raise RuntimeError(f"the token endpoint answered {answer.get('token_type')} for a proof")
    body = urlencode({"token": answer["access_token"]})
    check = json_ok("POST", instance.url + "/oauth2/introspect", body.encode(),
                    {"Authorization": cc_auth.split(": ", 1)[1],
                     "Content-Type": "application/x-www-form-urlencoded"})
    if not check.get("active") or "jkt" not in check.get("cnf", {}):
        raise RuntimeError(f"the DPoP-bound token introspects as {check}")
    return Side(instance.server, instance.url + "/oauth2/introspect", "POST",
                "application/x-www-form-urlencoded", body, [cc_auth])


def codeflow_side(instance: "Gatehouse") -> Side:
    """The signed-in browser's code flow through bench/wrk/codeflow.lua: a browser signs in
    once (bench/driver.py browser-cookie, the hosted login), then every flow is authorize +
    token with its cookie."""
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, "driver.py"), "browser-cookie", instance.url,
         "--email", EMAIL, "--password", PASSWORD, "--client-id", instance.web["client_id"],
         "--client-secret", instance.web["client_secret"]],
        capture_output=True, text=True, timeout=120, check=True)
    cookie = result.stdout.strip()
    return Side(instance.server, instance.url + "/oauth2/authorize", script="codeflow.lua",
                script_args=[instance.web["client_id"],
                             basic(instance.web["client_id"], instance.web["client_secret"]),
                             cookie, "http://127.0.0.1:9/cb"])


def gatehouse_section(args, load: Load, workdir: str, variant: str, rows: list,
                      checks: list, peers: "Peers | None") -> None:
    postgres = variant == "postgres"
    label = "Gatehouse " + ("PostgreSQL + Redis" if postgres else "SQLite")
    log(f"\n== {label}")
    checks.append(idle_check(label, args.idle_wait))
    # Ceilings measured in this section, right before the scenarios they bound: on a shared
    # machine whose speed drifts, a ratio is only meaningful between figures measured together.
    beside: dict = {}

    def record(key: str, title: str, result: dict, server_label: str = label) -> None:
        result.update({"scenario": key, "title": title, "server": server_label,
                       "kind": "gatehouse", "variant": variant, "ceilings": dict(beside)})
        rows.append(result)
        log_row(result)

    def run(title, function, *a, **k):
        try:
            return function(*a, **k)
        except Exception as error:
            log(f"   {title}: FAILED: {error}")
            FAILURES.append(f"{label} {title}: {error}")
            return None

    def measure_ceiling(what: str, function) -> None:
        if args.no_ceilings:
            return
        measured = run(f"{what} ceiling", function)
        if measured:
            for row in measured:
                rows.append(row)
                beside[row["ceiling_key"]] = row["rps"]

    def sign_in(key: str, title: str, params: tuple[int, int, int], instance: "Gatehouse",
                server_label: str, side: "Side | None" = None) -> None:
        """The sign-in scenario in windows alternating with the Argon2id ceiling: ceiling,
        sign-in, ceiling, sign-in, ceiling (each sign-in window half the duration, each ceiling
        window `--crypto-seconds`), compared with the mean of the ceiling's windows. The
        machine's speed swings within seconds (the ceiling alone measured 57 and 73 hashes/s in
        consecutive 4 s windows; one run put a sign-in at 115 % of a ceiling measured right
        before and after it), so the two are measured over the same stretch of time. Between
        windows the harness waits until the server is idle: the hashes it admitted before the
        load stopped would otherwise run beside the ceiling (and flatter the sign-in). The
        /healthz probe runs throughout — the ceiling bears its cost too — and its answers are
        timed during the sign-in windows only."""
        server = instance.server
        side = side or Side(server, instance.url + "/v1/auth/sign-in", "POST",
                            "application/json", json.dumps({"email": EMAIL, "password": PASSWORD}))
        if args.no_ceilings:
            # One window as long as the interleaved run's sign-in windows together, at least:
            # the smoke run's 2 s was shorter than the debug build's queue of 32 sign-ups on
            # two Argon2 workers (p50 1.8 s), so a window with no completion was chance.
            seconds = max(load.duration, SIGN_IN_WINDOWS * MIN_SIGN_IN_WINDOW_SECONDS)
            result = run(title, lambda: with_health_probe(
                instance.url, lambda: load.side(side, seconds)))
            if result is not None:
                record(key, title, result, server_label)
            return
        argon = argon2_key(params)
        probe = HealthProbe(instance.url + "/healthz")
        probe.active = False
        ceiling_rows: list[dict] = []
        windows: list[dict] = []

        def measure() -> bool:
            load.warm(side, seconds=min(load.warmup, 1))
            wait_until_idle(server.pid)
            for number in range(SIGN_IN_WINDOWS + 1):
                ceiling_rows.extend(argon2_ceiling(args, params, label))
                if number == SIGN_IN_WINDOWS:
                    break
                probe.active = True
                seconds = max(load.duration / SIGN_IN_WINDOWS, MIN_SIGN_IN_WINDOW_SECONDS)
                windows.append(load.window(side, seconds))
                probe.active = False
                wait_until_idle(server.pid)
            return True

        try:
            measured = run(title, measure)
        finally:
            health = probe.stop()
        if measured is None and not windows:
            return  # `run` logged and recorded the failure
        rates = [row["rps"] for row in ceiling_rows]
        if rates:
            ceiling = dict(ceiling_rows[0], rps=sum(rates) / len(rates), window_rps=rates,
                           server=f"ceiling (crypto), interleaved with {server_label}")
            rows.append(ceiling)
            beside[argon] = ceiling["rps"]
            log(f"   Argon2id {'/'.join(map(str, params))}: {ceiling['rps']:.1f} hashes/s, the "
                f"mean of its {len(rates)} windows")
        if windows:
            result = load.combine(side, windows)
            result.update(health)
            log_health(health)
            record(key, title, result, server_label)

    def beside_signing(key: str, title: str, side: Side, prepare=None) -> None:
        """A scenario bound by RS256 signatures (refresh, the signed-in code flow) in windows
        alternating with the RS256 ceiling — ceiling, scenario, …, ceiling — compared with the
        mean of the ceiling's windows, for the reason `sign_in` gives. `prepare` runs before
        the warm-up and each window (refresh tops up its pool of tokens there)."""
        if args.no_ceilings or not args.crypto_ceiling:
            if prepare:
                prepare()
            result = run(title, lambda: load.side(side))
            if result is not None:
                record(key, title, result)
            return
        ceiling_rows: list[dict] = []
        windows: list[dict] = []

        def measure() -> bool:
            if prepare:
                prepare()
            load.warm(side, seconds=min(load.warmup, 1))
            for number in range(SIGNING_WINDOWS + 1):
                wait_until_idle(server.pid)
                ceiling_rows.extend(rs256_ceiling(args, label))
                if number == SIGNING_WINDOWS:
                    break
                if prepare:
                    prepare()
                windows.append(load.window(side, max(2, load.duration / SIGNING_WINDOWS)))
            return True

        if run(title, measure) is None and not windows:
            return
        rates = [row["rps"] for row in ceiling_rows]
        if rates:
            ceiling = dict(ceiling_rows[0], rps=sum(rates) / len(rates), window_rps=rates,
                           server=f"ceiling (crypto), interleaved with {label} {key}")
            rows.append(ceiling)
            beside["sign-RS256"] = ceiling["rps"]
            log(f"   RS256: {ceiling['rps']:.0f} signatures/s, the mean of its "
                f"{len(rates)} windows")
        if windows:
            record(key, title, load.combine(side, windows))

    main = Gatehouse(args, workdir, f"{variant}-rs256", postgres=postgres)
    main.seed()
    main.start()
    log(f"   started {main.url} in {main.server.startup_ms:.0f} ms, "
        f"idle RSS {main.server.rss_idle:.1f} MiB")
    url, server = main.url, main.server
    form = "application/x-www-form-urlencoded"
    cc_auth = f"Authorization: {basic(main.cc['client_id'], main.cc['client_secret'])}"

    # Scenarios measured in windows interleaved with the peer's matching scenario (and, for
    # discovery and JWKS, with the HTTP ceiling). On PostgreSQL only those whose targets sit
    # close to the line; the others (5× and 25× targets met 1.6–3× over) are compared with the
    # peer's figures from the SQLite section, which keeps the run under 10 minutes.
    loaded = {
        "discovery": ("discovery", lambda: Side(server, url + "/.well-known/openid-configuration")),
        "jwks": ("JWKS", lambda: Side(server, url + "/.well-known/jwks.json")),
        "cc-RS256": ("client_credentials RS256", lambda: Side(
            server, url + "/oauth2/token", "POST", form,
            "grant_type=client_credentials&scope=api%3Aread", [cc_auth])),
        "cc-DPoP": ("client_credentials RS256, DPoP-bound (a proof per request)",
                    lambda: dpop_cc_side(main, cc_auth)),
        "introspect-active": ("introspection (active token)", lambda: Side(
            server, url + "/oauth2/introspect", "POST", form,
            urlencode({"token": main.cc_token()}), [cc_auth])),
        "introspect-DPoP": ("introspection (active DPoP-bound token)",
                            lambda: dpop_introspect_side(main, cc_auth)),
        "introspect-revoked": ("introspection (revoked token)",
                               lambda: revoked_token_side(main, cc_auth)),
        "introspect-apikey": ("introspection (API key)", lambda: api_key_side(main, cc_auth)),
        "userinfo": ("userinfo", lambda: userinfo_side(main)),
        "me": ("session check GET /v1/me", lambda: Side(
            server, url + "/v1/me",
            headers=[f"Authorization: Bearer {main.sign_in()['access_token']}"])),
    }
    paired_here = PAIRED_ON_POSTGRES if postgres else set(PEER_OF)
    # A DPoP scenario shares the windows of its scenario without DPoP (issue #27's ratio).
    groups = [["discovery", "jwks"], ["cc-RS256", "cc-DPoP"], ["introspect-active", "introspect-DPoP"],
              ["introspect-revoked"], ["introspect-apikey"], ["userinfo"], ["me"]]

    def group(keys: list[str]) -> None:
        """Loads the Gatehouse side of each scenario, its peer's side when paired here, and
        the HTTP ceiling when a scenario bounded by it is in the group, in interleaved
        windows; records every row (the ceiling first, so the Gatehouse rows carry it)."""
        entries: list[tuple[str, str, str, Side, str]] = []  # kind, key, title, side, server
        for key in keys:
            if not wanted(key):
                continue
            title, make = loaded[key]
            side = run(title, make)
            if side is None:
                continue
            entries.append(("gatehouse", key, title, side, label))
            if peers is not None and key in paired_here:
                peer = run(f"{title}: the peer's side", lambda key=key: peers.side(key))
                if peer is not None:
                    entries.append(("peer", key, peer[1], peer[0], peer[2]))
        if not entries:
            return
        ceiling = None
        if not args.no_ceilings and any(key in ("discovery", "jwks") for key in keys):
            ceiling = run("HTTP ceiling", lambda: start_http_ceiling(args, workdir))
            if ceiling is not None:
                entries.append(("ceiling", "http", "HTTP ceiling", Side(*ceiling), ""))
        try:
            results = run(" + ".join(entry[2] for entry in entries),
                          lambda: load.interleaved([entry[3] for entry in entries]))
        finally:
            if ceiling is not None:
                ceiling[0].stop()
        if results is None:
            return
        for (kind, _, _, _, _), result in zip(entries, results):
            if kind == "ceiling":
                rows.append(http_ceiling_row(result, label))
                beside["http"] = result["rps"]
        paired: dict[str, dict] = {}
        for (kind, key, title, _, server_label), result in zip(entries, results):
            if kind == "peer":
                result.update({"scenario": key, "title": title, "kind": "peer",
                               "server": f"{server_label}, beside {label}"})
                paired[key] = result
        for (kind, key, title, _, _), result in zip(entries, results):
            if kind == "gatehouse":
                if key in paired:
                    result["peer"] = {name: paired[key][name]
                                      for name in ("scenario", "title", "server", "rps")}
                record(key, title, result)
                if key in paired:
                    rows.append(paired[key])
                    log_row(paired[key])

    if not any(wanted(key) for key in ("discovery", "jwks")) \
            and any(wanted(key) for key in ("cc-ES256", "cc-EdDSA")):
        measure_ceiling("HTTP", lambda: [http_ceiling(args, load, workdir, label)])

    scenarios = [
        ("refresh", "refresh rotation (chained)", lambda: beside_signing(
            "refresh", "refresh rotation (chained)", *refresh_side(main))),
        ("signup", "sign-up Argon2id m=64MiB t=3 p=4", lambda: sign_in(
            "signup", "sign-up Argon2id m=64MiB t=3 p=4", SEED_ARGON2, main, label,
            Side(server, url + "/v1/auth/sign-up", "POST", script="sign_up.lua",
                 script_args=[f"{variant}{secrets.token_hex(3)}", PASSWORD]))),
        ("signin-seed", "sign-in Argon2id m=64MiB t=3 p=4", lambda: sign_in(
            "signin-seed", "sign-in Argon2id m=64MiB t=3 p=4", SEED_ARGON2, main, label)),
        ("codeflow-login", "code flow (with sign-in), flows/s", lambda: load.driver(server, [
            "codeflow", url, "--email", EMAIL, "--password", PASSWORD,
            "--client-id", main.web["client_id"], "--client-secret", main.web["client_secret"]])),
        ("codeflow-sso", "code flow (signed-in browser), flows/s", lambda: beside_signing(
            "codeflow-sso", "code flow (signed-in browser), flows/s", codeflow_side(main))),
    ]
    try:
        for keys in groups:
            group(keys)
        for key, title, function in scenarios:
            if not wanted(key):
                continue

            if key in ("signin-seed", "signup", "refresh", "codeflow-sso"):
                run(title, function)  # each records its own rows
                continue
            result = run(title, function)
            if result is not None:
                record(key, title, result)
    finally:
        main.stop()

    # Other signing algorithms: a fresh server each (the algorithm applies to new keys).
    for algorithm in ("ES256", "EdDSA"):
        if postgres and not args.postgres_all:
            break
        if not wanted(f"cc-{algorithm}"):
            continue
        instance = Gatehouse(args, workdir, f"{variant}-{algorithm.lower()}", algorithm,
                             postgres=postgres)
        try:
            instance.seed(user=False, web=False)
            instance.start()
            auth = f"Authorization: {basic(instance.cc['client_id'], instance.cc['client_secret'])}"
            result = run(f"client_credentials {algorithm}", lambda: load.wrk(
                instance.server, instance.url + "/oauth2/token", "POST", form,
                "grant_type=client_credentials&scope=api%3Aread", [auth]))
            if result is not None:
                record(f"cc-{algorithm}", f"client_credentials {algorithm}", result,
                       f"{label} ({algorithm})")
        except Exception as error:
            log(f"   {algorithm} server: FAILED: {error}")
            FAILURES.append(f"{label} {algorithm}: {error}")
        finally:
            instance.stop()

    # Sign-in with the OWASP minimum Argon2id parameters.
    if (postgres and not args.postgres_all) or not wanted("signin-owasp"):
        return
    owasp = Gatehouse(args, workdir, f"{variant}-owasp", argon2=OWASP_ARGON2, postgres=postgres)
    try:
        owasp.seed(web=False)
        owasp.start()

        sign_in("signin-owasp", "sign-in Argon2id m=19MiB t=2 p=1 (OWASP)", OWASP_ARGON2, owasp,
                f"{label} (OWASP Argon2id)")
    except Exception as error:
        log(f"   OWASP server: FAILED: {error}")
        FAILURES.append(f"{label} OWASP: {error}")
    finally:
        owasp.stop()


def wanted(key: str) -> bool:
    """Whether --only (when given) names this scenario. The DPoP scenarios need the
    crypto-ceiling program (it signs their proofs), which a smoke run does not build: without
    it they are skipped there, and only there."""
    if key in DPOP_SCENARIOS and ARGS.smoke and not (
            ARGS.crypto_ceiling and os.access(ARGS.crypto_ceiling, os.X_OK)):
        return False
    return not ARGS.only or key in ARGS.only.split(",")


DPOP_SCENARIOS = ("cc-DPoP", "introspect-DPoP")


def revoked_token_side(main: Gatehouse, cc_auth: str) -> Side:
    """Introspection of a token revoked (and checked to introspect as inactive) first."""
    token = main.cc_token()
    status, _, data = http("POST", main.url + "/oauth2/revoke",
                           urlencode({"token": token}).encode(),
                           {"Authorization": cc_auth.split(": ", 1)[1],
                            "Content-Type": "application/x-www-form-urlencoded"})
    if status != 200:
        raise RuntimeError(f"revoke answered {status}: {data[:200]!r}")
    answer = json_ok("POST", main.url + "/oauth2/introspect", urlencode({"token": token}).encode(),
                     {"Authorization": cc_auth.split(": ", 1)[1],
                      "Content-Type": "application/x-www-form-urlencoded"})
    if answer.get("active") is not False:
        raise RuntimeError(f"the revoked token introspects as {answer}")
    return Side(main.server, main.url + "/oauth2/introspect", "POST",
                "application/x-www-form-urlencoded", urlencode({"token": token}), [cc_auth])


def api_key_side(main: Gatehouse, cc_auth: str) -> Side:
    """Introspection of a user's API key (gtk_…) by the confidential client: the key is made
    through the API by a fresh sign-in (creating one needs a recent authentication) and checked
    to introspect as active first."""
    token = main.sign_in()["access_token"]
    created = json_ok("POST", main.url + "/v1/me/api-keys",
                      json.dumps({"name": "bench", "scopes": ["orders:read"]}).encode(),
                      {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
    key = created["key"]
    answer = json_ok("POST", main.url + "/oauth2/introspect", urlencode({"token": key}).encode(),
                     {"Authorization": cc_auth.split(": ", 1)[1],
                      "Content-Type": "application/x-www-form-urlencoded"})
    if answer.get("active") is not True or answer.get("token_type") != "api_key":
        raise RuntimeError(f"the API key introspects as {answer}")
    return Side(main.server, main.url + "/oauth2/introspect", "POST",
                "application/x-www-form-urlencoded", urlencode({"token": key}), [cc_auth])


def userinfo_side(main: Gatehouse) -> Side:
    """UserInfo with a user's access token from a whole authorization-code flow."""
    result = subprocess.run(
        [sys.executable, os.path.join(BENCH, "driver.py"), "user-token", main.url,
         "--email", EMAIL, "--password", PASSWORD, "--client-id", main.web["client_id"],
         "--client-secret", main.web["client_secret"]],
        capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"code flow for a user token failed: {result.stderr[-800:]}")
    token = json.loads(result.stdout)["access_token"]
    return Side(main.server, main.url + "/oauth2/userinfo",
                headers=[f"Authorization: Bearer {token}"])


def write_users(path: str, first: int, count: int) -> None:
    """JSON Lines for `gatehouse user import`: scale-NNNNNNN@example.com, no password."""
    with open(path, "w") as handle:
        chunk = []
        for number in range(first, first + count):
            chunk.append(f'{{"email":"scale-{number:07d}@example.com"}}\n')
            if len(chunk) == 10_000:
                handle.write("".join(chunk))
                chunk.clear()
        handle.write("".join(chunk))


def datascale_section(args, load: Load, workdir: str, rows: list, checks: list) -> None:
    """Sign-in lookup and admin listing with 1 000 users, then with `--scale-users` users
    (bulk-imported through `gatehouse user import`), on the same SQLite database."""
    label = "Gatehouse SQLite, data scale"
    log(f"\n== {label}")
    checks.append(idle_check(label, args.idle_wait))
    # OWASP Argon2id parameters, one client at a time: the sign-in latency is the lookup plus
    # one ~20 ms hash, so a slower lookup at scale shows.
    instance = Gatehouse(args, workdir, "sqlite-scale", argon2=OWASP_ARGON2)
    # Half-length windows: eight scenarios plus the import must fit the 10-minute budget.
    saved = load.duration, load.warmup
    load.duration, load.warmup = max(2, load.duration // 2), min(load.warmup, 1)
    baseline = 1000
    total = max(args.scale_users, baseline + 1)
    try:
        instance.seed(user=True, web=True)
        users_file = os.path.join(instance.dir, "users.jsonl")
        write_users(users_file, 0, baseline)
        instance.cli("user", "import", "--file", users_file)
        middle = f"scale-{baseline // 2:07d}@example.com"
        for size, label_size in ((baseline, f"{baseline:,} users"), (total, f"{total:,} users")):
            if size != baseline:
                write_users(users_file, baseline, size - baseline)
                log(f"   importing {size - baseline:,} users with `gatehouse user import`")
                started = time.perf_counter()
                imported = instance.cli("user", "import", "--file", users_file,
                                        "--batch-size", "5000", timeout=IMPORT_TIMEOUT)
                seconds = time.perf_counter() - started
                log(f"   imported {imported.get('imported', 0):,} users in {seconds:.1f} s "
                    f"({imported.get('imported', 0) / max(seconds, 1e-9):,.0f}/s)")
                rows.append({"scenario": "scale-import", "kind": "info",
                             "title": f"bulk import of {size - baseline:,} users (CLI)",
                             "server": label, "rps": imported.get("imported", 0) / seconds,
                             "seconds": seconds})
                middle = f"scale-{size // 2:07d}@example.com"
            instance.start()
            try:
                admin = [f"Authorization: Bearer {instance.admin_key}"]
                first = json_ok("GET", instance.url + "/v1/admin/users?limit=50",
                                headers={"Authorization": f"Bearer {instance.admin_key}"})
                found = json_ok("GET", instance.url + "/v1/admin/users?" + urlencode(
                    {"email": middle}), headers={"Authorization": f"Bearer {instance.admin_key}"})
                if len(found.get("data", [])) != 1 or not first.get("next_cursor"):
                    raise RuntimeError(f"lookup of {middle} found {found}; first page {first}")
                scenarios = [
                    ("scale-signin", "sign-in (OWASP Argon2id), 1 client", lambda: load.wrk(
                        instance.server, instance.url + "/v1/auth/sign-in", "POST",
                        "application/json", json.dumps({"email": EMAIL, "password": PASSWORD}),
                        connections=1)),
                    ("scale-lookup", "user lookup by email (blind index)", lambda: load.wrk(
                        instance.server, instance.url + "/v1/admin/users?" + urlencode(
                            {"email": middle}), headers=admin)),
                    ("scale-list", "admin user list, first page of 50", lambda: load.wrk(
                        instance.server, instance.url + "/v1/admin/users?limit=50",
                        headers=admin)),
                    ("scale-list-next", "admin user list, next page of 50", lambda: load.wrk(
                        instance.server, instance.url + "/v1/admin/users?" + urlencode(
                            {"limit": 50, "cursor": first["next_cursor"]}), headers=admin)),
                ]
                for key, title, function in scenarios:
                    try:
                        result = function()
                    except Exception as error:
                        log(f"   {title}: FAILED: {error}")
                        FAILURES.append(f"{label} {title} ({label_size}): {error}")
                        continue
                    result.update({"scenario": f"{key}@{size}", "title": f"{title} — {label_size}",
                                   "server": label, "kind": "gatehouse", "variant": "scale",
                                   "users": size, "base_scenario": key})
                    rows.append(result)
                    log(f"   {result['title']:<58} {result['rps']:>9.1f} req/s  "
                        f"p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
                        + (f"  ERRORS {result['errors']}" if result["errors"] else ""))
            finally:
                instance.stop()
    except Exception as error:
        log(f"   {label}: FAILED: {error}")
        FAILURES.append(f"{label}: {error}")
    finally:
        instance.stop()
        load.duration, load.warmup = saved


# --------------------------------------------------------------------------------------------
# Peers


def node_server(name: str, script: str, arguments: list[str], ready_path: str, workdir: str,
                env_extra: dict | None = None) -> tuple[Server, str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ, NODE_ENV="production", **(env_extra or {}))
    directory = os.path.join(workdir, name)
    os.makedirs(directory, exist_ok=True)
    server = Server(name, ["node", os.path.join(BENCH, "peers", script), str(port), *arguments],
                    env, os.path.join(BENCH, "peers"), url + ready_path,
                    os.path.join(directory, "server.log"))
    server.start()
    server.settle()
    return server, url


class Peers:
    """oidc-provider and better-auth, started and seeded before the first Gatehouse section and
    kept running (idle) until the end of the run, so each Gatehouse scenario is measured in
    windows interleaved with the peer's matching scenario (see `Load.interleaved`)."""

    FORM = "application/x-www-form-urlencoded"

    def __init__(self, args, workdir: str) -> None:
        self.oidc: Server | None = None
        self.better_auth: Server | None = None
        self.oidc_label = f"oidc-provider {PEER_VERSIONS.get('oidc-provider', '?')}"
        self.better_auth_label = f"better-auth {PEER_VERSIONS.get('better-auth', '?')}"
        for label, start, attribute in (
                (self.oidc_label, self.start_oidc_provider, "oidc"),
                (self.better_auth_label, self.start_better_auth, "better_auth")):
            try:
                start(workdir)
            except Exception as error:
                # A peer that did not start (or seed) is left out: its scenarios are measured
                # for Gatehouse alone, and the run reports the failure.
                log(f"   {label}: FAILED: {error}")
                FAILURES.append(f"{label}: {error}")
                server = getattr(self, attribute)
                if server is not None:
                    server.stop()
                setattr(self, attribute, None)

    def start_oidc_provider(self, workdir: str) -> None:
        server, url = node_server("oidc-provider", "oidc-provider.mjs", [],
                                  "/.well-known/openid-configuration", workdir)
        self.oidc = server
        log(f"   started {self.oidc_label} on {url} in {server.startup_ms:.0f} ms, "
            f"idle RSS {server.rss_idle:.1f} MiB")
        self.meta = json_ok("GET", url + "/.well-known/openid-configuration")
        self.oidc_url = url
        auth = basic("bench-cc", "bench-cc-secret")
        self.cc_headers = {"Authorization": auth, "Content-Type": self.FORM}
        self.cc_header = [f"Authorization: {auth}"]
        jwt = self.token(resource=True)
        if jwt.count(".") != 2:
            raise RuntimeError(f"the access token for the resource is not a JWT: {jwt[:40]}")

    def token(self, resource: bool) -> str:
        body = {"grant_type": "client_credentials", "scope": "api:read"}
        if resource:
            body["resource"] = "urn:bench:api"
        return json_ok("POST", self.meta["token_endpoint"], urlencode(body).encode(),
                       self.cc_headers)["access_token"]

    def introspectable(self, revoked: bool) -> str:
        # oidc-provider introspects the opaque tokens it stores; JWT access tokens for a
        # resource server are self-contained (it answers active: false for them).
        value = self.token(resource=False)
        if revoked:
            json_ok("POST", self.meta["revocation_endpoint"],
                    urlencode({"token": value}).encode(), self.cc_headers)
        answer = json_ok("POST", self.meta["introspection_endpoint"],
                         urlencode({"token": value}).encode(), self.cc_headers)
        if answer.get("active") is not (not revoked):
            raise RuntimeError(f"introspection answered {answer}")
        return value

    def start_better_auth(self, workdir: str) -> None:
        database = os.path.join(workdir, "better-auth.db")
        server, url = node_server("better-auth", "better-auth.mjs", [database], "/api/auth/ok",
                                  workdir)
        self.better_auth, self.better_auth_url = server, url
        log(f"   started {self.better_auth_label} on {url} in {server.startup_ms:.0f} ms, "
            f"idle RSS {server.rss_idle:.1f} MiB")
        json_headers = {"Content-Type": "application/json", "Origin": url}
        json_ok("POST", url + "/api/auth/sign-up/email",
                json.dumps({"email": EMAIL, "password": PASSWORD, "name": "Bench"}).encode(),
                json_headers)
        status, headers, data = http(
            "POST", url + "/api/auth/sign-in/email",
            json.dumps({"email": EMAIL, "password": PASSWORD}).encode(), json_headers)
        self.cookie = session_cookie(headers, data, status)

    def side(self, scenario: str) -> tuple[Side, str, str] | None:
        """The peer's side of a Gatehouse scenario: (what to load, its title, its server's
        label), or None when no peer has this scenario (or the peer did not start)."""
        oidc, meta = self.oidc, getattr(self, "meta", {})
        if oidc is not None:
            if scenario == "discovery":
                return (Side(oidc, self.oidc_url + "/.well-known/openid-configuration"),
                        "discovery", self.oidc_label)
            if scenario == "jwks":
                return Side(oidc, meta["jwks_uri"]), "JWKS", self.oidc_label
            if scenario == "cc-RS256":
                return (Side(oidc, meta["token_endpoint"], "POST", self.FORM,
                             "grant_type=client_credentials&scope=api%3Aread"
                             "&resource=urn%3Abench%3Aapi", self.cc_header),
                        "client_credentials RS256 (JWT, resource)", self.oidc_label)
            if scenario in ("introspect-active", "introspect-revoked", "introspect-apikey"):
                # An API key is compared with oidc-provider's active opaque token.
                revoked = scenario == "introspect-revoked"
                return (Side(oidc, meta["introspection_endpoint"], "POST", self.FORM,
                             urlencode({"token": self.introspectable(revoked)}), self.cc_header),
                        "introspection (revoked token)" if revoked
                        else "introspection (active, opaque token)", self.oidc_label)
        if self.better_auth is not None and scenario == "me":
            return (Side(self.better_auth, self.better_auth_url + "/api/auth/get-session",
                         headers=[f"Cookie: {self.cookie}"]),
                    "get-session (cookie)", self.better_auth_label)
        return None

    def stop(self) -> None:
        for server in (self.oidc, self.better_auth):
            if server is not None:
                server.stop()


def peers_section(args, load: Load, peers: Peers, rows: list, checks: list) -> None:
    """What no Gatehouse scenario is paired with: better-auth's sign-in (scrypt), compared with
    Gatehouse's sign-in for information (no target bounds it). Stops the peers."""
    try:
        if peers.better_auth is None or not wanted("signin"):
            return
        label = peers.better_auth_label
        log(f"\n== {label}")
        checks.append(idle_check(label, args.idle_wait))
        url = peers.better_auth_url
        try:
            result = load.wrk(peers.better_auth, url + "/api/auth/sign-in/email", "POST",
                              "application/json",
                              json.dumps({"email": EMAIL, "password": PASSWORD}),
                              [f"Origin: {url}"])
        except Exception as error:
            log(f"   sign-in: FAILED: {error}")
            FAILURES.append(f"{label} sign-in: {error}")
            return
        result.update({"scenario": "signin", "title": "sign-in email/password (scrypt)",
                       "server": label, "kind": "peer"})
        rows.append(result)
        log_row(result)
    finally:
        peers.stop()


def log_row(result: dict) -> None:
    flag = f"  ERRORS {result['errors']}" if result["errors"] else ""
    if result.get("other_cpu_pct", 0) > OTHER_LOAD_LIMIT:
        flag += f"  (other processes: {result['other_cpu_pct']:.0f}% of the machine)"
    windows = windows_text(result)
    title = result["title"]
    if result.get("kind") == "peer":
        title = f"{result['server'].split(',')[0]}: {title}"
    log(f"   {title:<42} {result['rps']:>10.1f} req/s  p50 {result['p50_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  cpu {result['cpu_pct']:.0f}%  "
        f"rss {result['rss_idle_mib']:.0f}/{result['rss_peak_mib']:.0f} MiB{flag}{windows}")


def session_cookie(headers: dict, data: bytes, status: int) -> str:
    if status != 200:
        raise RuntimeError(f"better-auth sign-in answered {status}: {data[:200]!r}")
    raw = headers.get("Set-Cookie") or headers.get("set-cookie") or ""
    match = re.search(r"(better-auth\.session_token=[^;]+)", raw)
    if not match:
        raise RuntimeError(f"no session cookie in {raw!r}")
    return match.group(1)


# --------------------------------------------------------------------------------------------
# Ceilings


def start_http_ceiling(args, workdir: str) -> tuple[Server, str]:
    """The minimal axum server (bench/ceiling), started; the caller stops it."""
    port = free_port()
    directory = tempfile.mkdtemp(prefix="ceiling-", dir=workdir)
    server = Server("HTTP ceiling", [args.ceiling, f"127.0.0.1:{port}"], dict(os.environ),
                    directory, f"http://127.0.0.1:{port}/", os.path.join(directory, "log"))
    server.start()
    server.settle()
    return server, f"http://127.0.0.1:{port}/"


def http_ceiling_row(result: dict, beside: str = "") -> dict:
    result.update({"scenario": "http", "ceiling_key": "http", "kind": "ceiling",
                   "title": "HTTP ceiling: axum, GET fixed bytes",
                   "server": "ceiling (axum + tokio)" + (f", beside {beside}" if beside else "")})
    windows = windows_text(result)
    log(f"   HTTP ceiling {result['rps']:.0f} req/s  p50 {result['p50_ms']:.2f} ms  "
        f"p99 {result['p99_ms']:.2f} ms  cpu {result['cpu_pct']:.0f}%{windows}")
    return result


def http_ceiling(args, load: Load, workdir: str, beside: str = "") -> dict:
    """The HTTP ceiling measured now, on its own: started, loaded, stopped."""
    server, url = start_http_ceiling(args, workdir)
    try:
        result = load.wrk(server, url)
    finally:
        server.stop()
    return http_ceiling_row(result, beside)


def crypto_ceilings(args, argon2: list, signatures: bool, beside: str = "",
                    algorithms: str = "RS256,ES256,EdDSA") -> list[dict]:
    """Signatures (when asked: of `algorithms`) and Argon2id hashes per second on all cores,
    measured now."""
    argv = [args.crypto_ceiling, "--seconds", str(args.crypto_seconds),
            "--signatures", "true" if signatures else "false", "--algorithms", algorithms]
    for m, t, p in argon2:
        argv += ["--argon2", f"{m},{t},{p}"]
    host0, load0 = host_cpu(), children_cpu()
    output = subprocess.run(argv, capture_output=True, text=True, check=True,
                            timeout=120 + 10 * args.crypto_seconds).stdout
    host1, load1 = host_cpu(), children_cpu()
    other = Load.foreign({}, host1[0] - host0[0], host1[1] - host0[1], 0.0,
                         load1 - load0)["other_cpu_pct"]
    crypto = json.loads(output.strip().splitlines()[-1])
    server = "ceiling (crypto)" + (f", beside {beside}" if beside else "")
    rows = []
    for algorithm, rate in crypto["signs_per_second"].items():
        rows.append({"scenario": f"sign-{algorithm}", "ceiling_key": f"sign-{algorithm}",
                     "kind": "ceiling", "server": server, "rps": rate, "other_cpu_pct": other,
                     "title": f"{algorithm} signatures/s ({crypto['threads']} threads, aws-lc-rs)"})
        log(f"   {algorithm} {rate:.0f} signatures/s")
    for params, rate in crypto["argon2id_per_second"].items():
        m, t, p = params.split("/")
        rows.append({"scenario": f"argon2-{params}", "ceiling_key": f"argon2-{params}",
                     "kind": "ceiling", "server": server, "rps": rate, "other_cpu_pct": other,
                     "title": f"Argon2id hashes/s m={int(m) // 1024}MiB t={t} p={p} "
                              f"({crypto['threads']} threads)"})
        log(f"   Argon2id {params}: {rate:.1f} hashes/s")
    return rows


def argon2_ceiling(args, params: tuple[int, int, int], beside: str) -> list[dict]:
    return crypto_ceilings(args, [params], signatures=False, beside=beside)


def rs256_ceiling(args, beside: str) -> list[dict]:
    return crypto_ceilings(args, [], signatures=True, beside=beside, algorithms="RS256")


def ceilings_section(args, load: Load, workdir: str, rows: list, checks: list) -> dict:
    """The signature ceilings, and any HTTP or Argon2id ceiling no section measured beside its
    scenarios. Answers every ceiling by key: the one measured here, else the first measured
    in a section (what the peers' rows and the chart show)."""
    log("\n== ceilings")
    checks.append(idle_check("ceilings", args.idle_wait))
    ceilings: dict = {}
    for row in rows:
        if row["kind"] == "ceiling":
            ceilings.setdefault(row["ceiling_key"], row["rps"])
    if "http" not in ceilings:
        result = http_ceiling(args, load, workdir)
        rows.append(result)
        ceilings["http"] = result["rps"]
    missing = [params for params in (SEED_ARGON2, OWASP_ARGON2)
               if argon2_key(params) not in ceilings]
    for row in crypto_ceilings(args, missing, signatures=True):
        rows.append(row)
        ceilings[row["ceiling_key"]] = row["rps"]
    return ceilings


# --------------------------------------------------------------------------------------------
# Report


# Which peer scenario each Gatehouse scenario is compared with.
PEER_OF = {
    "discovery": ("oidc-provider", "discovery"),
    "jwks": ("oidc-provider", "jwks"),
    "cc-RS256": ("oidc-provider", "cc-RS256"),
    "introspect-active": ("oidc-provider", "introspect-active"),
    "introspect-revoked": ("oidc-provider", "introspect-revoked"),
    "introspect-apikey": ("oidc-provider", "introspect-apikey"),
    "signin-seed": ("better-auth", "signin"),
    "signin-owasp": ("better-auth", "signin"),
    "me": ("better-auth", "me"),
}


# The scenarios paired with the peer in the PostgreSQL section too (their targets sit close to
# the line); the SQLite section pairs every scenario of PEER_OF that a peer runs.
PAIRED_ON_POSTGRES = {"discovery", "jwks", "cc-RS256"}


def first_peer_rows(rows: list) -> dict:
    """Each peer scenario's first row by (peer, scenario): what rows without a paired figure of
    their own, and the chart, compare with."""
    peers: dict = {}
    for row in rows:
        if row["kind"] == "peer":
            peers.setdefault((row["server"].split()[0], row["scenario"]), row)
    return peers


def peer_of_row(row: dict, peer_key: tuple[str, str] | None, peers: dict) -> dict | None:
    """The peer figure a Gatehouse row is compared with on `peer_key`: the one measured in
    windows interleaved with it when there is one, else the run's first."""
    if peer_key is None:
        return None
    paired = row.get("peer")
    if paired and (paired["server"].split()[0], paired["scenario"]) == peer_key:
        return paired
    return peers.get(peer_key)


def ceiling_of(scenario: str, ceilings: dict) -> tuple[float, str] | None:
    """The relevant ceiling of a scenario: (operations per second, what bounds it)."""
    http = ceilings.get("http")
    candidates: list[tuple[float, str]] = []
    if http:
        per_operation = {"codeflow-login": 5, "codeflow-sso": 2}.get(scenario, 1)
        candidates.append((http / per_operation, "HTTP" if per_operation == 1
                           else f"HTTP/{per_operation}"))
    signs = {"cc-RS256": ("RS256", 1), "cc-ES256": ("ES256", 1), "cc-EdDSA": ("EdDSA", 1),
             "refresh": ("RS256", 1), "codeflow-login": ("RS256", 2),
             "codeflow-sso": ("RS256", 2)}.get(scenario)
    if signs and ceilings.get(f"sign-{signs[0]}"):
        rate = ceilings[f"sign-{signs[0]}"] / signs[1]
        candidates.append((rate, signs[0] if signs[1] == 1 else f"{signs[0]}/{signs[1]}"))
    argon = {"signin-seed": SEED_ARGON2, "codeflow-login": SEED_ARGON2, "signup": SEED_ARGON2,
             "signin-owasp": OWASP_ARGON2}.get(scenario)
    if argon and ceilings.get(argon2_key(argon)):
        candidates.append((ceilings[argon2_key(argon)], "Argon2id"))
    return min(candidates) if candidates else None


def fmt(value, digits=1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float) and value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def build_table(rows: list, ceilings: dict) -> tuple[str, list[dict]]:
    peers = first_peer_rows(rows)
    header = ("| scenario | server | req/s | p50 ms | p99 ms | server CPU % | RSS idle/peak MiB "
              "| start-up ms | vs peer | vs ceiling | errors |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    lines = [header]
    for row in rows:
        if "p50_ms" not in row:
            mark = " ⚠" if row.get("other_cpu_pct", 0) > OTHER_LOAD_LIMIT else ""
            lines.append(f"| {row['title']}{mark} | {row['server']} | {fmt(row['rps'])} "
                         "| — | — | — | — | — | — | — | — |")
            continue
        vs_peer = vs_ceiling = "—"
        if row["kind"] == "gatehouse":
            peer_key = PEER_OF.get(row["scenario"])
            peer = peer_of_row(row, peer_key, peers)
            if peer_key and peer and peer["rps"]:
                ratio = row["rps"] / peer["rps"]
                vs_peer = f"{ratio:.2f}× {peer_key[0]}" + (" ⇄" if peer is row.get("peer") else "")
            bound = ceiling_of(row["scenario"], {**ceilings, **row.get("ceilings", {})})
            if bound and bound[0]:
                vs_ceiling = f"{row['rps'] / bound[0]:.2f} of {bound[1]}"
        idle_peak = f"{row['rss_idle_mib']:.1f} / {row['rss_peak_mib']:.1f}"
        mark = " ⚠" if row.get("other_cpu_pct", 0) > OTHER_LOAD_LIMIT else ""
        lines.append(
            f"| {row['title']}{mark} | {row['server']} | {fmt(row['rps'])} | {row['p50_ms']:.2f} "
            f"| {row['p99_ms']:.2f} | {row['cpu_pct']:.0f} | {idle_peak} "
            f"| {row['startup_ms']:.0f} | {vs_peer} | {vs_ceiling} | {row['errors']} |")
    return "\n".join(lines), evaluate_targets(rows, ceilings)


def evaluate_targets(rows: list, ceilings: dict) -> list[dict]:
    """The targets of issue #9, each met or missed, from the rows of this run."""
    targets: list[dict] = []
    peers = first_peer_rows(rows)

    def add(what: str, value: str, met: bool) -> None:
        targets.append({"what": what, "value": value, "met": met})

    def vs_peer(row, peer_key, factor):
        peer = peer_of_row(row, peer_key, peers)
        if peer and peer["rps"]:
            ratio = row["rps"] / peer["rps"]
            how = " (interleaved windows)" if peer is row.get("peer") else ""
            add(f"{row['title']} ({row['server']}) ≥ {factor:g}× {peer_key[0]} "
                f"{peer['title']}", f"{ratio:.2f}×{how}", ratio >= factor)

    def vs_ceiling(row, ceiling, name, share):
        if ceiling:
            ratio = row["rps"] / ceiling
            add(f"{row['title']} ({row['server']}) ≥ {share:.0%} of the {name} ceiling",
                f"{ratio:.0%}", ratio >= share)

    permits = os.cpu_count() or 1
    for row in rows:
        if row["kind"] != "gatehouse" or "p50_ms" not in row:
            continue
        scenario = row["scenario"]
        # The ceilings measured beside this row's section win over the run's last ones.
        near = {**ceilings, **row.get("ceilings", {})}
        http = near.get("http")
        if scenario in ("discovery", "jwks"):
            vs_peer(row, ("oidc-provider", scenario), 6)
            vs_ceiling(row, http, "HTTP", 0.65)
        elif scenario in ("introspect-active", "introspect-revoked", "introspect-apikey"):
            # Like with like: an active token with oidc-provider's active one, a revoked one
            # with its revoked one; an API key with its active opaque token (issue #21: ≥ 5×).
            vs_peer(row, ("oidc-provider", scenario), 5)
        elif scenario == "userinfo":
            vs_peer(row, ("oidc-provider", "introspect-active"), 5)
        elif scenario == "cc-RS256":
            vs_peer(row, ("oidc-provider", "cc-RS256"), 1.5)
        elif scenario in ("cc-DPoP", "introspect-DPoP"):
            # Issue #27: a proof costs one signature verification (and one replay-store
            # write); the same scenario without DPoP, measured in the same windows.
            plain = {"cc-DPoP": "cc-RS256", "introspect-DPoP": "introspect-active"}[scenario]
            base = next((r for r in rows if r["kind"] == "gatehouse" and r["scenario"] == plain
                         and r["server"] == row["server"] and r.get("rps")), None)
            if base:
                ratio = row["rps"] / base["rps"]
                errors = f", {row['errors']} errors" if row["errors"] else ""
                add(f"{row['title']} ({row['server']}) ≥ 50% of {base['title']}",
                    f"{ratio:.0%}{errors}", ratio >= 0.5 and not row["errors"])
        elif scenario in ("cc-ES256", "cc-EdDSA"):
            vs_ceiling(row, http, "HTTP", 0.15)
        elif scenario == "refresh":
            # Issue #26: a rotation is one signature and a few writes.
            bound = ceiling_of(scenario, near)
            if bound and bound[1] == "RS256":
                vs_ceiling(row, bound[0], "RS256 signing", 0.5)
        elif scenario == "codeflow-sso":
            bound = ceiling_of(scenario, near)
            if bound and bound[1] == "RS256/2":
                vs_ceiling(row, bound[0], "RS256/2 signing", 0.5)
        elif scenario in ("signin-seed", "signin-owasp", "signup"):
            params = OWASP_ARGON2 if scenario == "signin-owasp" else SEED_ARGON2
            key = argon2_key(params)
            vs_ceiling(row, near.get(key), "Argon2id", 0.9)
            if row.get("hashing_machine_pct") is not None and targets \
                    and targets[-1]["what"].endswith("Argon2id ceiling"):
                targets[-1]["value"] += (
                    f" (CPU during the window: Argon2 workers {row['hashing_machine_pct']:.1f} % "
                    f"of the machine, the server's other threads "
                    f"{row['server_other_machine_pct']:.1f} %)")
            if row.get("healthz_p99_ms") is not None:
                add(f"/healthz p99 during {row['title']} ({row['server']}) < 20 ms",
                    f"{row['healthz_p99_ms']:.2f} ms", row["healthz_p99_ms"] < 20)
            limit = (permits * params[0] * 1024 + 40e6) / 1048576
            add(f"peak RSS by the end of {row['title']} ({row['server']}) ≤ {permits} permits "
                f"× {params[0] // 1024} MiB + 40 MB = {limit:.0f} MiB",
                f"{row['rss_peak_mib']:.0f} MiB", row["rss_peak_mib"] <= limit)
        elif scenario == "me":
            vs_peer(row, ("better-auth", "me"), 25)
        elif row.get("variant") == "scale" and row.get("users", 0) > 1000:
            base = next((r for r in rows if r.get("variant") == "scale"
                         and r.get("base_scenario") == row["base_scenario"]
                         and r.get("users") == 1000), None)
            ratio = f", {row['rps'] / base['rps']:.2f}× the req/s with 1,000 users" \
                if base and base["rps"] else ""
            # The bound for every data-scale scenario. The sign-in's own latency is
            # mostly one Argon2id hash (≈ 25 ms with one client); the ratio to the 1,000-user
            # rate, measured two minutes earlier, is given for information (this machine's
            # speed alone moves it by ±25 %).
            add(f"{row['title']}: p99 < 50 ms", f"{row['p99_ms']:.2f} ms{ratio}",
                row["p99_ms"] < 50)
    main = next((r for r in rows if r["kind"] == "gatehouse"
                 and r["server"] == "Gatehouse SQLite"), None)
    if main:
        add("idle RSS (Gatehouse SQLite) < 20 MB (19.1 MiB)", f"{main['rss_idle_mib']:.1f} MiB",
            main["rss_idle_mib"] * 1048576 < 20e6)
        add("start-up to the first 200 (Gatehouse SQLite, migrations applied) < 100 ms",
            f"{main['startup_ms']:.0f} ms", main["startup_ms"] < 100)
    return targets


def machine_description() -> dict:
    cpu_model = "?"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as handle:
        memory_kib = int(handle.readline().split()[1])

    def version(argv):
        try:
            out = subprocess.run(argv, capture_output=True, text=True, timeout=20)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except Exception:
            return "?"
    return {
        "cpu": cpu_model, "cores": os.cpu_count(), "memory_gib": round(memory_kib / 1048576, 1),
        "kernel": platform.release(), "os": platform.platform(),
        "rustc": version(["rustc", "--version"]), "node": version(["node", "--version"]),
        "wrk": version(["wrk", "--version"]).split(" [")[0].split(" Copyright")[0],
        "gatehouse": version([ARGS.gatehouse, "version"]),
    }


def write_report(args, rows, ceilings, checks, targets_table, total_seconds, machine) -> str:
    table, targets = targets_table
    targets.append({"what": "the whole run (builds excluded) takes < 10 min",
                    "value": f"{total_seconds / 60:.1f} min", "met": total_seconds < 600})
    not_idle = [c for c in checks if not c["idle"]]
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `bench/run` (see `bench/README.md`); the latest full run replaces this "
        "file. Every server was started, seeded and stopped by the script on this machine, "
        "and the ceilings were measured in the same run, each right before the scenarios it "
        "bounds (see bench/README.md).",
        "",
        f"- **date**: {date}",
        f"- **command**: `{args.command}`",
        f"- **machine**: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['memory_gib']} GiB RAM, Linux {machine['kernel']}",
        f"- **software**: {machine['gatehouse']} (release build), {machine['rustc']}, "
        f"Node {machine['node']}, {machine['wrk']}, "
        + ", ".join(f"{k} {v}" for k, v in PEER_VERSIONS.items()),
        f"- **load shape**: `wrk -t{args.threads} -c{args.connections}` (drivers: "
        f"{args.connections} concurrent workers), {args.warmup} s warm-up then "
        f"{args.duration} s measured, per scenario; a scenario compared with a peer or the "
        f"HTTP ceiling is measured in windows interleaved with it (windows of "
        f"{INTERLEAVED_WINDOW} s, A B … Z, Z … B A, …, after 1 s of warm-up each); client and "
        "server share the machine",
        f"- **idle checks** (all cores, 1 s before each section): "
        + ", ".join(f"{c['section']} {c['busy']:.0%}" + ("" if c["idle"] else " (NOT idle)")
                    for c in checks),
        f"- **duration of the run**: {total_seconds / 60:.1f} min (builds excluded)",
        "",
    ]
    disturbed = [r for r in rows if r.get("other_cpu_pct", 0) > OTHER_LOAD_LIMIT]
    if not_idle or disturbed:
        lines += [f"> **Warning**: the machine was busy before {len(not_idle)} section(s) "
                  f"(see the idle checks) and other processes took more than "
                  f"{OTHER_LOAD_LIMIT:.0f} % of it during {len(disturbed)} measurement(s) "
                  "(marked ⚠): those figures are low.", ""]
    lines += [
        "![Gatehouse, peers and ceilings (requests or operations per second, log scale)]"
        "(benchmarks.svg)", "",
        table, "",
        "## Targets", "",
        "| target | value | |", "|---|---:|---|",
    ]
    lines += [f"| {t['what']} | {t['value']} | {'met' if t['met'] else '**missed**'} |"
              for t in targets]
    lines += ["", "## How to read it", "",
              "- **req/s**: completed requests (for the drivers: completed operations — one "
              "refresh, or one whole authorization-code flow) per second over the measured "
              "window; **p50/p99**: latency of one request (one operation) under the load.",
              "- **server CPU %**: the server process's utime+stime over the measured window "
              f"(/proc/PID/stat), 100 % = one core; the machine has {machine['cores']} cores and "
              "the load generator runs on them too.",
              "- **RSS idle/peak**: VmRSS after start-up and seeding, before any load; VmHWM "
              "(peak since start) after the scenario.",
              f"- **⚠**: during the measured window, processes other than the server (with "
              f"PostgreSQL and Redis) and the load generator used more than {OTHER_LOAD_LIMIT:.0f} % of the machine "
              "(/proc/stat minus both): the figure is disturbed.",
              "- **start-up ms**: from spawning the process to the first 200 on its health "
              "URL (database already seeded by the CLI).",
              "- **vs peer**: Gatehouse req/s ÷ the peer's req/s on the matching scenario; ⇄: "
              "the two were measured in alternating windows (Gatehouse, peer, peer, Gatehouse), "
              "so the machine's drift weighs on both alike, and the peer's row is listed right "
              "below; without ⇄, the peer's first figure of the run. "
              "oidc-provider introspects its opaque tokens (its JWT access tokens are not "
              "introspectable); better-auth hashes passwords with scrypt (its default), "
              "Gatehouse with Argon2id.",
              "- **vs ceiling**: Gatehouse req/s ÷ the relevant ceiling measured in this run "
              "(for discovery and JWKS, the HTTP ceiling measured in windows interleaved with "
              "them; for a sign-in, the mean of the Argon2id ceiling's windows interleaved "
              "with it; for refresh and the signed-in code flow, the mean of the RS256 "
              f"ceiling's windows interleaved with it ({SIGNING_WINDOWS} windows of the "
              "scenario, each between two of the ceiling); otherwise the one measured beside "
              "the row's section): "
              "HTTP (the minimal axum server under the same load), the signing algorithm "
              "(signatures/s on all cores), Argon2id with the same parameters (hashes/s on all "
              "cores), whichever is lowest; a code flow with sign-in is 5 HTTP requests, one "
              "Argon2id verification and 2 signatures; a signed-in code flow 2 requests and 2 "
              "signatures.",
              "- Targets: those of issue #9 (ratios to the peer and to the ceilings measured "
              "in this same run, latency and memory bounds, the data-scale p99, the whole "
              "run under 10 minutes). None is enforced: the exit status only reflects "
              "failures and errors.",
              "- **data scale**: the same SQLite server with 1,000 users, then after "
              "`gatehouse user import` of the rest; sign-in runs with one client at a time "
              "and the OWASP Argon2id parameters so the lookup is visible in its latency.",
              ""]
    if FAILURES:
        lines += ["## Failures", ""] + [f"- {f}" for f in FAILURES] + [""]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------

FAILURES: list[str] = []
PEER_VERSIONS: dict[str, str] = {}
ARGS: argparse.Namespace


def peer_versions() -> dict:
    versions = {}
    for name in ("oidc-provider", "better-auth"):
        path = os.path.join(BENCH, "peers", "node_modules", name, "package.json")
        try:
            with open(path) as handle:
                versions[name] = json.load(handle)["version"]
        except OSError:
            pass
    return versions


def main() -> int:
    global ARGS
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true",
                        help="Gatehouse on SQLite only, short scenarios, no report in docs/")
    parser.add_argument("--gatehouse", required=True)
    parser.add_argument("--ceiling")
    parser.add_argument("--crypto-ceiling")
    parser.add_argument("--duration", type=int)
    parser.add_argument("--warmup", type=int)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--crypto-seconds", type=float, default=2.0)
    parser.add_argument("--idle-wait", type=float)
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--scale-users", type=int,
                        help="users in the data-scale scenario (default 1000000; 2000 in smoke)")
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--postgres-all", action="store_true",
                        help="also ES256/EdDSA and the OWASP sign-in on PostgreSQL")
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--no-ceilings", action="store_true")
    parser.add_argument("--only", help="comma-separated scenario keys to run (e.g. jwks,me, "
                                       "cc-ES256, signin-owasp); for profiling, not for reports")
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    parser.add_argument("--output", help="markdown report (default docs/benchmarks.md; "
                                         "bench/results/smoke.md with --smoke)")
    parser.add_argument("--command", default="bench/run")
    args = ARGS = parser.parse_args()
    for name in ("gatehouse", "ceiling", "crypto_ceiling"):
        if getattr(args, name):
            setattr(args, name, os.path.abspath(getattr(args, name)))
    if args.smoke:
        args.duration = args.duration or 2
        args.warmup = 1 if args.warmup is None else args.warmup
        args.idle_wait = 5 if args.idle_wait is None else args.idle_wait
        args.no_postgres = args.no_peers = args.no_ceilings = True
        args.scale_users = args.scale_users or 2000
    else:
        args.duration = args.duration or 10
        args.warmup = 1 if args.warmup is None else args.warmup
        args.idle_wait = 30 if args.idle_wait is None else args.idle_wait
        args.scale_users = args.scale_users or 1_000_000
    results_dir = os.path.join(BENCH, "results")
    os.makedirs(results_dir, exist_ok=True)
    output = args.output or (os.path.join(results_dir, "smoke.md") if args.smoke
                             else os.path.join(REPO, "docs", "benchmarks.md"))

    atexit.register(drop_databases)
    atexit.register(stop_all)
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, lambda number, _frame: sys.exit(128 + number))

    PEER_VERSIONS.update(peer_versions())
    started = time.monotonic()
    workdir = tempfile.mkdtemp(prefix="gatehouse-bench-")
    load = Load(args)
    rows: list[dict] = []
    checks: list[dict] = []
    ceilings: dict = {}
    peers = None
    try:
        if not args.no_peers:
            log("\n== peers (started now, idle until their scenarios)")
            peers = Peers(args, workdir)
        gatehouse_section(args, load, workdir, "sqlite", rows, checks, peers)
        if not args.no_scale:
            datascale_section(args, load, workdir, rows, checks)
        if not args.no_postgres:
            try:
                gatehouse_section(args, load, workdir, "postgres", rows, checks, peers)
            except Exception as error:
                log(f"   PostgreSQL section FAILED: {error}")
                FAILURES.append(f"PostgreSQL section: {error}")
            finally:
                drop_databases()
        if peers is not None:
            peers_section(args, load, peers, rows, checks)
        if not args.no_ceilings:
            ceilings = ceilings_section(args, load, workdir, rows, checks)
    finally:
        stop_all()
        drop_databases()
        if FAILURES:
            log(f"\nserver logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    total = time.monotonic() - started

    machine = machine_description()
    table = build_table(rows, ceilings)
    report = write_report(args, rows, ceilings, checks, table, total, machine)
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as handle:
        handle.write(report)
    raw = {"machine": machine, "args": vars(args), "rows": rows, "ceilings": ceilings,
           "idle_checks": checks, "failures": FAILURES, "seconds": total,
           "peers": PEER_VERSIONS}
    raw_path = os.path.join(results_dir, "smoke.json" if args.smoke else "latest.json")
    with open(raw_path, "w") as handle:
        json.dump(raw, handle, indent=1)
    if not args.smoke:
        svg = os.path.join(os.path.dirname(os.path.abspath(output)), "benchmarks.svg")
        subprocess.run([sys.executable, os.path.join(BENCH, "chart.py"), raw_path, svg],
                       check=True, timeout=60)
        log(f"\nwrote {output}, {svg} and {raw_path}")
    else:
        log(f"\nwrote {output} and {raw_path}")

    log("\n" + table[0] + "\n")
    for target in table[1]:
        log(f"target: {target['what']}: {target['value']} "
            f"({'met' if target['met'] else 'missed'})")
    errors = [row for row in rows if row.get("errors") or not row.get("rps")]
    if FAILURES or errors:
        log(f"\n{len(FAILURES)} failure(s), {len(errors)} scenario(s) with errors "
            "or no throughput")
        for failure in FAILURES:
            log(f"  - {failure.splitlines()[0]}")
        return 1
    log(f"bench: {len(rows)} rows in {total:.0f} s, no errors")
    return 0


if __name__ == "__main__":
    sys.exit(main())
