#!/usr/bin/env bash
# pylaw job wrapper: runs the branches assigned to one batch job, on the worker.
#
#   bash wrapper.sh COMMAND...            (COMMAND runs one branch when given --branch=N)
#
# Read from the environment (set by the job file that the factory rendered):
#   PYLAW_BRANCHES     space-separated branch numbers of this job (required)
#   PYLAW_JOB_KEY      the workflow's job number, PYLAW_ATTEMPT its attempt (for log names)
#   PYLAW_SETUP_FILE   bootstrap hook: a file sourced first (e.g. an experiment's setup.sh)
#   PYLAW_VENV         bootstrap hook: a virtualenv activated next
#   PYLAW_PYTHONPATH   prepended to PYTHONPATH (where the task modules live)
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

bootstrap() {
    if [ -n "${PYLAW_SETUP_FILE:-}" ]; then
        # shellcheck disable=SC1090
        source "$PYLAW_SETUP_FILE" || { say "sourcing setup file $PYLAW_SETUP_FILE failed"; return 1; }
    fi
    if [ -n "${PYLAW_VENV:-}" ]; then
        # shellcheck disable=SC1091
        source "$PYLAW_VENV/bin/activate" || { say "activating venv $PYLAW_VENV failed"; return 1; }
    fi
    if [ -n "${PYLAW_PYTHONPATH:-}" ]; then
        export PYTHONPATH="$PYLAW_PYTHONPATH${PYTHONPATH:+:$PYTHONPATH}"
    fi
    return 0
}

if [ -z "${PYLAW_BRANCHES:-}" ] || [ "$#" -eq 0 ]; then
    say "bootstrap failed: PYLAW_BRANCHES and a command are required (job file rendered wrongly?)"
    exit "$EXIT_BOOTSTRAP"
fi
if ! bootstrap; then
    say "bootstrap failed on $(hostname): no branch was run"
    exit "$EXIT_BOOTSTRAP"
fi

# Logs are written to local scratch first and staged to PYLAW_LOG_DIR at the end, also
# when the job is killed (TERM from the batch system at the walltime limit).
scratch=$(mktemp -d "${TMPDIR:-/tmp}/pylaw-job.XXXXXX") || { say "bootstrap failed: no scratch dir"; exit "$EXIT_BOOTSTRAP"; }
stage_logs() {
    if [ -n "${PYLAW_LOG_DIR:-}" ]; then
        mkdir -p "$PYLAW_LOG_DIR" && cp -f "$scratch"/*.log "$PYLAW_LOG_DIR"/ 2>/dev/null
    fi
    rm -rf "$scratch"
}
trap stage_logs EXIT
trap 'say "terminated by signal"; exit "$EXIT_TASK"' TERM INT

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
