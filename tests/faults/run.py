#!/usr/bin/env python3
"""Fault tests against the real release binary and real services.

1. PostgreSQL (a private cluster on a free port) stopped while requests are
   in flight: requests fail fast with 503 JSON and Retry-After, readiness is
   503, and once it is back the same process serves again.
2. kill -9 during a stream of concurrent registrations, on SQLite and on
   PostgreSQL: after a restart every registration that got a 201 is present
   and can log in, and every user present is complete (it has its welcome
   email job): nothing is half-written.
3. SMTP and Redis unreachable: registration and every other route work;
   the email waits to be retried and limits fail open, as documented.
4. SIGTERM under load: requests in flight complete, the outbox worker stops,
   the process exits 0.
5. Abusive requests on the wire (huge or many headers, invalid UTF-8 in the
   path and query, unknown methods): 4xx, never a 5xx or a crash.
6. Slow connections (slowloris): against Roster alone (its file descriptors
   limited to 256, as a small container would), connections that dribble
   their headers are never cut and soon no one else is served; behind
   deploy/nginx.conf (this very file, ports rewritten) nginx cuts
   them after client_header_timeout and everyone else is served throughout.
7. SMTP slow, then down: two instances on PostgreSQL, 20 registrations
   with an SMTP server taking --smtp-delay seconds a message (1; 6 for the
   acceptance run): each email arrives once, at its first attempt; then 20
   more while no SMTP server listens for --smtp-outage seconds (20; 600
   for the ten minutes of the acceptance run), then a real one on that
   port: each arrives exactly once. /metrics counts them.

Usage: run.py --binary target/release/roster --postgres-url URL --artifacts DIR [--only N ...]
              [--smtp-delay SECONDS] [--smtp-outage SECONDS]
Only 127.0.0.1 is used. The shared PostgreSQL is never stopped: test 1 makes
its own cluster with initdb, test 2 its own database.
"""

import argparse
import glob
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib import request as urlrequest

PASSWORD = "Passw0rd1"
SECRET = "faults-secret-0123456789abcdef0123456789"
NO_LIMITS = "{per_minute=1000000000,login_per_minute=1000000000,register_per_minute=1000000000}"
failures = []


def check(condition, message):
    print(("  ok   " if condition else "  FAIL ") + message, flush=True)
    if not condition:
        failures.append(message)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parsed(raw):
    """A body as JSON, or as it came when it is not JSON (metrics' text)."""
    if not raw:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw.decode(errors="replace")


def call(method, url, body=None, token=None, timeout=30):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urlrequest.Request(url, data=data, method=method, headers=headers)
    try:
        with urlrequest.urlopen(req, timeout=timeout) as reply:
            return reply.status, parsed(reply.read())
    except urlrequest.HTTPError as err:
        return err.code, parsed(err.read())
    except OSError as err:
        return 0, str(err)


REPO = Path(__file__).resolve().parents[2]


def status_and_headers(method, url, token=None, timeout=30):
    """The status and headers of a response (any status); the headers are
    looked up ignoring case, as HTTP names them."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    req = urlrequest.Request(url, method=method, headers=headers)
    try:
        with urlrequest.urlopen(req, timeout=timeout) as reply:
            return reply.status, reply.headers
    except urlrequest.HTTPError as err:
        return err.code, err.headers
    except OSError:
        return 0, {}


class Server:
    def __init__(self, binary, workdir, database_url, env=None, log_name="server.log", max_files=None):
        self.binary, self.workdir, self.database_url = binary, workdir, database_url
        self.extra = env or {}
        self.max_files = max_files
        self.log_path = Path(workdir) / log_name
        self.start()

    def start(self, port=None):
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, ROCKET_PORT=str(self.port), ROCKET_ADDRESS="127.0.0.1", ROCKET_PROFILE="release",
                   ROCKET_JWT_SECRET=SECRET, ROCKET_LOG_LEVEL="normal", ROCKET_BCRYPT_COST="4",
                   ROCKET_RATE_LIMIT=NO_LIMITS, ROCKET_UPLOAD=f'{{dir="{self.workdir}/uploads"}}',
                   ROCKET_CLI_COLORS="false", DATABASE_URL=self.database_url,
                   # Release needs an SMTP server: one that is not there, so
                   # welcome emails wait in the outbox (test 3 sets its own).
                   ROCKET_SMTP=f'{{url="smtp://127.0.0.1:{free_port()}"}}')
        env.update(self.extra)
        self.log = open(self.log_path, "a")
        limit_files = None
        if self.max_files:
            limit_files = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (self.max_files, self.max_files))
        self.process = subprocess.Popen([self.binary], cwd=self.workdir, env=env, stdout=self.log,
                                        stderr=subprocess.STDOUT, preexec_fn=limit_files)
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"roster exited early; see {self.log_path}")
            if call("GET", f"{self.base}/health/live", timeout=1)[0] == 200:
                return
            time.sleep(0.1)
        raise SystemExit("roster did not start")

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=60)

    def register(self, name):
        return call("POST", f"{self.base}/api/v1/users", {"username": name, "email": f"{name}@example.com", "password": PASSWORD})[0]

    def token(self, name):
        status, body = call("POST", f"{self.base}/api/v1/auth/login", {"username": name, "password": PASSWORD})
        return body["access_token"] if status == 200 else None


def pg_bin(tool):
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        raise SystemExit(f"{tool} not found (PostgreSQL server binaries)")
    return found[-1]


class PrivatePostgres:
    """A PostgreSQL cluster of this test's own, run as the postgres user."""

    def __init__(self, configure=None):
        """`configure(data_dir)`, if given, runs after initdb and before the
        first start (as root; files it writes are handed to postgres)."""
        self.dir = tempfile.mkdtemp(prefix="roster-pg-")
        shutil.chown(self.dir, "postgres")
        self.port = free_port()
        self.data = f"{self.dir}/data"
        self._as_postgres([pg_bin("initdb"), "-D", self.data, "-A", "trust", "-U", "postgres"])
        if configure:
            configure(self.data)
            subprocess.run(["chown", "-R", "postgres:", self.data], check=True)
        self.start()

    def _as_postgres(self, argv):
        subprocess.run(["runuser", "-u", "postgres", "--"] + argv, check=True, capture_output=True)

    def start(self):
        self._as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-w", "-l", f"{self.dir}/log",
                           "-o", f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1", "start"])

    def stop(self):
        self._as_postgres([pg_bin("pg_ctl"), "-D", self.data, "-w", "-m", "immediate", "stop"])

    def url(self):
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def destroy(self):
        try:
            self.stop()
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)


def postgres_stopped_mid_flight(binary, workdir):
    print("1. PostgreSQL stopped while requests are in flight")
    pg = PrivatePostgres()
    server = Server(binary, workdir, pg.url(), log_name="pg-stop.log")
    try:
        server.register("alice")
        token = server.token("alice")
        results = []
        stop_at = time.time() + 1.0
        done = threading.Event()

        def hammer():
            while not done.is_set():
                started = time.time()
                status, body = call("GET", f"{server.base}/api/v1/users/me", token=token, timeout=20)
                results.append((started, time.time() - started, status, body))

        threads = [threading.Thread(target=hammer) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(max(0, stop_at - time.time()))
        pg.stop()
        time.sleep(8)
        ready_status, ready_body = call("GET", f"{server.base}/health/ready")
        done.set()
        for t in threads:
            t.join()
        after = [r for r in results if r[0] > stop_at + 0.5]
        statuses = {r[2] for r in after}
        slowest = max((r[1] for r in after), default=0)
        check(after and statuses <= {503}, f"requests while PostgreSQL is down are 503 (saw {sorted(statuses)})")
        check(all(isinstance(r[3], dict) and isinstance(r[3].get("detail"), str) for r in after), "each 503 is JSON {detail}")
        check(slowest < 6, f"and fail fast: slowest {slowest:.1f} s")
        check(500 not in {r[2] for r in results}, "no 500 at any time")
        check(ready_status == 503, f"readiness is 503 while it is down ({ready_status})")
        status, headers = status_and_headers("GET", f"{server.base}/api/v1/users/me", token=token)
        retry_after = headers.get("Retry-After") or ""
        check(status == 503 and retry_after.isdigit(), f"a 503 says when to retry ({status}, Retry-After {retry_after!r})")
        pg.start()
        deadline = time.time() + 20
        ready = 0
        while time.time() < deadline:
            ready = call("GET", f"{server.base}/health/ready")[0]
            if ready == 200:
                break
            time.sleep(0.5)
        me = call("GET", f"{server.base}/api/v1/users/me", token=token)[0]
        check(ready == 200 and me == 200, f"after restart the same process serves again (ready {ready}, /me {me})")
        check(server.process.poll() is None, "the process never exited")
    finally:
        server.stop()
        pg.destroy()


def users_and_jobs(database_url):
    """(usernames, usernames with a welcome job) in the database."""
    query_users = "SELECT username FROM users"
    query_jobs = "SELECT payload FROM outbox WHERE kind = 'welcome_email'"
    if database_url.startswith("sqlite"):
        db = sqlite3.connect(database_url.split("://", 1)[1].split("?", 1)[0])
        users = {r[0] for r in db.execute(query_users)}
        jobs = [json.loads(r[0])["username"] for r in db.execute(query_jobs)]
        db.close()
    else:
        out = lambda q: subprocess.run(["psql", database_url, "-qAtc", q], capture_output=True, text=True, check=True).stdout.splitlines()
        users = set(out(query_users))
        jobs = [json.loads(line)["username"] for line in out(query_jobs)]
    return users, jobs


def kill_during_registrations(binary, workdir, database_url, label):
    print(f"2. kill -9 during concurrent registrations ({label})")
    server = Server(binary, workdir, database_url, log_name=f"kill-{label}.log")
    created, failed = [], []
    lock = threading.Lock()
    done = threading.Event()

    def register_loop(index):
        n = 0
        while not done.is_set():
            n += 1
            name = f"k{index}x{n}x{uuid.uuid4().hex[:6]}"
            status = server.register(name)
            with lock:
                (created if status == 201 else failed).append(name)

    threads = [threading.Thread(target=register_loop, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.5)
    server.process.kill()
    server.process.wait()
    done.set()
    for t in threads:
        t.join()
    check(len(created) > 20, f"{len(created)} registrations acknowledged before the kill, {len(failed)} cut off")
    server.start()
    try:
        users, jobs = users_and_jobs(database_url)
        missing = [name for name in created if name not in users]
        check(not missing, f"every acknowledged registration is present after restart ({len(missing)} missing)")
        sample = created[:: max(1, len(created) // 20)]
        logins = [server.token(name) is not None for name in sample]
        check(all(logins), f"and complete: {sum(logins)} of {len(sample)} sampled users log in")
        ours = {name for name in users if name.startswith("k")}
        job_names = set(jobs)
        half = [name for name in ours if name not in job_names]
        check(not half, f"no half-written registration: every user has its welcome job ({len(half)} without)")
        check(len(jobs) == len(job_names), "and exactly one")
        cut_off_present = sum(1 for name in failed if name in users)
        print(f"       ({cut_off_present} of the cut-off registrations had committed, whole)")
    finally:
        server.stop()


def smtp_and_redis_down(binary, workdir):
    print("3. SMTP and Redis unreachable")
    env = {
        "ROCKET_SMTP": f'{{url="smtp://127.0.0.1:{free_port()}"}}',
        "ROCKET_RATE_LIMIT": f'{{backend="redis",redis_url="redis://127.0.0.1:{free_port()}",per_minute=1000000,login_per_minute=1000000,register_per_minute=1000000}}',
    }
    server = Server(binary, workdir, f"sqlite://{workdir}/down.db?mode=rwc", env, log_name="down.log")
    try:
        check(server.register("alice") == 201, "registration works")
        token = server.token("alice")
        check(token is not None, "login works")
        for path in ("/api/v1/users/me", "/api/v1/users", "/api/v1/users/search?query=ali", "/api/v2/users"):
            status, _ = call("GET", f"{server.base}{path}", token=token)
            check(status == 200, f"GET {path} works ({status})")
        status, body = call("GET", f"{server.base}/health/ready")
        check(status == 200 and any("not enforced" in n for n in body.get("notes", [])), f"readiness 200 with a note that limits fail open: {body}")
        time.sleep(2)
        db = sqlite3.connect(f"{workdir}/down.db")
        job = db.execute("SELECT status, attempts, last_error FROM outbox").fetchone()
        db.close()
        check(job[0] == "pending" and job[1] >= 1 and job[2], f"the email waits to be retried: {job}")
    finally:
        server.stop()


def sigterm_under_load(binary, workdir):
    print("4. SIGTERM under load")
    server = Server(binary, workdir, f"sqlite://{workdir}/term.db?mode=rwc", {"ROCKET_BCRYPT_COST": "12"}, log_name="term.log")
    server.register("alice")
    token = server.token("alice")
    results = []
    running = {}
    stop = threading.Event()

    def load(kind):
        me = threading.get_ident()
        while not stop.is_set():
            started = running[me] = time.monotonic()
            if kind == "register":
                status = server.register(f"t{uuid.uuid4().hex[:12]}")
            else:
                status = call("GET", f"{server.base}/api/v1/users/me", token=token)[0]
            del running[me]
            results.append((started, time.monotonic(), status))

    threads = [threading.Thread(target=load, args=("register" if i < 4 else "read",)) for i in range(8)]
    for t in threads:
        t.start()
    # A request counts as sent before the signal only if it started `settle`
    # seconds before it: one that starts in the last instant before the signal
    # may reach the server after it has stopped accepting, and refusing a
    # connection after SIGTERM is correct. The signal waits for a moment when
    # at least two requests (registrations at bcrypt cost 12 take hundreds of
    # milliseconds) have been under way that long.
    settle = 0.2
    time.sleep(2)
    deadline = time.monotonic() + 30
    while sum(1 for s in list(running.values()) if time.monotonic() - s > settle) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    signal_at = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    stop.set()
    code = server.process.wait(timeout=30)
    for t in threads:
        t.join()
    sent_before = [(ended, status) for started, ended, status in results if started < signal_at - settle]
    in_flight = [status for ended, status in sent_before if ended > signal_at]
    check(code == 0, f"exit code {code}")
    check(len(in_flight) > 0 and all(s in (200, 201) for s in in_flight),
          f"the {len(in_flight)} requests in flight at the signal completed: {in_flight}")
    failed = [status for _, status in sent_before if status not in (200, 201)]
    check(not failed, f"every request sent before the signal succeeded ({len(sent_before)} sent; failed: {failed})")
    log = server.log_path.read_text()
    check("outbox worker stopped" in log, "the outbox worker stopped cleanly")


def raw_status(port, payload):
    """Sends raw bytes; returns the status code of the answer (0 if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(payload)
        data = b""
        try:
            while b"\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    break
                data += chunk
        except OSError:
            pass
    parts = data.split(b" ", 2)
    return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0


def abusive_requests(binary, workdir):
    print("5. Abusive requests on the wire")
    server = Server(binary, workdir, f"sqlite://{workdir}/abuse.db?mode=rwc", log_name="abuse.log")
    try:
        server.register("alice")
        token = server.token("alice")
        auth = f"Authorization: Bearer {token}\r\n".encode()
        head = lambda line, extra=b"": line + b"\r\nHost: 127.0.0.1\r\n" + extra + b"Connection: close\r\n\r\n"
        cases = [
            ("40 KiB of headers", head(b"GET /health/live HTTP/1.1", b"X-Padding: " + b"x" * 40960 + b"\r\n"), {431, 400}),
            ("150 header fields", head(b"GET /health/live HTTP/1.1", b"".join(b"X-H%d: v\r\n" % i for i in range(150))), {431, 400}),
            ("invalid UTF-8 in the path", head(b"GET /api/v1/users/%FF%FE HTTP/1.1", auth), {400, 404, 422}),
            ("raw invalid UTF-8 in the path", head(b"GET /api/v1/users/\xff HTTP/1.1", auth), {400, 404, 422}),
            ("invalid UTF-8 in the query", head(b"GET /api/v1/users/search?query=%FF%FE HTTP/1.1", auth), {400, 422}),
            ("raw invalid UTF-8 in the query", head(b"GET /api/v1/users/search?query=\xff HTTP/1.1", auth), {400, 422}),
            ("an unknown method", head(b"QUERY /health/live HTTP/1.1"), {400, 405}),
            ("garbage instead of HTTP", b"\x00\x01\x02 hello\r\n\r\n", {400, 0}),
        ]
        for name, payload, allowed in cases:
            status = raw_status(server.port, payload)
            check(status in allowed, f"{name}: {status}")
        check(call("GET", f"{server.base}/health/live")[0] == 200, "the server still answers")
        check(server.process.poll() is None, "and never exited")
        log = server.log_path.read_text()
        check("panicked" not in log, "no panic in the log")
    finally:
        server.stop()


class Nginx:
    """nginx running deploy/nginx.conf in front of `upstream_port`."""

    def __init__(self, workdir, *upstream_ports):
        prefix = Path(workdir) / "nginx"
        for sub in ("", "temp"):
            (prefix / sub).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        conf = (REPO / "deploy/nginx.conf").read_text()
        conf, listens = re.subn(r"^(\s*)listen 80;", rf"\1listen 127.0.0.1:{self.port};", conf, flags=re.M)
        def servers(match):
            indent, params = match.group(1), match.group(2) or ""
            return "\n".join(f"{indent}server 127.0.0.1:{port}{params};" for port in upstream_ports)
        conf, upstreams = re.subn(r"^(\s*)server 127\.0\.0\.1:8000( [^;]*)?;", servers, conf, flags=re.M)
        if (listens, upstreams) != (1, 1):
            raise SystemExit("deploy/nginx.conf: expected one `listen 80;` and one `server 127.0.0.1:8000 ...;`")
        (prefix / "roster.conf").write_text(conf)
        temp = prefix / "temp"
        user = "root root" if os.geteuid() == 0 else ""
        (prefix / "nginx.conf").write_text(f"""
{"user " + user + ";" if user else ""}
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
    access_log {prefix}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    include {prefix}/roster.conf;
}}
""")
        self.log = open(Path(workdir) / "nginx.log", "a")
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        self.process = subprocess.Popen([nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
                                         "-g", "daemon off;"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 20
        while call("GET", f"http://127.0.0.1:{self.port}/health/live", timeout=1)[0] != 200:
            if self.process.poll() is not None or time.time() > deadline:
                raise SystemExit(f"nginx did not start; see {workdir}/nginx.log and {workdir}/nginx-error.log")
            time.sleep(0.2)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=30)


class Slowloris:
    """`count` connections that send a request line, then one more header
    line every second, and never finish."""

    def __init__(self, port, count):
        self.socks = []
        for _ in range(count):
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            sock.setblocking(False)
            self.socks.append(sock)
        self.closed = set()
        self.running = True
        self.thread = threading.Thread(target=self.dribble, daemon=True)
        self.thread.start()

    def dribble(self):
        n = 0
        while self.running:
            n += 1
            for i, sock in enumerate(self.socks):
                if i in self.closed:
                    continue
                try:
                    if sock.recv(4096) == b"":
                        self.closed.add(i)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed.add(i)
                    continue
                try:
                    sock.send(b"X-Slow-%d: x\r\n" % n)
                except BlockingIOError:
                    pass
                except OSError:
                    self.closed.add(i)
            time.sleep(1)

    def still_open(self):
        return len(self.socks) - len(self.closed)

    def stop(self):
        self.running = False
        self.thread.join()
        for sock in self.socks:
            sock.close()


def slow_connections(binary, workdir):
    print("6. Slow connections (slowloris)")
    count, files, wait = 300, 256, 15
    alone = Server(binary, workdir, f"sqlite://{workdir}/slow.db?mode=rwc", log_name="slow.log", max_files=files)
    try:
        attack = Slowloris(alone.port, count)
        time.sleep(3)
        served = call("GET", f"{alone.base}/health/live", timeout=5)[0]
        check(served != 200, f"Roster alone, {count} slow connections: another client is not served ({served})")
        time.sleep(wait - 3)
        open_now = attack.still_open()
        check(open_now == count, f"Roster alone cuts none of them in {wait} s: {open_now} of {count} open")
        attack.stop()
        recovered = 0
        for _ in range(50):
            recovered = call("GET", f"{alone.base}/health/live", timeout=2)[0]
            if recovered == 200:
                break
            time.sleep(0.2)
        check(recovered == 200, "and it serves again once they go")
    finally:
        alone.stop()

    behind = Server(binary, workdir, f"sqlite://{workdir}/slow.db?mode=rwc", log_name="slow-nginx.log",
                    max_files=files, env={"ROCKET_TRUSTED_PROXIES": '["127.0.0.1"]'})
    nginx = Nginx(workdir, behind.port)
    front = f"http://127.0.0.1:{nginx.port}"
    try:
        attack = Slowloris(nginx.port, count)
        statuses = []
        started = time.time()
        while time.time() - started < wait:
            statuses.append(call("GET", f"{front}/health/live", timeout=5)[0])
            time.sleep(1)
        check(statuses and all(s == 200 for s in statuses),
              f"behind nginx, {count} slow connections: everyone else is served ({len(statuses)} requests, "
              f"statuses {sorted(set(statuses))})")
        open_now = attack.still_open()
        check(open_now == 0, f"nginx cut the slow connections after client_header_timeout: {open_now} of {count} open")
        attack.stop()
        status, body = call("POST", f"{front}/api/v1/users",
                            {"username": "slowpoke", "email": "slowpoke@example.com", "password": PASSWORD})
        check(status == 201, f"a registration through nginx: {status}")
        through = call("GET", f"{front}/metrics")[0]
        direct = call("GET", f"{behind.base}/metrics")[0]
        check((through, direct) == (404, 200),
              f"/metrics: 404 through nginx, 200 to a local scraper ({through}, {direct})")
    finally:
        nginx.stop()
        behind.stop()


class Sink:
    """tests/smtp/sink.py on `port`: a real SMTP server saving what it accepts."""

    def __init__(self, port, maildir, delay=0.0):
        python = os.environ.get("ROSTER_TEST_PYTHON")
        if not python:
            raise SystemExit("ROSTER_TEST_PYTHON must name a Python with aiosmtpd (tests/run sets it)")
        self.maildir = Path(maildir)
        self.process = subprocess.Popen([python, str(REPO / "tests/smtp/sink.py"), "--port", str(port),
                                         "--maildir", str(self.maildir), "--delay", str(delay)],
                                        stdout=subprocess.PIPE, text=True)
        if self.process.stdout.readline().strip() != "ready":
            raise SystemExit("the SMTP sink did not start")

    def recipients(self):
        found = []
        for message in sorted(self.maildir.glob("*.eml")):
            for line in message.read_text(errors="replace").splitlines():
                if line.lower().startswith("to:"):
                    found.append(line.split(":", 1)[1].strip())
        return sorted(found)

    def stop(self):
        self.process.terminate()
        self.process.wait(timeout=10)


def smtp_slow_then_down(binary, workdir, postgres_url, delay, outage):
    print(f"7. Two instances: SMTP taking {delay} s a message, then down for {outage} s")
    count = lambda url, q: int(subprocess.run(["psql", url, "-qAtc", q], capture_output=True, text=True,
                                              check=True).stdout.strip())
    for phase in ("slow", "down"):
        name = f"roster_smtp_{phase}_{os.getpid()}"
        subprocess.run(["psql", postgres_url, "-qc", f"CREATE DATABASE {name}"], check=True)
        url = postgres_url.rsplit("/", 1)[0] + f"/{name}"
        port = free_port()
        env = {"ROCKET_SMTP": f'{{url="smtp://127.0.0.1:{port}"}}'}
        sink = Sink(port, Path(workdir) / f"mail-{phase}", delay) if phase == "slow" else None
        servers = [Server(binary, workdir, url, env=env, log_name=f"smtp-{phase}-{i}.log") for i in range(2)]
        try:
            names = [f"{phase}{i:02}" for i in range(20)]
            expected = sorted(f"{n}@example.com" for n in names)
            statuses = [servers[i % 2].register(n) for i, n in enumerate(names)]
            check(statuses == [201] * 20, f"{phase}: 20 registrations across both instances: {set(statuses)}")
            if phase == "down":
                time.sleep(outage)
                tried = count(url, "SELECT COUNT(*) FROM outbox WHERE status = 'pending' AND attempts > 0")
                check(tried == 20, f"after {outage} s down, all 20 wait to be retried ({tried} pending and tried)")
                sink = Sink(port, Path(workdir) / f"mail-{phase}")
            back = time.time()
            # The longest wait: every message at `delay` s on two workers,
            # or the back-off after the last failed try (at most the outage
            # again, plus jitter).
            deadline = back + 20 * delay + outage * 1.5 + 60
            while time.time() < deadline and count(url, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'") > 0:
                time.sleep(1)
            # Time for a second send, had any job been claimed twice.
            time.sleep(max(3, 2 * delay))
            got = sink.recipients()
            check(got == expected, f"{phase}: every email delivered exactly once ({len(got)} messages to "
                                   f"{len(set(got))} of {len(expected)} addresses, {time.time() - back:.0f} s after "
                                   f"{'the registrations' if phase == 'slow' else 'SMTP came back'})")
            once = count(url, "SELECT COUNT(*) FROM outbox WHERE status = 'sent' AND attempts = 1")
            if phase == "slow":
                check(once == 20, f"slow: each sent at its first attempt ({once} of 20)")
            status, text = call("GET", f"{servers[0].base}/metrics")
            sent = [l for l in text.splitlines() if l.startswith('roster_outbox_jobs{status="sent"}')]
            check(status == 200 and sent == ['roster_outbox_jobs{status="sent"} 20'], f"{phase}: /metrics says so: {sent}")
        finally:
            if sink:
                sink.stop()
            for server in servers:
                server.stop()
            subprocess.run(["psql", postgres_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], check=False)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--only", type=int, action="append", help="run only test N (repeatable)")
    parser.add_argument("--smtp-delay", type=float, default=1.0, metavar="SECONDS",
                        help="how long test 7's slow SMTP server takes per message (the acceptance run: 6)")
    parser.add_argument("--smtp-outage", type=int, default=20, metavar="SECONDS",
                        help="how long test 7 keeps SMTP down (the acceptance run: 600)")
    args = parser.parse_args()
    wanted = lambda n: not args.only or n in args.only
    binary = str(Path(args.binary).resolve())
    artifacts = Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="roster-faults-") as workdir:
        try:
            if wanted(1):
                postgres_stopped_mid_flight(binary, workdir)
            if wanted(2):
                kill_during_registrations(binary, workdir, f"sqlite://{workdir}/kill.db?mode=rwc", "SQLite")
                name = f"roster_faults_{os.getpid()}"
                subprocess.run(["psql", args.postgres_url, "-qc", f"CREATE DATABASE {name}"], check=True)
                try:
                    pg = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
                    kill_during_registrations(binary, workdir, pg, "PostgreSQL")
                finally:
                    subprocess.run(["psql", args.postgres_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                                   check=False)
            if wanted(3):
                smtp_and_redis_down(binary, workdir)
            if wanted(4):
                sigterm_under_load(binary, workdir)
            if wanted(5):
                abusive_requests(binary, workdir)
            if wanted(6):
                slow_connections(binary, workdir)
            if wanted(7):
                smtp_slow_then_down(binary, workdir, args.postgres_url, args.smtp_delay, args.smtp_outage)
        finally:
            for log in Path(workdir).glob("*.log"):
                shutil.copy(log, artifacts / log.name)
    print(f"fault tests: {'passed' if not failures else 'FAILED'} in {time.time() - started:.0f} s")
    for failure in failures:
        print(f"  - {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
