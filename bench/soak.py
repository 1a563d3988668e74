#!/usr/bin/env python3
"""Soak: mixed traffic against the release binary for a bounded time
(default 10 minutes), over loopback only. Reports the server's RSS at the
start, the end and at its peak, request counts per kind, every 5xx and other
errors, and fails if there was any 5xx or if memory grew beyond noise.

Usage: bench/soak [--minutes 10] [--clients 8] [--postgres]
Traffic per client, in a loop: register a new user (one in ten loops), log
in (one in five), read users by id, list, read /me, search, read v2 pages,
upload a small file and read it back, delete it.
"""

import argparse
import collections
import json
import os
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib import request as urlrequest

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the benchmark's server helpers)


def call(method, url, body=None, token=None, raw=None, content_type=None):
    headers = {}
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    if raw is not None:
        data = raw
        headers["Content-Type"] = content_type
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urlrequest.Request(url, data=data, method=method, headers=headers)
    try:
        with urlrequest.urlopen(req, timeout=30) as reply:
            payload = reply.read()
            return reply.status, json.loads(payload) if payload and reply.headers.get_content_type() == "application/json" else payload
    except urlrequest.HTTPError as err:
        return err.code, err.read()
    except OSError as err:
        return 0, str(err)


def multipart(content):
    boundary = uuid.uuid4().hex
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"soak.bin\"\r\n\r\n").encode() + content + f"\r\n--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.server_errors = []
        self.other_errors = collections.Counter()

    def record(self, kind, status, expected):
        with self.lock:
            self.counts[kind] += 1
            if status >= 500:
                self.server_errors.append((kind, status))
            elif status not in expected:
                self.other_errors[f"{kind} {status}"] += 1


def client_loop(base, stats, deadline, index):
    rng = random.Random(index)
    token = None
    me = None
    loop = 0
    while time.time() < deadline:
        loop += 1
        if token is None or loop % 10 == 0:
            name = f"soak{index}x{uuid.uuid4().hex[:10]}"
            status, body = call("POST", f"{base}/api/v1/users", {"username": name, "email": f"{name}@example.com", "password": bench.PASSWORD})
            stats.record("register", status, {201})
            me = name
        if token is None or loop % 5 == 0:
            status, body = call("POST", f"{base}/api/v1/auth/login", {"username": me, "password": bench.PASSWORD})
            stats.record("login", status, {200})
            if status == 200:
                token = body["access_token"]
        if token is None:
            continue
        for _ in range(5):
            status, _ = call("GET", f"{base}/api/v1/users/{rng.randint(2, 10001)}", token=token)
            stats.record("read", status, {200, 404})
        status, _ = call("GET", f"{base}/api/v1/users?skip={rng.randint(0, 9000)}&limit=10", token=token)
        stats.record("list", status, {200})
        status, _ = call("GET", f"{base}/api/v1/users/me", token=token)
        stats.record("me", status, {200})
        status, _ = call("GET", f"{base}/api/v1/users/search?query=user{rng.randint(0, 999):03d}", token=token)
        stats.record("search", status, {200})
        status, _ = call("GET", f"{base}/api/v2/users?limit=20&cursor={bench.base36(rng.randint(1, 10000))}", token=token)
        stats.record("v2", status, {200})
        if loop % 3 == 0:
            content = os.urandom(rng.randint(1, 64 * 1024))
            raw, content_type = multipart(content)
            status, body = call("POST", f"{base}/api/v1/uploads", token=token, raw=raw, content_type=content_type)
            stats.record("upload", status, {201})
            if status == 201:
                upload = body["id"]
                status, got = call("GET", f"{base}/api/v1/uploads/{upload}/content", token=token)
                stats.record("download", status, {200})
                if status == 200 and got != content:
                    stats.record("download-mismatch", 599, set())
                status, _ = call("DELETE", f"{base}/api/v1/uploads/{upload}", token=token)
                stats.record("delete upload", status, {204})


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="roster-soak-")
    server = bench.Roster(args.binary, workdir, f"sqlite://{workdir}/soak.db?mode=rwc",
                          {"ROCKET_BCRYPT_COST": "10", "ROCKET_UPLOAD": f'{{dir="{workdir}/uploads"}}'})
    stats = Stats()
    try:
        server.seed()
        sampler = bench.RssSampler(server.process.pid)
        # Warm up for 30 s so that start-up allocations are not counted as growth.
        warm = time.time() + 30
        threads = [threading.Thread(target=client_loop, args=(server.base, Stats(), warm, 1000 + i)) for i in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        start_rss = sampler.sample()
        deadline = time.time() + args.minutes * 60
        samples = []
        with sampler:
            threads = [threading.Thread(target=client_loop, args=(server.base, stats, deadline, i)) for i in range(args.clients)]
            for t in threads:
                t.start()
            while any(t.is_alive() for t in threads):
                time.sleep(30)
                samples.append(sampler.sample())
                print(f"  {time.strftime('%H:%M:%S')} RSS {samples[-1] / 1024:.1f} MiB, {sum(stats.counts.values())} requests", flush=True)
            for t in threads:
                t.join()
        end_rss = sampler.sample()
    finally:
        server.stop()
    total = sum(stats.counts.values())
    print(f"\nsoak: {args.minutes:g} min, {args.clients} clients, {total} requests ({total / (args.minutes * 60):.0f}/s)")
    print("requests: " + ", ".join(f"{k} {v}" for k, v in sorted(stats.counts.items())))
    print(f"RSS after warm-up {start_rss / 1024:.1f} MiB, at the end {end_rss / 1024:.1f} MiB, peak {sampler.peak / 1024:.1f} MiB")
    half = len(samples) // 2
    first, second = samples[:half] or samples, samples[half:] or samples
    drift = (sum(second) / len(second) - sum(first) / len(first)) / 1024
    print(f"mean RSS second half minus first half: {drift:+.1f} MiB")
    print(f"5xx: {len(stats.server_errors)}; other unexpected statuses: {dict(stats.other_errors) or 'none'}")
    grew = end_rss - start_rss > 16 * 1024 or drift > 8
    ok = not stats.server_errors and not grew
    print("soak:", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
