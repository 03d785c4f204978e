#!/usr/bin/env bash
# Prepare this node for pilotid's system tests (run as root by `make test`).
# Idempotent: installs the Debian packages the suite needs, creates the test accounts and the
# narrow sudoers rule a site would give its pilot account.  Nothing here is used in production.
set -euo pipefail

PACKAGES=(sudo acl util-linux openssl python3-venv globus-proxy-utils voms-clients
          myproxy-server myproxy myproxy-admin libmyproxy-voms gcc libc6-dev bash-builtins
          strace bubblewrap shellcheck)  # bubblewrap: isolation bwrap; the last for `make lint`, which CI runs after the tests
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup-node: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The pilot runs unprivileged, as on a site; alice and bob are end users' local accounts;
# carol is mapped in the grid-mapfile but the pilot may not sudo to her.
for user in pilotid-pilot pilotid-alice pilotid-bob pilotid-carol; do
  id -u "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
done

rule=/etc/sudoers.d/pilotid-test
tmp=$(mktemp)
cat > "$tmp" <<'RULE'
# pilotid system tests: the pilot account may run anything as the two user accounts, no password.
Defaults:pilotid-pilot !requiretty
pilotid-pilot ALL=(pilotid-alice,pilotid-bob) NOPASSWD: ALL
RULE
visudo -cqf "$tmp"
install -m 0440 -o root -g root "$tmp" "$rule"
rm -f "$tmp"
echo "setup-node: accounts and $rule ready"

# The gLExec stand-in (setuid root, test accounts only): tests/glexec/install-standin.sh.
bash "$(dirname "$0")/../glexec/install-standin.sh"
