/* server.h: the sandbox's HTTP listeners (the API, the presigned "storage" host and, when asked
 * for, the S3-compatible object store) on libmicrohttpd, and the state every route shares. main.c
 * fills a config, creates the server, starts it and stops it on a signal. */
#ifndef HS_SANDBOX_SERVER_H
#define HS_SANDBOX_SERVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "faults.h"
#include "jobindex.h"
#include "oauth.h"
#include "ratelimit.h"
#include "reqlog.h"
#include "s3store.h"
#include "testjobs.h"
#include "webhooks.h"
#include "world.h"

/* The S3 listener (docs/SANDBOX.md, "S3 listener"); off unless `listen` is set. */
struct sb_s3_settings {
    const char *listen; /* "HOST:PORT"; NULL: no S3 listener */
    const char *access_key, *secret_key;
    const char *session_token; /* NULL: none expected, none accepted */
    const char *region;
    struct sb_s3_config store; /* capacity, minimum part size, directory */
    const char **buckets;      /* created at start (borrowed) */
    size_t n_buckets;
};

struct sb_config {
    const char *listen;         /* "HOST:PORT" */
    const char *storage_listen; /* "HOST:PORT" */
    const char *request_log;    /* NULL: memory only */
    const char *client_id, *client_secret;
    const char *redirect_uri; /* allowed prefix; NULL: http://127.0.0.1 and http://localhost */
    uint64_t seed;
    size_t jobs;
    bool strict;
    int64_t rate_limit, rate_window_ms, token_lifetime_s;
    /* webhooks and test jobs (docs/SANDBOX.md, "Webhooks and test jobs") */
    int64_t reconstruction_ms; /* a test job's simulated reconstruction */
    struct sb_webhook_settings webhooks;
    struct sb_s3_settings s3;
};

struct sb_daemons;

struct sb_server {
    struct sb_config cfg; /* strings are borrowed from the caller */
    struct sb_world *world;
    struct sb_index *index; /* under world->lock */
    struct sb_oauth *oauth;
    struct sb_ratelimit *rl;
    struct sb_faults *faults;
    struct sb_reqlog *log;
    struct sb_webhooks *hooks;
    struct sb_testjobs *testjobs;
    pthread_mutex_t cfg_lock; /* guards `strict` */
    bool strict;
    int64_t default_org_id;
    unsigned char presign_key[32];
    struct sb_s3store *s3; /* NULL when the S3 listener is off */
    int api_port, storage_port, s3_port;
    char api_base[160], storage_base[160], s3_base[160];
    struct sb_daemons *d;
};

/* True if spec is a HOST:PORT (or [V6]:PORT, :PORT, PORT) with a port in 0..65535. */
bool sb_listen_spec_ok(const char *spec);

/* Generates the world and prepares every component; no socket yet. NULL with a message in err. */
struct sb_server *sb_server_new(const struct sb_config *cfg, char *err, size_t errn);
/* Binds the listeners and starts serving. 0, or -1 with a message in err. */
int sb_server_start(struct sb_server *s, char *err, size_t errn);
/* Stops serving (resuming delayed requests first). Safe to call twice. */
void sb_server_stop(struct sb_server *s);
void sb_server_free(struct sb_server *s);

bool sb_server_strict(struct sb_server *s);
void sb_server_set_strict(struct sb_server *s, bool strict);

#endif
