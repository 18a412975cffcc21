#!/usr/bin/env bash
# Tests .ci/run: on a PATH without a C compiler or rsync it installs both
# (gcc, rsync and git, Debian packages) before `make test`; it installs nothing
# that is already there. apt-get and make are stand-ins that record how
# they were called.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
bash="$(command -v bash)"

# scenario NAME TOOL... runs .ci/run with only bash, dirname, the stand-ins
# and stand-ins for the named tools on PATH; the calls land in $tmp/NAME.log.
scenario() {
	local name="$1"
	shift
	local bin="$tmp/$name"
	mkdir -p "$bin"
	ln -s "$bash" "$bin/bash"
	ln -s "$(command -v dirname)" "$bin/dirname"
	for stub in apt-get make "$@"; do
		printf '#!%s\necho "%s $*" >>"%s.log"\n' "$bash" "$stub" "$bin" >"$bin/$stub"
		chmod +x "$bin/$stub"
	done
	: >"$bin.log"
	PATH="$bin" "$bash" "$here/run" >/dev/null
}

fail=0
expect() { # NAME LINE: the log of scenario NAME has exactly LINE
	if ! grep -qxF -- "$2" "$tmp/$1.log"; then
		echo "FAIL $1: want the line \"$2\"; calls were:" >&2
		sed 's/^/    /' "$tmp/$1.log" >&2
		fail=1
	fi
}
expect_no() { # NAME WORD: no line of the log of scenario NAME contains WORD
	if grep -qF -- "$2" "$tmp/$1.log"; then
		echo "FAIL $1: want no call with \"$2\"; calls were:" >&2
		sed 's/^/    /' "$tmp/$1.log" >&2
		fail=1
	fi
}

scenario bare
expect bare "apt-get install -y -qq gcc rsync git"
expect bare "make test"

scenario has-cc cc rsync git
expect_no has-cc "apt-get"
expect has-cc "make test"

scenario has-gcc-only gcc
expect has-gcc-only "apt-get install -y -qq rsync git"
expect_no has-gcc-only " gcc"

scenario has-rsync-only rsync
expect has-rsync-only "apt-get install -y -qq gcc git"

if ((fail)); then
	exit 1
fi
echo "ok  .ci/run installs gcc, rsync and git only when missing"
