#!/usr/bin/env bash
# Every symbol libalyx.so exports is alyx_* (and the public ones exist).
set -u
lib=$1
syms=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//')
# lws_buflist_next_segment_len: the libwebsockets pipelining workaround
# (lib/http/service.c), exported so it takes libwebsockets' own place.
bad=$(echo "$syms" | grep -v '^alyx_' | grep -vx 'lws_buflist_next_segment_len' || true)
fail=0
if [ -n "$bad" ]; then
  echo "exported symbols that are not alyx_*:"; echo "$bad"; fail=1
fi
for s in alyx_open alyx_close alyx_version alyx_doc_create alyx_query_str alyx_batch alyx_changes; do
  echo "$syms" | grep -qx "$s" || { echo "missing export: $s"; fail=1; }
done
if [ $fail -eq 0 ]; then echo "1 passed, 0 failed"; else echo "0 passed, 1 failed"; fi
exit $fail
