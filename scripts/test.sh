#!/usr/bin/env bash
# The project's test command: vet, every test (interop tests use qemu-img,
# vmdkinfo, mkfs.ext4 and mkntfs when installed), then every fuzz target
# for a few seconds each.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-4s}
test -z "$(gofmt -l $(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $(git ls-files '*.go'); exit 1; }
go vet ./...
go test -count=1 ./...
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //'); do
    echo "fuzz $pkg $target ($fuzztime)"
    go test "$pkg" -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" >/tmp/fuzz.log 2>&1 || { cat /tmp/fuzz.log; exit 1; }
  done
done
echo "all tests passed"
