/*
 * crash: on a fatal signal (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT),
 * one line naming the signal and a backtrace go to the log before the
 * process dies as it would have (the default action, so a core is still
 * dumped where the system keeps them). A crash in production or in CI
 * then says where it happened instead of only that the port went away.
 */
#ifndef MEMRING_CRASH_H
#define MEMRING_CRASH_H

/* Installs the handlers, on an alternate stack (a stack overflow is one
 * of the crashes). Does nothing under a sanitizer, which reports crashes
 * itself. Call once, after log_setup(). */
void crash_report_install(void);

#endif
