/*
 * Setuid-root entry point of the gLExec stand-in for pilotid's system tests.
 * TEST-ONLY: built and installed by tests/glexec/install-standin.sh on a throwaway node,
 * mode 4110 root:<pilot group>, so that only the test pilot account can run it.
 *
 * It becomes root for real (real, effective and saved uid and gid 0, no supplementary
 * groups), so that the lingering stand-in cannot be signalled by its unprivileged caller,
 * exactly like the setuid-root gLExec.  It hands nothing of the caller's environment on
 * under its own name: every variable is renamed with CALLER_PREFIX, so that neither the
 * dynamic loader nor the interpreter sees the caller's LD_*, PYTHON*, locale or other
 * variables; the Python stand-in, run isolated (-I -S) from fixed root-owned paths, applies
 * gLExec's environment whitelist itself.  The interpreter, script and configuration paths
 * are fixed at compile time; nothing the caller passes can change them.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#ifndef STANDIN_CONF
#error "compile with -DSTANDIN_CONF='\"/abs/path/glexec.conf\"'"
#endif
#ifndef STANDIN_SCRIPT
#error "compile with -DSTANDIN_SCRIPT='\"/abs/path/glexec-standin.py\"'"
#endif
#ifndef STANDIN_CALLER_GID
#error "compile with -DSTANDIN_CALLER_GID=<gid of the group allowed to call>"
#endif
#ifndef STANDIN_PYTHON
#define STANDIN_PYTHON "/usr/bin/python3"
#endif

#define CALLER_PREFIX "GLEXEC_STANDIN_CALLER_"
#define CLIENT_ERROR 201
#define SYSTEM_ERROR 202
#define AUTHZ_ERROR 203

extern char **environ;

static void fail(int status, const char *what)
{
    fprintf(stderr, "glexec (pilotid test stand-in): %s\n", what);
    _exit(status);
}

/* The caller belongs to the group allowed to call (mode 4110 says so, but some kernels, this
 * test node's among them, let anyone execute a file with any execute bit: check it here). */
static int allowed_caller(gid_t caller_gid)
{
    gid_t groups[256];
    int i, count;

    if (caller_gid == (gid_t)STANDIN_CALLER_GID)
        return 1;
    count = getgroups(256, groups);
    for (i = 0; i < count; i++)
        if (groups[i] == (gid_t)STANDIN_CALLER_GID)
            return 1;
    return 0;
}

/* A file only root can change: owned by root, not writable by group or others. */
static int trusted(const char *path)
{
    struct stat st;

    if (stat(path, &st) != 0)
        return 0;
    return S_ISREG(st.st_mode) && st.st_uid == 0 && !(st.st_mode & (S_IWGRP | S_IWOTH));
}

int main(int argc, char **argv)
{
    uid_t caller_uid = getuid();
    gid_t caller_gid = getgid();
    char uid_text[32], gid_text[32];
    char **env, **args, **e;
    size_t count = 0, k = 0;
    int fd, i, n = 0;

    /* A caller may start us with 0, 1 or 2 closed: never let a file we open take their place. */
    for (fd = 0; fd <= 2; fd++) {
        if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
            if (open("/dev/null", O_RDWR) != fd)
                _exit(SYSTEM_ERROR);
        }
    }
    if (argc < 1 || argv[0] == NULL)
        fail(CLIENT_ERROR, "called without argv");
    if (!allowed_caller(caller_gid))
        fail(AUTHZ_ERROR, "caller is not in the group allowed to call gLExec");
    if (geteuid() != 0)
        fail(SYSTEM_ERROR, "not installed setuid root");
    if (setgroups(0, NULL) != 0 || setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0)
        fail(SYSTEM_ERROR, "cannot become root");
    if (!trusted(STANDIN_PYTHON) || !trusted(STANDIN_SCRIPT))
        fail(SYSTEM_ERROR, "interpreter or stand-in script is missing or not root's alone");

    for (e = environ; *e != NULL; e++)
        count++;
    env = calloc(count + 2, sizeof(char *));
    args = calloc((size_t)argc + 9, sizeof(char *));
    if (env == NULL || args == NULL)
        fail(SYSTEM_ERROR, "out of memory");
    for (e = environ; *e != NULL; e++) {
        size_t length = strlen(CALLER_PREFIX) + strlen(*e) + 1;
        char *renamed;

        if (strchr(*e, '=') == NULL)
            continue;
        renamed = malloc(length);
        if (renamed == NULL)
            fail(SYSTEM_ERROR, "out of memory");
        snprintf(renamed, length, "%s%s", CALLER_PREFIX, *e);
        env[k++] = renamed;
    }
    env[k++] = "PATH=/usr/bin:/bin";
    env[k] = NULL;

    snprintf(uid_text, sizeof uid_text, "%lu", (unsigned long)caller_uid);
    snprintf(gid_text, sizeof gid_text, "%lu", (unsigned long)caller_gid);
    args[n++] = STANDIN_PYTHON;
    args[n++] = "-I";
    args[n++] = "-S";
    args[n++] = STANDIN_SCRIPT;
    args[n++] = STANDIN_CONF;
    args[n++] = uid_text;
    args[n++] = gid_text;
    args[n++] = "--";
    for (i = 1; i < argc; i++)
        args[n++] = argv[i];
    args[n] = NULL;

    execve(STANDIN_PYTHON, args, env);
    fprintf(stderr, "glexec (pilotid test stand-in): cannot run %s: %s\n", STANDIN_PYTHON,
            strerror(errno));
    return SYSTEM_ERROR;
}
