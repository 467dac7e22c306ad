#!/usr/bin/env bash
# List (default) or delete local git branches that are fully merged into a base branch.
#
# Usage: prune_merged.sh [--base BRANCH] [--keep REGEX] [--apply] [--gone]
#   --base BRANCH  branch to compare against (default: main, else master)
#   --keep REGEX   extra extended-regex of branch names that must never be deleted
#   --gone         also list branches whose upstream was deleted on the remote
#                  (run `git fetch --prune` yourself first; they are never auto-deleted)
#   --apply        actually delete merged branches with `git branch -d` (safe delete)
#
# Exit codes: 0 ok, 1 not a git repository or base branch missing, 2 bad arguments.
set -euo pipefail

base=""
keep_extra=""
apply=0
show_gone=0

usage() { sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --base) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; base="$2"; shift 2 ;;
    --keep) [[ $# -ge 2 ]] || { usage >&2; exit 2; }; keep_extra="$2"; shift 2 ;;
    --apply) apply=1; shift ;;
    --gone) show_gone=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown argument: $1" >&2; usage >&2; exit 2 ;;
  esac
done

if ! git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  echo "error: not inside a git work tree" >&2
  exit 1
fi

if [[ -z "$base" ]]; then
  for candidate in main master trunk develop; do
    if git show-ref --verify --quiet "refs/heads/$candidate"; then
      base="$candidate"
      break
    fi
  done
fi
if [[ -z "$base" ]] || ! git show-ref --verify --quiet "refs/heads/$base"; then
  echo "error: base branch '${base:-main}' not found; pass --base" >&2
  exit 1
fi

current="$(git symbolic-ref --quiet --short HEAD || true)"
protected='^(main|master|trunk|develop|dev|staging|production|release/.*)$'

candidates=()
while IFS= read -r branch; do
  [[ -z "$branch" ]] && continue
  [[ "$branch" == "$base" || "$branch" == "$current" ]] && continue
  [[ "$branch" =~ $protected ]] && continue
  if [[ -n "$keep_extra" ]] && [[ "$branch" =~ $keep_extra ]]; then
    continue
  fi
  candidates+=("$branch")
done < <(git branch --merged "$base" --format='%(refname:short)')

if [[ ${#candidates[@]} -eq 0 ]]; then
  echo "No merged branches to prune (base: $base)."
else
  echo "Branches fully merged into $base:"
  for branch in "${candidates[@]}"; do
    printf '  %s\t%s\n' "$branch" "$(git log -1 --format='%cr by %an' "$branch")"
  done
fi

if [[ $show_gone -eq 1 ]]; then
  echo
  echo "Branches whose upstream is gone (review manually, delete with git branch -D):"
  git for-each-ref --format='%(refname:short) %(upstream:track)' refs/heads \
    | awk '$2 == "[gone]" { print "  " $1 }'
fi

if [[ $apply -eq 1 && ${#candidates[@]} -gt 0 ]]; then
  echo
  for branch in "${candidates[@]}"; do
    git branch -d -- "$branch"
  done
  echo "Deleted ${#candidates[@]} branch(es)."
elif [[ ${#candidates[@]} -gt 0 ]]; then
  echo
  echo "Dry run: nothing deleted. Re-run with --apply to delete these branches."
fi
