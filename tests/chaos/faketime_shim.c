/* Preloaded ahead of libfaketime 0.9.10 (FAKETIME_DONT_FAKE_MONOTONIC=1) in the chaos suite's clock-skew
   processes, so that only the wall clock is skewed, as on an NTP-skewed host, and nothing else breaks:

   - clock_nanosleep: libfaketime rewrites every one as if its clock were the faked wall clock; Python's
     time.sleep (CLOCK_MONOTONIC, TIMER_ABSTIME) then fails with EINVAL. Monotonic sleeps go to the kernel.
   - pthread_cond_init/destroy/timedwait: libfaketime tracks condition variables under a global rwlock that is
     not fork-safe; a fork while another thread held it left the child (a script's subprocess, before exec)
     blocked forever in PyOS_AfterFork_Child, and its attempt stuck RUNNING while the worker heartbeated it.
     With monotonic clocks left true, libfaketime has nothing to do for them: they go to glibc.

   Built once per cluster by tests/chaos/cluster.py (`cc -shared -fPIC ... -ldl -Wl,--version-script`). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int (*next_clock_nanosleep)(clockid_t, int, const struct timespec *, struct timespec *);
static int (*libc_cond_init)(pthread_cond_t *, const pthread_condattr_t *);
static int (*libc_cond_destroy)(pthread_cond_t *);
static int (*libc_cond_timedwait)(pthread_cond_t *, pthread_mutex_t *, const struct timespec *);

/* Resolved at load time, before any thread or fork: a child never takes the loader's lock for them. */
__attribute__((constructor)) static void resolve(void) {
    void *libc = dlopen("libc.so.6", RTLD_LAZY | RTLD_NOLOAD);
    next_clock_nanosleep = dlsym(RTLD_NEXT, "clock_nanosleep");
    libc_cond_init = dlvsym(libc, "pthread_cond_init", "GLIBC_2.3.2");
    libc_cond_destroy = dlvsym(libc, "pthread_cond_destroy", "GLIBC_2.3.2");
    libc_cond_timedwait = dlvsym(libc, "pthread_cond_timedwait", "GLIBC_2.3.2");
}

int clock_nanosleep(clockid_t clock_id, int flags, const struct timespec *req, struct timespec *rem) {
    if (clock_id != CLOCK_REALTIME) {
        long r = syscall(SYS_clock_nanosleep, clock_id, flags, req, rem);
        return r == -1 ? errno : 0;
    }
    return next_clock_nanosleep(clock_id, flags, req, rem);
}

int shim_cond_init(pthread_cond_t *cond, const pthread_condattr_t *attr) { return libc_cond_init(cond, attr); }
int shim_cond_destroy(pthread_cond_t *cond) { return libc_cond_destroy(cond); }
int shim_cond_timedwait(pthread_cond_t *cond, pthread_mutex_t *mutex, const struct timespec *abstime) {
    return libc_cond_timedwait(cond, mutex, abstime);
}
__asm__(".symver shim_cond_init,pthread_cond_init@@GLIBC_2.3.2");
__asm__(".symver shim_cond_destroy,pthread_cond_destroy@@GLIBC_2.3.2");
__asm__(".symver shim_cond_timedwait,pthread_cond_timedwait@@GLIBC_2.3.2");
