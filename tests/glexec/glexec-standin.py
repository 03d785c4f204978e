"""gLExec stand-in for pilotid's system tests.  TEST-ONLY: never install it on a real node.

Started as root (real, effective and saved uid 0) by the setuid helper ``glexec-helper.c``,
which passes: the configuration file, the caller's uid and gid, ``--`` and the caller's
command line; and the caller's environment with every name prefixed by ``CALLER_PREFIX`` so
that nothing of it acts on the dynamic loader or on this interpreter (run with ``-I -S``).

It enforces the documented contract of gLExec (0.9) that pilotid relies on:

* ``GLEXEC_CLIENT_CERT``: absolute, not a symlink, a regular file owned by the caller, mode
  no wider than 0700, holding a certificate chain and the matching private key (else 201);
  the identity is the first non-proxy subject of the chain;
* the caller must be on ``user_white_list`` (else 203), the identity must be in the
  grid-mapfile (else 203) and map to a local account with uid >= ``min_target_uid``;
* a missing, unreadable, malformed or untrusted configuration or grid-mapfile is 202;
* ``GLEXEC_SOURCE_PROXY`` is copied, as the target, under an flock, to
  ``GLEXEC_TARGET_PROXY`` (default ``/tmp/x509up_u<uid>``), owned by the target, 0600;
* the environment is wiped but for ``GLEXEC_*`` and ``preserve_env_variables``; ``HOME``,
  ``USER``, ``LOGNAME``, ``PATH`` and ``X509_USER_PROXY`` are set for the target;
* the command must be absolute, exist for the target and not be a symlink (else 201); if it
  cannot be executed the answer is 126; a command exiting 201-204 makes it answer 204;
* it lingers (fork, wait) as root, so the unprivileged caller cannot signal it; signals that
  do reach it (from root) are passed on to the payload; a payload killed by a signal makes
  it die of the same signal.

What it does not model is listed in ``docs/glexec.rst``.
"""

import configparser
import datetime
import errno
import fcntl
import os
import pwd
import re
import resource
import signal
import stat
import subprocess
import sys

CALLER_PREFIX = "GLEXEC_STANDIN_CALLER_"

CLIENT_ERROR = 201
SYSTEM_ERROR = 202
AUTHZ_ERROR = 203
OVERLAP = 204
CANNOT_EXECUTE = 126

TARGET_PATH = "/usr/bin:/bin"
OPENSSL = "/usr/bin/openssl"
# Variables gLExec never passes on, whatever the whitelist says.
NEVER_PRESERVED = ("MALLOC_", "LD_")
PROXY_CERT_INFO = "Proxy Certificate Information"
PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z ]+)-----\r?\n.*?-----END \1-----\r?\n?", re.S)


class Refusal(Exception):
    """A reason to stop, with the exit status gLExec gives for it."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def log(message):
    sys.stderr.write("glexec-standin[%d]: %s\n" % (os.getpid(), message))
    sys.stderr.flush()


# --- configuration --------------------------------------------------------------------------

def read_trusted(path, what):
    """Contents of a root-owned file nobody else may write; 202 otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise Refusal(SYSTEM_ERROR, "cannot open %s %s: %s" % (what, path, error.strerror))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_uid != 0 or info.st_mode & 0o022:
            raise Refusal(SYSTEM_ERROR, "%s %s must be a regular file owned by root and "
                          "writable by root only" % (what, path))
        try:
            return handle.read().decode("utf-8")
        except (OSError, UnicodeDecodeError) as error:
            raise Refusal(SYSTEM_ERROR, "cannot read %s %s: %s" % (what, path, error))


def split_list(value):
    return [item.strip() for item in re.split(r"[,\s]+", value or "") if item.strip()]


def load_config(path):
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(read_trusted(path, "configuration"), source=path)
    except configparser.Error as error:
        raise Refusal(SYSTEM_ERROR, "malformed configuration %s: %s" % (path, error))
    if not parser.has_section("glexec"):
        raise Refusal(SYSTEM_ERROR, "configuration %s has no [glexec] section" % path)
    section = parser["glexec"]
    mapfile = section.get("grid_mapfile", "").strip()
    if not mapfile.startswith("/"):
        raise Refusal(SYSTEM_ERROR, "configuration %s: grid_mapfile must be an absolute path"
                      % path)
    try:
        min_uid = int(section.get("min_target_uid", "1000"))
    except ValueError:
        raise Refusal(SYSTEM_ERROR, "configuration %s: min_target_uid is not a number" % path)
    return {
        "callers": split_list(section.get("user_white_list")),
        "preserve": split_list(section.get("preserve_env_variables")),
        "grid_mapfile": mapfile,
        "min_target_uid": max(1, min_uid),
    }


def parse_grid_mapfile(text):
    """``{DN: account}`` from grid-mapfile lines ``"DN" account[,account...]``."""
    mapping = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = re.match(r'^"((?:[^"\\]|\\.)*)"\s+(\S+)\s*$', line)
        if not found:
            raise Refusal(SYSTEM_ERROR, "grid-mapfile line %d is malformed" % number)
        dn = found.group(1).replace('\\"', '"')
        mapping.setdefault(dn, found.group(2).split(",")[0])
    return mapping


# --- the client certificate -----------------------------------------------------------------

class CallerPrivileges:
    """Open files with the caller's uid and gid, as if the caller opened them."""

    def __init__(self, uid, gid):
        self.uid, self.gid = uid, gid

    def __enter__(self):
        os.setegid(self.gid)
        os.seteuid(self.uid)

    def __exit__(self, *exc):
        os.seteuid(0)
        os.setegid(0)


def read_client_cert(path, caller_uid, caller_gid):
    if not path:
        raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT is not set")
    if not path.startswith("/"):
        raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT %s is not an absolute path" % path)
    try:
        with CallerPrivileges(caller_uid, caller_gid):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT %s is a symlink" % path)
        raise Refusal(CLIENT_ERROR, "cannot open GLEXEC_CLIENT_CERT %s: %s"
                      % (path, error.strerror))
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT %s is not a regular file" % path)
        if info.st_uid != caller_uid:
            raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT %s is owned by uid %d, not by the "
                          "caller (uid %d)" % (path, info.st_uid, caller_uid))
        if info.st_mode & 0o7077:
            raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT %s has mode %04o: group, other and "
                          "special bits are not allowed (use 0600)"
                          % (path, stat.S_IMODE(info.st_mode)))
        return handle.read(1 << 20)


def openssl(args, data, caller_uid, caller_gid):
    """Run openssl on untrusted ``data`` with the caller's privileges, not root's."""
    try:
        done = subprocess.run([OPENSSL] + args, input=data, capture_output=True, timeout=30,
                              user=caller_uid, group=caller_gid, extra_groups=[],
                              env={"PATH": TARGET_PATH})
    except (OSError, subprocess.SubprocessError) as error:
        raise Refusal(SYSTEM_ERROR, "cannot run openssl: %s" % error)
    return done.returncode, done.stdout.decode("utf-8", "replace")


def parse_not_after(text):
    stamp = re.sub(r"\s+", " ", text.strip())
    return datetime.datetime.strptime(stamp, "%b %d %H:%M:%S %Y GMT").replace(
        tzinfo=datetime.timezone.utc)


def identity_of(pem, caller_uid, caller_gid):
    """The first non-proxy subject of the chain in ``pem``, after gLExec's checks."""
    blocks = [(m.group(1), m.group(0)) for m in PEM_BLOCK.finditer(pem)]
    certs = [block for kind, block in blocks if kind == b"CERTIFICATE"]
    keys = [block for kind, block in blocks if kind.endswith(b"PRIVATE KEY")]
    if not certs or not keys:
        raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT must hold a certificate chain and its "
                      "private key")
    now = datetime.datetime.now(datetime.timezone.utc)
    identity = None
    for cert in certs:
        status, text = openssl(["x509", "-noout", "-subject", "-nameopt", "compat", "-enddate",
                                "-ext", "proxyCertInfo"], cert, caller_uid, caller_gid)
        subject = re.search(r"^subject=(.*)$", text, re.M)
        not_after = re.search(r"^notAfter=(.*)$", text, re.M)
        if status != 0 or not subject or not not_after:
            raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT holds a certificate openssl cannot "
                          "read")
        try:
            expired = parse_not_after(not_after.group(1)) <= now
        except ValueError:
            raise Refusal(CLIENT_ERROR, "unreadable expiry date %r" % not_after.group(1))
        if expired:
            # LCMAPS' verify-proxy plugin fails: an authorisation error, as in gLExec.
            raise Refusal(AUTHZ_ERROR, "certificate %s has expired" % subject.group(1))
        dn = subject.group(1).strip()
        last = dn.rsplit("/", 1)[-1]
        is_proxy = PROXY_CERT_INFO in text or last in ("CN=proxy", "CN=limited proxy")
        if not is_proxy and identity is None:
            identity = dn
    if identity is None:
        raise Refusal(CLIENT_ERROR, "GLEXEC_CLIENT_CERT holds proxies only, no identity")
    _, cert_key = openssl(["x509", "-noout", "-pubkey"], certs[0], caller_uid, caller_gid)
    status, file_key = openssl(["pkey", "-pubout"], keys[0], caller_uid, caller_gid)
    if status != 0 or not cert_key.strip() or cert_key.strip() != file_key.strip():
        raise Refusal(CLIENT_ERROR, "the private key in GLEXEC_CLIENT_CERT does not match "
                      "its first certificate")
    return identity


# --- mapping, environment -------------------------------------------------------------------

def map_identity(dn, config):
    mapping = parse_grid_mapfile(read_trusted(config["grid_mapfile"], "grid-mapfile"))
    name = mapping.get(dn)
    if name is None:
        raise Refusal(AUTHZ_ERROR, "%s is not in the grid-mapfile" % dn)
    if name.startswith("."):
        raise Refusal(AUTHZ_ERROR, "pool accounts (%s) are not modelled by the stand-in" % name)
    try:
        account = pwd.getpwnam(name)
    except KeyError:
        raise Refusal(AUTHZ_ERROR, "%s maps to %s, which has no local account" % (dn, name))
    if account.pw_uid < config["min_target_uid"]:
        raise Refusal(AUTHZ_ERROR, "%s maps to %s (uid %d), below min_target_uid"
                      % (dn, name, account.pw_uid))
    return account


def target_environment(caller_env, preserve, account, target_proxy):
    env = {}
    for name, value in caller_env.items():
        if name.startswith(NEVER_PRESERVED):
            continue
        if name.startswith("GLEXEC_") or name in preserve:
            env[name] = value
    env.update(HOME=account.pw_dir, USER=account.pw_name, LOGNAME=account.pw_name,
               PATH=TARGET_PATH)
    if target_proxy:
        env["X509_USER_PROXY"] = target_proxy
    return env


def read_source_proxy(caller_env, caller_uid, caller_gid):
    path = caller_env.get("GLEXEC_SOURCE_PROXY")
    if not path:
        return None
    if not path.startswith("/"):
        raise Refusal(CLIENT_ERROR, "GLEXEC_SOURCE_PROXY %s is not an absolute path" % path)
    try:
        with CallerPrivileges(caller_uid, caller_gid):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as error:
        raise Refusal(CLIENT_ERROR, "cannot open GLEXEC_SOURCE_PROXY %s: %s"
                      % (path, error.strerror))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise Refusal(CLIENT_ERROR, "GLEXEC_SOURCE_PROXY %s is not a regular file" % path)
        return handle.read(1 << 20)


# --- the child: becomes the target, then the command ----------------------------------------

def become(account):
    os.initgroups(account.pw_name, account.pw_gid)
    os.setresgid(account.pw_gid, account.pw_gid, account.pw_gid)
    os.setresuid(account.pw_uid, account.pw_uid, account.pw_uid)
    if os.getresuid() != (account.pw_uid,) * 3 or os.getresgid() != (account.pw_gid,) * 3:
        raise Refusal(SYSTEM_ERROR, "the switch to %s did not take" % account.pw_name)
    try:
        os.setuid(0)
    except PermissionError:
        return
    raise Refusal(SYSTEM_ERROR, "root could be regained after the switch")


def write_target_proxy(path, data, account):
    """As the target: the new proxy into ``path``, owned by the target, 0600, under flock."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o600)
    except OSError as error:
        raise Refusal(CLIENT_ERROR, "target location %s is not accessible to %s: %s"
                      % (path, account.pw_name, error.strerror))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != account.pw_uid:
            raise Refusal(CLIENT_ERROR, "target proxy %s exists and is not %s's own file"
                          % (path, account.pw_name))
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def run_child(command, env, cwd, account, proxy, target_proxy, umask, report):
    """In the forked child; never returns.  Failures go to ``report`` as one status byte."""
    try:
        for number in signal.valid_signals():
            if number not in (signal.SIGKILL, signal.SIGSTOP):
                try:
                    signal.signal(number, signal.SIG_DFL)
                except (OSError, ValueError):
                    pass
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        become(account)
        try:
            os.chdir(cwd)
        except OSError as error:
            raise Refusal(CLIENT_ERROR, "%s cannot enter the working directory %s (%s): make "
                          "every parent traversable" % (account.pw_name, cwd, error.strerror))
        if proxy is not None:
            write_target_proxy(target_proxy, proxy, account)
        try:
            info = os.lstat(command[0])
        except OSError as error:
            if error.errno in (errno.ENOENT, errno.ENOTDIR):
                raise Refusal(CLIENT_ERROR, "command %s does not exist" % command[0])
            raise Refusal(CANNOT_EXECUTE, "%s cannot reach %s: %s"
                          % (account.pw_name, command[0], error.strerror))
        if stat.S_ISLNK(info.st_mode):
            raise Refusal(CLIENT_ERROR, "command %s is a symlink" % command[0])
        os.umask(umask)
        os.closerange(3, report)
        os.closerange(report + 1, 65536)
        try:
            os.execve(command[0], command, env)
        except OSError as error:
            raise Refusal(CANNOT_EXECUTE, "cannot execute %s as %s: %s"
                          % (command[0], account.pw_name, error.strerror))
    except Refusal as refusal:
        log("%s (exit %d)" % (refusal, refusal.status))
        status = refusal.status
    except BaseException as error:  # noqa: B902 - whatever it is, the child must not return
        log("internal error in the child: %r" % (error,))
        status = SYSTEM_ERROR
    try:
        os.write(report, bytes([status]))
    finally:
        os._exit(status)


# --- the lingering parent -------------------------------------------------------------------

FORWARDED = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
             signal.SIGUSR2, signal.SIGALRM, signal.SIGCONT}


def die_like(status):
    """Exit the way the payload did: its status, 204 for 201-204, or its signal."""
    if os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if number != signal.SIGKILL:
            signal.signal(number, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, [number])
        os.kill(os.getpid(), number)
        os._exit(128 + number)
    code = os.waitstatus_to_exitcode(status)
    if 201 <= code <= 204:
        log("the command exited %d, reported as 204" % code)
        return OVERLAP
    return code


def linger(child, report):
    """Wait for the child as root; pass on to it only the signals root (or the kernel) sent."""
    with os.fdopen(report, "rb") as pipe:
        failed = pipe.read(1)
    if failed:
        os.waitpid(child, 0)
        return failed[0]
    while True:
        info = signal.sigwaitinfo(FORWARDED | {signal.SIGCHLD})
        if info.si_signo == signal.SIGCHLD:
            pid, status = os.waitpid(child, os.WNOHANG)
            if pid == child:
                return die_like(status)
            continue
        if info.si_uid == 0:
            try:
                os.kill(child, info.si_signo)
            except ProcessLookupError:
                pass
        else:  # cannot happen while we run as root; kept so the rule is stated in code
            log("ignoring signal %d from uid %d" % (info.si_signo, info.si_uid))


def main(argv):
    old_umask = os.umask(0o077)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    if len(argv) < 4 or argv[3] != "--":
        log("must be started by the setuid helper")
        return SYSTEM_ERROR
    conf_path, caller_uid, caller_gid = argv[0], int(argv[1]), int(argv[2])
    command = argv[4:]
    caller_env = {name[len(CALLER_PREFIX):]: value for name, value in os.environ.items()
                  if name.startswith(CALLER_PREFIX)}
    try:
        if os.getresuid() != (0, 0, 0):
            raise Refusal(SYSTEM_ERROR, "not running as root: is the helper setuid root?")
        config = load_config(conf_path)
        try:
            caller = pwd.getpwuid(caller_uid).pw_name
        except KeyError:
            raise Refusal(AUTHZ_ERROR, "calling uid %d has no account" % caller_uid)
        if caller not in config["callers"]:
            raise Refusal(AUTHZ_ERROR, "caller %s is not on user_white_list" % caller)
        if not command:
            raise Refusal(CLIENT_ERROR, "usage: glexec <absolute-command> [arguments]")
        if not command[0].startswith("/"):
            raise Refusal(CLIENT_ERROR, "command %s is not an absolute path" % command[0])
        pem = read_client_cert(caller_env.get("GLEXEC_CLIENT_CERT"), caller_uid, caller_gid)
        dn = identity_of(pem, caller_uid, caller_gid)
        account = map_identity(dn, config)
        proxy = read_source_proxy(caller_env, caller_uid, caller_gid)
        target_proxy = None
        if proxy is not None:
            target_proxy = caller_env.get("GLEXEC_TARGET_PROXY") or (
                "/tmp/x509up_u%d" % account.pw_uid)
            if not target_proxy.startswith("/"):
                raise Refusal(CLIENT_ERROR, "GLEXEC_TARGET_PROXY %s is not an absolute path"
                              % target_proxy)
        try:
            cwd = os.getcwd()
        except OSError as error:
            raise Refusal(CLIENT_ERROR, "the working directory is gone: %s" % error.strerror)
        env = target_environment(caller_env, config["preserve"], account, target_proxy)
    except Refusal as refusal:
        log("%s (exit %d)" % (refusal, refusal.status))
        return refusal.status
    log("%s (caller %s) mapped to %s; running %s" % (dn, caller, account.pw_name, command[0]))
    signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED | {signal.SIGCHLD})
    report_read, report_write = os.pipe()
    child = os.fork()
    if child == 0:
        os.close(report_read)
        run_child(command, env, cwd, account, proxy, target_proxy, old_umask, report_write)
    os.close(report_write)
    return linger(child, report_read)


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except SystemExit:
        raise
    except BaseException as error:  # noqa: B902 - an unforeseen failure is gLExec's own (202)
        log("internal error: %r" % (error,))
        sys.exit(SYSTEM_ERROR)
