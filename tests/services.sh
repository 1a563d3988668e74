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

# Garage, the S3-compatible object store the upload tests and the cluster
# test use: version 2.5.0, one binary under $ROSTER_CACHE/garage. It comes
# from $ROSTER_GARAGE_XZ when that names an xz-packed build whose unpacked
# sha256 is the one below (CI passes one), else from `cargo install` (once
# per machine: 8 min 38 s on two otherwise idle cores here).
GARAGE_VERSION=2.5.0
GARAGE_SHA256=b726b295ba0631e22b22b16150e2faaadf7afe961afbefc21c18064125281dba
ensure_garage_binary() {
    local root=$ROSTER_CACHE/garage
    local bin=$root/bin/garage
    if [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -q "cargo:$GARAGE_VERSION"; then
        printf '%s\n' "$bin"
        return 0
    fi
    mkdir -p "$root/bin"
    local xz=${ROSTER_GARAGE_XZ:-}
    if [ -n "$xz" ] && [ -f "$xz" ]; then
        command -v xz >/dev/null 2>&1 || apt_install xz-utils
        xz -dc "$xz" > "$bin.new"
        if [ "$(sha256sum "$bin.new" | cut -d' ' -f1)" = "$GARAGE_SHA256" ]; then
            chmod +x "$bin.new" && mv "$bin.new" "$bin"
            say "Garage $GARAGE_VERSION unpacked from $xz"
        else
            rm -f "$bin.new"
            say "$xz is not Garage $GARAGE_VERSION (sha256 differs): building it instead"
        fi
    fi
    if [ ! -x "$bin" ]; then
        say "building Garage $GARAGE_VERSION with cargo install (about 9 minutes on two cores, once)"
        env -u CARGO_TARGET_DIR cargo install --locked --quiet --root "$root" garage --version "$GARAGE_VERSION" >&2
    fi
    printf '%s\n' "$bin"
}

# Exports ROSTER_TEST_S3_{ENDPOINT,BUCKET,REGION,ACCESS_KEY_ID,SECRET_ACCESS_KEY}
# for an S3 bucket the tests may use: the ones given, or else a single-node
# Garage on 127.0.0.1:3900 (its state under $ROSTER_CACHE/garage), started
# and given its layout, key and bucket where missing. Like PostgreSQL and
# Redis it is left running for the next run; tests never stop it. Also
# exports ROSTER_GARAGE (the binary) and ROSTER_GARAGE_CONFIG.
ensure_s3() {
    if [ -n "${ROSTER_TEST_S3_ENDPOINT:-}" ]; then
        return 0
    fi
    local bin; bin=$(ensure_garage_binary) || return 1
    local root=$ROSTER_CACHE/garage
    local config=$root/garage.toml
    mkdir -p "$root/meta" "$root/data"
    if [ ! -f "$config" ]; then
        local secret; secret=$(od -An -tx1 -N32 /dev/urandom | tr -d ' \n')
        printf '%s\n' \
            "metadata_dir = \"$root/meta\"" \
            "data_dir = \"$root/data\"" \
            'db_engine = "sqlite"' \
            'replication_factor = 1' \
            'rpc_bind_addr = "127.0.0.1:3901"' \
            'rpc_public_addr = "127.0.0.1:3901"' \
            "rpc_secret = \"$secret\"" \
            '' \
            '[s3_api]' \
            's3_region = "garage"' \
            'api_bind_addr = "127.0.0.1:3900"' > "$config.new"
        chmod 600 "$config.new" && mv "$config.new" "$config"
    fi
    export ROSTER_GARAGE=$bin ROSTER_GARAGE_CONFIG=$config
    local garage=("$bin" -c "$config")
    if ! "${garage[@]}" status >/dev/null 2>&1; then
        # A node started from this path earlier whose state has since been
        # deleted (another rpc_secret) would hold the ports: it goes.
        pkill -f "^$bin -c $config server" 2>/dev/null && sleep 1
        say "starting Garage (S3 on 127.0.0.1:3900)"
        setsid nohup "${garage[@]}" server >> "$root/garage.log" 2>&1 < /dev/null &
        wait_for 30 "${garage[@]}" status || { say "Garage does not answer; see $root/garage.log"; return 1; }
    fi
    if "${garage[@]}" status 2>/dev/null | grep -q 'NO ROLE ASSIGNED'; then
        say "giving the Garage node its layout"
        local node; node=$("${garage[@]}" node id -q 2>/dev/null | cut -d@ -f1)
        "${garage[@]}" layout assign -z local -c 1G "$node" >/dev/null
        "${garage[@]}" layout apply --version 1 >/dev/null
    fi
    export ROSTER_TEST_S3_ENDPOINT=http://127.0.0.1:3900
    export ROSTER_TEST_S3_BUCKET=roster-test
    export ROSTER_TEST_S3_REGION=garage
    # Fixed test credentials, imported into the private node (Garage key
    # ids are GK and 24 hex digits; secrets 64 hex digits).
    export ROSTER_TEST_S3_ACCESS_KEY_ID=GK00000000000000000000a001
    export ROSTER_TEST_S3_SECRET_ACCESS_KEY=00000000000000000000000000000000000000000000000000000000000a0001
    if ! "${garage[@]}" key info "$ROSTER_TEST_S3_ACCESS_KEY_ID" >/dev/null 2>&1; then
        "${garage[@]}" key import --yes -n roster-test \
            "$ROSTER_TEST_S3_ACCESS_KEY_ID" "$ROSTER_TEST_S3_SECRET_ACCESS_KEY" >/dev/null
    fi
    if ! "${garage[@]}" bucket info "$ROSTER_TEST_S3_BUCKET" >/dev/null 2>&1; then
        "${garage[@]}" bucket create "$ROSTER_TEST_S3_BUCKET" >/dev/null
        "${garage[@]}" bucket allow --read --write --owner "$ROSTER_TEST_S3_BUCKET" \
            --key "$ROSTER_TEST_S3_ACCESS_KEY_ID" >/dev/null
    fi
    wait_for 30 curl -s -o /dev/null http://127.0.0.1:3900/ \
        || { say "Garage's S3 endpoint does not answer"; return 1; }
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
