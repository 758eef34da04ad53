/*
 * json tests: the JSON writer and the escaping under it (escape.h), and
 * buf_printf(), through their headers.
 */
#include "memring/json.h"

#include "memring/buf.h"
#include "memring/escape.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#include <cmocka.h>

static struct buf out = BUF_INIT;

static int
teardown(void **state)
{
    (void)state;
    buf_free(&out);
    return 0;
}

/* out as a C string. */
static const char *
text(void)
{
    assert_int_equal(buf_append(&out, "", 1), 0);
    out.len--;
    return buf_head(&out);
}

/* Commas between members and elements, at every level. */
static void
test_writer(void **state)
{
    struct json j;

    (void)state;
    json_init(&j, &out);
    json_open(&j, NULL, '{');
    json_u64(&j, "a", UINT64_MAX);
    json_open(&j, "b", '[');
    json_i64(&j, NULL, -1);
    json_bool(&j, NULL, true);
    json_null(&j, NULL);
    json_open(&j, NULL, '{');
    json_close(&j, '}');
    json_close(&j, ']');
    json_str(&j, "c", "d");
    json_close(&j, '}');
    assert_int_equal(j.err, 0);
    assert_string_equal(text(), "{\"a\":18446744073709551615,"
                                "\"b\":[-1,true,null,{}],\"c\":\"d\"}");
}

/* Deeper than JSON_DEPTH is an error, kept. */
static void
test_too_deep(void **state)
{
    struct json j;
    int i;

    (void)state;
    json_init(&j, &out);
    for (i = 0; i < JSON_DEPTH; i++) {
        json_open(&j, NULL, '[');
    }
    assert_int_equal(j.err, UV_EINVAL);
    json_u64(&j, NULL, 1);
    assert_int_equal(j.err, UV_EINVAL);
}

static void
test_escape(void **state)
{
    (void)state;
    /* quote, backslash, controls; é as is; a lone 0xff and an overlong
     * slash replaced */
    assert_int_equal(escape_json(&out, "q\"b\\\n\r\t\x01\xc3\xa9\xff"
                                       "\xc0\xaf"), 0);
    assert_string_equal(text(), "\"q\\\"b\\\\\\n\\r\\t\\u0001\xc3\xa9"
                                "\\ufffd\\ufffd\\ufffd\"");
    buf_reset(&out);
    assert_int_equal(escape_prom_label(&out, "q\"b\\\n\t\xed\xa0\x80"), 0);
    assert_string_equal(text(), "q\\\"b\\\\\\n\t\xef\xbf\xbd\xef\xbf\xbd"
                                "\xef\xbf\xbd");
    buf_reset(&out);
    assert_int_equal(escape_text(&out, "a b\\\x7f\xc3"), 0);
    assert_string_equal(text(), "a b\\x5c\\x7f\\xc3");
}

static void
test_buf_printf(void **state)
{
    char big[3000];

    (void)state;
    assert_int_equal(buf_printf(&out, "%s=%d;", "x", 42), 0);
    memset(big, 'z', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(buf_printf(&out, "%s", big), 0);   /* grows */
    assert_int_equal(out.len, 5 + sizeof(big) - 1);
    assert_memory_equal(buf_head(&out), "x=42;zzz", 8);
    assert_int_equal(buf_printf(&out, "%s", ""), 0);
    assert_int_equal(out.len, 5 + sizeof(big) - 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_writer, teardown),
        cmocka_unit_test_teardown(test_too_deep, teardown),
        cmocka_unit_test_teardown(test_escape, teardown),
        cmocka_unit_test_teardown(test_buf_printf, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
