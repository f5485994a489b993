#!/usr/bin/env bash
# ghga-step.sh MARKER ATTEMPT RETRY_DELAY -- COMMAND [ARGS...]
#
# Runs one ghga-cli COMMAND for a Snakemake job and turns its exit code into retry policy,
# because Snakemake's `retries:` re-runs a failed job whatever its exit code:
#
#   0            done
#   75, 130, 143 transient / interrupted / sent SIGTERM: exit with that code; Snakemake's
#                next attempt (after RETRY_DELAY s) runs the same command, which resumes
#                from the state dir
#   anything     permanent (65 integrity, 66 input missing, 69 API refuses, 73 cannot
#   else         write, 77 not allowed, 78 config, 1/2 bug/usage): the code and the error
#                are kept in MARKER, and later attempts (ATTEMPT > 1) exit with that code
#                at once instead of calling the API again
#
# A new run of Snakemake starts at attempt 1 again and so always tries afresh: fix the
# cause, then re-run. MARKER lives in the state dir, which Snakemake never cleans up.
set -u

if [ "$#" -lt 5 ] || [ "$4" != "--" ]; then
    echo "usage: ghga-step.sh MARKER ATTEMPT RETRY_DELAY -- COMMAND [ARGS...]" >&2
    exit 2
fi
marker=$1 attempt=$2 delay=$3
shift 4

if [ "$attempt" -gt 1 ]; then
    if [ -f "$marker" ]; then
        rc=$(head -n 1 "$marker")
        echo "ghga-step: exit $rc on an earlier attempt cannot be fixed by retrying; giving up:" >&2
        tail -n +2 "$marker" >&2
        exit "$rc"
    fi
    echo "ghga-step: attempt $attempt after a transient failure; resuming in $delay s" >&2
    sleep "$delay"
fi
rm -f "$marker"

errors=$(mktemp "${TMPDIR:-/tmp}/ghga-step.XXXXXX")
trap 'rm -f "$errors"' EXIT
rc=0
"$@" 2> "$errors" || rc=$?
cat "$errors" >&2

case "$rc" in
    0) ;;
    75|130|143)
        echo "ghga-step: transient failure (exit $rc); the state dir keeps the progress, a" \
             "retry or a new run resumes" >&2 ;;
    *)
        mkdir -p "$(dirname "$marker")"
        { echo "$rc"; tail -n 5 "$errors"; } > "$marker.tmp" && mv "$marker.tmp" "$marker"
        echo "ghga-step: permanent failure (exit $rc); not retrying" >&2 ;;
esac
exit "$rc"
