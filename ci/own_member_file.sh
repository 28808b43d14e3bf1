#!/usr/bin/env bash
# The README's "Your own member file" walkthrough, end to end, as a new user runs it: in a
# scratch folder with a 1,338-member CSV in the public format (members.csv) and the checkout's
# .venv, the README section's own commands (ci/walkthrough.py reads them from README.md).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
unset HEALTHCARE_MLOPS_HOME      # the walkthrough names its home with --home
ln -s "$repo/.venv" "$work/.venv"
"$repo/.venv/bin/python" "$repo/ci/member_file.py" "$work/members.csv"
"$repo/.venv/bin/python" "$repo/ci/walkthrough.py" "$repo/README.md" > "$work/walkthrough.sh"
(cd "$work" && bash walkthrough.sh)
echo "own member file walkthrough: every command of the README section passed"
