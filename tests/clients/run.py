#!/usr/bin/env python3
"""Clients generated from the API documents, as their users make them, against
the real binary.

The server's own documents (GET /api/v1/openapi.json and /api/v2/openapi.json)
are fetched from the running binary, then:

1. Redocly's linter (@redocly/cli, the recommended ruleset, redocly.yaml)
   lints both: any error fails; warnings are printed.
2. openapi-python-client generates a package from each document; a warning
   fails. flow.py drives the full flow below with those packages as
   generated, every answer read through the generated models.
3. openapi-typescript generates types from each document (generate-types.mjs:
   its Node API, with the transform its documentation gives for binary
   strings, so that an upload carries a Blob); a warning fails. flow.ts uses
   them with openapi-fetch, compiles under `tsc --strict` (tsconfig.json),
   and runs the same flow with node.

The flow: register (and a few more users, so that v2 has several pages),
the token endpoint (form) and login (JSON), me, list, search, a v2 cursor
walk to the end that sees each user of the run once, patch, a password
change (the old tokens then fail), refresh, an upload (bytes that are not
UTF-8), its download (the same bytes), its deletion, and logout (the token
then fails), then the account's own: two sessions listed and one ended, a
password reset asked for, a verification token refused and one resent, and
the account deleted.

Nothing generated is edited by hand. Documents, generated code, compiler
output and the server's log go to the artifacts directory, never into the
source tree.

The tools are the exact versions of requirements.txt (run this script with
the Python of a virtualenv holding them) and package-lock.json (installed
with `npm ci` in the directory given by --node-tools or
ROSTER_CLIENT_NODE_TOOLS); tests/services.sh installs both
(ensure_client_python_tools, ensure_client_node_tools).

Usage: run.py --binary target/debug/roster --artifacts artifacts/clients
              [--database-url URL] [--node-tools DIR]
(--database-url: an empty database; SQLite in a temporary directory without it.)
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
VERSIONS = ("v1", "v2")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def step(title):
    print(f"--- {title}", flush=True)


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return reply.status, reply.read()


class Server:
    def __init__(self, binary, database_url, workdir, log_path):
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = dict(
            os.environ,
            ROCKET_PORT=str(self.port),
            ROCKET_ADDRESS="127.0.0.1",
            ROCKET_BCRYPT_COST="4",
            ROCKET_JWT_SECRET="clients-test-secret-0123456789abcdef",
            ROCKET_LOG_LEVEL="critical",
            # Each flow registers and signs in a handful of times from one address.
            ROCKET_RATE_LIMIT="{per_minute=1000000,login_per_minute=1000000,register_per_minute=1000000,"
            "password_reset_per_hour=1000000,account_email_per_hour=1000000}",
            DATABASE_URL=database_url,
        )
        self.log = open(log_path, "w")
        self.process = subprocess.Popen([binary], cwd=workdir, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if get(f"{self.base}/health/live", timeout=1)[0] == 200:
                    return
            except (OSError, urllib.error.URLError):
                pass
            if self.process.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"roster did not start; see {log_path}")

    def stop(self):
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=30)
        self.log.close()
        if code != 0:
            raise SystemExit(f"roster exited with {code} on SIGTERM")


class Checks:
    """Runs the steps, records each outcome, prints the summary."""

    def __init__(self):
        self.results = []

    def record(self, name, ok, note=""):
        self.results.append((name, ok, note))
        print(f"{'ok' if ok else 'FAILED'}: {name}{': ' + note if note else ''}", flush=True)
        return ok

    def summary(self):
        print("=== generated clients: summary ===")
        for name, ok, note in self.results:
            print(f"  {'passed' if ok else 'FAILED'}  {name}{'  (' + note + ')' if note else ''}")
        passed = sum(ok for _, ok, _ in self.results)
        print(f"{passed} passed, {len(self.results) - passed} failed")
        return passed == len(self.results)


def run(command, *, env=None, cwd=None, log=None):
    """Runs a tool; returns (exit code, its output, stdout and stderr
    together in order), echoing the output and keeping it in `log`."""
    result = subprocess.run(
        [str(c) for c in command], env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    output = result.stdout
    if log is not None:
        Path(log).write_text(output)
    for line in output.splitlines():
        print(f"    {line}")
    return result.returncode, output


def node_env(node_tools):
    env = dict(os.environ)
    env["PATH"] = f"{node_tools / 'node_modules' / '.bin'}{os.pathsep}{env.get('PATH', '')}"
    # No usage data and no update notices from Redocly: only the registries
    # are reachable, and the output must be the linter's alone.
    env["REDOCLY_TELEMETRY"] = "off"
    env["REDOCLY_SUPPRESS_UPDATE_NOTICE"] = "true"
    env["NO_COLOR"] = "1"
    env["FORCE_COLOR"] = "0"
    return env


def fetch_documents(server, out):
    paths = {}
    for version in VERSIONS:
        status, body = get(f"{server.base}/api/{version}/openapi.json")
        assert status == 200, status
        document = json.loads(body)
        path = out / f"openapi-{version}.json"
        path.write_text(json.dumps(document, indent=2) + "\n")
        print(f"{version}: OpenAPI {document['openapi']}, {len(document['paths'])} paths")
        paths[version] = path
    return paths


def redocly_lint(checks, documents, node_tools, out):
    env = node_env(node_tools)
    for version, document in documents.items():
        step(f"redocly lint: {version}")
        command = ["redocly", "lint", "--config", HERE / "redocly.yaml", "--format", "json", document]
        result = subprocess.run([str(c) for c in command], env=env, cwd=out, capture_output=True, text=True)
        # The report is stdout; stderr has the CLI's own notices.
        for line in result.stderr.splitlines():
            print(f"    {line}")
        try:
            report = json.loads(result.stdout)
        except json.JSONDecodeError:
            print(result.stdout)
            checks.record(f"redocly lint {version}", False, f"no report (exit {result.returncode})")
            continue
        (out / f"redocly-{version}.json").write_text(json.dumps(report, indent=2) + "\n")
        for problem in report["problems"]:
            where = ", ".join(loc.get("pointer", "") for loc in problem.get("location", []))
            print(f"    {problem['severity']}: {problem['ruleId']}: {problem['message']} at {where}")
        totals = report["totals"]
        ok = result.returncode == 0 and totals["errors"] == 0
        checks.record(f"redocly lint {version}", ok, f"{totals['errors']} errors, {totals['warnings']} warnings")


def unexpected(output, expected):
    """The lines of a generator's output other than its usual report: any
    is a warning (or worse)."""
    return [line for line in output.splitlines() if line.strip() and not re.match(expected, line)]


def python_client(checks, documents, server, out, run_id):
    bin_dir = Path(sys.executable).parent
    # The generator formats its output with the ruff beside it.
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    packages = out / "python"
    shutil.rmtree(packages, ignore_errors=True)
    packages.mkdir()
    generated = True
    for version, document in documents.items():
        step(f"openapi-python-client: {version}")
        code, output = run(
            [bin_dir / "openapi-python-client", "generate", "--path", document,
             "--output-path", packages / f"roster_{version}", "--meta", "none", "--fail-on-warning"],
            env=env, cwd=out, log=out / f"openapi-python-client-{version}.log",
        )
        warnings = unexpected(output, r"Generating ")
        ok = code == 0 and not warnings and (packages / f"roster_{version}" / "__init__.py").exists()
        generated &= checks.record(
            f"openapi-python-client {version}", ok,
            "" if ok else f"exit {code}, {len(warnings)} warning lines",
        )
    if not generated:
        checks.record("python flow", False, "not run: generation failed")
        return
    step("python flow")
    env = dict(os.environ, PYTHONPATH=str(packages))
    code, _ = run([sys.executable, HERE / "flow.py", server.base, f"py{run_id}"], env=env, cwd=out,
                  log=out / "flow-python.log")
    checks.record("python flow", code == 0, "" if code == 0 else f"exit {code}")


def typescript_client(checks, documents, server, out, node_tools, run_id):
    env = node_env(node_tools)
    build = out / "typescript"
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir()
    # Beside node_modules, so that the script and node find the packages.
    (build / "node_modules").symlink_to(node_tools / "node_modules", target_is_directory=True)
    (build / "package.json").write_text('{"private": true, "type": "module"}\n')
    shutil.copy(HERE / "generate-types.mjs", build / "generate-types.mjs")
    generated = True
    for version, document in documents.items():
        step(f"openapi-typescript: {version}")
        code, output = run(["node", "generate-types.mjs", document, f"{version}.d.ts"], env=env, cwd=build,
                           log=out / f"openapi-typescript-{version}.log")
        warnings = unexpected(output, r"wrote ")
        ok = code == 0 and not warnings and (build / f"{version}.d.ts").exists()
        generated &= checks.record(
            f"openapi-typescript {version}", ok, "" if ok else f"exit {code}, {len(warnings)} warning lines",
        )
    if not generated:
        checks.record("tsc --strict", False, "not run: generation failed")
        checks.record("typescript flow", False, "not run: generation failed")
        return
    step("tsc --strict")
    shutil.copy(HERE / "flow.ts", build / "flow.ts")
    shutil.copy(HERE / "tsconfig.json", build / "tsconfig.json")
    code, output = run(["tsc", "-p", build / "tsconfig.json", "--strict", "--outDir", build / "out"], env=env,
                       cwd=build, log=out / "tsc.log")
    compiled = code == 0 and not output.strip()
    checks.record("tsc --strict", compiled, "" if compiled else f"exit {code}, {len(output.splitlines())} lines")
    if not compiled:
        checks.record("typescript flow", False, "not run: compilation failed")
        return
    step("typescript flow")
    code, _ = run(["node", build / "out" / "flow.js", server.base, f"ts{run_id}"], env=env, cwd=build,
                  log=out / "flow-typescript.log")
    checks.record("typescript flow", code == 0, "" if code == 0 else f"exit {code}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--artifacts", required=True)
    parser.add_argument("--database-url")
    parser.add_argument("--node-tools", default=os.environ.get("ROSTER_CLIENT_NODE_TOOLS"),
                        help="where `npm ci` installed package-lock.json (default: ROSTER_CLIENT_NODE_TOOLS, "
                             "else this directory if it has node_modules)")
    args = parser.parse_args()
    binary = str(Path(args.binary).resolve())
    artifacts = Path(args.artifacts).resolve()
    artifacts.mkdir(parents=True, exist_ok=True)
    if not args.node_tools and (HERE / "node_modules").is_dir():
        args.node_tools = str(HERE)
    if not args.node_tools:
        raise SystemExit("no node tools: pass --node-tools or set ROSTER_CLIENT_NODE_TOOLS "
                         "(tests/services.sh: ensure_client_node_tools)")
    node_tools = Path(args.node_tools).resolve()
    if not (node_tools / "node_modules" / ".bin").is_dir():
        raise SystemExit(f"{node_tools} holds no node_modules/.bin: run `npm ci` there")
    # Letters and digits only (a username's rule), fresh for each run.
    run_id = format(int(time.time() * 1000) % 36**7, "x") + format(os.getpid() % 4096, "x")

    checks = Checks()
    with tempfile.TemporaryDirectory() as workdir:
        database_url = args.database_url or f"sqlite://{workdir}/clients.db?mode=rwc"
        server = Server(binary, database_url, workdir, artifacts / "server.log")
        try:
            step("OpenAPI documents")
            documents = fetch_documents(server, artifacts)
            redocly_lint(checks, documents, node_tools, artifacts)
            python_client(checks, documents, server, artifacts, run_id)
            typescript_client(checks, documents, server, artifacts, node_tools, run_id)
        finally:
            server.stop()
    ok = checks.summary()
    print("generated clients:", "passed" if ok else "FAILED")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
