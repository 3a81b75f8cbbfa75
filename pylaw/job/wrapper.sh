#!/usr/bin/env bash
# pylaw job wrapper: runs the branches assigned to one batch job, on the worker.
#
#   bash wrapper.sh COMMAND...            (COMMAND runs one branch when given --branch=N)
#
# Read from the environment (set by the job file that the factory rendered):
#   PYLAW_BRANCHES     space-separated branch numbers of this job (required, unless PYLAW_PILOT)
#   PYLAW_PILOT        if set, this is a pilot job: COMMAND runs once, without --branch, and
#                      leases its branches from a work queue itself (pylaw.job.pilot)
#   PYLAW_JOB_KEY      the workflow's job number, PYLAW_ATTEMPT its attempt (for log names)
#   PYLAW_SETUP_FILE   bootstrap hook: a file sourced first (e.g. an experiment's setup.sh)
#   PYLAW_VENV         bootstrap hook: a virtualenv activated next
#   PYLAW_BUNDLE       a code bundle (pylaw-bundle-<hash>.tar.gz; a name in the job's working
#                      directory, where the batch system transferred it, or a path): unpacked
#                      once per hash, checked against its name, its python put first, and
#                      its Luigi config (if it has one) read unless LUIGI_CONFIG_PATH is set
#   PYLAW_BUNDLE_CACHE where bundles are unpacked: a node-local directory shared by the jobs of
#                      a node (one of them unpacks, under flock); unset or not writable: the
#                      job's own scratch, removed at the end
#   PYLAW_PYTHON       the worker's python a bundle runs on (default python3)
#   PYLAW_PYTHONPATH   prepended to PYTHONPATH (where the task modules live)
#   PYLAW_LUIGI_CONFIG the submitter's Luigi config shipped with the job (a name in the job's
#                      working directory, or a path): becomes LUIGI_CONFIG_PATH before the
#                      bootstrap (a setup file may still change it); a bundle's own config is
#                      then not read
#   PYLAW_LOG_DIR      if set, one log per branch is staged there at the end; if not, the
#                      logs are printed to the job's output
#
# Prints one line per branch ("pylaw-job: branch N ok|failed|missing-outputs rc=R") and
# exits with:
EXIT_BOOTSTRAP=3   # the environment could not be set up: no branch was run
EXIT_TASK=4        # at least one branch task failed
EXIT_OUTPUTS=5     # every task ran, but at least one branch did not produce its outputs
# The branch command itself exits 0, 4 (task failed) or 5 (outputs missing); anything
# else (a crash, a signal) counts as a task failure.
#
# The wrapper never prints the environment: it may hold credentials.

say() { echo "pylaw-job: $*"; }

# The bundle's content hash, as pylaw.job.bundle.content_digest computes it: sha256 over the
# sorted (path, executable or not, size, content) of every file. Args: directory, expected prefix.
VERIFY='
import hashlib, os, sys
root, want = sys.argv[1], sys.argv[2]
files = []
for directory, _, names in os.walk(root):
    files += [os.path.join(directory, name) for name in names]
digest = hashlib.sha256()
for rel, path in sorted((os.path.relpath(p, root).replace(os.sep, "/"), p) for p in files):
    with open(path, "rb") as f:
        data = f.read()
    mode = 0o755 if os.stat(path).st_mode & 0o111 else 0o644
    digest.update(("%s\0%o\0%d\0" % (rel, mode, len(data))).encode())
    digest.update(data)
sys.exit(0 if digest.hexdigest()[:len(want)] == want else 1)
'

unpack_bundle() {  # FILE DIR DIGEST PYTHON: extract, check the hash, build the environment, mark complete
    rm -rf "$2" && mkdir -p "$2" || { say "cannot create $2"; return 1; }
    tar -xzf "$1" -C "$2" || { say "unpacking bundle $1 failed"; return 1; }
    "$4" -c "$VERIFY" "$2" "$3" || { say "bundle $1 does not match its name (corrupt or renamed)"; return 1; }
    if [ -s "$2/wheels.txt" ]; then  # compiled packages: installed offline into a venv that sees the site's
        "$4" -m venv --system-site-packages "$2/venv" || { say "creating a venv with $4 failed"; return 1; }
        # shellcheck disable=SC2046
        "$2/venv/bin/python" -m pip install -q --no-index --no-deps --no-cache-dir --disable-pip-version-check \
            --find-links "$2/wheels" $(cat "$2/wheels.txt") || { say "installing the bundle's wheels failed"; return 1; }
    else  # pure Python: no venv, only a python named "python"
        mkdir -p "$2/bin" && ln -sf "$(command -v "$4")" "$2/bin/python" || return 1
    fi
    touch "$2/.complete"
}

bootstrap_bundle() {
    local file=$PYLAW_BUNDLE name digest py root dir rel paths=""
    [ -f "$file" ] || { say "bundle $file not found (working directory $(pwd))"; return 1; }
    name=${file##*/}
    digest=${name#pylaw-bundle-}
    digest=${digest%.tar.gz}
    case "$digest" in
        *[!0-9a-f]*) say "bundle $name: not a pylaw-bundle-<hash>.tar.gz name"; return 1 ;;
    esac
    [ "${#digest}" -eq 16 ] || { say "bundle $name: not a pylaw-bundle-<hash>.tar.gz name"; return 1; }
    py=${PYLAW_PYTHON:-python3}
    command -v "$py" > /dev/null 2>&1 || { say "no python '$py' for the bundle: set PYLAW_PYTHON"; return 1; }
    root="$scratch/bundles"
    if [ -n "${PYLAW_BUNDLE_CACHE:-}" ]; then
        if command -v flock > /dev/null 2>&1 && mkdir -p "$PYLAW_BUNDLE_CACHE" 2> /dev/null \
                && [ -w "$PYLAW_BUNDLE_CACHE" ]; then
            root=$PYLAW_BUNDLE_CACHE
        else
            say "bundle cache $PYLAW_BUNDLE_CACHE not writable (or no flock): unpacking into the job's scratch"
        fi
    fi
    dir="$root/$digest"
    mkdir -p "$root" || { say "cannot create $root"; return 1; }
    # the first job of a node unpacks; the others wait for the lock and find it complete
    (
        flock 9 || exit 1
        if [ -f "$dir/.complete" ]; then
            say "bundle $digest reused from $dir"
        else
            unpack_bundle "$file" "$dir" "$digest" "$py" && say "bundle $digest unpacked into $dir"
        fi
    ) 9> "$root/$digest.lock" || return 1
    if [ -d "$dir/venv" ]; then PATH="$dir/venv/bin:$PATH"; else PATH="$dir/bin:$PATH"; fi
    while IFS= read -r rel; do
        [ -n "$rel" ] && paths="${paths:+$paths:}$dir/$rel"
    done < "$dir/pythonpath.txt"
    # provenance records of the branches name the bundle (its checked hash) and the code version in it
    export PATH PYTHONPATH="$paths${PYTHONPATH:+:$PYTHONPATH}" PYLAW_BUNDLE_DIR="$dir" PYLAW_BUNDLE_DIGEST="$digest"
    if [ -z "${LUIGI_CONFIG_PATH:-}" ] && [ -s "$dir/luigi_config.txt" ]; then
        IFS= read -r rel < "$dir/luigi_config.txt"
        export LUIGI_CONFIG_PATH="$dir/$rel"
    fi
}

bootstrap() {
    if [ -n "${PYLAW_SETUP_FILE:-}" ]; then
        # shellcheck disable=SC1090
        source "$PYLAW_SETUP_FILE" || { say "sourcing setup file $PYLAW_SETUP_FILE failed"; return 1; }
    fi
    if [ -n "${PYLAW_VENV:-}" ]; then
        # shellcheck disable=SC1091
        source "$PYLAW_VENV/bin/activate" || { say "activating venv $PYLAW_VENV failed"; return 1; }
    fi
    if [ -n "${PYLAW_BUNDLE:-}" ]; then
        bootstrap_bundle || return 1
    fi
    if [ -n "${PYLAW_PYTHONPATH:-}" ]; then
        export PYTHONPATH="$PYLAW_PYTHONPATH${PYTHONPATH:+:$PYTHONPATH}"
    fi
    return 0
}

if { [ -z "${PYLAW_BRANCHES:-}" ] && [ -z "${PYLAW_PILOT:-}" ]; } || [ "$#" -eq 0 ]; then
    say "bootstrap failed: PYLAW_BRANCHES and a command are required (job file rendered wrongly?)"
    exit "$EXIT_BOOTSTRAP"
fi
# Relative names (a transferred bundle, logs the batch system transfers back) mean the job's
# working directory, also if a setup file changes directory.
case "${PYLAW_LOG_DIR:-}" in /*|"") ;; *) PYLAW_LOG_DIR="$PWD/$PYLAW_LOG_DIR" ;; esac
case "${PYLAW_BUNDLE:-}" in /*|"") ;; *) PYLAW_BUNDLE="$PWD/$PYLAW_BUNDLE" ;; esac
case "${PYLAW_LUIGI_CONFIG:-}" in /*|"") ;; *) PYLAW_LUIGI_CONFIG="$PWD/$PYLAW_LUIGI_CONFIG" ;; esac
if [ -n "${PYLAW_LUIGI_CONFIG:-}" ]; then
    if [ ! -f "$PYLAW_LUIGI_CONFIG" ]; then
        say "bootstrap failed: Luigi config $PYLAW_LUIGI_CONFIG not found"
        exit "$EXIT_BOOTSTRAP"
    fi
    export LUIGI_CONFIG_PATH="$PYLAW_LUIGI_CONFIG"
fi
# Logs (and a bundle when there is no cache) are written to local scratch first; logs are
# staged to PYLAW_LOG_DIR at the end, also when the job is killed (TERM from the batch
# system at the walltime limit).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/pylaw-job.XXXXXX") || { say "bootstrap failed: no scratch dir"; exit "$EXIT_BOOTSTRAP"; }
stage_logs() {
    if [ -n "${PYLAW_LOG_DIR:-}" ]; then
        mkdir -p "$PYLAW_LOG_DIR" && cp -f "$scratch"/*.log "$PYLAW_LOG_DIR"/ 2>/dev/null
    fi
    rm -rf "$scratch"
}
trap stage_logs EXIT
trap 'say "terminated by signal"; exit "$EXIT_TASK"' TERM INT
if ! bootstrap; then
    say "bootstrap failed on $(hostname): no branch was run"
    exit "$EXIT_BOOTSTRAP"
fi

if [ -n "${PYLAW_PILOT:-}" ]; then
    log="$scratch/pilot${PYLAW_JOB_KEY:-0}_attempt${PYLAW_ATTEMPT:-1}.log"
    "$@" > "$log" 2>&1
    rc=$?
    say "pilot ended rc=$rc"
    [ -n "${PYLAW_LOG_DIR:-}" ] || sed "s/^/  [pilot] /" "$log"
    [ "$rc" -eq 0 ] && exit 0
    tail -n 20 "$log" | sed "s/^/  [pilot] /"
    exit "$EXIT_TASK"
fi

failed=0
missing=0
for branch in $PYLAW_BRANCHES; do
    log="$scratch/job${PYLAW_JOB_KEY:-0}_attempt${PYLAW_ATTEMPT:-1}_branch${branch}.log"
    "$@" "--branch=$branch" > "$log" 2>&1
    rc=$?
    case "$rc" in
        0) say "branch $branch ok rc=0" ;;
        5) say "branch $branch missing-outputs rc=5"; missing=1 ;;
        *) say "branch $branch failed rc=$rc"; failed=1 ;;
    esac
    if [ -z "${PYLAW_LOG_DIR:-}" ]; then
        # logs are not staged: the batch system's job output is the only place to keep them
        sed "s/^/  [branch $branch] /" "$log"
    elif [ "$rc" -ne 0 ]; then
        # the end of the log is usually what explains a failure; all of it is staged
        tail -n 20 "$log" | sed "s/^/  [branch $branch] /"
    fi
done

[ "$failed" -eq 0 ] || exit "$EXIT_TASK"
[ "$missing" -eq 0 ] || exit "$EXIT_OUTPUTS"
exit 0
