#!/usr/bin/env bash
# Push check of the deep-learning course: the public checks (`dlcourse validate`, on CPU) of
# every assignment you have started, with a JUnit report per assignment and an exit code.
# LabTS / GitLab CI runs it on each push (.gitlab-ci.yml); run it yourself the same way:
#
#   bash ci/push-check.sh                 # every started assignment
#   bash ci/push-check.sh cw1             # just cw1
#
# An assignment counts as started once its notebook in release/<assignment>/ differs from the
# released one (ci/released.sha256). The checks are those of public_checks/: files, shapes,
# loading your weights, limits, and for every assignment that the notebook loads as the grader
# loads it. Accuracy is never checked here: it is marked on a private test set only the course's
# grader has.
#
# Which Python runs the checks: --python PY; else $DLCOURSE_PYTHON; else the activated venv
# ($VIRTUAL_ENV, or a venv's python3 first on PATH: e.g. the kit's .venv, whose torch is used and
# never installed again); else a venv .ci-venv over python3 (--system-site-packages, so a torch
# already installed there at the pinned version is used). The kit is installed for that Python
# (pip install -c constraints.txt -e .) unless it already imports from this folder.
#
# Options:
#   --python PY    use this Python as it is (a runner image's, with torch installed)
#   --no-install   never install; the kit must already be installed for that Python
#   --offline      install the kit without a package index (its dependencies must be there)
#   --reports DIR  where the JUnit files go (default ci-reports)
# Environment: DLCOURSE_REQUIRE_SANDBOX=1 fails (exit 2) where bubblewrap cannot run your code
# in its sandbox, instead of running it in a limited process and saying NOT SANDBOXED.
#
# Exit code: 0 every check passed (or nothing started yet), 1 a check failed (the output says
# which and why), 2 the check itself could not run (install, options, sandbox required).
set -euo pipefail

SELF="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"
cd "$(dirname "$SELF")/.."
PY=${DLCOURSE_PYTHON:-}
INSTALL=1
OFFLINE=0
REPORTS=ci-reports
ASSIGNMENTS=()
while [ $# -gt 0 ]; do
    case "$1" in
        --python) PY=${2:?--python needs a path}; shift 2 ;;
        --no-install) INSTALL=0; shift ;;
        --offline) OFFLINE=1; shift ;;
        --reports) REPORTS=${2:?--reports needs a folder}; shift 2 ;;
        -h | --help) sed -n '2,/^set -e/{/^#/p}' "$SELF" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "push-check: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) ASSIGNMENTS+=("$1"); shift ;;
    esac
done
START=$SECONDS

step() { printf '\n== %s\n' "$*"; }
fail_setup() { echo "push-check: $*" >&2; exit 2; }
# Runs a command, passing its output on line by line (but pip's "Requirement already satisfied",
# one per installed package) and saying it is still at work whenever it has been silent for 5 s
# (pip prints nothing while it downloads or unpacks torch).
with_heartbeat() {
    local t0=$SECONDS line
    "$@" 2>&1 | grep --line-buffered -v '^Requirement already satisfied' | while :; do
        if IFS= read -r -t 5 line; then
            printf '%s\n' "$line"
        elif [ $? -gt 128 ]; then
            echo "   ... still at work ($((SECONDS - t0)) s)"
        else
            break
        fi
    done
}

if [ -z "$PY" ] && [ -n "${VIRTUAL_ENV:-}" ] && [ -x "$VIRTUAL_ENV/bin/python" ]; then
    PY=$VIRTUAL_ENV/bin/python
    step "using the activated venv $VIRTUAL_ENV"
fi
if [ -z "$PY" ] && python3 -c 'import sys; sys.exit(sys.prefix == sys.base_prefix)' 2>/dev/null; then
    PY=$(command -v python3)  # a venv's (on PATH, not activated): a venv over it would lack its torch
    step "using the venv of $PY"
fi
if [ -z "$PY" ]; then
    if [ ! -x .ci-venv/bin/python ]; then
        step "making .ci-venv over $(command -v python3 || echo 'no python3')"
        python3 -m venv --system-site-packages .ci-venv ||
            fail_setup "could not make a venv with python3 -m venv (Debian: apt-get install python3-venv), or pass --python"
    fi
    PY=.ci-venv/bin/python
fi
# Absolute, since some checks run from another folder; not resolved through symbolic links,
# because a venv's python is a link to the base interpreter and only the link is the venv.
case "$PY" in
    */*) [ -d "$(dirname "$PY")" ] && PY="$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")" ;;
    *) PY=$(command -v "$PY") || fail_setup "no $PY on PATH" ;;
esac
[ -x "$PY" ] || fail_setup "$PY is not a Python (pass --python, or activate the kit's venv)"
"$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null ||
    fail_setup "$PY is not a Python 3.10 or newer"

# Where this Python imports dlcourse from: this repository's copy is the one to check, asked
# from another folder, as the grader's own processes will.
here=$(pwd -P)
kit_home() {
    (cd / && "$PY" -c 'import pathlib, dlcourse; print(pathlib.Path(dlcourse.__file__).resolve().parent.parent)' 2>&1)
}

if [ "$INSTALL" = 1 ] && [ "$(kit_home)" = "$here" ]; then
    step "the kit is installed for $PY from this folder: nothing to install"
elif [ "$INSTALL" = 1 ]; then
    step "installing the kit for $PY"
    if [ "$OFFLINE" = 1 ]; then
        flags=(--no-index --no-deps --no-build-isolation)
    else
        flags=(-c constraints.txt)  # a torch already there at the pinned version stays
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore \
        with_heartbeat "$PY" -m pip install "${flags[@]}" -e . ||
        fail_setup "installing the kit failed (pip's message above)"
fi
where=$(kit_home) || fail_setup "$PY cannot import dlcourse: $where"
[ "$where" = "$here" ] ||
    fail_setup "$PY imports dlcourse from $where, not from this repository: install the kit here (drop --no-install)"

mkdir -p "$REPORTS"
sandbox=$("$PY" -c 'from dlcourse.grading.sandbox import BWRAP, bwrap_works
print("yes" if bwrap_works() else ("broken" if BWRAP.exists() else "missing"))') ||
    fail_setup "the kit's grading engine does not import (above)"
junit_one() { # name, message or "" for passed, skipped or not
    local body=""
    if [ -n "$2" ]; then body="<skipped message=\"$2\"/>"; fi
    printf '<?xml version="1.0" encoding="utf-8"?>\n<testsuite name="dlcourse-push-check" tests="1" failures="0" skipped="%d"><testcase classname="push-check" name="%s">%s</testcase></testsuite>\n' \
        "$([ -n "$2" ] && echo 1 || echo 0)" "$1" "$body" >"$REPORTS/$1.xml"
}
if [ "$sandbox" = yes ]; then
    step "sandbox: your code runs in bubblewrap (no network, read-only submission), as in grading"
    junit_one sandbox ""
else
    why="bubblewrap is not installed"
    [ "$sandbox" = broken ] && why="bubblewrap cannot build its sandbox in this runner (no user namespaces?)"
    step "NOT SANDBOXED: $why; your code runs in a limited process only (grading always uses the sandbox)"
    junit_one sandbox "NOT SANDBOXED: $why"
    [ "${DLCOURSE_REQUIRE_SANDBOX:-0}" = 1 ] && fail_setup "DLCOURSE_REQUIRE_SANDBOX=1 and $why"
fi

known=$("$PY" -c 'from dlcourse import course; print(*course.checkable())') ||
    fail_setup "the kit's public checks cannot be read (above)"
if [ ${#ASSIGNMENTS[@]} = 0 ]; then
    started=$("$PY" -c 'from dlcourse import course; print(*course.started())') ||
        fail_setup "could not tell which assignments are started (above)"
    read -r -a ASSIGNMENTS <<<"$started"
    if [ ${#ASSIGNMENTS[@]} = 0 ]; then
        step "nothing to check yet: every notebook is as released (name assignments to check them anyway)"
        junit_one started "no assignment started yet"
        exit 0
    fi
fi

status=0
for a in "${ASSIGNMENTS[@]}"; do
    [[ " $known " == *" $a "* ]] || fail_setup "no public checks for $a; known: $known"
    step "$a: dlcourse validate release/$a --assignment $a"
    t0=$SECONDS
    if "$PY" -m dlcourse validate "release/$a" --assignment "$a" --junit "$REPORTS/$a.xml"; then
        rc=0
    else
        rc=$?
    fi
    echo "-- $a: exit $rc after $((SECONDS - t0)) s"
    [ "$rc" -gt "$status" ] && status=$rc
done
step "push check: ${ASSIGNMENTS[*]}: $([ $status = 0 ] && echo passed || echo FAILED) in $((SECONDS - START)) s; sandbox: $sandbox; reports in $REPORTS/"
exit "$status"
