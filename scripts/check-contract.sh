#!/usr/bin/env bash
# The contract's checks: `buf lint` (STANDARD style) and `buf breaking` (FILE rules) of protos/
# against a baseline commit, so a wire- or source-incompatible change fails CI.
# Baseline: $CONTRACT_BASELINE (any git revision) if set; on main, the previous commit; on any
# other branch, where it forked from main. A shallow clone is deepened by one commit; without any
# baseline (a repository of one commit) the breaking check says so and is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
buf=clients/ts/node_modules/.bin/buf   # pinned in clients/ts/package.json
[[ -x $buf ]] || npm ci --prefix clients/ts --no-audit --no-fund --loglevel=error

$buf lint
echo "buf lint: clean"

baseline=${CONTRACT_BASELINE:-}
if [[ -z $baseline ]]; then
  branch=$(git rev-parse --abbrev-ref HEAD)
  if [[ $branch != main ]] && git rev-parse -q --verify main >/dev/null; then
    baseline=$(git merge-base HEAD main)
    # A branch that main already contains (or main itself, detached): compare with its parent.
    [[ $baseline == "$(git rev-parse HEAD)" ]] && baseline=HEAD~1
  else
    baseline=HEAD~1
  fi
fi
if ! git rev-parse -q --verify "$baseline^{commit}" >/dev/null && \
   [[ $(git rev-parse --is-shallow-repository) == true ]]; then
  git fetch -q --deepen=1 || true
fi
if ! git rev-parse -q --verify "$baseline^{commit}" >/dev/null; then
  echo "buf breaking: no baseline commit ($baseline) in this clone; skipped" >&2
  exit 0
fi

against=$(mktemp -d)
trap 'rm -rf "$against"' EXIT
if git cat-file -e "$baseline:protos" 2>/dev/null; then
  git archive "$baseline" protos | tar -x -C "$against"
else
  mkdir -p "$against/protos"   # the contract is new: nothing to break
fi
$buf breaking protos --against "$against/protos"
echo "buf breaking: protos/ compatible with $(git rev-parse --short "$baseline")"
