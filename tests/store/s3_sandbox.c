/* s3_sandbox.c: see s3_sandbox.h. */
#include "s3_sandbox.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

static void nap_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

int s3_sandbox_start(struct s3_sandbox *sb, const char *session_token)
{
    memset(sb, 0, sizeof *sb);
    snprintf(sb->dir, sizeof sb->dir, "/tmp/hs-s3-sandbox-XXXXXX");
    if (!mkdtemp(sb->dir))
        return -1;
    char ports[96];
    snprintf(ports, sizeof ports, "%s/ports", sb->dir);
    snprintf(sb->log_path, sizeof sb->log_path, "%s/requests.log", sb->dir);
    const char *bin = getenv("HOVER_SANDBOX_BIN");
    if (!bin) {
        fprintf(stderr, "HOVER_SANDBOX_BIN is not set\n");
        return -1;
    }
    pid_t parent = getpid();
    sb->pid = fork();
    if (sb->pid < 0)
        return -1;
    if (sb->pid == 0) {
        /* Stops with the test, however the test ends. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (getppid() != parent)
            _exit(1);
        const char *argv[24] = {bin,
                                "--jobs",
                                "10",
                                "--port-file",
                                ports,
                                "--request-log",
                                sb->log_path,
                                "--quiet",
                                "--s3-listen",
                                "127.0.0.1:0",
                                "--s3-bucket",
                                S3_SANDBOX_BUCKET,
                                "--s3-min-part-size",
                                "1K"};
        int n = 14;
        if (session_token) {
            argv[n++] = "--s3-session-token";
            argv[n++] = session_token;
        }
        argv[n] = NULL;
        execv(bin, (char *const *)argv);
        _exit(127);
    }
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(ports, "r");
        if (f) {
            int storage = 0;
            int got = fscanf(f, "%d %d %d", &sb->api_port, &storage, &sb->s3_port);
            fclose(f);
            if (got == 3) {
                snprintf(sb->endpoint, sizeof sb->endpoint, "http://127.0.0.1:%d", sb->s3_port);
                return 0;
            }
        }
        if (waitpid(sb->pid, NULL, WNOHANG) == sb->pid) {
            fprintf(stderr, "hover-sandbox exited at start\n");
            sb->pid = 0;
            return -1;
        }
        nap_ms(50);
    }
    fprintf(stderr, "hover-sandbox did not start\n");
    s3_sandbox_stop(sb);
    return -1;
}

void s3_sandbox_stop(struct s3_sandbox *sb)
{
    if (sb->pid > 0) {
        kill(sb->pid, SIGTERM);
        waitpid(sb->pid, NULL, 0);
        sb->pid = 0;
    }
    if (sb->dir[0]) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", sb->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "could not remove %s\n", sb->dir);
        sb->dir[0] = '\0';
    }
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

int s3_sandbox_fault(const struct s3_sandbox *sb, const char *rule_json)
{
    char url[96];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/__sandbox/faults", sb->api_port);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard);
    if (rule_json)
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, rule_json);
    else
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    long status = 0;
    CURLcode cc = curl_easy_perform(e);
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    return cc == CURLE_OK && status / 100 == 2 ? 0 : -1;
}

int s3_sandbox_count(const struct s3_sandbox *sb, const char *op)
{
    char needle[64];
    snprintf(needle, sizeof needle, "\"op\":\"%s\"", op);
    FILE *f = fopen(sb->log_path, "r");
    if (!f)
        return -1;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle))
            n++;
    fclose(f);
    return n;
}

struct sink {
    char *buf;
    size_t n, len;
};

static size_t to_buf(char *p, size_t s, size_t n, void *ud)
{
    struct sink *k = ud;
    size_t len = s * n;
    size_t room = k->n - 1 - k->len;
    size_t c = len < room ? len : room;
    memcpy(k->buf + k->len, p, c);
    k->len += c;
    k->buf[k->len] = '\0';
    return len;
}

long s3_sandbox_http_get(const char *url, char *buf, size_t n, char *ctype)
{
    struct sink k = {buf, n, 0};
    buf[0] = '\0';
    CURL *e = curl_easy_init();
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, to_buf);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &k);
    long status = 0;
    if (curl_easy_perform(e) == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        char *ct = NULL;
        if (ctype) {
            curl_easy_getinfo(e, CURLINFO_CONTENT_TYPE, &ct);
            snprintf(ctype, 128, "%s", ct ? ct : "");
        }
    }
    curl_easy_cleanup(e);
    return status;
}
