#!/usr/bin/env bash
# Print the path of a Docker Compose v2 binary (the plugin that `docker compose` runs), fetching it first
# when missing. The compose test runs its `config` command, which loads, interpolates and checks a compose
# file without a Docker engine. Debian 12 packages only Compose v1; Debian 13's docker-compose package
# is v2 (a Go binary needing libc6 >= 2.34), so its .deb is downloaded from the machine's own Debian
# mirror with a private apt state (the machine's sources and packages are left alone) and unpacked into
# $EVOSWARM_COMPOSE_DIR (default ~/.cache/evoswarm/docker-compose). Fails loudly, never silently.
set -euo pipefail
DIR=${EVOSWARM_COMPOSE_DIR:-$HOME/.cache/evoswarm/docker-compose}
BIN=$DIR/usr/libexec/docker/cli-plugins/docker-compose
mkdir -p "$(dirname "$DIR")"
exec 9>"$DIR.lock"
flock 9  # concurrent test sessions wait for one download
if [ ! -x "$BIN" ]; then
    . /etc/os-release
    # The URI of the source for this release, in deb822 (*.sources) or one-line (sources.list) form.
    mirror=$(cat /etc/apt/sources.list.d/*.sources /dev/null 2>/dev/null | awk -v r="$VERSION_CODENAME" '
        /^URIs:/ {uri = $2}
        /^Suites:/ {for (i = 2; i <= NF; i++) if ($i == r) hit = 1}
        /^[[:space:]]*$/ {if (hit && uri) exit; uri = ""; hit = 0}
        END {if (hit && uri) print uri}')
    if [ -z "$mirror" ]; then
        mirror=$(sed 's/\[[^]]*\]//' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
            awk -v r="$VERSION_CODENAME" '$1 == "deb" && $3 == r {print $2; exit}')
    fi
    if [ -z "$mirror" ]; then
        echo "ensure_compose: no Debian '$VERSION_CODENAME' source in this machine's apt sources" >&2
        exit 1
    fi
    work=$(mktemp -d)
    trap 'rm -rf "$work"' EXIT
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/parts"
    echo "deb $mirror trixie main" >"$work/sources.list"
    apt_opts=(-qq -o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts="$work/parts"
        -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o APT::Sandbox::User=root)
    apt-get "${apt_opts[@]}" update >&2
    (cd "$work" && apt-get "${apt_opts[@]}" download docker-compose >&2)
    rm -rf "$DIR" "$DIR.tmp"
    dpkg-deb -x "$work"/docker-compose_*.deb "$DIR.tmp"
    mv "$DIR.tmp" "$DIR"
    "$BIN" version >&2
fi
echo "$BIN"
