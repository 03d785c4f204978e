#!/bin/bash
# A MyProxy server for trying pilotid out (docs/tutorial.rst, part 3): a real myproxy-server
# on loopback, with test credentials from `pilotid testca` (a throwaway CA, alice, the pilot
# and a host certificate for localhost), in one new directory.  Nothing here is for
# production: the CA's key is gone, its certificates are trusted by nothing but this lab.
#
#   examples/myproxy-lab.sh [DIR]     DIR defaults to /tmp/pilotid-myproxy-lab; it must not exist
#
# Needs myproxy-server (Debian: apt-get install myproxy-server) and `pilotid` on the PATH
# (or PILOTID="python -m pilotid").  PORT=n picks the port (default: any free one).  It
# prints the environment to use the server with and how to stop it.
set -euo pipefail

lab=${1:-/tmp/pilotid-myproxy-lab}
port=${PORT:-0}
read -r -a pilotid <<<"${PILOTID:-pilotid}"
alice_dn="/DC=org/DC=example/OU=People/CN=Alice Analyst 1234"
pilot_dn="/DC=org/DC=example/OU=Robots/CN=Pilot Robot 99"

command -v myproxy-server >/dev/null ||
  { echo "myproxy-lab: no myproxy-server (Debian: apt-get install myproxy-server)" >&2; exit 1; }
if [ -e "$lab" ]; then
  echo "myproxy-lab: $lab exists already: give a new directory (or remove that one)" >&2
  exit 1
fi
mkdir -p "$lab"
lab=$(cd "$lab" && pwd -P)
chmod 755 "$lab"   # the pilot account reads the trust directory and proxies it is given

"${pilotid[@]}" -q testca "$lab/pki" --user alice "$alice_dn" --pilot-dn "$pilot_dn" \
  --host localhost >/dev/null
chmod 755 "$lab/pki"

# Who may do what: anyone may store and try to retrieve, but a proxy is handed out without a
# passphrase only to a client its owner's retrieval policy (-Z) names.
mkdir -m 700 "$lab/store"
cat >"$lab/myproxy-server.config" <<'EOF'
accepted_credentials       "*"
authorized_retrievers      "*"
default_retrievers         "*"
trusted_retrievers         "*"
default_trusted_retrievers "none"
EOF

X509_CERT_DIR=$lab/pki/certificates X509_USER_CERT=$lab/pki/hostcert.pem \
X509_USER_KEY=$lab/pki/hostkey.pem \
  myproxy-server -c "$lab/myproxy-server.config" -s "$lab/store" -l 127.0.0.1 -p "$port" \
                 -P "$lab/myproxy.pid" -z "$lab/myproxy.port"
# myproxy-server returns once its daemon listens and has written the pid and port files.
port=$(cat "$lab/myproxy.port")

cat <<EOF
myproxy-server listening on 127.0.0.1:$port (pid $(cat "$lab/myproxy.pid")), files in $lab
export MYPROXY_SERVER=localhost MYPROXY_SERVER_PORT=$port MYPROXY_SERVER_DN=/CN=localhost
export X509_CERT_DIR=$lab/pki/certificates
alice's certificate and key: $lab/pki/alice.pem $lab/pki/alice.key
the pilot's proxy:           $lab/pki/x509up_pilot
stop it with: kill \$(cat $lab/myproxy.pid)
EOF
