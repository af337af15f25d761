# Shared setup for the scripts in this directory. Source it, then call what you need:
#
#     source "$(dirname "${BASH_SOURCE[0]}")/_env.sh"
#     ensure_venv
#
# Sourcing only defines functions; nothing runs until they are called.

# Print the repository root (the directory above this file).
millstream_root() {
    (cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
}

# Print a python3 >= 3.11 from PATH, preferring the newest; fail when there is none.
_millstream_find_python() {
    local candidate
    for candidate in python3.14 python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            command -v "$candidate"
            return 0
        fi
    done
    echo "error: millstream needs Python 3.11 or newer on PATH (python3.11 ... python3.14)" >&2
    return 1
}

# Create <root>/.venv if missing, and `pip install -e '.[dev]'` into it whenever
# pyproject.toml is newer than the stamp left by the last install. Quiet on success.
ensure_venv() {
    local root venv stamp python
    root="$(millstream_root)" || return 1
    venv="$root/.venv"
    stamp="$venv/.millstream-installed"
    if [[ ! -x "$venv/bin/python" ]]; then
        python="$(_millstream_find_python)" || return 1
        echo "creating $venv with $python" >&2
        "$python" -m venv "$venv" || return 1
    fi
    if [[ ! -f "$stamp" || "$root/pyproject.toml" -nt "$stamp" ]]; then
        echo "installing millstream into $venv (pip install -e '.[dev]')" >&2
        (cd "$root" && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -e '.[dev]') || {
            echo "error: pip install -e '.[dev]' failed in $root" >&2
            return 1
        }
        touch "$stamp"
    fi
}

# Debian keeps PostgreSQL's server programs in /usr/lib/postgresql/<version>/bin, off PATH.
have_postgres() {
    if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
        return 0
    fi
    compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null &&
        compgen -G '/usr/lib/postgresql/*/bin/pg_ctl' >/dev/null
}

install_postgres() {
    have_postgres && return 0
    local sudo=()
    if ((EUID != 0)); then
        if ! sudo -n true 2>/dev/null; then
            echo "error: PostgreSQL is missing; install it: sudo apt-get install postgresql" >&2
            return 1
        fi
        sudo=(sudo -n)
    fi
    echo "==> installing PostgreSQL (apt-get install postgresql)" >&2
    # The tests and the demo start servers of their own: no need for the package's
    # default cluster.
    "${sudo[@]}" mkdir -p /etc/postgresql-common/createcluster.d &&
        echo "create_main_cluster = false" |
        "${sudo[@]}" tee /etc/postgresql-common/createcluster.d/millstream-tests.conf >/dev/null &&
        "${sudo[@]}" apt-get update -qq &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            --no-install-recommends postgresql >&2 &&
        have_postgres
}
