#!/usr/bin/env python3
"""TLS to PostgreSQL, against the real binary and a real server.

A private PostgreSQL cluster (initdb on a free port, as the fault tests do)
runs with `ssl = on`, a certificate for the host name `localhost` signed by
a CA this test makes with openssl, and a pg_hba.conf that accepts TCP
connections over TLS only. Then, with `DATABASE_URL`:

- sslmode=verify-full, sslrootcert=that CA, host localhost: serves, and the
  server sees Roster's connections encrypted (pg_stat_ssl);
- verify-full with another CA: refuses to start, saying the certificate is
  not signed by a trusted CA;
- verify-full with the right CA but the host 127.0.0.1, a name the
  certificate does not hold: refuses to start, saying so;
- verify-ca with the right CA and the host 127.0.0.1: serves (verify-ca
  checks the signature, not the name);
- require (no CA): serves;
- disable: refuses to start, saying that the server requires TLS.

Usage: run.py --binary target/release/roster --artifacts DIR
"""

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
spec = importlib.util.spec_from_file_location("faults", HERE.parent / "faults" / "run.py")
faults = importlib.util.module_from_spec(spec)
spec.loader.exec_module(faults)

check, call, Server, PrivatePostgres, free_port = (
    faults.check, faults.call, faults.Server, faults.PrivatePostgres, faults.free_port)


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(directory, name):
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.pem", cwd=directory)
    return Path(directory) / f"{name}.pem"


def make_server_cert(directory, ca, host):
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
            "-keyout", "server.key", "-out", "server.csr", cwd=directory)
    Path(directory, "san.ext").write_text(f"subjectAltName = DNS:{host}\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
            "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", "server.crt", cwd=directory)


def tls_only(certs):
    def configure(data):
        for name in ("server.crt", "server.key"):
            shutil.copy(Path(certs) / name, Path(data) / name)
        os.chmod(Path(data) / "server.key", 0o600)
        with open(Path(data) / "postgresql.conf", "a") as conf:
            conf.write("ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n")
        # The socket (for pg_ctl) is trusted; over TCP only TLS gets in.
        Path(data, "pg_hba.conf").write_text(
            "local all all trust\n"
            "hostssl all all 127.0.0.1/32 trust\n"
            "hostssl all all ::1/128 trust\n")
    return configure


def refused(binary, workdir, url, label, *expected):
    """Starts the binary with `url`; it must exit non-zero within 60 s,
    and its output must contain each of `expected`."""
    port = free_port()
    env = dict(os.environ, ROCKET_PORT=str(port), ROCKET_ADDRESS="127.0.0.1", ROCKET_PROFILE="release",
               ROCKET_JWT_SECRET=faults.SECRET, ROCKET_LOG_LEVEL="normal", ROCKET_CLI_COLORS="false",
               ROCKET_UPLOAD=f'{{dir="{workdir}/uploads"}}', ROCKET_SMTP='{enabled=false}', DATABASE_URL=url)
    try:
        done = subprocess.run([binary], cwd=workdir, env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        check(False, f"{label}: refuses to start (it was still running after 60 s)")
        return
    output = done.stdout + done.stderr
    Path(workdir, f"tls-{label.replace(' ', '-')}.log").write_text(output)
    lines = [line for line in output.splitlines() if "database" in line.lower() or "tls" in line.lower()]
    check(done.returncode != 0, f"{label}: refuses to start (exit {done.returncode})")
    for text in expected:
        check(text.lower() in output.lower(), f"{label}: says {text!r}")
    if lines:
        print(f"       {lines[-1].strip()[:300]}")


def serves(binary, workdir, url, label, pg):
    server = Server(binary, workdir, url, log_name=f"tls-{label.replace(' ', '-')}.log")
    try:
        status, body = call("GET", f"{server.base}/health/ready")
        check(status == 200, f"{label}: ready ({status} {body})")
        name = f"tls{int(time.time() * 1000) % 10_000_000}"
        check(server.register(name) == 201, f"{label}: a registration is stored")
        check(server.token(name) is not None, f"{label}: the new user logs in")
        encrypted = subprocess.run(
            ["psql", "-h", pg.dir, "-p", str(pg.port), "-U", "postgres", "-d", "postgres", "-qAt", "-c",
             "SELECT bool_and(s.ssl) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) "
             "WHERE a.application_name = 'roster'"],
            capture_output=True, text=True, check=True).stdout.strip()
        check(encrypted == "t", f"{label}: every Roster connection is encrypted (pg_stat_ssl: {encrypted!r})")
    finally:
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--artifacts", required=True)
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    artifacts = Path(args.artifacts)
    artifacts.mkdir(parents=True, exist_ok=True)
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="roster-tls-") as workdir:
        make_ca(workdir, "ca")
        other_ca = make_ca(workdir, "otherca")
        make_server_cert(workdir, "ca", "localhost")
        ca = Path(workdir) / "ca.pem"
        pg = PrivatePostgres(configure=tls_only(workdir))
        try:
            def url(host, query):
                return f"postgres://postgres@{host}:{pg.port}/postgres?{query}"

            print("TLS to PostgreSQL (a private cluster that accepts TLS only)")
            serves(binary, workdir, url("localhost", f"sslmode=verify-full&sslrootcert={ca}"), "verify-full", pg)
            refused(binary, workdir, url("localhost", f"sslmode=verify-full&sslrootcert={other_ca}"),
                    "verify-full with another CA", "not signed by a trusted CA", "sslrootcert")
            refused(binary, workdir, url("127.0.0.1", f"sslmode=verify-full&sslrootcert={ca}"),
                    "verify-full with a name not in the certificate", "not valid for the host name",
                    "127.0.0.1")
            serves(binary, workdir, url("127.0.0.1", f"sslmode=verify-ca&sslrootcert={ca}"), "verify-ca", pg)
            serves(binary, workdir, url("127.0.0.1", "sslmode=require"), "require", pg)
            refused(binary, workdir, url("127.0.0.1", "sslmode=disable"), "disable",
                    "accepts only TLS", "sslmode=require")
        finally:
            pg.destroy()
            for log in Path(workdir).glob("*.log"):
                shutil.copy(log, artifacts / log.name)
    print(f"TLS tests: {'passed' if not faults.failures else 'FAILED'} in {time.time() - started:.0f} s")
    for failure in faults.failures:
        print(f"  - {failure}")
    sys.exit(1 if faults.failures else 0)


if __name__ == "__main__":
    main()
