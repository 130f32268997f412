/* config_file.c: the configuration file (/etc/hoversync/hoversync.conf by default, or --config,
 * HOVERSYNC_CONFIG): one `name = value` line per option of the table, secrets excepted. Its
 * bytes come from outside (an operator, a configuration manager), so every line is checked and
 * nothing is applied unless all of them are good (fuzzed by tests/fuzz/fuzz_config_file.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/config.h"
#include "core/buf.h"
#include "core/mem.h"
#include "hoversync.h"

struct parsed {
    const char *value[CFG_COUNT];
    int line[CFG_COUNT];
};

static bool is_blank(char ch)
{
    return ch == ' ' || ch == '\t';
}

static bool is_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-';
}

/* The option called name in the file, or -1. */
static int find_option(const char *name)
{
    for (int k = 0; k < CFG_COUNT; k++) {
        char n[HS_CFG_NAME_MAX];
        hs_cfg_name(&hs_cfg_defs[k], n, sizeof n);
        if (strcmp(n, name) == 0)
            return k;
    }
    return -1;
}

/* Cuts a comment (a '#' at the start or after a blank) and the blanks around the value. */
static char *trim_value(char *v)
{
    while (is_blank(*v))
        v++;
    for (char *h = v; *h; h++)
        if (*h == '#' && (h == v || is_blank(h[-1]))) {
            *h = '\0';
            break;
        }
    size_t len = strlen(v);
    while (len && is_blank(v[len - 1]))
        v[--len] = '\0';
    return v;
}

/* The option's value on this line, once known good, goes into out. */
static int take_option(const char *where, const char *name, char *value, int lineno,
                       struct parsed *out, struct hs_error *err)
{
    int k = find_option(name);
    if (k < 0)
        return hs_fail(err, HS_ERR_PARSE, "%s: unknown option '%s' (see hoversync --help)", where,
                       name);
    const struct hs_cfg_def *d = &hs_cfg_defs[k];
    if (d->type == HS_CFG_SECRET)
        return hs_fail(err, HS_ERR_PARSE,
                       "%s: %s is a secret, read from the environment only (%s; with systemd: "
                       "EnvironmentFile=), never from the configuration file",
                       where, name, d->env);
    if (out->value[k])
        return hs_fail(err, HS_ERR_PARSE, "%s: %s is set twice (lines %d and %d)", where, name,
                       out->line[k], lineno);
    size_t len = strlen(value);
    if (len == 0)
        return hs_fail(err, HS_ERR_PARSE,
                       "%s: %s has no value (remove the line to keep the default)", where, name);
    if (len >= 2 && (value[0] == '"' || value[0] == '\'') && value[len - 1] == value[0])
        return hs_fail(err, HS_ERR_PARSE, "%s: %s: write the value without quotes", where, name);
    char msg[HS_CFG_LABEL_MAX];
    if (hs_config_check_value(k, value, msg, sizeof msg) != 0)
        return hs_fail(err, HS_ERR_PARSE, "%s: %s %s", where, name, msg);
    out->value[k] = value;
    out->line[k] = lineno;
    return HS_OK;
}

/* One line (NUL-terminated at len, no newline). */
static int parse_line(const char *path, char *line, size_t len, int lineno, struct parsed *out,
                      struct hs_error *err)
{
    char where[HS_CFG_LABEL_MAX];
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    if (len && line[len - 1] == '\r') /* a file written on Windows */
        line[--len] = '\0';
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)line[i];
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return hs_fail(err, HS_ERR_PARSE, "%s: control character (byte 0x%02x)", where, ch);
    }
    char *p = line;
    while (is_blank(*p))
        p++;
    if (*p == '\0' || *p == '#')
        return HS_OK;
    char *name = p;
    while (is_name_char(*p) && (p > name || (*p >= 'a' && *p <= 'z')))
        p++;
    char *name_end = p;
    while (is_blank(*p))
        p++;
    if (name_end == name || *p != '=' || name_end - name >= HS_CFG_NAME_MAX)
        return hs_fail(err, HS_ERR_PARSE,
                       "%s: expected 'name = value' with an option's name (lower case, digits "
                       "and dashes), as in 'rate-limit = 60'",
                       where);
    *name_end = '\0';
    return take_option(where, name, trim_value(p + 1), lineno, out, err);
}

int hs_config_parse_file(struct hs_config *c, const char *path, const char *data, size_t len,
                         struct hs_error *err)
{
    if (c->file_text)
        return hs_fail(err, HS_ERR_INVALID, "%s: a configuration file was read already", path);
    if (len > HS_CFG_FILE_MAX)
        return hs_fail(err, HS_ERR_TOOBIG, "%s: larger than %d bytes", path, HS_CFG_FILE_MAX);
    char *text = hs_malloc(len + 1);
    memcpy(text, data, len);
    text[len] = '\0';
    struct parsed out;
    memset(&out, 0, sizeof out);
    int rc = HS_OK, lineno = 0;
    for (char *p = text, *end = text + len; p < end && rc == HS_OK;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        *eol = '\0';
        rc = parse_line(path, p, (size_t)(eol - p), ++lineno, &out, err);
        p = eol + 1;
    }
    if (rc) {
        free(text);
        return rc;
    }
    /* A flag or the environment wins over the file. */
    for (int k = 0; k < CFG_COUNT; k++) {
        if (out.value[k] && c->from[k] < HS_CFG_FILE) {
            c->value[k] = out.value[k];
            c->from[k] = HS_CFG_FILE;
            c->line[k] = out.line[k];
        }
    }
    c->file = path;
    c->file_text = text;
    return HS_OK;
}

int hs_config_load_file(struct hs_config *c)
{
    FILE *f = fopen(c->file, "rb");
    char eb[128];
    if (!f) {
        if (errno == ENOENT && c->file_from == HS_CFG_DEFAULT) {
            c->file_state = -1; /* no file: flags, environment and defaults */
            return 0;
        }
        fprintf(stderr, "hoversync: cannot read the configuration file %s: %s\n", c->file,
                strerror_r(errno, eb, sizeof eb));
        return -1;
    }
    struct hs_buf b;
    hs_buf_init(&b, HS_CFG_FILE_MAX);
    char chunk[4096];
    size_t got;
    int rc = HS_OK;
    while (rc == HS_OK && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = hs_buf_append(&b, chunk, got);
    if (rc == HS_OK && ferror(f)) {
        fprintf(stderr, "hoversync: cannot read the configuration file %s: %s\n", c->file,
                strerror_r(errno, eb, sizeof eb));
        rc = HS_ERR_IO;
    }
    fclose(f);
    struct hs_error err = {0};
    if (rc == HS_ERR_TOOBIG)
        rc = hs_fail(&err, rc, "%s: larger than %d bytes", c->file, HS_CFG_FILE_MAX);
    else if (rc == HS_OK)
        rc = hs_config_parse_file(c, c->file, hs_buf_str(&b), b.len, &err);
    hs_buf_free(&b);
    if (rc && err.msg[0])
        fprintf(stderr, "hoversync: %s\n", err.msg);
    if (rc == HS_OK)
        c->file_state = 1;
    return rc ? -1 : 0;
}
