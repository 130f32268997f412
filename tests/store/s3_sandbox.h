/* s3_sandbox.h: the real hover-sandbox with its S3 listener, for tests of the S3 client and the
 * blob store (s3_sandbox.c). It listens on free loopback ports, and stops with the test: at
 * s3_sandbox_stop, or by itself when the test process dies. */
#ifndef HS_TESTS_S3_SANDBOX_H
#define HS_TESTS_S3_SANDBOX_H

#include <stdbool.h>
#include <sys/types.h>

#define S3_SANDBOX_KEY    "AKIAIOSFODNN7EXAMPLE"
#define S3_SANDBOX_SECRET "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
#define S3_SANDBOX_BUCKET "artifacts"

struct s3_sandbox {
    pid_t pid;
    char dir[64];
    char log_path[96];
    int api_port, s3_port;
    char endpoint[64]; /* http://127.0.0.1:PORT */
};

/* Starts it with a bucket "artifacts", parts of 1 KiB at least, and the given session token
 * (NULL: none). 0, or -1 with a message on stderr. */
int s3_sandbox_start(struct s3_sandbox *sb, const char *session_token);
void s3_sandbox_stop(struct s3_sandbox *sb);
/* Adds a fault rule (a JSON object, docs/SANDBOX.md "Faults"); clears them all with NULL. */
int s3_sandbox_fault(const struct s3_sandbox *sb, const char *rule_json);
/* How many requests of an S3 operation the request log holds. */
int s3_sandbox_count(const struct s3_sandbox *sb, const char *op);
/* A plain GET of url (no signature): the status, and the body into buf (NUL-terminated, cut to
 * n - 1 bytes); *ctype gets the Content-Type (cut to 128 bytes) when not NULL. */
long s3_sandbox_http_get(const char *url, char *buf, size_t n, char *ctype);

#endif
