#!/usr/bin/env bash
# Rank the most frequent error messages in one or more log files.
#
# Lines matching the error pattern are normalised (timestamps, UUIDs, hex ids,
# IP addresses, quoted values and numbers replaced by placeholders) so that
# repeats of the same problem collapse into one row, then counted.
#
# Usage: top_errors.sh [-n TOP] [-p REGEX] [-s SINCE] FILE [FILE...]
#   -n TOP    rows to show (default 20)
#   -p REGEX  extended regex selecting error lines
#             (default: error|fatal|exception|panic|critical|traceback|failed)
#   -s SINCE  skip ISO-timestamped lines older than this prefix, e.g. 2024-05-01T10
#   Files ending in .gz are decompressed on the fly. Use - for stdin.
#
# Exit codes: 0 ok (including "no errors found"), 1 unreadable file, 2 bad arguments.
set -euo pipefail

top=20
pattern='error|fatal|exception|panic|critical|traceback|failed'
since=""

usage() { sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'; }

while getopts ":n:p:s:h" opt; do
  case "$opt" in
    n) top="$OPTARG" ;;
    p) pattern="$OPTARG" ;;
    s) since="$OPTARG" ;;
    h) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
done
shift $((OPTIND - 1))

if [[ $# -eq 0 ]]; then
  usage >&2
  exit 2
fi
if ! [[ "$top" =~ ^[0-9]+$ ]] || [[ "$top" -eq 0 ]]; then
  echo "error: -n must be a positive integer" >&2
  exit 2
fi

for file in "$@"; do
  if [[ "$file" != "-" && ! -r "$file" ]]; then
    echo "error: cannot read $file" >&2
    exit 1
  fi
done

emit() {
  local file
  for file in "$@"; do
    case "$file" in
      -) cat ;;
      *.gz) gzip -cd -- "$file" ;;
      *) cat -- "$file" ;;
    esac
  done
}

# Lines in ISO-8601 logs sort lexically by time, so "since" is a string compare
# on the first field; lines without a leading timestamp are kept.
filter_since() {
  if [[ -z "$since" ]]; then
    cat
  else
    awk -v since="$since" '{ if ($1 ~ /^[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]/ && substr($1, 1, length(since)) < since) next; print }'
  fi
}

normalise() {
  sed -E \
    -e 's/^[[:space:]]*\[?[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9:.,]+(Z|[+-][0-9:]+)?\]?[[:space:]]*//' \
    -e 's/^[A-Z][a-z]{2} +[0-9]{1,2} [0-9:]{8} [^ ]+ //' \
    -e 's/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/<uuid>/g' \
    -e 's/0x[0-9a-fA-F]+/<hex>/g' \
    -e 's/\b[0-9a-f]{16,}\b/<id>/g' \
    -e 's/[0-9]{1,3}(\.[0-9]{1,3}){3}(:[0-9]+)?/<ip>/g' \
    -e "s/'[^']*'/'<v>'/g" \
    -e 's/"[^"]*"/"<v>"/g' \
    -e 's/[0-9]+/<n>/g' \
    -e 's/[[:space:]]+/ /g' \
    | cut -c1-200
}

# One pass only, so that reading from stdin (-) works.
emit "$@" | filter_since | { grep -iE -- "$pattern" || true; } | normalise \
  | sort | uniq -c | sort -rn \
  | awk -v top="$top" -v pattern="$pattern" '
      NR == 1 { printf "%7s  %s\n", "COUNT", "MESSAGE" }
      { total += $1; distinct++ }
      NR <= top { count = $1; $1 = ""; sub(/^ /, ""); printf "%7d  %s\n", count, $0 }
      END {
        if (total == 0) { print "No lines matching /" pattern "/ found."; exit 0 }
        printf "\n%d matching line(s), %d distinct message(s)", total, distinct
        if (distinct > top) printf ", showing top %d", top
        printf ".\n"
      }'
