/* cli.h: what the command implementations share: parsed configuration, the open store and the
 * client, option parsing helpers and the exit-code convention (0 ok, 1 failure, 2 usage). */
#ifndef HS_CLI_CLI_H
#define HS_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "cli/config.h"
#include "hover/client.h"
#include "store/store.h"

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

struct cli {
    struct hs_config cfg;
    struct hs_store *store;
    struct hs_client *client;
    bool stdout_tty;
};

/* Opens the store and (with_client) creates the client from the configuration; on failure
 * prints the reason and returns EXIT_FAIL. */
int cli_open(struct cli *c, bool with_client);
void cli_close(struct cli *c);
/* Prints "hoversync: <what>: <reason>" for a failed call and returns EXIT_FAIL (or EXIT_USAGE
 * for HS_ERR_INVALID). */
int cli_report(const char *what, int rc, const struct hs_error *err);

/* Option helpers for commands: true when argv[*i] is `name` (taking the next argument as the
 * value) or `name=value`; sets *value. Prints a usage error and sets *bad on a missing value. */
bool cli_opt_value(int argc, char **argv, int *i, const char *name, const char **value, bool *bad);
/* Parses a bounded integer for option `name`; prints a usage error and returns -1 if not. */
int cli_int_arg(const char *name, const char *s, int64_t min, int64_t max, int64_t *out);
/* True for "-h" and "--help". */
bool cli_is_help(const char *arg);

int cmd_search(struct cli *c, int argc, char **argv);
int cmd_show(struct cli *c, int argc, char **argv);
int cmd_config(struct cli *c, int argc, char **argv);
int cmd_connect(struct cli *c, int argc, char **argv);
int cmd_sync(struct cli *c, int argc, char **argv);
int cmd_export(struct cli *c, int argc, char **argv);
int cmd_backfill(struct cli *c, int argc, char **argv);
int cmd_serve(struct cli *c, int argc, char **argv);

#endif
