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
