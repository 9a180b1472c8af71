#!/usr/bin/env bash
# Push check of the deep-learning course: the public checks (`dlcourse validate`, on CPU) of
# every assignment you have started, with a JUnit report per assignment and an exit code.
# LabTS / GitLab CI runs it on each push (.gitlab-ci.yml); run it yourself the same way:
#
#   bash ci/push-check.sh                 # every started assignment
#   bash ci/push-check.sh cw1             # just cw1
#
# An assignment counts as started once its notebook in release/<assignment>/ differs from the
# released one (ci/released.sha256). The checks are the @public tests in public_checks/: files,
# shapes, loading your weights, limits. Accuracy is never checked here: it is marked on a private
# test set only the course's grader has.
#
# Options:
#   --python PY    use this Python as it is (a runner image's, with torch installed); default
#                  $DLCOURSE_PYTHON, else a venv .ci-venv over python3 (--system-site-packages,
#                  so a torch already installed is used, not installed again)
#   --no-install   the kit is already installed for that Python (pip install -e .)
#   --offline      install the kit without a package index (its dependencies must be there)
#   --reports DIR  where the JUnit files go (default ci-reports)
# Environment: DLCOURSE_REQUIRE_SANDBOX=1 fails (exit 2) where bubblewrap cannot run your code
# in its sandbox, instead of running it in a limited process and saying NOT SANDBOXED.
#
# Exit code: 0 every check passed (or nothing started yet), 1 a check failed (the output says
# which and why), 2 the check itself could not run (install, options, sandbox required).
set -euo pipefail

cd "$(dirname "$0")/.."
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
        -h | --help) sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "push-check: unknown option $1 (see --help)" >&2; exit 2 ;;
        *) ASSIGNMENTS+=("$1"); shift ;;
    esac
done
START=$SECONDS

step() { printf '\n== %s\n' "$*"; }
fail_setup() { echo "push-check: $*" >&2; exit 2; }

if [ -z "$PY" ]; then
    if [ ! -x .ci-venv/bin/python ]; then
        step "making .ci-venv over $(command -v python3 || echo 'no python3')"
        python3 -m venv --system-site-packages .ci-venv ||
            fail_setup "could not make a venv with python3 -m venv (Debian: apt-get install python3-venv), or pass --python"
    fi
    PY=.ci-venv/bin/python
fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 10)' 2>/dev/null ||
    fail_setup "$PY is not a Python 3.10 or newer"

if [ "$INSTALL" = 1 ]; then
    step "installing the kit for $PY"
    if [ "$OFFLINE" = 1 ]; then
        flags=(--no-index --no-deps --no-build-isolation)
    else
        flags=(-c constraints.txt)
    fi
    PIP_DISABLE_PIP_VERSION_CHECK=1 "$PY" -m pip install -q "${flags[@]}" -e . ||
        fail_setup "installing the kit failed (pip's message above)"
fi
# The checks must come from this repository's dlcourse, not from some other installed copy:
# asked from another folder, as the grader's own processes will.
here=$(pwd -P)
where=$(cd / && "$PY" -c 'import pathlib, dlcourse; print(pathlib.Path(dlcourse.__file__).resolve().parent.parent)' 2>&1) ||
    fail_setup "$PY cannot import dlcourse: $where"
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

notebook_of() { sed -n 's/^notebook *= *"\(.*\)".*/\1/p' "public_checks/$1/assignment.toml"; }
if [ ${#ASSIGNMENTS[@]} = 0 ]; then
    for toml in public_checks/*/assignment.toml; do
        [ -f "$toml" ] || continue
        a=$(basename "$(dirname "$toml")")
        nb="release/$a/$(notebook_of "$a")"
        [ -f "$nb" ] || continue
        now=$("$PY" -c 'import hashlib, sys; print(hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest())' "$nb")
        grep -qx "$now  $nb" ci/released.sha256 || ASSIGNMENTS+=("$a")
    done
    if [ ${#ASSIGNMENTS[@]} = 0 ]; then
        step "nothing to check yet: every notebook is as released (name assignments to check them anyway)"
        junit_one started "no assignment started yet"
        exit 0
    fi
fi

status=0
for a in "${ASSIGNMENTS[@]}"; do
    [ -f "public_checks/$a/assignment.toml" ] ||
        fail_setup "no public checks for $a; known: $(ls public_checks | tr '\n' ' ')"
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
