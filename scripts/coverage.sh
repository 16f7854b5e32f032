#!/usr/bin/env bash
# Usage: coverage.sh PROFILE MIN — prints statement coverage per package
# (generated code excluded) and fails when the total is below MIN percent.
set -euo pipefail
profile=$1 min=$2
filtered=$(mktemp)
trap 'rm -f "$filtered"' EXIT
# Generated code (gqlgen, protobuf/connect) and test helpers are not ours to cover.
grep -v -E '/(graph/generated|graph/model|rpc/gen|internal/pins)/|/dbtest/|/eventtest/' "$profile" > "$filtered"
# Per-package statement coverage from the raw profile lines.
# A block may appear once per test binary (-coverpkg): count it once, covered if any run hit it.
awk 'NR>1 { s[$1]=$2; if ($3>0) h[$1]=1 }
     END { for (b in s) { split(b, a, ":"); f=a[1]; sub(/\/[^\/]*$/, "", f); n[f]+=s[b]; if (b in h) c[f]+=s[b] }
           for (k in n) printf "%6.1f%%  %s\n", 100*c[k]/n[k], k }' "$filtered" | sort -k2
total=$(go tool cover -func="$filtered" | awk '/^total:/ { gsub(/%/, "", $3); print $3 }')
echo "total statement coverage (generated code excluded): ${total}% (minimum ${min}%)"
awk -v t="$total" -v m="$min" 'BEGIN { exit (t+0 >= m+0) ? 0 : 1 }' || { echo "coverage ${total}% is below ${min}%" >&2; exit 1; }
