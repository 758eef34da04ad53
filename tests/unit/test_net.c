/*
 * net tests: net_resolve() on numeric addresses (no DNS needed), the
 * wildcard for a NULL host, and names that cannot resolve.
 */
#include "memring/net.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

static void
test_ipv4(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

    (void)state;
    memset(&ss, 0xaa, sizeof(ss));
    assert_int_equal(net_resolve("127.0.0.1", 11211, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 11211);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);

    assert_int_equal(net_resolve("10.1.2.3", 65535, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET);
    assert_int_equal(ntohs(sin->sin_port), 65535);
    assert_int_equal(ntohl(sin->sin_addr.s_addr), 0x0a010203u);
}

static void
test_ipv6(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

    (void)state;
    assert_int_equal(net_resolve("::1", 22122, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(ntohs(sin6->sin6_port), 22122);
    assert_memory_equal(&sin6->sin6_addr, &in6addr_loopback,
                        sizeof(in6addr_loopback));

    assert_int_equal(net_resolve("fe80::1:2", 1, &ss), 0);
    assert_int_equal(ss.ss_family, AF_INET6);
    assert_int_equal(sin6->sin6_addr.s6_addr[0], 0xfe);
    assert_int_equal(sin6->sin6_addr.s6_addr[15], 0x02);
}

/* Port 0 is passed through as it is (the kernel picks one at bind). */
static void
test_port_zero(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;

    (void)state;
    assert_int_equal(net_resolve("127.0.0.1", 0, &ss), 0);
    assert_int_equal(ntohs(sin->sin_port), 0);
}

/* NULL host: the wildcard address, for a listener on every interface. */
static void
test_null_host_is_wildcard(void **state)
{
    struct sockaddr_storage ss;
    const struct sockaddr_in *sin = (const struct sockaddr_in *)&ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&ss;

    (void)state;
    assert_int_equal(net_resolve(NULL, 22121, &ss), 0);
    if (ss.ss_family == AF_INET) {
        assert_int_equal(sin->sin_addr.s_addr, htonl(INADDR_ANY));
        assert_int_equal(ntohs(sin->sin_port), 22121);
    } else {
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_memory_equal(&sin6->sin6_addr, &in6addr_any,
                            sizeof(in6addr_any));
        assert_int_equal(ntohs(sin6->sin6_port), 22121);
    }
}

/* Names that are no host names fail at once, without asking DNS. */
static void
test_unresolvable(void **state)
{
    struct sockaddr_storage ss;

    (void)state;
    assert_int_equal(net_resolve("no such host", 11211, &ss),
                     UV_EAI_NONAME);
    assert_int_equal(net_resolve("bad\001name", 11211, &ss), UV_EAI_NONAME);
    assert_int_equal(net_resolve("999.1.2.3.4 x", 11211, &ss),
                     UV_EAI_NONAME);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_port_zero),
        cmocka_unit_test(test_null_host_is_wildcard),
        cmocka_unit_test(test_unresolvable),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
