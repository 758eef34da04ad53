/*
 * escape: names made safe for JSON, Prometheus text and plain text.
 */
#include "memring/escape.h"

#include "memring/buf.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

/*
 * Length of the well-formed UTF-8 sequence at s[0..n), or 0 when it is not
 * one (overlong, surrogate, beyond U+10FFFF, truncated).
 */
static size_t
utf8_len(const unsigned char *s, size_t n)
{
    size_t len, i;
    uint32_t cp;

    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        cp = s[0] & 0x1fu;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        cp = s[0] & 0x0fu;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        cp = s[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n) {
        return 0;
    }
    for (i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[i] & 0x3fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }
    return len;
}

/* How one byte is escaped: into esc (NUL-terminated), or "" when it
 * stands as it is (or starts a UTF-8 sequence). */
typedef void (*escape_byte_fn)(unsigned char ch, char esc[8]);

static void
json_byte(unsigned char ch, char esc[8])
{
    esc[0] = '\0';
    if (ch == '"' || ch == '\\') {
        snprintf(esc, 8, "\\%c", ch);
    } else if (ch == '\n') {
        snprintf(esc, 8, "\\n");
    } else if (ch == '\r') {
        snprintf(esc, 8, "\\r");
    } else if (ch == '\t') {
        snprintf(esc, 8, "\\t");
    } else if (ch < 0x20) {
        snprintf(esc, 8, "\\u%04x", (unsigned)ch);
    }
}

static void
prom_byte(unsigned char ch, char esc[8])
{
    esc[0] = '\0';
    if (ch == '\\' || ch == '"') {
        snprintf(esc, 8, "\\%c", ch);
    } else if (ch == '\n') {
        snprintf(esc, 8, "\\n");
    }
}

/* s with each byte as escape_byte says, well-formed UTF-8 sequences as
 * they are, and every byte of an ill-formed one as bad. */
static int
escape_utf8(struct buf *b, const char *s, escape_byte_fn escape_byte,
            const char *bad)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), i = 0, k;
    char esc[8];
    int err = 0;

    while (i < n && err == 0) {
        escape_byte(p[i], esc);
        if (esc[0] != '\0') {
            err = buf_append_str(b, esc);
            i++;
        } else if ((k = utf8_len(p + i, n - i)) == 0) {
            err = buf_append_str(b, bad);
            i++;
        } else {
            err = buf_append(b, s + i, k);
            i += k;
        }
    }
    return err;
}

int
escape_json(struct buf *b, const char *s)
{
    int err = buf_append(b, "\"", 1);

    if (err == 0) {
        err = escape_utf8(b, s, json_byte, "\\ufffd");
    }
    return err != 0 ? err : buf_append(b, "\"", 1);
}

int
escape_prom_label(struct buf *b, const char *s)
{
    return escape_utf8(b, s, prom_byte, "\xef\xbf\xbd");
}

int
escape_text(struct buf *b, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    int err = 0;

    for (; *p != '\0' && err == 0; p++) {
        if (*p >= 0x20 && *p < 0x7f && *p != '\\') {
            err = buf_append(b, p, 1);
        } else {
            err = buf_printf(b, "\\x%02x", (unsigned)*p);
        }
    }
    return err;
}
