/* s3.c: the S3 client of the blob store (see s3.h).
 *
 * The client may be used from any number of threads at once: each attempt takes an idle libcurl
 * easy handle from the client's few (or makes one) and gives it back after, so that the next
 * request reuses its connection (keep-alive) rather than connecting again. libcurl signs
 * (CURLOPT_AWS_SIGV4); libcurl 7.88 takes the payload hash from the x-amz-content-sha256 header we
 * send, which is why every request sends it (the hash of the empty body for requests without one).
 * The presigner at the bottom is ours, as libcurl cannot presign; it is independent of the
 * sandbox's verifier on purpose, so that a mistake shared by both cannot hide.
 *
 * What S3 answers is trusted only as far as it is confirmed: an upload is followed by a HEAD of
 * the object that must show its full size, and a ranged read must bring exactly the bytes asked
 * for, else it is retried. */
#include "store/s3.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "core/buf.h"
#include "core/clock.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"

#define EMPTY_SHA256     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define ANSWER_MAX       (64 * 1024) /* XML answers and error bodies */
#define RETRY_MAX_MS     5000
#define MAX_PARTS        10000
#define READ_CHUNK_BYTES (64 * 1024)
#define IDLE_HANDLES     8

struct hs_s3 {
    char *endpoint; /* scheme://authority[/base], no trailing '/' */
    char *host;     /* the authority, as sent in Host */
    char *base;     /* the endpoint's path ("" or "/x") */
    char *region, *bucket, *prefix;
    char *access_key, *secret_key, *token;
    char *sigv4; /* "aws:amz:REGION:s3" */
    int64_t part_size;
    int max_attempts;
    int64_t retry_base_ms, timeout_ms;
    pthread_mutex_t lock; /* guards idle */
    CURL *idle[IDLE_HANDLES];
    int n_idle;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;

static void global_init(void)
{
    (void)curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- configuration ---- */

static bool bucket_ok(const char *b)
{
    size_t n = b ? strlen(b) : 0;
    if (n < 3 || n > 63 || !isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[n - 1]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '.' ||
              b[i] == '-') ||
            (b[i] == '.' && b[i + 1] == '.'))
            return false;
    return true;
}

/* Keys are made of the prefix and our own names (blobs/ab/cd/<hex>): limiting the prefix to
 * characters that need no encoding keeps the URL, the signed path and the key one string. */
static bool prefix_ok(const char *p)
{
    size_t n = strlen(p);
    if (n > 512 || (n && (p[0] == '/' || p[n - 1] == '/')) || strstr(p, "//"))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)p[i]) && !strchr("._-~/", p[i]))
            return false;
    return true;
}

int hs_s3_parse_url(const char *url, char **bucket, char **prefix, struct hs_error *err)
{
    if (!url || !hs_starts_with(url, "s3://"))
        return hs_fail(err, HS_ERR_INVALID, "'%s' is not an s3://BUCKET/PREFIX URL",
                       url ? url : "");
    const char *b = url + 5;
    const char *slash = strchr(b, '/');
    char *bk = slash ? hs_strndup(b, (size_t)(slash - b)) : hs_strdup(b);
    char *px = hs_strdup(slash ? slash + 1 : "");
    size_t pl = strlen(px);
    while (pl && px[pl - 1] == '/') /* s3://b/p/ means s3://b/p */
        px[--pl] = '\0';
    if (!bucket_ok(bk) || !prefix_ok(px)) {
        int rc = hs_fail(err, HS_ERR_INVALID,
                         "'%s': the bucket must be 3 to 63 of a-z 0-9 . - and the prefix made "
                         "of A-Z a-z 0-9 . _ - ~ and inner '/'",
                         url);
        free(bk);
        free(px);
        return rc;
    }
    *bucket = bk;
    *prefix = px;
    return HS_OK;
}

static int parse_endpoint(struct hs_s3 *s, const char *ep, struct hs_error *err)
{
    size_t skip = hs_starts_with(ep, "https://") ? 8 : hs_starts_with(ep, "http://") ? 7 : 0;
    const char *auth = ep + skip;
    size_t alen = strcspn(auth, "/?#");
    if (!skip || alen == 0 || strchr(auth, '?') || strchr(auth, '#') || strchr(auth, '@'))
        return hs_fail(err, HS_ERR_INVALID,
                       "the S3 endpoint '%s' must be an http:// or https:// URL without a query",
                       ep);
    s->host = hs_strndup(auth, alen);
    s->base = hs_strdup(auth + alen);
    size_t bl = strlen(s->base);
    while (bl && s->base[bl - 1] == '/')
        s->base[--bl] = '\0';
    s->endpoint = hs_aprintf("%.*s%s", (int)(skip + alen), ep, s->base);
    return HS_OK;
}

int hs_s3_new(const struct hs_s3_config *cfg, struct hs_s3 **out, struct hs_error *err)
{
    if (!bucket_ok(cfg->bucket))
        return hs_fail(err, HS_ERR_INVALID, "'%s' is not a bucket name S3 accepts",
                       cfg->bucket ? cfg->bucket : "");
    if (cfg->prefix && !prefix_ok(cfg->prefix))
        return hs_fail(err, HS_ERR_INVALID, "the key prefix '%s' is not usable", cfg->prefix);
    if (!cfg->access_key || !*cfg->access_key || !cfg->secret_key || !*cfg->secret_key)
        return hs_fail(err, HS_ERR_NO_CREDENTIALS,
                       "object storage needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    if (cfg->part_size && cfg->part_size < HS_S3_PART_MIN)
        return hs_fail(err, HS_ERR_INVALID, "the part size must be at least %d bytes",
                       HS_S3_PART_MIN);
    struct hs_s3 *s = hs_calloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->region = hs_strdup(cfg->region && *cfg->region ? cfg->region : "us-east-1");
    char *dflt = hs_aprintf("https://s3.%s.amazonaws.com", s->region);
    int rc = parse_endpoint(s, cfg->endpoint && *cfg->endpoint ? cfg->endpoint : dflt, err);
    free(dflt);
    if (rc) {
        hs_s3_free(s);
        return rc;
    }
    s->bucket = hs_strdup(cfg->bucket);
    s->prefix = hs_strdup(cfg->prefix ? cfg->prefix : "");
    s->access_key = hs_strdup(cfg->access_key);
    s->secret_key = hs_strdup(cfg->secret_key);
    s->token = cfg->session_token && *cfg->session_token ? hs_strdup(cfg->session_token) : NULL;
    s->sigv4 = hs_aprintf("aws:amz:%s:s3", s->region);
    s->part_size = cfg->part_size ? cfg->part_size : HS_S3_PART_DEFAULT;
    s->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 5;
    s->retry_base_ms = cfg->retry_base_ms > 0 ? cfg->retry_base_ms : 200;
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 120000;
    pthread_once(&global_once, global_init);
    *out = s;
    return HS_OK;
}

void hs_s3_free(struct hs_s3 *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n_idle; i++)
        curl_easy_cleanup(s->idle[i]);
    pthread_mutex_destroy(&s->lock);
    free(s->endpoint);
    free(s->host);
    free(s->base);
    free(s->region);
    free(s->bucket);
    free(s->prefix);
    free(s->access_key);
    if (s->secret_key)
        OPENSSL_cleanse(s->secret_key, strlen(s->secret_key));
    free(s->secret_key);
    free(s->token);
    free(s->sigv4);
    free(s);
}

char *hs_s3_key(const struct hs_s3 *s, const char *name)
{
    return *s->prefix ? hs_aprintf("%s/%s", s->prefix, name) : hs_strdup(name);
}

/* ---- one request ---- */

struct s3_req {
    const char *op; /* for messages: PutObject, UploadPart... */
    const char *method;
    const char *key;
    const char *query; /* encoded, in sorted order; NULL: none */
    const char *sha256;
    /* The body: size bytes of fd from off, or mem_len bytes of mem. */
    int fd;
    int64_t off, size;
    const char *mem;
    size_t mem_len;
    const char *range; /* "bytes=A-B" */
    char *dst;         /* a 2xx body goes here, exactly dst_len bytes */
    size_t dst_len;
};

struct s3_answer {
    long status;
    struct hs_buf body; /* non-2xx bodies, and 2xx bodies without dst */
    char *etag;
    int64_t length; /* Content-Length, -1 unknown */
    size_t got;     /* bytes written into dst */
    bool overflow;  /* more than dst_len */
    int io_errno;   /* a read of the file failed */
};

struct xfer {
    const struct s3_req *rq;
    struct s3_answer *ans;
    CURL *easy;
    int64_t sent;
};

/* curl rewinds the body when it sends it again on a new connection (a reused one that the
 * server had closed meanwhile, as several uploads at once meet more often). */
static int on_seek(void *ud, curl_off_t offset, int origin)
{
    struct xfer *x = ud;
    int64_t total = x->rq->mem ? (int64_t)x->rq->mem_len : x->rq->size;
    if (origin != SEEK_SET || offset < 0 || offset > total)
        return CURL_SEEKFUNC_CANTSEEK;
    x->sent = (int64_t)offset;
    return CURL_SEEKFUNC_OK;
}

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    const struct s3_req *rq = x->rq;
    size_t want = size * n;
    if (rq->mem) {
        size_t left = rq->mem_len - (size_t)x->sent;
        size_t k = left < want ? left : want;
        memcpy(buf, rq->mem + x->sent, k);
        x->sent += (int64_t)k;
        return k;
    }
    int64_t left = rq->size - x->sent;
    if ((int64_t)want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    ssize_t r;
    do
        r = pread(rq->fd, buf, want, (off_t)(rq->off + x->sent));
    while (r < 0 && errno == EINTR);
    if (r <= 0) {
        x->ans->io_errno = r < 0 ? errno : EIO;
        return CURL_READFUNC_ABORT;
    }
    x->sent += r;
    return (size_t)r;
}

static size_t on_write(char *data, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    if (x->rq->dst && status >= 200 && status < 300) {
        if (len > x->rq->dst_len - x->ans->got) {
            x->ans->overflow = true;
            return 0;
        }
        memcpy(x->rq->dst + x->ans->got, data, len);
        x->ans->got += len;
        return len;
    }
    /* Past the cap, an error body is only cut: its first bytes say what went wrong. */
    (void)hs_buf_append(&x->ans->body, data, len);
    return len;
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    struct xfer *x = ud;
    size_t len = size * n;
    if (len > 5 && strncasecmp(line, "etag:", 5) == 0) {
        const char *v = line + 5;
        size_t vl = len - 5;
        while (vl && (*v == ' ' || *v == '\t')) {
            v++;
            vl--;
        }
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        free(x->ans->etag);
        x->ans->etag = hs_strndup(v, vl);
    }
    return len;
}

char *hs_s3_xml_text(const char *xml, size_t len, const char *tag)
{
    char open[64], close[64];
    int ol = snprintf(open, sizeof open, "<%s>", tag);
    int cl = snprintf(close, sizeof close, "</%s>", tag);
    if (!xml || ol <= 0 || cl <= 0 || (size_t)ol >= sizeof open || (size_t)cl >= sizeof close)
        return NULL;
    const char *a = memmem(xml, len, open, (size_t)ol);
    if (!a)
        return NULL;
    a += ol;
    const char *b = memmem(a, len - (size_t)(a - xml), close, (size_t)cl);
    return b ? hs_strndup(a, (size_t)(b - a)) : NULL;
}

/* The text of <tag> in an answer's body. */
static char *answer_text(const struct hs_buf *body, const char *tag)
{
    return hs_s3_xml_text(body->data, body->len, tag);
}

static char *request_url(const struct hs_s3 *s, const struct s3_req *rq)
{
    return hs_aprintf("%s/%s/%s%s%s", s->endpoint, s->bucket, rq->key, rq->query ? "?" : "",
                      rq->query ? rq->query : "");
}

static void setup_handle(const struct hs_s3 *s, const struct s3_req *rq, struct xfer *x,
                         const char *url, struct curl_slist *hdrs, char *errbuf)
{
    CURL *e = x->easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_AWS_SIGV4, s->sigv4);
    curl_easy_setopt(e, CURLOPT_USERNAME, s->access_key);
    curl_easy_setopt(e, CURLOPT_PASSWORD, s->secret_key);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    if (rq->range)
        curl_easy_setopt(e, CURLOPT_RANGE, rq->range + 6); /* after "bytes=" */
    bool body = rq->mem || rq->fd >= 0;
    if (strcmp(rq->method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (body || strcmp(rq->method, "PUT") == 0) {
        curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
        curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE,
                         (curl_off_t)(rq->mem ? (int64_t)rq->mem_len
                                      : body  ? rq->size
                                              : 0));
        if (strcmp(rq->method, "PUT") != 0)
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
    } else if (strcmp(rq->method, "GET") != 0) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, rq->method);
    }
}

/* The one place where a CURLcode of the S3 client becomes hs_err. */
static int map_curl(CURLcode cc, const struct s3_req *rq, const struct s3_answer *ans,
                    const char *errbuf, struct hs_error *err)
{
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(cc);
    switch (cc) {
    case CURLE_OK:
        return HS_OK;
    case CURLE_ABORTED_BY_CALLBACK:
    case CURLE_READ_ERROR: {
        char eb[128];
        return hs_fail(err, HS_ERR_IO, "%s %s: cannot read the file: %s", rq->op, rq->key,
                       strerror_r(ans->io_errno ? ans->io_errno : EIO, eb, sizeof eb));
    }
    case CURLE_WRITE_ERROR:
        return hs_fail(err, HS_ERR_HTTP, "%s %s: more bytes than asked for", rq->op, rq->key);
    case CURLE_PARTIAL_FILE:
        return hs_fail(err, HS_ERR_TRUNCATED, "%s %s: answer shorter than announced: %s", rq->op,
                       rq->key, detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return hs_fail(err, HS_ERR_INVALID, "%s %s: bad URL: %s", rq->op, rq->key, detail);
    case CURLE_OUT_OF_MEMORY:
        return hs_fail(err, HS_ERR_INTERNAL, "%s %s: out of memory in libcurl", rq->op, rq->key);
    default:
        return hs_fail(err, HS_ERR_NETWORK, "%s %s: %s (curl error %d)", rq->op, rq->key, detail,
                       (int)cc);
    }
}

/* An HTTP status that is not a success, with S3's error code from the body. */
static int map_status(const struct s3_req *rq, const struct s3_answer *ans, struct hs_error *err)
{
    char *code = answer_text(&ans->body, "Code");
    char *msg = answer_text(&ans->body, "Message");
    long st = ans->status;
    int rc = st == 404                ? HS_ERR_NOT_FOUND
             : st == 403 || st == 401 ? HS_ERR_FORBIDDEN
             : st == 429              ? HS_ERR_RATE_LIMITED
             : st >= 500              ? HS_ERR_SERVER
             : st == 412 || st == 409 ? HS_ERR_CONFLICT
                                      : HS_ERR_HTTP;
    rc = hs_fail(err, rc, "%s %s: HTTP %ld %s%s%s", rq->op, rq->key, st, code ? code : "",
                 msg ? ": " : "", msg ? msg : "");
    free(code);
    free(msg);
    return rc;
}

/* An easy handle with its connections: an idle one of the client's, else a new one. */
static CURL *handle_take(struct hs_s3 *s)
{
    CURL *e = NULL;
    pthread_mutex_lock(&s->lock);
    if (s->n_idle > 0)
        e = s->idle[--s->n_idle];
    pthread_mutex_unlock(&s->lock);
    if (e)
        curl_easy_reset(e); /* options back to defaults; the connections stay */
    return e ? e : curl_easy_init();
}

static void handle_give(struct hs_s3 *s, CURL *e)
{
    pthread_mutex_lock(&s->lock);
    if (s->n_idle < IDLE_HANDLES) {
        s->idle[s->n_idle++] = e;
        e = NULL;
    }
    pthread_mutex_unlock(&s->lock);
    if (e)
        curl_easy_cleanup(e);
}

static int attempt(struct hs_s3 *s, const struct s3_req *rq, struct s3_answer *ans,
                   struct hs_error *err)
{
    hs_buf_reset(&ans->body);
    hs_free_ptr(&ans->etag);
    ans->status = 0;
    ans->got = 0;
    ans->overflow = false;
    ans->io_errno = 0;
    ans->length = -1;
    struct xfer x = {.rq = rq, .ans = ans, .easy = handle_take(s)};
    if (!x.easy)
        return hs_fail(err, HS_ERR_INTERNAL, "cannot create a libcurl handle");
    char *sha = hs_aprintf("x-amz-content-sha256: %s", rq->sha256 ? rq->sha256 : EMPTY_SHA256);
    char *tok = s->token ? hs_aprintf("x-amz-security-token: %s", s->token) : NULL;
    struct curl_slist *h = curl_slist_append(NULL, sha);
    if (tok)
        h = curl_slist_append(h, tok);
    /* No 100-continue round trip: the bodies are ours and small enough to send at once. */
    h = curl_slist_append(h, "Expect:");
    char *url = request_url(s, rq);
    char errbuf[CURL_ERROR_SIZE] = "";
    setup_handle(s, rq, &x, url, h, errbuf);
    CURLcode cc = curl_easy_perform(x.easy);
    curl_easy_getinfo(x.easy, CURLINFO_RESPONSE_CODE, &ans->status);
    curl_off_t cl = -1;
    if (curl_easy_getinfo(x.easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
        ans->length = (int64_t)cl;
    int rc = map_curl(cc, rq, ans, errbuf, err);
    if (!rc && (ans->status < 200 || ans->status > 299))
        rc = map_status(rq, ans, err);
    else if (!rc && rq->dst && ans->got != rq->dst_len)
        rc = hs_fail(err, HS_ERR_TRUNCATED, "%s %s: %zu of %zu bytes", rq->op, rq->key, ans->got,
                     rq->dst_len);
    /* Unset what points into this attempt's memory before the handle waits for another. */
    curl_easy_setopt(x.easy, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(x.easy, CURLOPT_HTTPHEADER, NULL);
    handle_give(s, x.easy);
    curl_slist_free_all(h);
    free(url);
    free(sha);
    if (tok)
        OPENSSL_cleanse(tok, strlen(tok));
    free(tok);
    return rc;
}

static bool retryable(int rc)
{
    return rc == HS_ERR_NETWORK || rc == HS_ERR_TRUNCATED || rc == HS_ERR_SERVER ||
           rc == HS_ERR_RATE_LIMITED;
}

static void sleep_ms(int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A request with its retries; ans holds the last attempt's answer (the caller clears it). */
static int perform(struct hs_s3 *s, const struct s3_req *rq, struct s3_answer *ans,
                   struct hs_error *err)
{
    int rc = HS_OK;
    for (int n = 1; n <= s->max_attempts; n++) {
        rc = attempt(s, rq, ans, err);
        if (!retryable(rc) || n == s->max_attempts)
            break;
        int64_t wait = hs_backoff_ms(s->retry_base_ms, RETRY_MAX_MS, n);
        hs_warn("s3=retry op=%s key=%s attempt=%d status=%ld wait_ms=%lld error=\"%s\"", rq->op,
                rq->key, n, ans->status, (long long)wait, err ? err->msg : hs_err_name(rc));
        sleep_ms(wait);
    }
    return rc;
}

static void answer_init(struct s3_answer *a)
{
    memset(a, 0, sizeof *a);
    hs_buf_init(&a->body, ANSWER_MAX);
}

static void answer_clear(struct s3_answer *a)
{
    hs_buf_free(&a->body);
    free(a->etag);
    memset(a, 0, sizeof *a);
}

static struct s3_req req(const char *op, const char *method, const char *key)
{
    return (struct s3_req){.op = op, .method = method, .key = key, .fd = -1};
}

/* ---- operations ---- */

int hs_s3_head(struct hs_s3 *s, const char *key, int64_t *size, struct hs_error *err)
{
    struct s3_req rq = req("HeadObject", "HEAD", key);
    struct s3_answer ans;
    answer_init(&ans);
    int rc = perform(s, &rq, &ans, err);
    if (!rc && ans.length < 0)
        rc = hs_fail(err, HS_ERR_HTTP, "HeadObject %s: no Content-Length", key);
    if (!rc)
        *size = ans.length;
    answer_clear(&ans);
    return rc;
}

int hs_s3_get_range(struct hs_s3 *s, const char *key, int64_t off, size_t len, char *buf,
                    struct hs_error *err)
{
    if (len == 0)
        return HS_OK;
    char range[64];
    (void)snprintf(range, sizeof range, "bytes=%lld-%lld", (long long)off,
                   (long long)(off + (int64_t)len - 1));
    struct s3_req rq = req("GetObject", "GET", key);
    rq.range = range;
    rq.dst = buf;
    rq.dst_len = len;
    struct s3_answer ans;
    answer_init(&ans);
    int rc = perform(s, &rq, &ans, err);
    /* A 200 is the whole object: right only when that is what was asked for. */
    if (!rc && ans.status != 206 && off != 0)
        rc =
            hs_fail(err, HS_ERR_HTTP, "GetObject %s: HTTP %ld to a range request", key, ans.status);
    answer_clear(&ans);
    return rc;
}

int hs_s3_delete(struct hs_s3 *s, const char *key, struct hs_error *err)
{
    struct s3_req rq = req("DeleteObject", "DELETE", key);
    struct s3_answer ans;
    answer_init(&ans);
    int rc = perform(s, &rq, &ans, err);
    if (rc == HS_ERR_NOT_FOUND)
        rc = HS_OK;
    answer_clear(&ans);
    return rc;
}

/* The hex SHA-256 of len bytes of fd from off. */
static int hash_range(int fd, int64_t off, int64_t len, char hex[65], struct hs_error *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    char *chunk = hs_malloc(READ_CHUNK_BYTES);
    int rc = md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 ? HS_OK : HS_ERR_INTERNAL;
    for (int64_t done = 0; rc == HS_OK && done < len;) {
        size_t want = len - done < READ_CHUNK_BYTES ? (size_t)(len - done) : READ_CHUNK_BYTES;
        ssize_t r = pread(fd, chunk, want, (off_t)(off + done));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            char eb[128];
            rc = hs_fail(err, HS_ERR_IO, "cannot read the file to upload: %s",
                         strerror_r(r < 0 ? errno : EIO, eb, sizeof eb));
            break;
        }
        if (EVP_DigestUpdate(md, chunk, (size_t)r) != 1)
            rc = HS_ERR_INTERNAL;
        done += r;
    }
    unsigned char d[32];
    unsigned int dl = 0;
    if (rc == HS_OK && (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 32))
        rc = HS_ERR_INTERNAL;
    if (rc == HS_OK)
        hs_hex(d, 32, hex);
    else if (rc == HS_ERR_INTERNAL)
        hs_fail(err, rc, "SHA-256 failed");
    EVP_MD_CTX_free(md);
    free(chunk);
    return rc;
}

static void sha256_mem(const char *p, size_t n, char hex[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    (void)EVP_Digest(p, n, d, &dl, EVP_sha256(), NULL);
    hs_hex(d, 32, hex);
}

static int multipart_init(struct hs_s3 *s, const char *key, char **upload_id, struct hs_error *err)
{
    struct s3_req rq = req("CreateMultipartUpload", "POST", key);
    rq.query = "uploads=";
    rq.mem = "";
    struct s3_answer ans;
    answer_init(&ans);
    int rc = perform(s, &rq, &ans, err);
    char *id = rc ? NULL : answer_text(&ans.body, "UploadId");
    if (!rc && (!id || !*id)) {
        rc = hs_fail(err, HS_ERR_PARSE, "CreateMultipartUpload %s: no UploadId in the answer", key);
        free(id);
    } else if (!rc) {
        *upload_id = id;
    }
    answer_clear(&ans);
    return rc;
}

static int multipart_part(struct hs_s3 *s, const char *key, const char *qid, int n, int fd,
                          int64_t off, int64_t len, char **etag, struct hs_error *err)
{
    char sha[65];
    int rc = hash_range(fd, off, len, sha, err);
    if (rc)
        return rc;
    char *query = hs_aprintf("partNumber=%d&uploadId=%s", n, qid);
    struct s3_req rq = req("UploadPart", "PUT", key);
    rq.query = query;
    rq.fd = fd;
    rq.off = off;
    rq.size = len;
    rq.sha256 = sha;
    struct s3_answer ans;
    answer_init(&ans);
    rc = perform(s, &rq, &ans, err);
    if (!rc && !ans.etag)
        rc = hs_fail(err, HS_ERR_HTTP, "UploadPart %s: no ETag in the answer", key);
    if (!rc) {
        *etag = ans.etag;
        ans.etag = NULL;
    }
    answer_clear(&ans);
    free(query);
    return rc;
}

static int multipart_complete(struct hs_s3 *s, const char *key, const char *qid, char **etags,
                              int parts, struct hs_error *err)
{
    struct hs_buf xml;
    hs_buf_init(&xml, (size_t)parts * 160 + 128);
    (void)hs_buf_appends(&xml, "<CompleteMultipartUpload>");
    for (int i = 0; i < parts; i++)
        (void)hs_buf_appendf(&xml, "<Part><PartNumber>%d</PartNumber><ETag>%s</ETag></Part>", i + 1,
                             etags[i]);
    (void)hs_buf_appends(&xml, "</CompleteMultipartUpload>");
    char sha[65];
    sha256_mem(xml.data, xml.len, sha);
    char *query = hs_aprintf("uploadId=%s", qid);
    struct s3_req rq = req("CompleteMultipartUpload", "POST", key);
    rq.query = query;
    rq.mem = xml.data;
    rq.mem_len = xml.len;
    rq.sha256 = sha;
    struct s3_answer ans;
    answer_init(&ans);
    int rc = perform(s, &rq, &ans, err);
    /* S3 may answer 200 and report an error in the body. */
    if (!rc && memmem(ans.body.data ? ans.body.data : "", ans.body.len, "<Error>", 7))
        rc = map_status(&rq, &(struct s3_answer){.status = 500, .body = ans.body}, err);
    /* A retry after a lost answer finds the upload already completed: the HEAD that follows
     * every upload decides. */
    if (rc == HS_ERR_NOT_FOUND)
        rc = HS_OK;
    answer_clear(&ans);
    hs_buf_free(&xml);
    free(query);
    return rc;
}

static void multipart_abort(struct hs_s3 *s, const char *key, const char *qid)
{
    char *query = hs_aprintf("uploadId=%s", qid);
    struct s3_req rq = req("AbortMultipartUpload", "DELETE", key);
    rq.query = query;
    struct s3_answer ans;
    answer_init(&ans);
    struct hs_error e = {0};
    if (perform(s, &rq, &ans, &e) != HS_OK)
        hs_warn("s3=abort key=%s msg=\"cannot abort a multipart upload (a bucket lifecycle rule "
                "removes it)\" error=\"%s\"",
                key, e.msg);
    answer_clear(&ans);
    free(query);
}

static int put_multipart(struct hs_s3 *s, const char *key, int fd, int64_t size,
                         struct hs_error *err)
{
    int64_t part = s->part_size;
    if ((size + part - 1) / part > MAX_PARTS) /* S3 takes 10000 parts at most */
        part = (size + MAX_PARTS - 1) / MAX_PARTS;
    int parts = (int)((size + part - 1) / part);
    char *id = NULL;
    int rc = multipart_init(s, key, &id, err);
    if (rc)
        return rc;
    char *qid = hs_url_escape(id);
    char **etags = hs_calloc((size_t)parts, sizeof *etags);
    for (int i = 0; i < parts && !rc; i++) {
        int64_t off = (int64_t)i * part;
        int64_t len = size - off < part ? size - off : part;
        rc = multipart_part(s, key, qid, i + 1, fd, off, len, &etags[i], err);
    }
    if (!rc)
        rc = multipart_complete(s, key, qid, etags, parts, err);
    if (rc)
        multipart_abort(s, key, qid);
    for (int i = 0; i < parts; i++)
        free(etags[i]);
    free(etags);
    free(qid);
    free(id);
    return rc;
}

int hs_s3_put_file(struct hs_s3 *s, const char *key, int fd, int64_t size,
                   const char sha256_hex[65], struct hs_error *err)
{
    int rc;
    if (size > s->part_size) {
        rc = put_multipart(s, key, fd, size, err);
    } else {
        struct s3_req rq = req("PutObject", "PUT", key);
        rq.fd = fd;
        rq.size = size;
        rq.sha256 = sha256_hex;
        struct s3_answer ans;
        answer_init(&ans);
        rc = perform(s, &rq, &ans, err);
        answer_clear(&ans);
    }
    if (rc)
        return rc;
    /* Confirmed only when S3 shows the whole object. */
    int64_t got = -1;
    if ((rc = hs_s3_head(s, key, &got, err)))
        return rc;
    if (got != size)
        return hs_fail(err, HS_ERR_TRUNCATED, "PutObject %s: S3 holds %lld of %lld bytes", key,
                       (long long)got, (long long)size);
    return HS_OK;
}

/* ---- presigned URLs ---- */

static void hmac256(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int ol = 32;
    (void)HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &ol);
}

char *hs_sigv4_presign_query(const struct hs_sigv4_presign *p)
{
    time_t t = (time_t)p->time_s;
    struct tm tm;
    char date[32], day[16];
    gmtime_r(&t, &tm);
    (void)strftime(date, sizeof date, "%Y%m%dT%H%M%SZ", &tm);
    (void)strftime(day, sizeof day, "%Y%m%d", &tm);
    char *scope = hs_aprintf("%s/%s/%s/aws4_request", day, p->region, p->service);
    char *cred = hs_aprintf("%s/%s", p->access_key, scope);
    char *cred_q = hs_url_escape(cred);
    char *tok_q = p->session_token ? hs_url_escape(p->session_token) : NULL;
    char *query = hs_aprintf("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=%s"
                             "&X-Amz-Date=%s&X-Amz-Expires=%lld%s%s&X-Amz-SignedHeaders=host%s%s",
                             cred_q, date, (long long)p->expires_s,
                             tok_q ? "&X-Amz-Security-Token=" : "", tok_q ? tok_q : "",
                             p->extra_query ? "&" : "", p->extra_query ? p->extra_query : "");
    char *canonical = hs_aprintf("%s\n%s\n%s\nhost:%s\n\nhost\nUNSIGNED-PAYLOAD", p->method,
                                 p->path, query, p->host);
    char creq_hex[65];
    sha256_mem(canonical, strlen(canonical), creq_hex);
    char *sts = hs_aprintf("AWS4-HMAC-SHA256\n%s\n%s\n%s", date, scope, creq_hex);
    char *k0 = hs_aprintf("AWS4%s", p->secret_key);
    unsigned char k[32], sig[32];
    hmac256(k0, strlen(k0), day, k);
    hmac256(k, 32, p->region, k);
    hmac256(k, 32, p->service, k);
    hmac256(k, 32, "aws4_request", k);
    hmac256(k, 32, sts, sig);
    char sig_hex[65];
    hs_hex(sig, 32, sig_hex);
    char *out = hs_aprintf("%s&X-Amz-Signature=%s", query, sig_hex);
    OPENSSL_cleanse(k0, strlen(k0));
    OPENSSL_cleanse(k, sizeof k);
    free(k0);
    free(sts);
    free(canonical);
    free(query);
    free(tok_q);
    free(cred_q);
    free(cred);
    free(scope);
    return out;
}

int hs_s3_presign_get(const struct hs_s3 *s, const char *key, const char *content_type,
                      int64_t now_s, int64_t expires_s, char **url, struct hs_error *err)
{
    if (expires_s < 1 || expires_s > 604800)
        return hs_fail(err, HS_ERR_INVALID, "a presigned URL lasts 1 to 604800 seconds");
    char *path = hs_aprintf("%s/%s/%s", s->base, s->bucket, key);
    char *ct = content_type && *content_type ? hs_url_escape(content_type) : NULL;
    char *extra = ct ? hs_aprintf("response-content-type=%s", ct) : NULL;
    struct hs_sigv4_presign p = {
        .method = "GET",
        .host = s->host,
        .path = path,
        .extra_query = extra,
        .region = s->region,
        .service = "s3",
        .access_key = s->access_key,
        .secret_key = s->secret_key,
        .session_token = s->token,
        .time_s = now_s,
        .expires_s = expires_s,
    };
    char *q = hs_sigv4_presign_query(&p);
    *url = hs_aprintf("%s/%s/%s?%s", s->endpoint, s->bucket, key, q);
    free(q);
    free(extra);
    free(ct);
    free(path);
    return HS_OK;
}
