// LD_PRELOAD shim: a filesystem without locks (Lustre mounted `noflock`). flock(), lockf() and
// the fcntl() lock commands (F_SETLK, F_SETLKW, F_OFD_SETLK, F_OFD_SETLKW, and the F_GETLK
// queries) fail with ENOSYS, as they do there; every other fcntl() goes to the real one.
//
//   LD_PRELOAD=libleaseq_noflock.so leaseq submit ...
//
// LEASEQ_NOFLOCK_ERRNO=ENOLCK|EOPNOTSUPP|ENOSYS picks the error (NFS without lockd answers
// ENOLCK). LEASEQ_NOFLOCK_TRACE=FILE appends one line per refused call ("flock <pid>"), so a
// test can tell the shim was really in the way and not merely loaded.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

static int refusal_errno(void) {
  const char* e = getenv("LEASEQ_NOFLOCK_ERRNO");
  if (e && strcmp(e, "ENOLCK") == 0) return ENOLCK;
  if (e && strcmp(e, "EOPNOTSUPP") == 0) return EOPNOTSUPP;
  return ENOSYS;
}

static void trace(const char* what) {
  const char* path = getenv("LEASEQ_NOFLOCK_TRACE");
  if (!path || !*path) return;
  int saved = errno;
  // The real open: ours is not interposed, and the trace must not recurse into fcntl.
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd >= 0) {
    char line[64];
    int n = snprintf(line, sizeof line, "%s %ld\n", what, (long)getpid());
    if (n > 0 && write(fd, line, (size_t)n) < 0) {
    }
    close(fd);
  }
  errno = saved;
}

static int refuse(const char* what) {
  trace(what);
  errno = refusal_errno();
  return -1;
}

static int is_lock_command(int cmd) {
  switch (cmd) {
    case F_SETLK:
    case F_SETLKW:
    case F_GETLK:
#ifdef F_OFD_SETLK
    case F_OFD_SETLK:
    case F_OFD_SETLKW:
    case F_OFD_GETLK:
#endif
      return 1;
    default:
      return 0;
  }
}

int flock(int fd, int op) {
  (void)fd;
  (void)op;
  return refuse("flock");
}

int lockf(int fd, int cmd, off_t len) {
  (void)fd;
  (void)len;
  if (cmd == F_ULOCK) return 0;
  return refuse("lockf");
}

int lockf64(int fd, int cmd, off64_t len) {
  return lockf(fd, cmd, (off_t)len);
}

typedef int (*fcntl_fn)(int, int, ...);

// fcntl's third argument is an int or a pointer; like glibc, pass it on as a pointer-sized
// word, which the x86-64 and AArch64 calling conventions make the same thing.
static int forward(const char* name, int fd, int cmd, void* arg) {
  fcntl_fn real = (fcntl_fn)dlsym(RTLD_NEXT, name);
  if (!real) real = (fcntl_fn)dlsym(RTLD_NEXT, "fcntl");
  if (!real) {
    errno = ENOSYS;
    return -1;
  }
  return real(fd, cmd, arg);
}

int fcntl(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (is_lock_command(cmd)) return refuse("fcntl");
  return forward("fcntl", fd, cmd, arg);
}

int fcntl64(int fd, int cmd, ...) {
  va_list ap;
  va_start(ap, cmd);
  void* arg = va_arg(ap, void*);
  va_end(ap);
  if (is_lock_command(cmd)) return refuse("fcntl");
  return forward("fcntl64", fd, cmd, arg);
}
