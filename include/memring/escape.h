/*
 * escape: names from the config made safe for the admin documents. Names
 * come from YAML, which libyaml already checked, but JSON, Prometheus text
 * and a plain-text line must each stay well-formed whatever reaches them.
 */
#ifndef MEMRING_ESCAPE_H
#define MEMRING_ESCAPE_H

struct buf;

/* s as a JSON string, quotes included: quote, backslash and control
 * characters escaped, ill-formed UTF-8 as \ufffd. 0 or UV_ENOMEM. */
int escape_json(struct buf *b, const char *s);

/* s as a Prometheus label value (without its quotes): backslash, quote and
 * newline escaped, ill-formed UTF-8 as U+FFFD. 0 or UV_ENOMEM. */
int escape_prom_label(struct buf *b, const char *s);

/* s for a plain-text body: printable ASCII but backslash as is, any other
 * byte as \xNN. 0 or UV_ENOMEM. */
int escape_text(struct buf *b, const char *s);

#endif /* MEMRING_ESCAPE_H */
