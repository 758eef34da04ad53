/*
 * crash: a backtrace on a fatal signal. Only async-signal-safe calls run
 * in the handler: write(2), raise(3), and glibc's backtrace() and
 * backtrace_symbols_fd(), which allocate nothing once backtrace() has been
 * called outside a handler (it loads libgcc's unwinder on first use, so
 * crash_report_install() calls it once).
 */
/* sigaltstack() and SA_ONSTACK are XSI */
#define _XOPEN_SOURCE 700

#include "memring/crash.h"

#include "memring/log.h"
#include "memring/sanitized.h"

#include <execinfo.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


/* A sanitizer reports crashes itself: none of this is built then. */
#if !MEMRING_SANITIZED
#define CRASH_FRAMES_MAX 64

static const struct {
    int        signum;
    const char *name;
} crash_signals[] = {
    { SIGSEGV, "SIGSEGV" }, { SIGBUS, "SIGBUS" }, { SIGFPE, "SIGFPE" },
    { SIGILL, "SIGILL" }, { SIGABRT, "SIGABRT" },
};
#define CRASH_NSIGNALS (sizeof(crash_signals) / sizeof(crash_signals[0]))

static void
crash_write(int fd, const char *s)
{
    ssize_t n = write(fd, s, strlen(s));

    (void)n;                    /* nothing more can be done about it */
}

static void
crash_handler(int signum)
{
    void *frames[CRASH_FRAMES_MAX];
    int fd = log_fd();
    size_t i;
    int n;

    crash_write(fd, "memring: fatal signal ");
    for (i = 0; i < CRASH_NSIGNALS; i++) {
        if (crash_signals[i].signum == signum) {
            crash_write(fd, crash_signals[i].name);
        }
    }
    crash_write(fd, "; backtrace (addr2line -e memring -f ADDR):\n");
    n = backtrace(frames, CRASH_FRAMES_MAX);
    backtrace_symbols_fd(frames, n, fd);
    /* SA_RESETHAND put the default action back: returning re-runs the
     * faulting instruction, raise() covers an abort or a kill. */
    raise(signum);
}
#endif

void
crash_report_install(void)
{
#if !MEMRING_SANITIZED
    static char altstack[64 * 1024];
    void *warm[1];
    stack_t ss;
    struct sigaction sa;
    size_t i;

    (void)backtrace(warm, 1);
    memset(&ss, 0, sizeof(ss));
    ss.ss_sp = altstack;
    ss.ss_size = sizeof(altstack);
    (void)sigaltstack(&ss, NULL);
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = crash_handler;
    sa.sa_flags = SA_ONSTACK | SA_RESETHAND | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    for (i = 0; i < CRASH_NSIGNALS; i++) {
        (void)sigaction(crash_signals[i].signum, &sa, NULL);
    }
#endif
}
