/* cmd_store.c: `hoversync store`: dispatches its subcommands (copy: cmd_store_copy.c; backup,
 * restore and prune: cmd_store_backup.c), and `store rotate-key`: seals every stored secret
 * (OAuth tokens, webhook secrets) under a new key, or encrypts a store that kept them in clear
 * (store/secrets.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "store/secrets.h"

static void store_help(void)
{
    puts("Usage: hoversync store rotate-key [--to-clear]\n"
         "       hoversync store backup DIR     (see hoversync store backup --help)\n"
         "       hoversync store restore DIR\n"
         "       hoversync store prune [--batch N]\n"
         "\n"
         "Re-encrypts every secret of the store (the OAuth tokens of each connection, the\n"
         "webhook secrets) in one transaction:\n"
         "  from HOVERSYNC_ENCRYPTION_KEY (unset: a store that keeps them in clear)\n"
         "  to   HOVERSYNC_NEW_ENCRYPTION_KEY (32 random bytes, 64 hex digits or base64:\n"
         "       openssl rand -base64 32), or to clear text with --to-clear.\n"
         "Stop `hoversync serve` and `hoversync worker` first, and start them again with\n"
         "HOVERSYNC_ENCRYPTION_KEY set to the new key. Losing the key loses the secrets: every\n"
         "org must be connected again and its webhook registered again.\n");
    cli_store_copy_help();
}

int cmd_store(struct cli *c, int argc, char **argv)
{
    bool to_clear = false;
    const char *what = argc >= 2 ? argv[1] : NULL;
    if (what && strcmp(what, "backup") == 0)
        return cmd_store_backup(c, argc - 1, argv + 1);
    if (what && strcmp(what, "restore") == 0)
        return cmd_store_restore(c, argc - 1, argv + 1);
    if (what && strcmp(what, "prune") == 0)
        return cmd_store_prune(c, argc - 1, argv + 1);
    for (int i = 1; i < argc; i++) {
        if (cli_is_help(argv[i])) {
            if (what && strcmp(what, "copy") == 0)
                cli_store_copy_help();
            else
                store_help();
            return EXIT_OK;
        }
    }
    if (what && strcmp(what, "copy") == 0)
        return cmd_store_copy(c, argc, argv);
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--to-clear") == 0) {
            to_clear = true;
        } else {
            fprintf(stderr,
                    "hoversync: store: unknown argument '%s' (see hoversync store --help)\n",
                    argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!what || strcmp(what, "rotate-key") != 0) {
        fprintf(stderr, "hoversync: store: %s (see hoversync store --help)\n",
                what ? "unknown subcommand" : "rotate-key, copy, backup, restore or prune");
        return EXIT_USAGE;
    }
    const char *next = hs_config_str(&c->cfg, CFG_NEW_ENCRYPTION_KEY);
    if (to_clear == (next && *next)) {
        fprintf(stderr, "hoversync: store rotate-key: %s\n",
                to_clear ? "--to-clear and HOVERSYNC_NEW_ENCRYPTION_KEY together"
                         : "set HOVERSYNC_NEW_ENCRYPTION_KEY to the new key (or --to-clear)");
        return EXIT_USAGE;
    }
    int rc = cli_open(c, false);
    if (rc != EXIT_OK)
        return rc;
    struct hs_secret_key k;
    struct hs_error err = {0};
    rc = to_clear ? HS_OK : hs_secret_key_parse(next, &k, &err);
    if (rc)
        return cli_report("store rotate-key: HOVERSYNC_NEW_ENCRYPTION_KEY", rc, &err);
    int64_t n = 0;
    rc = c->store->ops->secrets_rekey(c->store, to_clear ? NULL : next, &n, &err);
    if (rc) {
        hs_secret_key_clear(&k);
        return cli_report("store rotate-key", rc, &err);
    }
    if (to_clear)
        printf("%lld secrets stored in clear; unset HOVERSYNC_ENCRYPTION_KEY from now on\n",
               (long long)n);
    else
        printf("%lld secrets encrypted under key %s; set HOVERSYNC_ENCRYPTION_KEY to the new key "
               "from now on\n",
               (long long)n, k.id);
    hs_secret_key_clear(&k);
    return EXIT_OK;
}
