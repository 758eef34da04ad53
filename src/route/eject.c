/*
 * eject: one server's ejection state machine (see eject.h).
 */
#include "memring/eject.h"

bool
eject_failure(struct eject_state *s, const struct eject_policy *p,
              uint64_t now)
{
    if (!p->auto_eject || s->ejected_until != 0) {
        return false;
    }
    s->failures++;
    /* A server just back from ejection has not earned a fresh streak:
     * twemproxy ejects it again on its first failure, so a dead server
     * costs one failed request per retry period, not failure_limit. */
    if (!s->probation && s->failures < p->failure_limit) {
        return false;
    }
    s->failures = 0;
    s->probation = false;
    s->ejected_until = now + p->retry_ms;
    if (s->ejected_until == 0) {
        s->ejected_until = 1;   /* 0 means "on the ring" */
    }
    return true;
}

void
eject_success(struct eject_state *s)
{
    s->failures = 0;
    s->probation = false;
}

bool
eject_readmit(struct eject_state *s, uint64_t now)
{
    if (s->ejected_until == 0 || now < s->ejected_until) {
        return false;
    }
    s->ejected_until = 0;
    s->failures = 0;
    s->probation = true;
    return true;
}
