/*
 * eject: the ejection and retry state machine of one server, twemproxy's
 * rules made explicit. Pure: the caller passes the clock, so the rules are
 * tested with a fake one.
 *
 *   on the ring --(failure_limit failures in a row, auto_eject)--> ejected
 *   ejected --(retry_ms passed: eject_due)--> on the ring, on probation:
 *   its next failure ejects it again at once; its next success clears it.
 */
#ifndef MEMRING_EJECT_H
#define MEMRING_EJECT_H

#include <stdbool.h>
#include <stdint.h>

struct eject_policy {
    bool     auto_eject;     /* auto_eject_hosts */
    uint32_t failure_limit;  /* server_failure_limit, >= 1 */
    uint64_t retry_ms;       /* server_retry_timeout */
};

struct eject_state {
    uint32_t failures;       /* consecutive failures */
    uint64_t ejected_until;  /* clock ms; 0 = on the ring */
    bool     probation;      /* back from ejection, not yet proven */
};

/* A failure at now. True when it ejects the server (it was on the ring). */
bool eject_failure(struct eject_state *s, const struct eject_policy *p,
                   uint64_t now);

/* A success: the failure streak and any probation end. */
void eject_success(struct eject_state *s);

/* True when s is ejected and its retry time has come; puts it back on the
 * ring on probation. */
bool eject_readmit(struct eject_state *s, uint64_t now);

static inline bool
eject_is_ejected(const struct eject_state *s)
{
    return s->ejected_until != 0;
}

#endif /* MEMRING_EJECT_H */
