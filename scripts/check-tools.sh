#!/usr/bin/env bash
# Make sure tmux (>= 3.2), git (>= 2.38), bubblewrap (the workers' sandbox; the tests need it) and GitHub's gh (pull
# requests; the tests drive it against a scripted forge) and Chromium (the web dashboard's tests) are present;
# install them with apt-get when run as root on Debian/Ubuntu, otherwise stop with one line naming what to install.
set -eu

need_tmux="3.2"
for_tests=0
[ "${1:-}" = "--tests" ] && for_tests=1  # make test and make bench: also gh and chromium
need_git="2.38"

version_ok() { # version_ok HAVE NEED -> true when HAVE >= NEED
    [ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n1)" = "$2" ]
}
tmux_version() { tmux -V 2>/dev/null | sed -E 's/^tmux (next-)?([0-9]+\.[0-9]+).*/\2/'; }
git_version() { git --version 2>/dev/null | sed -E 's/^git version ([0-9]+\.[0-9]+(\.[0-9]+)?).*/\1/'; }

missing() {
    local out=""
    local tv gv
    tv=$(tmux_version || true)
    gv=$(git_version || true)
    if [ -z "$tv" ] || ! version_ok "$tv" "$need_tmux"; then out="$out tmux"; fi
    if [ -z "$gv" ] || ! version_ok "$gv" "$need_git"; then out="$out git"; fi
    if ! command -v bwrap >/dev/null 2>&1; then out="$out bubblewrap"; fi
    if [ "$for_tests" = 1 ]; then
        if ! command -v gh >/dev/null 2>&1; then out="$out gh"; fi
        if ! command -v chromium >/dev/null 2>&1; then out="$out chromium"; fi
    fi
    echo "$out"
}

todo=$(missing)
[ -z "$todo" ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "installing${todo} with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -qq $todo >/dev/null
    todo=$(missing)
    [ -z "$todo" ] && exit 0
fi
echo "orch needs tmux >= $need_tmux, git >= $need_git and bubblewrap (its tests also gh and chromium); please install:${todo}" >&2
exit 1
