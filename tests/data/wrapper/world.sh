#!/bin/bash
# Written by pilotid (pilotid.payloads.wrapper) to run one payload as this account.
# Every value below was quoted by pilotid; the site setup lines, if any, are the queue's
# trusted configuration.  Marker lines: uid=, proxy-copy= and token-copy= (device:inode of
# the copies stored from standard input), egg=, then status= (and signal=) or error=.
builtin set -u
_pilotid_marker=/scratch/job-9/.pilotid-marker-9-ab
_pilotid_proxy=/scratch/job-9/.pilotid-proxy-1002-ab/x509up
_pilotid_token=''
_pilotid_reaper=99
_pilotid_marker_fd=
_pilotid_egg=
_pilotid_workdir=
_pilotid_payload_pid=
_pilotid_reaped=0
_pilotid_interrupted=0
_pilotid_phase=start
_pilotid_loadables=(/usr/lib/bash/mkdir /usr/lib/bash/rm /usr/lib/bash/stat)
_pilotid_loaded=off

_pilotid_random() {
  # 32 hex digits from the kernel's random source, now, in _pilotid_hex.  bash 5.1+ reads
  # getrandom(2) for each $SRANDOM (assignments to it are ignored): four of them make the
  # 32 digits without starting od.
  if (( BASH_VERSINFO[0] > 5 || (BASH_VERSINFO[0] == 5 && BASH_VERSINFO[1] >= 1) )); then
    builtin printf -v _pilotid_hex '%08x' "$SRANDOM" "$SRANDOM" "$SRANDOM" "$SRANDOM"
  else
    _pilotid_hex=$(builtin command -p od -An -N16 -tx1 /dev/urandom) || _pilotid_hex=
  fi
  _pilotid_hex=${_pilotid_hex//[!0-9a-f]/}
  [ "${#_pilotid_hex}" -eq 32 ]
}
_pilotid_note() {
  [ -z "$_pilotid_marker_fd" ] || builtin printf '%s=%s\n' "$1" "$2" >&"$_pilotid_marker_fd"
}
_pilotid_builtins() {
  # on: load bash's loadable mkdir, rm and stat (root's files, from pilotid's list), off:
  # drop them
  local so
  [ "$1" != "$_pilotid_loaded" ] || builtin return 0
  _pilotid_loaded=$1
  for so in "${_pilotid_loadables[@]}"; do
    if [ "$1" = on ]; then
      builtin enable -f "$so" "${so##*/}" 2>/dev/null || :
    else
      builtin enable -d "${so##*/}" 2>/dev/null || :
    fi
  done
}
_pilotid_identify() {
  # The device and inode of the new file $1 in _pilotid_copy, as the program's
  # stat -c %d:%i prints them (lstat: a symlink is never followed).  bash's loadable stat,
  # where pilotid trusts it, reads them without a fork; its -L is lstat.  It prints them
  # signed: anything but digits (an inode above 2^63) is left to the program.
  local -A st=()
  _pilotid_builtins on
  if builtin stat -L -A st -- "$1" 2>/dev/null &&
    [[ ${st[device]-}:${st[inode]-} =~ ^[0-9]+:[0-9]+$ ]]; then
    _pilotid_copy=${st[device]}:${st[inode]}
  else
    _pilotid_builtins off  # else `command -p stat` would be the loadable again
    _pilotid_copy=$(builtin command -p stat -c '%d:%i' -- "$1")
  fi
}
_pilotid_reap() {
  # Kill what the payload left running: its orphans are the pilot's (a child subreaper)
  # children now; those of this account are the payload's.  Their own children become
  # the pilot's in turn when they die: go round until none is left.
  [ -n "$_pilotid_reaper" ] && [ -n "$_pilotid_payload_pid" ] && [ "$_pilotid_reaped" = 0 ] ||
    builtin return 0
  _pilotid_reaped=1
  local round found children pid key value state uid pids
  for ((round = 0; round < 100; round++)); do
    found=0
    for children in /proc/"$_pilotid_reaper"/task/*/children; do
      pids=()
      builtin read -r -a pids 2>/dev/null <"$children" || :
      for pid in "${pids[@]}"; do
        state= uid=
        while builtin read -r key value _; do
          case $key in State:) state=$value ;; Uid:) uid=$value; builtin break ;; esac
        done 2>/dev/null <"/proc/$pid/status"
        # never this wrapper itself (a child of the pilot too where the switch did not
        # happen, or where the switch program exec'd it): it still has its egg cache to remove
        if [ "$uid" = "$EUID" ] && [ "$state" != Z ] && [ "$state" != X ] &&
          [ "$pid" != "$$" ]; then
          builtin kill -s KILL "$pid" 2>/dev/null && found=1
        fi
      done
    done
    [ "$found" = 1 ] || builtin break
  done
}
_pilotid_cleanup() {
  if [ "$_pilotid_phase" = setup ]; then
    _pilotid_phase=failed
    _pilotid_note error setup
  fi
  _pilotid_reap
  # What the payload leaves must be no door into this account for whoever comes next (a
  # setuid copy of a shell) nor writable by every account: its own files lose those bits.
  # Run as the target, the only one who may chmod them; symlinks are never followed.
  if [ -n "$_pilotid_workdir" ]; then
    builtin command -p find -P "$_pilotid_workdir" -xdev -user "$EUID" ! -type l ! -type d \
      \( -perm /6000 -o -perm -0002 \) -exec chmod u-s,g-s,o-w -- {} + 2>/dev/null
    _pilotid_workdir=  # once: the cleanup also runs on exit
  fi
  if [ -n "$_pilotid_egg" ]; then
    _pilotid_builtins on
    # chmod only where the payload left something rm cannot remove: one program, not two
    builtin command -p rm -rf -- "$_pilotid_egg" 2>/dev/null
    if [ -e "$_pilotid_egg" ]; then
      builtin command -p chmod -R u+rwx -- "$_pilotid_egg" 2>/dev/null
      builtin command -p rm -rf -- "$_pilotid_egg"
    fi
    _pilotid_egg=
  fi
}
_pilotid_fail() {
  builtin printf 'pilotid-wrapper: %s\n' "$2" >&2
  _pilotid_phase=failed
  _pilotid_note error "$1"
  builtin exit 125
}
_pilotid_on_signal() {
  _pilotid_interrupted=1
  if [ -n "$_pilotid_payload_pid" ]; then
    builtin kill -s "$1" -- "-$_pilotid_payload_pid" 2>/dev/null ||
      builtin kill -s "$1" -- "$_pilotid_payload_pid" 2>/dev/null
    builtin return 0
  fi
  builtin printf 'pilotid-wrapper: SIG%s before the payload started: stopping\n' "$1" >&2
  _pilotid_phase=failed
  _pilotid_note error interrupted
  _pilotid_note signal "$2"
  builtin exit $((128 + $2))
}
_pilotid_traps() {
  builtin trap _pilotid_cleanup EXIT
  builtin trap '_pilotid_on_signal TERM 15' TERM
  builtin trap '_pilotid_on_signal INT 2' INT
  builtin trap '_pilotid_on_signal HUP 1' HUP
}

# The marker proves the switch happened: a new file (noclobber), never an existing one.
builtin set -C
# World mode: every account may create names in the work directory, so the marker and the
# proxy copy go in a new directory of this account's, named at random now (no one can have
# made it before) and writable by this account alone (no one can plant anything in it).
_pilotid_random ||
  _pilotid_fail marker "cannot read 16 random bytes from /dev/urandom to name the directory for the marker"
_pilotid_own=/scratch/job-9/.pilotid-target-9-ab-$_pilotid_hex
_pilotid_builtins on
builtin command -p mkdir -m 755 -- "$_pilotid_own" ||
  _pilotid_fail marker "cannot create the directory $_pilotid_own for the marker as uid $EUID"
_pilotid_marker=$_pilotid_own/marker
_pilotid_proxy=$_pilotid_own/x509up
_pilotid_token=$_pilotid_own/token
if ! { builtin exec {_pilotid_marker_fd}>"$_pilotid_marker"; }; then
  _pilotid_marker_fd=
  _pilotid_fail marker "cannot create the marker $_pilotid_marker (it exists already, or its directory is not writable by uid $EUID): not running the payload"
fi
builtin printf 'uid=%s\n' "$EUID" >&"$_pilotid_marker_fd"
_pilotid_traps
# The user's proxy arrives on standard input: store it as a new file of this account, in
# the pilot's handover directory, which has no default ACL (in world mode, in this
# account's own directory): umask 077 makes it 0600.  Read by the shell itself (a PEM
# proxy is text: no NUL), never exported; no subshell: the umask is set again before
# anything else.
builtin umask 077
_pilotid_pem=
IFS= builtin read -r -d '' _pilotid_pem
if ! builtin printf '%s' "$_pilotid_pem" >"$_pilotid_proxy"; then
  _pilotid_fail proxy "cannot store the proxy from standard input as $_pilotid_proxy (it exists already, or the directory is not writable by uid $EUID)"
fi
builtin unset _pilotid_pem
[ -s "$_pilotid_proxy" ] || _pilotid_fail proxy "no proxy arrived on standard input"
# Its identity goes in the marker before the payload starts: wherever the payload renames
# the copy in the work directory, the pilot finds it by device and inode after the job.
_pilotid_identify "$_pilotid_proxy" ||
  _pilotid_fail proxy "cannot read the device and inode of the proxy copy $_pilotid_proxy"
_pilotid_note proxy-copy "$_pilotid_copy"
builtin exec </dev/null
builtin set +C
# The pilot's environment, filtered, then the payload's own additions.
builtin export PATH=/usr/bin:/bin
builtin export X509_USER_PROXY="$_pilotid_proxy"
_pilotid_workdir=/scratch/job-9
builtin cd -P -- "$_pilotid_workdir" ||
  _pilotid_fail workdir "cannot enter the work directory $_pilotid_workdir as uid $EUID"
builtin umask 0000

# A fresh egg cache, named from the kernel's random source now; mkdir without -p: never
# reused.  It is named before it exists, in the marker (if this shell is killed outright,
# its EXIT trap never runs and the pilot has it removed as this account after the job) and
# to the EXIT trap (a signal trapped while mkdir runs ends this shell as soon as mkdir
# returns): no moment leaves it made and unnamed.
_pilotid_random ||
  _pilotid_fail egg-cache "cannot read 16 random bytes from /dev/urandom to name the egg cache"
_pilotid_note egg "$_pilotid_hex"
_pilotid_egg=/tmp/pilotid-egg-$_pilotid_hex
_pilotid_builtins on
if ! builtin command -p mkdir -m 700 -- "$_pilotid_egg"; then
  _pilotid_egg_path=$_pilotid_egg
  _pilotid_egg=  # not made by this shell: never removed
  _pilotid_fail egg-cache "cannot create the egg cache $_pilotid_egg_path with mkdir -m 700 (it exists already, or the base is not writable by uid $EUID): an egg cache is never reused"
fi
builtin export PYTHON_EGG_CACHE="$_pilotid_egg"
# The payload: a child in its own process group (set -m), stdin from /dev/null.
_pilotid_argv=(./runGen --seed=1)
_pilotid_phase=payload
builtin set -m
( builtin exec -- "${_pilotid_argv[@]}" ) </dev/null {_pilotid_marker_fd}>&- &
_pilotid_payload_pid=$!
builtin set +m
_pilotid_status=  # the first wait always answers 0..255: the payload's status, or 128+n
while :; do
  _pilotid_interrupted=0
  builtin wait "$_pilotid_payload_pid"
  _pilotid_waited=$?
  # bash 5.2 may answer -1 when the payload ended while a trap ran (a signal that reached
  # the wrapper and the payload at once): its status is lost; keep the last real one.
  if [ "$_pilotid_waited" -ge 0 ] && [ "$_pilotid_waited" -le 255 ]; then
    _pilotid_status=$_pilotid_waited
  fi
  # A trapped signal interrupts wait before the payload has ended: wait again.
  [ "$_pilotid_interrupted" = 1 ] || break
done
# What the payload left running in its group (a child that ignored TERM, a forgotten
# background job) ends with it, as a batch system ends a job's processes; one that made a
# group or session of its own is out of reach here (_pilotid_reap, in the cleanup, gets it).
builtin kill -s KILL -- "-$_pilotid_payload_pid" 2>/dev/null || :
_pilotid_phase=done
_pilotid_note status "$_pilotid_status"
if [ "$_pilotid_status" -gt 128 ] && [ "$_pilotid_status" -le 192 ]; then
  _pilotid_note signal "$((_pilotid_status - 128))"
fi
_pilotid_cleanup
builtin exit "$_pilotid_status"
