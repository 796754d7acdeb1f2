#!/usr/bin/env python3
"""Two Gatehouse builds side by side on the write paths: sign-up and password sign-in.

    python3 bench/compare_builds.py --before OLD_BINARY --after NEW_BINARY \\
        [--backend sqlite|postgres] [--argon2 seed|owasp] [--rounds 6] [--window 4]

Both servers run at once on their own data (SQLite files, or a database each on the
PostgreSQL at --postgres-url), seeded alike. Each scenario is measured in alternating wrk
windows (before, after, after, before, ...), so both sides of a ratio see the same machine:
this one's speed swings by ±25 % within seconds, far more than what is being measured.

It answers, per scenario and side: requests per second, p50 latency, and the CPU the server
spent per request outside its Argon2 workers (threads `gatehouse-argon*`): the hashing is the
same in both builds and dominates the time, so that figure is where a change to what a request
does around the hash shows. Ratios are after/before. Built for the question of #22 ("does
emitting events — the event queue row, the chainer — cost sign-up and sign-in more than 10 %?"),
usable for any two builds.

Needs wrk (bench/run installs it) and, for --backend postgres, psql and a Redis.
"""

import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SIGN_UP_LUA = os.path.join(HERE, "wrk", "sign_up.lua")
REQUEST_LUA = os.path.join(HERE, "wrk", "request.lua")
ARGON2 = {"seed": (65536, 3, 4), "owasp": (19456, 2, 1)}
EMAIL = "bench@example.com"
PASSWORD = "Bench-" + secrets.token_urlsafe(12)
CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def thread_cpu(pid: int) -> tuple[float, float]:
    """(Argon2 workers, every other thread) CPU seconds of the process."""
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
            continue
        name = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / CLK_TCK
        if name.startswith("gatehouse-argon"):
            hashing += seconds
        else:
            other += seconds
    return hashing, other


def psql(url: str, sql: str) -> None:
    subprocess.run(["psql", url.rstrip("/") + "/postgres", "-v", "ON_ERROR_STOP=1", "-qAtc", sql],
                   check=True, capture_output=True, timeout=60)


class Server:
    """One build, started on its own data."""

    def __init__(self, name: str, binary: str, args, workdir: str) -> None:
        self.name, self.binary, self.args = name, binary, args
        self.dir = os.path.join(workdir, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database = None
        memory, iterations, parallelism = ARGON2[args.argon2]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEHOUSE_")}
        env.pop("RUST_LOG", None)
        env.update({
            "GATEHOUSE_HTTP_ADDR": f"127.0.0.1:{self.port}",
            "GATEHOUSE_DATA_DIR": self.dir,
            "GATEHOUSE_MASTER_KEY": secrets.token_hex(32),
            "GATEHOUSE_RATE_LIMIT_ENABLED": "false",
            "GATEHOUSE_PASSWORD_MEMORY_KIB": str(memory),
            "GATEHOUSE_PASSWORD_ITERATIONS": str(iterations),
            "GATEHOUSE_PASSWORD_PARALLELISM": str(parallelism),
            "GATEHOUSE_LOG_LEVEL": "warn",
        })
        if args.backend == "postgres":
            self.database = f"compare_{os.getpid()}_{name}"
            psql(args.postgres_url, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")
            psql(args.postgres_url, f"CREATE DATABASE {self.database}")
            env["GATEHOUSE_DATABASE_URL"] = f"{args.postgres_url.rstrip('/')}/{self.database}"
            env["GATEHOUSE_REDIS_URL"] = args.redis_url
            env["GATEHOUSE_REDIS_KEY_PREFIX"] = f"{self.database}:"
        self.env = env
        self.process = None

    def cli(self, *arguments: str) -> None:
        result = subprocess.run([self.binary, *arguments], cwd=self.dir, env=self.env,
                                capture_output=True, text=True, timeout=120)
        if result.returncode != 0:
            raise RuntimeError(f"{self.name}: gatehouse {' '.join(arguments[:2])} failed:\n"
                               f"{result.stdout}{result.stderr}")

    def start(self) -> None:
        self.cli("migrate")
        self.cli("user", "create", "--email", EMAIL, "--password", PASSWORD, "--verified")
        log_file = open(os.path.join(self.dir, "server.log"), "w")
        self.process = subprocess.Popen([self.binary, "serve"], cwd=self.dir, env=self.env,
                                        stdout=log_file, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise RuntimeError(f"{self.name} did not start; see {self.dir}/server.log")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self.database:
            psql(self.args.postgres_url, f"DROP DATABASE IF EXISTS {self.database} WITH (FORCE)")


def wrk(server: Server, scenario: str, seconds: float, args) -> dict:
    """One window of `scenario` against `server`: wrk's summary and the server's CPU."""
    if scenario == "sign-up":
        tail = [SIGN_UP_LUA, server.url + "/v1/auth/sign-up", "--",
                secrets.token_hex(4), PASSWORD]
    else:
        body = json.dumps({"email": EMAIL, "password": PASSWORD})
        tail = [REQUEST_LUA, server.url + "/v1/auth/sign-in", "--", "POST",
                "application/json", body]
    argv = ["wrk", "-t", str(args.threads), "-c", str(args.connections), "-d", f"{max(1, round(seconds))}s",
            "--timeout", "30s", "-s", *tail]
    pid = server.process.pid
    before = thread_cpu(pid)
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 90)
    after = thread_cpu(pid)
    lines = [line for line in (result.stdout + result.stderr).splitlines()
             if line.startswith("BENCH_JSON ")]
    if not lines:
        raise RuntimeError(f"wrk printed no summary:\n{result.stdout}{result.stderr}")
    data = json.loads(lines[-1][len("BENCH_JSON "):])
    data["hashing_cpu"] = after[0] - before[0]
    data["other_cpu"] = after[1] - before[1]
    return data


def summary(windows: list[dict]) -> dict:
    requests = sum(w["requests"] for w in windows)
    seconds = sum(w["duration_us"] for w in windows) / 1e6
    errors = sum(sum(w["errors"].values()) for w in windows)
    weights = [w["requests"] or 1 for w in windows]
    p50 = sum(w["latency_us"]["p50"] * k for w, k in zip(windows, weights)) / sum(weights)
    return {
        "requests": requests,
        "errors": errors,
        "rps": requests / seconds if seconds else 0.0,
        "p50_ms": p50 / 1000,
        "other_cpu_ms_per_request": 1000 * sum(w["other_cpu"] for w in windows) / max(requests, 1),
        "hashing_cpu_ms_per_request":
            1000 * sum(w["hashing_cpu"] for w in windows) / max(requests, 1),
        "window_rps": [round(w["requests"] / (w["duration_us"] / 1e6), 1) for w in windows],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", required=True, help="the older gatehouse binary")
    parser.add_argument("--after", required=True, help="the newer gatehouse binary")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--argon2", choices=sorted(ARGON2), default="seed",
                        help="seed: Gatehouse's defaults (m=64 MiB t=3 p=4); owasp: m=19 MiB t=2 p=1")
    parser.add_argument("--scenarios", default="sign-up,sign-in")
    parser.add_argument("--rounds", type=int, default=6, help="window pairs per scenario")
    parser.add_argument("--window", type=int, default=4, help="seconds per window")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--postgres-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        log("wrk is missing (bench/run installs it: apt-get install wrk)")
        return 2
    workdir = tempfile.mkdtemp(prefix="gatehouse-compare-")
    servers = [Server("before", args.before, args, workdir),
               Server("after", args.after, args, workdir)]
    results = {}
    try:
        for server in servers:
            server.start()
        for scenario in args.scenarios.split(","):
            log(f"== {scenario} ({args.backend}, Argon2id {args.argon2}): warming up")
            for server in servers:
                wrk(server, scenario, 2, args)
            windows: dict[str, list[dict]] = {server.name: [] for server in servers}
            for round_number in range(args.rounds):
                order = servers if round_number % 2 == 0 else list(reversed(servers))
                for server in order:
                    windows[server.name].append(wrk(server, scenario, args.window, args))
            results[scenario] = {name: summary(measured) for name, measured in windows.items()}
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    print(f"# {args.backend}, Argon2id {args.argon2}, {args.rounds} × {args.window:g} s windows "
          f"per side, {args.connections} connections")
    print("| scenario | build | req/s | p50 ms | CPU ms/request outside Argon2 | errors |")
    print("|---|---|---:|---:|---:|---:|")
    for scenario, sides in results.items():
        for name in ("before", "after"):
            side = sides[name]
            print(f"| {scenario} | {name} | {side['rps']:.1f} | {side['p50_ms']:.1f} | "
                  f"{side['other_cpu_ms_per_request']:.3f} | {side['errors']} |")
        before, after = sides["before"], sides["after"]
        rps = after["rps"] / before["rps"] if before["rps"] else float("nan")
        cpu = (after["other_cpu_ms_per_request"] / before["other_cpu_ms_per_request"]
               if before["other_cpu_ms_per_request"] else float("nan"))
        print(f"| {scenario} | after/before | {rps:.3f} | | {cpu:.3f} | |")
    print()
    print("Windows (req/s): " + "; ".join(
        f"{scenario} {name} {sides[name]['window_rps']}"
        for scenario, sides in results.items() for name in ("before", "after")))
    print(json.dumps(results), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
