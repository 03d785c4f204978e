#!/usr/bin/env bash
# Build and install the gLExec stand-in for pilotid's system tests (run as root, idempotent).
# TEST-ONLY: it installs a setuid-root program.  It is restricted to the test pilot account's
# group (mode 4110 root:pilotid-pilot), only that caller is whitelisted, and it only maps the
# test DNs to the test accounts listed in its own root-owned grid-mapfile.
#
#   /opt/pilotid-test/glexec/sbin/glexec              the stand-in (GLEXEC_LOCATION=/opt/pilotid-test/glexec)
#   /opt/pilotid-test/glexec/libexec/glexec-standin.py  what it runs as root
#   /opt/pilotid-test/glexec/etc/glexec.conf           caller whitelist, env whitelist, grid-mapfile
#   /opt/pilotid-test/glexec/etc/grid-mapfile          the test DNs (tests/conftest.py) -> test accounts
#   /opt/pilotid-test/glexec/broken/sbin/glexec        the same, pointed at a configuration that
#                                                      does not exist: always 202 (system error)
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
BASE=/opt/pilotid-test/glexec
PILOT=pilotid-pilot

[ "$(id -u)" = 0 ] || { echo "install-standin: must run as root" >&2; exit 1; }
command -v gcc >/dev/null || { echo "install-standin: gcc is needed" >&2; exit 1; }
getent group "$PILOT" >/dev/null || { echo "install-standin: group $PILOT missing" >&2; exit 1; }

install -d -m 0755 -o root -g root /opt/pilotid-test "$BASE" "$BASE/sbin" "$BASE/libexec" \
  "$BASE/etc" "$BASE/broken" "$BASE/broken/sbin"
install -m 0644 -o root -g root "$HERE/glexec-standin.py" "$BASE/libexec/glexec-standin.py"

conf=$(mktemp)
cat > "$conf" <<CONF
# gLExec stand-in (pilotid tests only).  Keys follow glexec.conf(5) where gLExec has them.
[glexec]
user_white_list = $PILOT
preserve_env_variables = LANG, LC_ALL, TZ
grid_mapfile = $BASE/etc/grid-mapfile
min_target_uid = 1000
CONF
install -m 0644 -o root -g root "$conf" "$BASE/etc/glexec.conf"

# Keep these DNs in step with tests/conftest.py (a system test checks that they map).
cat > "$conf" <<'MAP'
"/DC=org/DC=example/OU=People/CN=Alice Analyst 1234" pilotid-alice
"/DC=org/DC=example/OU=People/CN=Bob O'Builder (Test)" pilotid-bob
"/DC=org/DC=example/OU=People/CN=Carol Unsudoable" pilotid-carol
"/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99" pilotid-pilot
MAP
install -m 0644 -o root -g root "$conf" "$BASE/etc/grid-mapfile"
rm -f "$conf" "$BASE/broken/etc/glexec.conf"

build() {  # build <config path> <destination>
  local out
  out=$(mktemp)
  gcc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 \
    -DSTANDIN_CALLER_GID="$(getent group "$PILOT" | cut -d: -f3)" -DSTANDIN_CONF="\"$1\"" -DSTANDIN_SCRIPT="\"$BASE/libexec/glexec-standin.py\"" \
    -o "$out" "$HERE/glexec-helper.c"
  install -m 4110 -o root -g "$PILOT" "$out" "$2"
  rm -f "$out"
}
build "$BASE/etc/glexec.conf" "$BASE/sbin/glexec"
build "$BASE/broken/etc/glexec.conf" "$BASE/broken/sbin/glexec"
echo "install-standin: gLExec stand-in ready in $BASE (GLEXEC_LOCATION=$BASE)"
