#!/usr/bin/env bash
# Prints the graph of src/'s top-level modules (each module and the other top-level modules
# its code names through `crate::X` or `use crate::{..X..}`, comment lines ignored) and fails
# when the graph has a cycle.
set -euo pipefail
cd "$(dirname "$0")/.."
mods=$(ls src | sed 's/\.rs$//' | grep -v '^lib$\|^bin$')
edges=""
for m in $mods; do
  if [ -d "src/$m" ]; then files=$(find "src/$m" -name '*.rs'); else files="src/$m.rs"; fi
  deps=""
  for d in $mods; do
    [ "$d" = "$m" ] && continue
    # shellcheck disable=SC2086
    if cat $files | grep -v '^\s*//' | tr '\n' ' ' | grep -qE "crate::$d\b|crate::\{[^}]*\b$d\b"; then
      deps="$deps $d"
      edges="$edges$d $m"$'\n'
    fi
  done
  echo "$m ->$deps"
done
if ! printf '%s' "$edges" | tsort > /dev/null 2>&1; then
  echo "the module graph has a cycle:" >&2
  printf '%s' "$edges" | tsort 2>&1 >/dev/null | sed 's/^/  /' >&2
  exit 1
fi
echo "no cycles"
