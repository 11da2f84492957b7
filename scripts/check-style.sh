#!/usr/bin/env bash
# Source checks run by `meson test` (STYLE.md §14, §25):
#  - banned functions in product code (strcpy, sprintf, strtok, atoi, gets,
#    raw malloc/calloc/realloc/free outside lib/util/mem.c);
#  - placeholders (TODO/FIXME/XXX without an owner, "not implemented");
#  - every status code in include/alyx.h has a name in lib/core/errors.c.
set -u
cd "$(dirname "$0")/.."
fail=0
dirs="lib daemon cli codegen"
banned='\b(strcpy|strcat|sprintf|vsprintf|strtok|atoi|atol|gets)\s*\('
hits=$(grep -rnE "$banned" $dirs --include='*.c' --include='*.h' | grep -v 'check-style: allow' || true)
if [ -n "$hits" ]; then
  echo "banned functions:"; echo "$hits"; fail=1
fi
raw='(^|[^_a-z])(malloc|calloc|realloc|free)\s*\('
hits=$(grep -rnE "$raw" lib --include='*.c' | grep -v '^lib/util/mem.c' | grep -v 'check-style: allow' || true)
if [ -n "$hits" ]; then
  echo "raw allocator calls in lib/ (use alyx__malloc & co.):"; echo "$hits"; fail=1
fi
hits=$(grep -rnE '\b(TODO|FIXME|not implemented|unimplemented)\b' $dirs include runtimes bindings 2>/dev/null || true)
if [ -n "$hits" ]; then
  echo "placeholders in product code:"; echo "$hits"; fail=1
fi
for code in $(grep -oE 'ALYX_E_[A-Z_]+ =' include/alyx.h | cut -d' ' -f1); do
  if ! grep -q "\[$code\]" lib/core/errors.c; then
    echo "status code without a name in lib/core/errors.c: $code"; fail=1
  fi
done
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $fail
