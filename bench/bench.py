#!/usr/bin/env python3
"""Roster's benchmark: the release binary on a fresh database with 10,000
users, driven over loopback by wrk at 64 connections, one scenario at a time.

Scenarios (Roster's paths; the FastAPI peer's in brackets):
  a  GET /health/live                       the framework ceiling
  b  GET /api/v1/users/{id}   [/users/{id}]  bearer token
  c  GET /api/v1/users?limit=10  [/users?skip=0&limit=10]
  d  GET /api/v1/users/me     [/users/me]
  e  GET /api/v2/users?limit=10 first page vs a deep cursor, and
     GET /api/v1/users?skip=0 vs skip=9990: how cost grows with depth
  f  POST /api/v1/auth/login  [/auth/login]  bcrypt-bound, against the
     ceiling cores / one-hash-time measured in the same run
  g  b again while f runs on other connections
  h  a and b with the rate-limit fairing off: what the fairings cost
  i  b with metrics off (`metrics.enabled = false`): what metrics cost

For each: requests/s, p50 and p99 latency, errors (non-2xx and socket
errors), and the server's peak RSS during the scenario. Prints a Markdown
table and writes bench/RESULTS.md and bench/results.json (SQLite) or
bench/RESULTS-postgres.md and bench/results-postgres.json (PostgreSQL).

The peer (--compare) is bench/peer/, run on the same backend as Roster.
Environment:
  ROSTER_BENCH_POSTGRES_URL  admin URL for --backend postgres, default
                             postgres://postgres@127.0.0.1:5432/test; each
                             server gets a fresh database beside it
  ROSTER_PEER_VENV           the peer's venv, default $ROSTER_CACHE/peer-venv
                             (ROSTER_CACHE as in tests/services.sh:
                             $XDG_CACHE_HOME/roster, else ~/.cache/roster)
Standard library only; needs wrk, psql for PostgreSQL and, with --compare,
python3-venv.
"""

import argparse
import json
import os
import platform
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from urllib import request as urlrequest

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT / "bench" / "peer"
CACHE = Path(
    os.environ.get("ROSTER_CACHE")
    or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "roster"
)
PEER_VENV = Path(os.environ.get("ROSTER_PEER_VENV") or CACHE / "peer-venv")
DEFAULT_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/test"
USERS = 10_000
PASSWORD = "Passw0rd1"
SECRET = "bench-secret-0123456789abcdef0123456789"
NO_LIMITS = "{per_minute=1000000000,login_per_minute=1000000000,register_per_minute=1000000000}"

WRK_SCRIPT = r"""
local method, body, token = os.getenv("WRK_METHOD"), os.getenv("WRK_BODY"), os.getenv("WRK_TOKEN")
wrk.method = method or "GET"
if body and body ~= "" then
  wrk.body = body
  wrk.headers["Content-Type"] = "application/json"
end
if token and token ~= "" then wrk.headers["Authorization"] = "Bearer " .. token end
local non2xx = 0
function response(status, headers, body)
  if status < 200 or status > 299 then non2xx = non2xx + 1 end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"socket_errors":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout + e.status))
end
"""
# `response` runs in each wrk thread; the non-2xx count comes from wrk's own
# "Non-2xx or 3xx responses" line instead.


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, token=None, form=False):
    data = None
    headers = {}
    if body is not None:
        if form:
            data = "&".join(f"{k}={v}" for k, v in body.items()).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urlrequest.Request(url, data=data, method=method, headers=headers)
    try:
        with urlrequest.urlopen(req, timeout=60) as reply:
            return reply.status, json.loads(reply.read() or b"null")
    except urlrequest.HTTPError as err:
        return err.code, json.loads(err.read() or b"null")


def wait_live(url, process, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited early with {process.returncode}")
        try:
            with urlrequest.urlopen(url, timeout=1) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} never answered")


class RssSampler:
    """Peak RSS (KiB) of a process tree while a scenario runs."""

    def __init__(self, pid):
        self.pid = pid
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _tree(self):
        pids = [self.pid]
        try:
            pids += [int(p) for p in subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout.split()]
        except OSError:
            pass
        return pids

    def sample(self):
        total = 0
        for pid in self._tree():
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        self.peak = max(self.peak, total)
        return total

    def _run(self):
        while not self._stop.is_set():
            self.sample()
            time.sleep(0.1)

    def __enter__(self):
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.sample()


def wrk(url, *, connections, duration, token=None, method="GET", body=None, threads=2, script=None):
    env = dict(os.environ, WRK_METHOD=method, WRK_BODY=json.dumps(body) if body else "", WRK_TOKEN=token or "")
    out = subprocess.run(
        ["wrk", f"-t{min(threads, connections)}", f"-c{connections}", f"-d{duration}", "--timeout", "30s", "-s", script, url],
        capture_output=True, text=True, env=env, check=True,
    ).stdout
    line = next(l for l in out.splitlines() if l.startswith("WRKJSON "))
    stats = json.loads(line[len("WRKJSON "):])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    stats["errors"] = stats.pop("socket_errors") + (int(non2xx.group(1)) if non2xx else 0)
    stats["rps"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["p50_ms"] = stats.pop("p50_us") / 1000
    stats["p99_ms"] = stats.pop("p99_us") / 1000
    return stats


class Roster:
    name = "roster"

    def __init__(self, binary, workdir, database_url, extra_env=None):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url
        env = dict(
            os.environ,
            ROCKET_PORT=str(self.port),
            ROCKET_ADDRESS="127.0.0.1",
            ROCKET_PROFILE="release",
            ROCKET_JWT_SECRET=SECRET,
            ROCKET_LOG_LEVEL="off",
            ROCKET_RATE_LIMIT=NO_LIMITS,
            ROCKET_UPLOAD=f'{{dir="{workdir}/uploads"}}',
            # No SMTP server here: release refuses to start without one
            # unless emails are off.
            ROCKET_SMTP="{enabled=false}",
            # 64 logins at once queue for the hashers longer than the
            # default 5 s: (f) measures throughput, not the queue's bound.
            ROCKET_BCRYPT_QUEUE_TIMEOUT="60",
            DATABASE_URL=database_url,
        )
        env.pop("ROCKET_CONFIG", None)
        env.update(extra_env or {})
        self.process = subprocess.Popen([binary], cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_live(f"{self.base}/health/live", self.process)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=60)

    def seed(self):
        status, _ = http("POST", f"{self.base}/api/v1/users", {"username": "benchseed", "email": "seed@example.com", "password": PASSWORD})
        assert status == 201, status
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        if self.database_url.startswith("sqlite"):
            import sqlite3

            path = self.database_url.split("://", 1)[1].split("?", 1)[0]
            db = sqlite3.connect(path, timeout=30)
            db.execute(
                "WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq WHERE n < ?) "
                "INSERT INTO users (username, email, password_hash, age, role, is_active, token_version, created_at, updated_at) "
                "SELECT printf('user%05d', n), printf('user%05d@example.com', n), "
                "(SELECT password_hash FROM users WHERE username = 'benchseed'), 18 + n % 60, 'user', n % 50 != 0, 0, ?, ? FROM seq",
                (USERS, now, now),
            )
            db.commit()
            db.execute("PRAGMA optimize")
            db.close()
        else:
            sql = (
                "INSERT INTO users (username, email, password_hash, age, role, is_active, token_version, created_at, updated_at) "
                f"SELECT format('user%s', lpad(n::text, 5, '0')), format('user%s@example.com', lpad(n::text, 5, '0')), "
                f"(SELECT password_hash FROM users WHERE username = 'benchseed'), 18 + n % 60, 'user', n % 50 <> 0, 0, '{now}', '{now}' "
                f"FROM generate_series(1, {USERS}) AS n; ANALYZE users;"
            )
            subprocess.run(["psql", self.database_url, "-qc", sql], check=True)

    def token(self, username):
        status, body = http("POST", f"{self.base}/api/v1/auth/login", {"username": username, "password": PASSWORD})
        assert status == 200, (status, body)
        return body["access_token"]

    def paths(self, user_id):
        return {
            "a": "/health/live",
            "b": f"/api/v1/users/{user_id}",
            "c": "/api/v1/users?limit=10",
            "d": "/api/v1/users/me",
            "f": "/api/v1/auth/login",
        }


class Peer:
    """bench/peer: the tutorial's FastAPI stack, 2 uvicorn workers.

    database_url is SQLAlchemy's: sqlite+aiosqlite:///path or
    postgresql+asyncpg://user@host:port/db."""

    name = "fastapi"

    def __init__(self, database_url):
        venv = PEER_VENV
        stamp = venv / ".requirements"
        requirements = (PEER / "requirements.txt").read_text()
        if not (venv / "bin" / "python").exists() or not stamp.exists() or stamp.read_text() != requirements:
            subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
            subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "-r", str(PEER / "requirements.txt")], check=True)
            stamp.write_text(requirements)
        self.python = str(venv / "bin" / "python")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        # The tutorial's limiter runs, out of reach as Roster's limits are.
        self.env = dict(os.environ, SECRET_KEY=SECRET, PYTHON=self.python, DATABASE_URL=database_url,
                        RATE_LIMIT_PER_MINUTE="1000000000", PYTHONDONTWRITEBYTECODE="1")
        subprocess.run([self.python, "seed.py", str(USERS), PASSWORD], cwd=PEER, env=self.env, check=True, capture_output=True)
        self.process = subprocess.Popen(["./run.sh", str(self.port), "2"], cwd=PEER, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_live(f"{self.base}/docs", self.process)

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()

    def token(self, username):
        status, body = http("POST", f"{self.base}/auth/login", {"username": username, "password": PASSWORD})
        assert status == 200, (status, body)
        return body["access_token"]

    def paths(self, user_id):
        return {
            "b": f"/users/{user_id}",
            "c": "/users?skip=0&limit=10",
            "d": "/users/me",
            "f": "/auth/login",
        }


def base36(n):
    """A v2 cursor: `n` in base 36, eleven digits wide."""
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    for _ in range(11):
        out = digits[n % 36] + out
        n //= 36
    return out


def run_scenarios(server, script, duration, connections, only_peer_set=False):
    """Runs the scenarios on one server; returns {label: stats}."""
    results = {}
    login_user = "user00501"
    # Reads sign in as another user: the logins of (f) and (g) end the
    # login user's oldest sessions (max_sessions_per_user).
    read_user = "user00502"
    token = server.token(read_user)
    user_id = 5003  # Roster: user05002 (id 1 is benchseed); the peer: user05003; both active
    paths = server.paths(user_id)
    login_body = {"username": login_user, "password": PASSWORD}

    def measure(label, path, **kw):
        with RssSampler(server.process.pid) as rss:
            stats = wrk(server.base + path, connections=connections, duration=duration, script=script, **kw)
        stats["peak_rss_mib"] = rss.peak / 1024
        results[label] = stats
        print(f"  {server.name:8} {label:18} {stats['rps']:10.1f} req/s  p50 {stats['p50_ms']:8.2f} ms  p99 {stats['p99_ms']:8.2f} ms  errors {stats['errors']}  rss {stats['peak_rss_mib']:.1f} MiB", flush=True)
        return stats

    if "a" in paths:
        measure("a health", paths["a"])
    measure("b user by id", paths["b"], token=token)
    measure("c list", paths["c"], token=token)
    measure("d me", paths["d"], token=token)
    if server.name == "roster":
        measure("e v2 first page", "/api/v2/users?limit=10", token=token)
        measure("e v2 deep cursor", f"/api/v2/users?limit=10&cursor={base36(9990)}", token=token)
        measure("e v1 skip=0", "/api/v1/users?skip=0&limit=10", token=token)
        measure("e v1 skip=9990", "/api/v1/users?skip=9990&limit=10", token=token)
        # One connection: the time of one login is the time of one hash.
        one = wrk(server.base + paths["f"], connections=1, threads=1, duration=duration, script=script, method="POST", body=login_body)
        results["f one hash"] = one
        cores = os.cpu_count() or 1
        results["f ceiling"] = {"rps": cores / (one["p50_ms"] / 1000), "one_hash_ms": one["p50_ms"], "cores": cores}
        print(f"  one login alone: {one['p50_ms']:.1f} ms; ceiling {results['f ceiling']['rps']:.1f} logins/s on {cores} cores")
    measure("f login", paths["f"], method="POST", body=login_body)
    if server.name == "roster":
        # g: reads on half the connections while logins flood the other half.
        half = max(1, connections // 2)
        flood = threading.Thread(target=lambda: wrk(server.base + paths["f"], connections=half, duration=duration, script=script, method="POST", body=login_body))
        flood.start()
        time.sleep(0.5)
        with RssSampler(server.process.pid) as rss:
            stats = wrk(server.base + paths["b"], connections=half, duration=duration, script=script, token=token)
        flood.join()
        stats["peak_rss_mib"] = rss.peak / 1024
        results["g reads during logins"] = stats
        print(f"  {server.name:8} g reads during logins {stats['rps']:10.1f} req/s  p50 {stats['p50_ms']:.2f} ms  p99 {stats['p99_ms']:.2f} ms  errors {stats['errors']}")
    results["_token_user"] = read_user
    return results


def verdicts(roster, peer, fairings, metrics, backend="sqlite"):
    rows = []

    def add(target, ok, detail):
        rows.append((target, "met" if ok else "NOT met", detail))

    def peak_rss():
        peak = max(v.get("peak_rss_mib", 0) for k, v in roster.items() if isinstance(v, dict))
        add("peak RSS under 64 MiB", peak < 64, f"{peak:.1f} MiB")

    share = metrics["b user by id"]["on_rps"] / metrics["b user by id"]["off_rps"]
    add("(b) with metrics within 5 % of without", share >= 0.95, f"{share * 100:.0f} %")

    if backend == "postgres":
        s = roster["b user by id"]
        add("(b) p99 under 10 ms", s["p99_ms"] < 10, f"{s['p99_ms']:.2f} ms")
        if peer:
            for key, label in (("b user by id", "b"), ("c list", "c"), ("d me", "d")):
                ratio = roster[key]["rps"] / peer[key]["rps"]
                add(f"({label}) at least 20x the FastAPI peer on PostgreSQL", ratio >= 20, f"{ratio:.1f}x")
        peak_rss()
        return rows

    for key, label in (("b user by id", "b"), ("c list", "c"), ("d me", "d")):
        s = roster[key]
        add(f"({label}) p99 under 10 ms", s["p99_ms"] < 10, f"{s['p99_ms']:.2f} ms")
        if peer:
            ratio = s["rps"] / peer[key]["rps"]
            add(f"({label}) at least 10x the FastAPI peer", ratio >= 10, f"{ratio:.1f}x")
    ab = roster["b user by id"]["rps"] / roster["a health"]["rps"]
    add("(b) at least 50 % of (a)", ab >= 0.5, f"{ab * 100:.0f} %")
    deep = roster["e v2 deep cursor"]["p50_ms"] / max(roster["e v2 first page"]["p50_ms"], 1e-6)
    deep_rps = roster["e v2 first page"]["rps"] / roster["e v2 deep cursor"]["rps"]
    add("(e) deep v2 page costs at most 1.5x the first", max(deep, deep_rps) <= 1.5, f"{deep_rps:.2f}x time per request")
    fr = roster["f login"]["rps"] / roster["f ceiling"]["rps"]
    add("(f) at least 90 % of the bcrypt ceiling", fr >= 0.9, f"{fr * 100:.0f} % ({roster['f login']['rps']:.1f} of {roster['f ceiling']['rps']:.1f}/s)")
    g = roster["g reads during logins"]["p99_ms"] / roster["b user by id"]["p99_ms"]
    add("(g) reads' p99 under 3x their p99 in (b)", g < 3, f"{g:.2f}x")
    peak_rss()
    for key, label in (("a health", "a"), ("b user by id", "b")):
        share = fairings[key]["on_rps"] / fairings[key]["off_rps"]
        add(f"({label}) with the rate-limit fairing within 10 % of without", share >= 0.9, f"{share * 100:.0f} %")
    return rows


def table(roster, peer, fairings, metrics):
    lines = ["| scenario | req/s | p50 ms | p99 ms | errors | peak RSS MiB |" + (" FastAPI req/s | FastAPI p99 ms | Roster / FastAPI |" if peer else ""),
             "|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if peer else "")]
    for key, s in roster.items():
        if key.startswith("_") or key == "f ceiling" or key == "f one hash":
            continue
        row = f"| {key} | {s['rps']:.1f} | {s['p50_ms']:.2f} | {s['p99_ms']:.2f} | {s['errors']} | {s.get('peak_rss_mib', 0):.1f} |"
        if peer:
            p = peer.get(key)
            ratio = f"{s['rps'] / p['rps']:.1f}x" if p and p["rps"] else "–"
            row += f" {p['rps']:.1f} | {p['p99_ms']:.2f} | {ratio} |" if p else " | | |"
        lines.append(row)
    c = roster["f ceiling"]
    lines.append(f"\nbcrypt: one login alone takes {c['one_hash_ms']:.1f} ms (p50, one connection), so the ceiling on {c['cores']} cores is {c['rps']:.1f} logins/s.")
    if fairings:
        lines.append("\nFairing cost (h): two servers, the rate-limit fairing on and off (`rate_limit.enabled = false`), runs interleaved, medians of three:\n")
        lines.append("| scenario | on req/s | off req/s | on / off |")
        lines.append("|---|---:|---:|---:|")
        for key in ("a health", "b user by id"):
            on, off = fairings[key]["on_rps"], fairings[key]["off_rps"]
            lines.append(f"| {key} | {on:.1f} | {off:.1f} | {on / off * 100:.0f} % |")
    lines.append("\nMetrics cost (i): two servers, metrics on and off (`metrics.enabled = false`), runs interleaved, medians of three:\n")
    lines.append("| scenario | on req/s | off req/s | on / off |")
    lines.append("|---|---:|---:|---:|")
    for key, cost in metrics.items():
        on, off = cost["on_rps"], cost["off_rps"]
        lines.append(f"| {key} | {on:.1f} | {off:.1f} | {on / off * 100:.0f} % |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite",
                        help=f"the database of Roster and of the peer; postgres: ROSTER_BENCH_POSTGRES_URL, default {DEFAULT_POSTGRES_URL}")
    parser.add_argument("--postgres", dest="backend", action="store_const", const="postgres", help="same as --backend postgres")
    parser.add_argument("--postgres-sslmode", default="disable", choices=["disable", "prefer", "require"],
                        help="TLS between each server and PostgreSQL, the same for Roster and the peer "
                             "(default disable: both sit beside the database on loopback; prefer is "
                             "libpq's and both drivers' default, TLS when the server offers it)")
    parser.add_argument("--compare", action="store_true", help="also run the FastAPI peer (bench/peer) on the same data and backend")
    parser.add_argument("--duration", default="10s")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--out", help="default bench/RESULTS.md, or bench/RESULTS-postgres.md with --backend postgres")
    parser.add_argument("--json", help="default bench/results.json, or bench/results-postgres.json with --backend postgres")
    args = parser.parse_args()
    postgres = args.backend == "postgres"
    suffix = "-postgres" if postgres else ""
    args.out = args.out or str(ROOT / "bench" / f"RESULTS{suffix}.md")
    args.json = args.json or str(ROOT / "bench" / f"results{suffix}.json")

    script_file = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script_file.write(WRK_SCRIPT)
    script_file.close()
    workdir = tempfile.mkdtemp(prefix="roster-bench-")
    backend = "PostgreSQL" if postgres else "SQLite"
    admin_url = os.environ.get("ROSTER_BENCH_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    databases = []  # PostgreSQL databases this run created, dropped at the end

    def fresh_postgres(label):
        """A new database beside admin_url's; returns admin_url pointing at it."""
        name = f"roster_bench_{os.getpid()}_{len(databases)}_{label}"
        subprocess.run(["psql", admin_url, "-q", "-c", "SET client_min_messages = warning",
                        "-c", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", "-c", f"CREATE DATABASE {name}"], check=True)
        databases.append(name)
        return re.sub(r"/[^/?]+(\?|$)", rf"/{name}\1", admin_url, count=1)

    def with_param(url, key, value):
        return f"{url}{'&' if '?' in url else '?'}{key}={value}"

    def database_url():
        if not postgres:
            return f"sqlite://{workdir}/bench-{time.monotonic_ns()}.db?mode=rwc"
        return with_param(fresh_postgres("roster"), "sslmode", args.postgres_sslmode)

    def peer_database_url():
        if not postgres:
            return f"sqlite+aiosqlite:///{workdir}/peer.db"
        url = re.sub(r"^[a-z+]+://", "postgresql+asyncpg://", fresh_postgres("peer"), count=1)
        return with_param(url, "ssl", args.postgres_sslmode)

    try:
        print(f"Roster on {backend}:", flush=True)
        server = Roster(args.binary, workdir, database_url())
        try:
            server.seed()
            roster = run_scenarios(server, script_file.name, args.duration, args.connections)
        finally:
            server.stop()

        # The machine is noisy: a feature's cost is measured with both
        # servers up, runs interleaved, medians of three.
        def interleaved(title, off_env, scenarios):
            print(f"{title} on and off, interleaved:", flush=True)
            on = Roster(args.binary, workdir, database_url())
            off = Roster(args.binary, workdir, database_url(), off_env)
            costs = {}
            try:
                for server in (on, off):
                    server.seed()
                tokens = {on: on.token("user00501"), off: off.token("user00501")}
                for key, path, needs_token in scenarios:
                    runs = {"on": [], "off": []}
                    for _ in range(3):
                        for label, server in (("on", on), ("off", off)):
                            stats = wrk(server.base + path, connections=args.connections, duration=args.duration,
                                        script=script_file.name, token=tokens[server] if needs_token else None)
                            runs[label].append(stats["rps"])
                    median = lambda xs: sorted(xs)[len(xs) // 2]
                    costs[key] = {"on_rps": median(runs["on"]), "off_rps": median(runs["off"]), "runs": runs}
                    print(f"  {key:18} on {costs[key]['on_rps']:10.1f} req/s, off {costs[key]['off_rps']:10.1f} req/s")
            finally:
                on.stop()
                off.stop()
            return costs

        health = ("a health", "/health/live", False)
        by_id = ("b user by id", "/api/v1/users/5003", True)
        fairings = interleaved("Rate-limit fairing", {"ROCKET_RATE_LIMIT": "{enabled=false}"}, (health, by_id))
        metrics = interleaved("Metrics", {"ROCKET_METRICS": "{enabled=false}"}, (by_id,))

        peer = None
        if args.compare:
            print(f"FastAPI peer (2 workers, {backend}):", flush=True)
            peer_server = Peer(peer_database_url())
            try:
                peer = run_scenarios(peer_server, script_file.name, args.duration, args.connections)
            finally:
                peer_server.stop()
    finally:
        os.unlink(script_file.name)
        for name in databases:
            subprocess.run(["psql", admin_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    rows = verdicts(roster, peer, fairings, metrics, args.backend)
    rendered = table(roster, peer, fairings, metrics)
    targets = "\n".join(["| target | verdict | measured |", "|---|---|---|"] + [f"| {t} | {v} | {d} |" for t, v, d in rows])
    print("\n" + rendered + "\n\n" + targets)

    cpu = next((l.split(":", 1)[1].strip() for l in Path("/proc/cpuinfo").read_text().splitlines() if l.startswith("model name")), "unknown")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    rustc = subprocess.run(["rustc", "--version"], capture_output=True, text=True).stdout.strip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[0] if shutil.which("wrk") else "?"
    # bench/run sets ROSTER_BENCH_COMMAND and passes its own --binary first.
    if os.environ.get("ROSTER_BENCH_COMMAND"):
        command = shlex.join([os.environ["ROSTER_BENCH_COMMAND"]] + sys.argv[3:])
    else:
        command = shlex.join(["python3", os.path.relpath(sys.argv[0], ROOT) if sys.argv[0].startswith(str(ROOT)) else sys.argv[0]] + sys.argv[1:])
    machine = f"{os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, {round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    Path(args.json).write_text(json.dumps({"backend": backend, "when": stamp, "commit": commit, "machine": machine,
                                           "command": command, "duration": args.duration, "connections": args.connections,
                                           "roster": roster, "fairings_off": fairings, "metrics_off": metrics, "fastapi": peer,
                                           "targets": [dict(zip(("target", "verdict", "measured"), r)) for r in rows]}, indent=2))
    peer_line = (f"the FastAPI peer (`bench/peer`: uvicorn, 2 workers; as the tutorial, a transaction per request, its rate limiter out of reach and CORS) on {backend}, a database of its own with the same users, in the same run"
                 if peer else "not run (add --compare)")
    footer = ("Targets not met: [`NOTES.md`](NOTES.md) has the profile of where the time goes\nand what would move them."
              if any(verdict != "met" for _, verdict, _ in rows)
              else "Every target met; [`NOTES.md`](NOTES.md) has the measurements behind these figures.")
    Path(args.out).write_text(f"""# Benchmark results

Generated by `bench/run` — do not edit by hand; run it again.

- Command: `{command}` (wrk, {args.connections} connections, {args.duration} per scenario, 2 threads)
- When: {stamp}, commit `{commit}`
- Backend: {backend}{f" (sslmode={args.postgres_sslmode} for Roster and the peer alike)" if postgres else ""}, {USERS:,} users seeded directly; bcrypt cost 12 (`bcrypt_queue_timeout` 60 s); rate limits set out of reach
- Machine: {machine}; load generator on the same cores
- Versions: {rustc}; {wrk_version}
- Peer: {peer_line}

## Scenarios

{rendered}

## Targets

{targets}

{footer}
""")
    print(f"\nwrote {args.out} and {args.json}")


if __name__ == "__main__":
    main()
