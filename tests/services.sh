# Sourced by tests/run and .ci/run: find the services the tests need, or
# install and start them. Each function is quick when the service already
# answers. Shared services are only ever started here, never stopped.

say() { printf '[services] %s\n' "$*" >&2; }

# Where the test tools keep what outlives a clone (virtualenvs, the advisory
# database): one directory, $ROSTER_CACHE.
export ROSTER_CACHE=${ROSTER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/roster}
mkdir -p "$ROSTER_CACHE"

apt_install() {
    say "installing $*"
    if [ -z "${ROSTER_APT_UPDATED:-}" ]; then
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        export ROSTER_APT_UPDATED=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}

wait_for() { # seconds, command...
    local seconds=$1; shift
    for _ in $(seq 1 $((seconds * 5))); do
        "$@" >/dev/null 2>&1 && return 0
        sleep 0.2
    done
    return 1
}

# Prints a PostgreSQL URL that accepts connections: $ROSTER_TEST_POSTGRES_URL
# if given, else the local server on 127.0.0.1:5432 (started, or installed
# and started, when it does not answer).
ensure_postgres() {
    local url=${ROSTER_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/test}
    if ! command -v pg_ctlcluster >/dev/null 2>&1; then
        apt_install postgresql postgresql-contrib
    fi
    if ! pg_isready -q -h 127.0.0.1 -p 5432; then
        say "starting PostgreSQL"
        pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -n 1)" main start >&2 || true
        wait_for 30 pg_isready -q -h 127.0.0.1 -p 5432 || { say "PostgreSQL does not answer"; return 1; }
    fi
    if ! psql "$url" -qAtc 'SELECT 1' >/dev/null 2>&1; then
        # A fresh Debian cluster refuses password-less TCP logins: give the
        # postgres role a password and use it.
        say "setting a password for the postgres role"
        runuser -u postgres -- psql -qc "ALTER ROLE postgres PASSWORD 'postgres'" >&2
        runuser -u postgres -- psql -qAtc "SELECT 1 FROM pg_database WHERE datname = 'test'" | grep -q 1 \
            || runuser -u postgres -- createdb test
        url=postgres://postgres:postgres@127.0.0.1:5432/test
        psql "$url" -qAtc 'SELECT 1' >/dev/null || { say "cannot log in to PostgreSQL"; return 1; }
    fi
    printf '%s\n' "$url"
}

# openssl makes the certificates of the TLS tests.
ensure_openssl() {
    command -v openssl >/dev/null 2>&1 || apt_install openssl
}

# Debian's Chromium, for the browser test (test tools never download one).
ensure_chromium() {
    if ! command -v chromium >/dev/null 2>&1; then
        apt_install chromium
    fi
}

# Prints the Python of virtualenv $1 holding requirements file $2 (what for:
# $3), made or remade only when that file changes (a stamp of its hash).
ensure_venv() {
    local venv=$1 requirements=$2 what=$3
    local stamp="$venv/.requirements.sha256"
    local want; want=$(sha256sum "$requirements" | cut -d' ' -f1)
    if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing $what into $venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/pip" install -q --upgrade pip >&2
        "$venv/bin/pip" install -q -r "$requirements" >&2
        printf '%s\n' "$want" > "$stamp"
    fi
    printf '%s\n' "$venv/bin/python"
}

# The Python test tools (tests/docs/requirements.txt), outside the clone.
ensure_python_tools() {
    ensure_venv "${ROSTER_VENV:-$ROSTER_CACHE/venv}" tests/docs/requirements.txt \
        "the Python test tools"
}

# The Python client generator (tests/clients/requirements.txt), in a
# virtualenv of its own so that its dependencies never meet the above.
ensure_client_python_tools() {
    ensure_venv "$ROSTER_CACHE/clients-venv" tests/clients/requirements.txt \
        "the client generators (Python)"
}

# Prints a directory outside the clone where `npm ci` installed
# tests/clients/package-lock.json (the TypeScript client generator, its
# fetch client, the compiler and Redocly's linter); reinstalled only when
# the lock file changes.
ensure_client_node_tools() {
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        apt_install nodejs npm
    fi
    # Redocly's CLI 2 needs Node.js 20 or later (Debian 12's own is 18).
    local major; major=$(node -p 'process.versions.node.split(".")[0]')
    if [ "$major" -lt 20 ]; then
        say "Node.js $(node --version) is too old for the client tests: install Node.js 20 or later"
        return 1
    fi
    local dir=$ROSTER_CACHE/clients-node
    local lock=tests/clients/package-lock.json
    local stamp="$dir/.package-lock.sha256"
    local want; want=$(sha256sum "$lock" | cut -d' ' -f1)
    if [ ! -d "$dir/node_modules" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        say "installing the client generators (npm) into $dir"
        rm -rf "$dir"
        mkdir -p "$dir"
        cp tests/clients/package.json "$lock" "$dir/"
        (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error) >&2
        printf '%s\n' "$want" > "$stamp"
    fi
    printf '%s\n' "$dir"
}

# nginx, which the fault tests run in front of Roster with
# deploy/nginx.conf (a private instance on a free port; the package's
# own service is never started or used).
ensure_nginx() {
    if ! command -v nginx >/dev/null 2>&1 && [ ! -x /usr/sbin/nginx ]; then
        apt_install nginx-light
    fi
}

# systemd-analyze, which checks deploy/roster.service.
ensure_systemd_analyze() {
    command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
}

# promtool (Debian's prometheus package), which checks what /metrics serves;
# the package's own service is never started or used.
ensure_promtool() {
    command -v promtool >/dev/null 2>&1 || apt_install prometheus
}

ensure_redis() {
    if ! command -v redis-server >/dev/null 2>&1; then
        apt_install redis-server
    fi
    if ! redis-cli -h 127.0.0.1 -p 6379 ping 2>/dev/null | grep -q PONG; then
        say "starting Redis"
        redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" >&2
        wait_for 15 sh -c 'redis-cli -h 127.0.0.1 -p 6379 ping | grep -q PONG' || { say "Redis does not answer"; return 1; }
    fi
}

# cargo-audit 0.22, installed from crates.io once.
ensure_cargo_audit() {
    if ! cargo audit --version 2>/dev/null | grep -q ' 0\.22\.'; then
        say "installing cargo-audit (a few minutes, once)"
        env -u CARGO_TARGET_DIR cargo install --locked --quiet cargo-audit --version '~0.22' >&2
    fi
}

# Prints the path of a checkout of the RustSec advisory database, kept in
# $ROSTER_CACHE. With $ROSTER_ADVISORY_BUNDLE (a `git bundle` snapshot of
# rustsec/advisory-db) the checkout is exactly that snapshot, and nothing is
# fetched: CI passes one, as it cannot reach GitHub. Without it the checkout
# is cloned from, and then updated from, GitHub. Fails when there is no
# database: an audit without one would pass by proving nothing.
ensure_advisory_db() {
    local db=$ROSTER_CACHE/advisory-db
    local upstream=https://github.com/rustsec/advisory-db.git
    local bundle=${ROSTER_ADVISORY_BUNDLE:-}
    if [ -n "$bundle" ]; then
        [ -f "$bundle" ] || { say "ROSTER_ADVISORY_BUNDLE names no file: $bundle"; return 1; }
        local want; want=$(git bundle list-heads "$bundle" | awk 'NR == 1 {print $1}')
        if [ "$(git -C "$db" rev-parse -q --verify HEAD 2>/dev/null)" != "$want" ]; then
            # The snapshot is shallow (one commit, no parents), which
            # `git clone` refuses: unbundle it into a repository marked
            # shallow at that commit.
            rm -rf "$db"
            git init -q "$db" >&2 \
                && git -C "$db" bundle unbundle "$bundle" >/dev/null \
                && printf '%s\n' "$want" > "$db/.git/shallow" \
                && git -C "$db" update-ref refs/heads/main "$want" \
                && git -C "$db" checkout -q main \
                || { rm -rf "$db"; say "cannot unpack the advisory database from $bundle"; return 1; }
            say "advisory database unpacked from the bundle $bundle"
        fi
    elif [ ! -d "$db/.git" ]; then
        rm -rf "$db"
        GIT_TERMINAL_PROMPT=0 timeout 300 git clone -q "$upstream" "$db" >&2 \
            || { rm -rf "$db"; say "no RustSec advisory database: $upstream is unreachable (set ROSTER_ADVISORY_BUNDLE to a git bundle of it)"; return 1; }
    elif ! GIT_TERMINAL_PROMPT=0 timeout 120 git -C "$db" pull -q --ff-only >&2 2>/dev/null; then
        say "advisory database not updated: $upstream is unreachable"
    fi
    say "advisory database as of $(git -C "$db" log -1 --format=%cs)"
    printf '%s\n' "$db"
}
