#!/usr/bin/env bash
# Mutation testing of the numeric and decision core with mutmut 3 (configured in pyproject.toml,
# [tool.mutmut]); then the report: docs/results/mutation_report.{json,md} (score, per module, survivors).
# Not part of CI: a full run takes about half an hour on two shared cores.
#   bash scripts/mutation.sh            # full run (mutmut reuses ./mutants/ results of unchanged code)
#   MUTMUT_CHILDREN=2 bash scripts/mutation.sh
#   bash scripts/mutation.sh --report   # only rewrite the report from ./mutants/
#   bash scripts/mutation.sh 'edge_wbc.tasks.count.*'   # only these mutants (then --report)
#   bash scripts/mutation.sh --unkilled  # again only the core mutants not killed last time (after new tests)
# New tests are found by mutmut's incremental stats; a function that was not mutated when the stats were
# collected (a file newly added to only_mutate) has no tests mapped: delete mutants/mutmut-stats.json once.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v mutmut >/dev/null || { echo "mutmut not found: pip install -e '.[dev]'" >&2; exit 2; }
export TF_CPP_MIN_LOG_LEVEL=2 EDGE_WBC_PROBE=0
unset PYTHONPATH  # mutmut puts ./mutants/ first on sys.path; the tests must import the mutated copy
# the core functions (mutant-name patterns), from scripts/mutation_core.txt
mapfile -t CORE < <(grep -v '^\s*\(#\|$\)' scripts/mutation_core.txt)
if [[ "${1:-}" != "--report" ]]; then
  # `mutmut run` exits 0 whether mutants survive or not; the report says what happened
  if [[ "${1:-}" == "--unkilled" ]]; then
    mapfile -t NAMES < <(python scripts/mutation_report.py --list-unkilled)
    ((${#NAMES[@]})) || { echo "no unkilled mutants in ./mutants/" >&2; exit 0; }
  elif (($#)); then NAMES=("$@"); else NAMES=("${CORE[@]}"); fi
  nice -n "${MUTMUT_NICE:-10}" mutmut run --max-children "${MUTMUT_CHILDREN:-1}" "${NAMES[@]}" || {
    echo "mutmut run failed (exit $?)" >&2; exit 1; }
fi
python scripts/mutation_report.py --out docs/results/mutation_report
