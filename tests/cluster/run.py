#!/usr/bin/env python3
"""Several instances for real: nginx (deploy/nginx.conf, ports rewritten) in
front of two release binaries sharing one PostgreSQL database, Redis rate
limits, an S3 bucket for uploads and an SMTP server, checked point by point
as the README's "Several instances" promises:

1. a token issued by A works on B, and a logout on B ends it on A;
2. a rate-limit budget is one budget across both (Redis);
3. each welcome email is sent once, though both instances send;
4. an upload through A is downloaded and deleted through B;
5. a rolling restart of A then B under steady reads, downloads and
   registrations through nginx: no 5xx, no dropped request, every
   acknowledged registration present;
6. SIGKILL of A during registrations through nginx: every acknowledged
   registration present; what a client whose POST was in flight sees is
   counted (nginx resends it to B: 201, or 409 when A had committed it
   before dying, in which case the account is there and its password works).

The S3 bucket and SMTP server: $ROSTER_TEST_S3_* (tests/services.sh's
ensure_s3 starts Garage) and tests/smtp/sink.py (with $ROSTER_TEST_PYTHON).

Usage: run.py --binary target/release/roster --postgres-url URL --artifacts DIR
Only 127.0.0.1 is used; the shared services are never stopped.
"""

import argparse
import importlib.util
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib import request as urlrequest

REPO = Path(__file__).resolve().parents[2]

# The fault tests' harness: the binary as a process, nginx with
# deploy/nginx.conf, the SMTP sink, and plain HTTP calls.
_spec = importlib.util.spec_from_file_location("faults", REPO / "tests/faults/run.py")
faults = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(faults)
call, check, Server, Nginx, Sink, PASSWORD = (faults.call, faults.check, faults.Server, faults.Nginx,
                                              faults.Sink, faults.PASSWORD)

LOGIN_BUDGET = 30
totals = {"requests": 0, "5xx": 0, "dropped": 0}
totals_lock = threading.Lock()


def counted(status):
    with totals_lock:
        totals["requests"] += 1
        if status >= 500:
            totals["5xx"] += 1
        if status == 0:
            totals["dropped"] += 1
    return status


def request(method, url, body=None, token=None, headers=None, data=None, timeout=30):
    """Any request; returns (status, headers, raw body), status 0 when the
    connection failed."""
    headers = dict(headers or {})
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        data = faults.json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    req = urlrequest.Request(url, data=data, method=method, headers=headers)
    try:
        with urlrequest.urlopen(req, timeout=timeout) as reply:
            return counted(reply.status), reply.headers, reply.read()
    except urlrequest.HTTPError as err:
        return counted(err.code), err.headers, err.read()
    except OSError:
        return counted(0), {}, b""


def register(base, name):
    return request("POST", f"{base}/api/v1/users",
                   {"username": name, "email": f"{name}@example.com", "password": PASSWORD})[0]


def login(base, name, headers=None):
    status, _, raw = request("POST", f"{base}/api/v1/auth/login", {"username": name, "password": PASSWORD},
                             headers=headers)
    return status, (faults.json.loads(raw) if status == 200 else None)


def multipart(filename, content):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{filename}\"\r\n"
            f"Content-Type: application/octet-stream\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def upload(base, token, filename, content):
    data, headers = multipart(filename, content)
    status, _, raw = request("POST", f"{base}/api/v1/uploads", token=token, headers=headers, data=data, timeout=60)
    return status, (faults.json.loads(raw) if status == 201 else raw)


def psql_lines(url, sql):
    done = subprocess.run(["psql", url, "-qAtc", sql], capture_output=True, text=True, check=True)
    return [line for line in done.stdout.splitlines() if line]


class Cluster:
    def __init__(self, binary, workdir, database_url, sink_port, s3_prefix):
        s3 = {key: os.environ[f"ROSTER_TEST_S3_{key.upper()}"]
              for key in ("endpoint", "bucket", "region", "access_key_id", "secret_access_key")}
        s3_table = ",".join(f'{key}="{value}"' for key, value in s3.items())
        self.env = {
            # nginx is the one proxy; a client's address is what it says.
            "ROCKET_TRUSTED_PROXIES": '["127.0.0.1"]',
            "ROCKET_RATE_LIMIT": (f'{{backend="redis",redis_url="redis://127.0.0.1:6379",per_minute=1000000000,'
                                  f'login_per_minute={LOGIN_BUDGET},register_per_minute=1000000000}}'),
            "ROCKET_UPLOAD": f'{{backend="s3",s3={{{s3_table},prefix="{s3_prefix}"}},max_bytes=10485760}}',
            "ROCKET_SMTP": f'{{url="smtp://127.0.0.1:{sink_port}"}}',
        }
        self.servers = [Server(binary, workdir, database_url, env=self.env, log_name=f"instance-{name}.log")
                        for name in ("a", "b")]
        self.nginx = Nginx(workdir, *(s.port for s in self.servers))
        self.front = f"http://127.0.0.1:{self.nginx.port}"

    @property
    def a(self):
        return self.servers[0].base

    @property
    def b(self):
        return self.servers[1].base

    def stop(self):
        self.nginx.stop()
        for server in self.servers:
            server.stop()


def tokens_and_logout(cluster):
    print("1. A token issued by A works on B; a logout on B ends it on A")
    check(register(cluster.a, "tina") == 201, "tina registered on A")
    status, pair = login(cluster.a, "tina")
    check(status == 200, "tina signed in on A")
    token = pair["access_token"]
    check(request("GET", f"{cluster.b}/api/v1/users/me", token=token)[0] == 200, "her token works on B")
    check(request("POST", f"{cluster.b}/api/v1/auth/logout", {"refresh_token": pair["refresh_token"]},
                  token=token)[0] == 204, "she logs out on B")
    check(request("GET", f"{cluster.a}/api/v1/users/me", token=token)[0] == 401, "and her token is refused on A")
    check(request("GET", f"{cluster.b}/api/v1/users/me", token=token)[0] == 401, "and on B")


def shared_budget(cluster):
    print(f"2. One login budget ({LOGIN_BUDGET} a minute per client) across both instances")
    # A client address of this run's own, which the instances believe as
    # nginx would pass it (the socket peer, 127.0.0.1, is a trusted proxy).
    client = {"X-Forwarded-For": f"198.51.100.{random.randint(1, 254)}"}
    statuses, remaining = [], []
    for attempt in range(LOGIN_BUDGET + 10):
        base = cluster.a if attempt % 2 == 0 else cluster.b
        status, headers, _ = request("POST", f"{base}/api/v1/auth/login",
                                     {"username": "tina", "password": PASSWORD}, headers=client)
        statuses.append(status)
        remaining.append(headers.get("RateLimit-Remaining"))
    passed = [s for s in statuses if s != 429]
    check(len(passed) == LOGIN_BUDGET and statuses[LOGIN_BUDGET:] == [429] * 10,
          f"{LOGIN_BUDGET + 10} logins alternating A and B: {len(passed)} pass, then only 429 on both "
          f"(separate budgets would pass {2 * LOGIN_BUDGET})")
    check(remaining[:4] == [str(LOGIN_BUDGET - n) for n in range(1, 5)],
          f"RateLimit-Remaining counts down across instances: {remaining[:4]}")


def emails_once(cluster, sink, database_url):
    print("3. Each welcome email sent once, both instances sending")
    names = [f"mail{i:02}" for i in range(20)]
    statuses = [register(cluster.front, name) for name in names]
    check(statuses == [201] * 20, f"20 registrations through nginx: {sorted(set(statuses))}")
    deadline = time.time() + 60
    while time.time() < deadline and psql_lines(database_url, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'") != ["0"]:
        time.sleep(0.5)
    time.sleep(3)  # time for a second send, had any job been claimed twice
    got = sink.recipients()
    expected = sorted(f"{n}@example.com" for n in names + ["tina"])
    check(got == expected, f"{len(got)} emails for {len(expected)} accounts, each exactly once")
    sent_by = {line for line in psql_lines(database_url, "SELECT COUNT(*) FROM outbox WHERE status = 'sent'")}
    check(sent_by == {str(len(expected))}, f"the outbox holds each job once, sent: {sent_by}")
    return len(got)


def upload_across(cluster):
    print("4. An upload through A is downloaded and deleted through B")
    _, pair = login(cluster.a, "mail00")
    token = pair["access_token"]
    content = os.urandom(3 * 1024 * 1024 + 17)
    status, meta = upload(cluster.a, token, "across.bin", content)
    check(status == 201, f"uploaded through A: {status}")
    path = f"/api/v1/uploads/{meta['id']}"
    status, _, body = request("GET", f"{cluster.b}{path}/content", token=token)
    check(status == 200 and body == content, "downloaded through B, the same bytes")
    check(request("DELETE", f"{cluster.b}{path}", token=token)[0] == 204, "deleted through B")
    check(request("GET", f"{cluster.a}{path}/content", token=token)[0] == 404, "and gone through A")
    return 1


def rolling_restart(cluster, database_url):
    print("5. A rolling restart of A then B under reads, downloads and registrations through nginx")
    _, pair = login(cluster.front, "mail01")
    token = pair["access_token"]
    content = os.urandom(256 * 1024)
    status, meta = upload(cluster.front, token, "steady.bin", content)
    check(status == 201, "a file to download throughout")
    statuses, acknowledged, done = [], [], threading.Event()
    lock = threading.Lock()

    def load(kind, worker):
        n = 0
        while not done.is_set():
            if kind == "read":
                status = request("GET", f"{cluster.front}/api/v1/users/me", token=token)[0]
            elif kind == "download":
                status, _, body = request("GET", f"{cluster.front}/api/v1/uploads/{meta['id']}/content", token=token)
                if status == 200 and body != content:
                    status = -1
            else:
                name = f"roll{worker}x{n}"
                n += 1
                status = register(cluster.front, name)
                if status == 201:
                    with lock:
                        acknowledged.append(name)
            with lock:
                statuses.append(status)

    threads = [threading.Thread(target=load, args=(kind, i))
               for i, kind in enumerate(("read", "read", "download", "register"))]
    for t in threads:
        t.start()
    time.sleep(2)
    for server in cluster.servers:
        port = server.port
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(timeout=60)
        server.start(port)
        time.sleep(1)
    time.sleep(2)
    done.set()
    for t in threads:
        t.join()
    counts = {s: statuses.count(s) for s in sorted(set(statuses))}
    print(f"       statuses: {counts}")
    bad = sorted({s for s in statuses if s <= 0 or s >= 500})
    check(len(statuses) > 200 and not bad,
          f"{len(statuses)} requests through two restarts: no 5xx, no dropped connection, no wrong bytes ({bad})")
    present = set(psql_lines(database_url, "SELECT username FROM users WHERE username LIKE 'roll%'"))
    missing = [n for n in acknowledged if n not in present]
    check(acknowledged and not missing,
          f"all {len(acknowledged)} acknowledged registrations are there (missing: {missing[:5]})")
    check(request("DELETE", f"{cluster.front}/api/v1/uploads/{meta['id']}", token=token)[0] == 204,
          "the file deleted after")
    return len(statuses), 1


def sigkill_during_registrations(cluster, database_url):
    print("6. SIGKILL of A during registrations through nginx")
    outcomes, done = {}, threading.Event()
    lock = threading.Lock()

    def load(worker):
        n = 0
        while not done.is_set():
            name = f"kill{worker}x{n}"
            n += 1
            status = register(cluster.front, name)
            with lock:
                outcomes[name] = status

    threads = [threading.Thread(target=load, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    time.sleep(1.5)
    victim = cluster.servers[0]
    victim.process.send_signal(signal.SIGKILL)
    victim.process.wait(timeout=10)
    time.sleep(2)
    victim.start(victim.port)
    time.sleep(1)
    done.set()
    for t in threads:
        t.join()
    counts = {}
    for status in outcomes.values():
        counts[status] = counts.get(status, 0) + 1
    print(f"       statuses: {dict(sorted(counts.items()))}")
    present = set(psql_lines(database_url, "SELECT username FROM users WHERE username LIKE 'kill%'"))
    acknowledged = [n for n, s in outcomes.items() if s == 201]
    missing = [n for n in acknowledged if n not in present]
    check(len(acknowledged) > 20 and not missing,
          f"{len(acknowledged)} acknowledged registrations, none lost (missing: {missing[:5]})")
    # A POST in flight on A when it died was resent to B by nginx: 409 means
    # A had committed it; the account is there, whole, and signs in.
    resent = [n for n, s in outcomes.items() if s == 409]
    whole = all(n in present and login(cluster.front, n)[0] == 200 for n in resent)
    check(whole, f"{len(resent)} registrations answered 409 (committed by A before it died, resent to B): "
                 f"each account is there and signs in")
    others = sorted({s for s in outcomes.values() if s not in (201, 409)})
    check(not others, f"no other answer (5xx, dropped): {others}")
    extra = present - set(outcomes)
    check(not extra, f"no account that no client asked for: {sorted(extra)[:5]}")
    _, jobs = faults.users_and_jobs(database_url)
    odd = [n for n in present if jobs.count(n) != 1]
    check(not odd, f"each account has its one welcome email job, nothing half-written (odd: {odd[:5]})")
    return len(outcomes)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--artifacts", required=True)
    args = parser.parse_args()
    if not os.environ.get("ROSTER_TEST_S3_ENDPOINT"):
        raise SystemExit("ROSTER_TEST_S3_* must name an S3 bucket (tests/run starts Garage)")
    binary = str(Path(args.binary).resolve())
    artifacts = Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.time()
    name = f"roster_cluster_{os.getpid()}"
    subprocess.run(["psql", args.postgres_url, "-qc", f"CREATE DATABASE {name}"], check=True)
    database_url = args.postgres_url.rsplit("/", 1)[0] + f"/{name}"
    emails = uploads = 0
    with tempfile.TemporaryDirectory(prefix="roster-cluster-") as workdir:
        sink_port = faults.free_port()
        sink = Sink(sink_port, Path(workdir) / "mail")
        cluster = None
        try:
            cluster = Cluster(binary, workdir, database_url, sink_port, f"cluster-{uuid.uuid4().hex}/")
            tokens_and_logout(cluster)
            shared_budget(cluster)
            emails = emails_once(cluster, sink, database_url)
            uploads += upload_across(cluster)
            _, more = rolling_restart(cluster, database_url)
            uploads += more
            sigkill_during_registrations(cluster, database_url)
            for log in Path(workdir).glob("instance-*.log"):
                check("panicked" not in log.read_text(), f"no panic in {log.name}")
        finally:
            if cluster:
                cluster.stop()
            sink.stop()
            for log in Path(workdir).glob("*.log"):
                shutil.copy(log, artifacts / log.name)
            subprocess.run(["psql", args.postgres_url, "-qc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"],
                           check=False)
    failures = faults.failures
    print(f"cluster: {totals['requests']} requests, {totals['5xx']} 5xx, {totals['dropped']} dropped, "
          f"{emails} emails, {uploads} uploads across instances")
    print(f"cluster tests: {'passed' if not failures else 'FAILED'} in {time.time() - started:.0f} s")
    for failure in failures:
        print(f"  - {failure}")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
