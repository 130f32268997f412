/* engine.c: the sync engine; see engine.h for what it guarantees.
 *
 * Order of writes, which is what makes a crash at any point harmless:
 *   1. the job, its models, the selection and the run row commit together (nothing is lost:
 *      a selection accepted is a row before any download starts);
 *   2. each artifact's bytes go to a temporary file, are fsynced and renamed to their
 *      content address (by up to download_slots threads at once); once the model's files are
 *      all in place, the directories that gained an entry are made durable together
 *      (store/blobs.h, a batch), and only then
 *   3. the model's artifact rows, its result, its selection status and its "synced at
 *      updated_at" mark commit, in one transaction.
 * A run killed anywhere leaves selections that the next run (the same sync, or sync --pending)
 * finishes; rows never point at a missing file; re-downloaded bytes land on the same path. */
#include "sync/engine.h"

#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "core/buf.h"
#include "core/crashpoint.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "store/blobs.h"
#include "store/records.h"
#include "sync/lease.h"
#include "sync/measurements.h"
#include "sync/plan.h"
#include "sync/verify.h"

/* Measurement documents read back from disk for extraction are capped like API JSON. */
#define MEASUREMENTS_MAX HS_JSON_MAX_BYTES

const char *hs_model_result_name(enum hs_model_result r)
{
    switch (r) {
    case HS_RESULT_SYNCED:
        return "synced";
    case HS_RESULT_PENDING:
        return "pending";
    case HS_RESULT_FAILED_UPSTREAM:
        return "failed_upstream";
    case HS_RESULT_ERROR:
        return "error";
    }
    return "error";
}

static void artifact_free(struct hs_sync_artifact *a)
{
    free(a->kind);
    free(a->path);
    free(a->content_type);
}

void hs_sync_report_free(struct hs_sync_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_models; i++) {
        struct hs_sync_model *m = &r->models[i];
        free(m->name);
        free(m->state);
        free(m->message);
        for (size_t k = 0; k < m->n_artifacts; k++)
            artifact_free(&m->artifacts[k]);
        free(m->artifacts);
    }
    free(r->models);
    free(r->job_name);
    free(r->reconstruction_state);
    free(r);
}

bool hs_sync_report_ok(const struct hs_sync_report *r)
{
    if (r->n_models == 0)
        return false;
    for (size_t i = 0; i < r->n_models; i++)
        if (r->models[i].result != HS_RESULT_SYNCED && r->models[i].result != HS_RESULT_PENDING)
            return false;
    return true;
}

static const char *overall_status(const struct hs_sync_report *r)
{
    size_t synced = 0, bad = 0;
    for (size_t i = 0; i < r->n_models; i++) {
        synced += r->models[i].result == HS_RESULT_SYNCED;
        bad += r->models[i].result == HS_RESULT_FAILED_UPSTREAM ||
               r->models[i].result == HS_RESULT_ERROR;
    }
    if (r->n_models > 0 && synced == r->n_models)
        return "synced";
    if (r->n_models == 0 || bad == r->n_models)
        return "failed";
    return "partial";
}

static void now_iso(char out[32])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hs_iso8601_format((int64_t)ts.tv_sec, (int)(ts.tv_nsec / 1000000), out, 32);
}

/* ---- one artifact ---- */

/* The engine's blob store: the one it was given, or the local folder, filled into *local. */
static const struct hs_blobs *engine_blobs(const struct hs_sync_engine *e, struct hs_blobs *local)
{
    if (e->blobs)
        return e->blobs;
    hs_blobs_local(local, e->data_dir);
    return local;
}

struct item {
    char *kind;
    const char *url;
    int64_t image_id;
    bool wanted; /* in the run's artifact profile: downloaded; else recorded as not fetched */
};

struct blob_sink {
    const struct hs_blobs *blobs;
    struct hs_blob_writer *w;
    struct hs_body_ends ends; /* for the format check */
    struct hs_error *err;
};

static int sink_write(void *ctx, const char *data, size_t len)
{
    struct blob_sink *s = ctx;
    if (!s->w) {
        int rc = hs_blobs_begin(s->blobs, &s->w, s->err);
        if (rc)
            return rc;
    }
    hs_body_ends_feed(&s->ends, data, len);
    return hs_blob_write(s->w, data, len, s->err);
}

/* A retry after part of a body arrived starts the file over. */
static int sink_reset(void *ctx)
{
    struct blob_sink *s = ctx;
    hs_blob_abort(s->w);
    s->w = NULL;
    memset(&s->ends, 0, sizeof s->ends);
    return 0;
}

/* The body's format, checked before it may be stored (sync/verify.h). A JSON body is read back
 * from its temporary file; one over the JSON cap is not parsed (its length and digests were
 * checked by the client). */
static int check_format(const struct item *it, const struct hs_fetch_result *fr,
                        struct blob_sink *sink, struct hs_error *err)
{
    enum hs_format f = hs_format_of(it->kind, fr->content_type);
    char *doc = NULL;
    size_t len = 0;
    if (f == HS_FORMAT_JSON) {
        struct hs_error rerr = {0};
        int rc = hs_blob_read(sink->w, MEASUREMENTS_MAX, &doc, &len, &rerr);
        if (rc == HS_ERR_TOOBIG) {
            hs_debug("sync=check kind=%s msg=\"JSON over the cap: not parsed\"", it->kind);
            return HS_OK;
        }
        if (rc) {
            if (err)
                *err = rerr;
            return rc;
        }
    }
    struct hs_error ferr = {0};
    int rc = hs_format_check(f, &sink->ends, doc, len, &ferr);
    free(doc);
    if (rc)
        hs_fail(err, rc, "%s; not stored (the selection stays open: sync --pending retries it)",
                ferr.msg);
    return rc;
}

static bool file_present(const struct hs_blobs *b, const char *rel)
{
    int64_t size;
    return rel && hs_blobs_size(b, rel, &size, NULL) == HS_OK;
}

/* The hex MD5 of a stored file, read in chunks from whichever back-end holds it. */
static int file_md5(const struct hs_blobs *b, const char *rel, char out[33])
{
    int64_t size = 0;
    if (hs_blobs_size(b, rel, &size, NULL) != HS_OK)
        return HS_ERR_IO;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int rc = md && EVP_DigestInit_ex(md, EVP_md5(), NULL) == 1 ? HS_OK : HS_ERR_INTERNAL;
    enum { CHUNK = 1024 * 1024 };
    char *chunk = hs_malloc(CHUNK);
    for (int64_t off = 0; rc == HS_OK && off < size; off += CHUNK) {
        size_t n = size - off < CHUNK ? (size_t)(size - off) : CHUNK;
        if (hs_blobs_read(b, rel, off, chunk, n, NULL) != HS_OK)
            rc = HS_ERR_IO;
        else if (EVP_DigestUpdate(md, chunk, n) != 1)
            rc = HS_ERR_INTERNAL;
    }
    unsigned char d[16];
    unsigned int dl = 0;
    if (rc == HS_OK && (EVP_DigestFinal_ex(md, d, &dl) != 1 || dl != 16))
        rc = HS_ERR_IO;
    if (rc == HS_OK)
        hs_hex(d, 16, out);
    EVP_MD_CTX_free(md);
    free(chunk);
    return rc;
}

/* The stored row's validator for If-None-Match, unless the stored bytes contradict it: a row
 * written before downloads were checked may hold a short file under the whole file's digest
 * ETag, which a 304 would confirm for ever. */
static const char *usable_validator(const struct hs_blobs *b, const struct hs_artifact_row *old)
{
    char tag[33], md5[33];
    if (!old->etag || !hs_etag_digest(old->etag, tag))
        return old->etag;
    if ((old->sha256 && strncmp(old->sha256, tag, 32) == 0) ||
        (file_md5(b, old->path, md5) == HS_OK && strcmp(md5, tag) == 0))
        return old->etag;
    hs_warn("sync=artifact model=%lld kind=%s msg=\"the stored file does not match its ETag: "
            "downloading it again\"",
            (long long)old->model_id, old->kind);
    return NULL;
}

/* Copies what the report shows of a stored row. */
static void report_row(struct hs_sync_artifact *a, const struct hs_artifact_row *row, bool dl,
                       bool changed)
{
    a->kind = hs_strdup(row->kind);
    hs_strlcpy(a->sha256, row->sha256 ? row->sha256 : "", sizeof a->sha256);
    a->bytes = row->bytes;
    a->path = hs_strdup(row->path);
    a->content_type = hs_strdup(row->content_type);
    a->downloaded = dl;
    a->changed = changed;
}

static int write_tx_begin(struct hs_sync_engine *e, struct hs_error *err)
{
    return e->store->ops->begin(e->store, err);
}

static int write_tx_end(struct hs_sync_engine *e, int rc, struct hs_error *err)
{
    if (rc) {
        e->store->ops->rollback(e->store);
        return rc;
    }
    return e->store->ops->commit(e->store, err);
}

/* What the caller writes in a transaction of the run (engine.h, in_txn). A refusal stops the
 * run: nothing more of it commits. */
static int in_txn(struct hs_sync_engine *e, const struct hs_sync_progress *p, struct hs_error *err)
{
    if (!e->in_txn || e->stopped)
        return e->stopped;
    int rc = e->in_txn(e->in_txn_ctx, p, err);
    if (rc) {
        e->stopped = rc;
        hs_fail(&e->stopped_err, rc, "%s", err && err->msg[0] ? err->msg : hs_err_name(rc));
        hs_warn("sync=stopped job=%lld error=\"%s\"", (long long)p->job_id, e->stopped_err.msg);
    }
    return rc;
}

/* A row fetched on first use, in its own transaction. */
static int put_artifact(struct hs_sync_engine *e, const struct hs_artifact_row *row,
                        struct hs_error *err)
{
    int rc = write_tx_begin(e, err);
    if (rc == HS_OK)
        rc = write_tx_end(e, e->store->records->artifact_put(e->store, row, NULL, err), err);
    return rc;
}

/* One artifact: asked for (or not); a download is checked and its file put in place in batch,
 * and *staged gets the row that may point at it once the batch is synced (staged->path stays
 * NULL when nothing was downloaded). */
static int fetch_item(struct hs_sync_engine *e, struct hs_client *client, const struct hs_model *m,
                      const struct item *it, bool model_unchanged, struct hs_blob_batch *batch,
                      struct hs_artifact_row *staged, struct hs_sync_artifact *out,
                      struct hs_error *err)
{
    struct hs_artifact_row old = {0};
    int rc = e->store->records->artifact_get(e->store, m->id, it->kind, &old, err);
    if (rc && rc != HS_ERR_NOT_FOUND)
        return rc;
    struct hs_blobs local;
    const struct hs_blobs *blobs = engine_blobs(e, &local);
    bool have = rc == HS_OK && file_present(blobs, old.path);
    if (have && model_unchanged) {
        /* Hover says the model did not change since its last complete sync: no request. */
        report_row(out, &old, false, false);
        hs_artifact_row_clear(&old);
        return HS_OK;
    }

    struct blob_sink sink = {.blobs = blobs, .err = err};
    struct hs_download_opts o = {
        .if_none_match = have ? usable_validator(blobs, &old) : NULL,
        .sink = sink_write,
        .sink_ctx = &sink,
        .reset = sink_reset,
    };
    struct hs_fetch_result fr = {0};
    rc = hs_client_download(client, it->url, &o, &fr, err);
    if (rc)
        goto out;
    if (fr.status == 304) {
        report_row(out, &old, false, false);
        goto out;
    }
    if (!sink.w) { /* an empty body never called the sink */
        if ((rc = hs_blobs_begin(blobs, &sink.w, err)))
            goto out;
    }
    if ((rc = check_format(it, &fr, &sink, err)))
        goto out;
    char sha[65];
    char fetched[32];
    if ((rc = hs_blob_commit_in(sink.w, batch, sha, &staged->bytes, &staged->path, err)))
        goto out;
    hs_crashpoint("after_download"); /* inside the batch: the file is in place, no row yet */
    now_iso(fetched);
    staged->model_id = m->id;
    staged->kind = hs_strdup(it->kind);
    staged->source_url = hs_strdup(it->url);
    staged->sha256 = hs_strdup(sha);
    staged->content_type = hs_strdup(fr.content_type);
    staged->etag = hs_strdup(fr.etag);
    staged->fetched_at = hs_strdup(fetched);
    staged->image_id = it->image_id;
    report_row(out, staged, true, false);
out:
    hs_blob_abort(sink.w);
    hs_fetch_result_clear(&fr);
    hs_artifact_row_clear(&old);
    return rc;
}

int hs_sync_fetch_artifact(struct hs_sync_engine *e, int64_t model_id, const char *kind,
                           struct hs_artifact_row *out, bool *downloaded, struct hs_error *err)
{
    struct hs_artifact_row row = {0};
    int rc = e->store->records->artifact_get(e->store, model_id, kind, &row, err);
    if (rc)
        return rc;
    struct hs_blobs local;
    if (!row.not_fetched && file_present(engine_blobs(e, &local), row.path)) {
        if (downloaded)
            *downloaded = false;
        *out = row;
        return HS_OK;
    }
    if (!row.source_url) {
        rc = hs_fail(err, HS_ERR_NOT_FOUND, "no Hover URL recorded for artifact '%s' of model %lld",
                     kind, (long long)model_id);
        goto out;
    }
    struct item it = {.kind = row.kind, .url = row.source_url, .image_id = row.image_id};
    struct hs_model m = {.id = model_id};
    struct hs_sync_artifact a = {0};
    struct hs_artifact_row staged = {0};
    struct hs_blob_batch *batch = hs_blob_batch_new();
    rc = fetch_item(e, e->client, &m, &it, false, batch, &staged, &a, err);
    if (rc == HS_OK && staged.path) {
        rc = hs_blob_batch_sync(batch, err);
        if (rc == HS_OK)
            rc = put_artifact(e, &staged, err);
        hs_crashpoint("after_artifact_commit");
    }
    hs_blob_batch_free(batch);
    hs_artifact_row_clear(&staged);
    artifact_free(&a);
    if (rc == HS_OK) {
        hs_artifact_row_clear(&row);
        rc = e->store->records->artifact_get(e->store, model_id, kind, &row, err);
    }
    if (rc == HS_OK) {
        if (downloaded)
            *downloaded = true;
        *out = row;
        return HS_OK;
    }
out:
    hs_artifact_row_clear(&row);
    return rc;
}

/* ---- one model ---- */

/* Reads a stored artifact file back (bounded) for measurement extraction. */
static char *read_stored(const struct hs_sync_engine *e, const char *rel, size_t *len)
{
    struct hs_blobs local;
    char *doc = NULL;
    struct hs_error err = {0};
    if (hs_blobs_read_all(engine_blobs(e, &local), rel, MEASUREMENTS_MAX, &doc, len, &err)) {
        hs_warn("sync=measurements path=%s error=\"%s\"", rel, err.msg);
        return NULL;
    }
    return doc;
}

/* What a model's result commits with its selection and log line: the headline measurements
 * and the "synced at updated_at" mark. */
struct model_writes {
    char *summarized, *sketch; /* the documents ms points into */
    struct hs_measurements ms;
    bool has_ms;
    const char *synced_at;  /* Hover's updated_at of a model synced whole, or NULL */
    struct item *unfetched; /* outside the profile: recorded with their URL, not downloaded */
    size_t n_unfetched;
    /* Downloaded, their files durable (the batch synced): staged[i] is the row of the report's
     * artifact staged_at[i]. */
    struct hs_artifact_row *staged;
    size_t *staged_at;
    size_t n_staged;
    size_t n_wanted; /* the artifacts the profile asks for */
};

static void model_writes_clear(struct model_writes *w)
{
    if (w->has_ms)
        hs_measurements_clear(&w->ms);
    for (size_t i = 0; i < w->n_unfetched; i++)
        free(w->unfetched[i].kind);
    free(w->unfetched);
    for (size_t i = 0; i < w->n_staged; i++)
        hs_artifact_row_clear(&w->staged[i]);
    free(w->staged);
    free(w->staged_at);
    free(w->summarized);
    free(w->sketch);
    memset(w, 0, sizeof *w);
}

/* The headline figures out of the stored summarized document (and the sketch's), into w. */
static int extract_measurements(struct hs_sync_engine *e, const struct hs_model *m,
                                const struct hs_sync_model *r, struct model_writes *w,
                                struct hs_error *err)
{
    const struct hs_sync_artifact *summ = NULL, *sketch = NULL;
    for (size_t i = 0; i < r->n_artifacts; i++) {
        const struct hs_sync_artifact *a = &r->artifacts[i];
        if (!a->path)
            continue;
        if (strstr(a->kind, "summarized") || strcmp(a->kind, "measurements.json") == 0)
            summ = a;
        else if (strstr(a->kind, "sketch"))
            sketch = a;
    }
    if (!summ)
        return HS_OK; /* capture-only and interior models have no summary */
    size_t sl = 0, kl = 0;
    w->summarized = read_stored(e, summ->path, &sl);
    w->sketch = sketch ? read_stored(e, sketch->path, &kl) : NULL;
    if (!w->summarized)
        return hs_fail(err, HS_ERR_IO, "cannot read back stored measurements %s", summ->path);
    int rc = hs_measurements_extract(m->id, w->summarized, sl, w->sketch, kl, &w->ms, err);
    w->has_ms = rc == HS_OK;
    return rc;
}

static void progress(struct hs_sync_engine *e, struct hs_sync_progress p)
{
    if (e->on_progress)
        e->on_progress(e->progress_ctx, &p);
}

/* The model's artifacts and images, those of the profile first: *n_wanted of *n. */
static void collect_items(const struct hs_profile *p, const struct hs_model *m, struct item **items,
                          size_t *n, size_t *n_wanted)
{
    *items = hs_calloc(m->n_artifacts + m->n_images + 1, sizeof **items);
    *n = 0;
    for (size_t i = 0; i < m->n_artifacts; i++) {
        (*items)[*n].kind = hs_strdup(m->artifacts[i].kind);
        (*items)[*n].url = m->artifacts[i].url;
        (*items)[*n].wanted = hs_profile_wants_artifact(p, m, m->artifacts[i].kind);
        (*n)++;
    }
    for (size_t i = 0; i < m->n_images; i++) {
        if (!m->images[i].url)
            continue;
        (*items)[*n].kind = hs_aprintf("image.%lld", (long long)m->images[i].id);
        (*items)[*n].url = m->images[i].url;
        (*items)[*n].image_id = m->images[i].id;
        (*items)[*n].wanted = hs_profile_wants_image(p, m, i);
        (*n)++;
    }
    /* A stable partition: the wanted ones first, each group in Hover's order. */
    struct item *sorted = hs_calloc(*n + 1, sizeof *sorted);
    size_t k = 0;
    for (int pass = 0; pass < 2; pass++)
        for (size_t i = 0; i < *n; i++)
            if ((*items)[i].wanted == (pass == 0))
                sorted[k++] = (*items)[i];
    free(*items);
    *items = sorted;
    *n_wanted = 0;
    while (*n_wanted < *n && sorted[*n_wanted].wanted)
        (*n_wanted)++;
}

/* ---- a model's downloads, a few at once ---- */

/* One item's outcome, filled by the thread that downloaded it. */
struct fetched {
    int rc;
    struct hs_error err;
    struct hs_artifact_row staged; /* path NULL: nothing downloaded */
    struct hs_sync_artifact a;
    bool done, told;
};

/* A model's downloads, shared by its slots: the next item to take and the outcomes. */
struct downloads {
    struct hs_sync_engine *e;
    int64_t job_id;
    const struct hs_model *m;
    const struct item *items;
    size_t n;
    bool unchanged;
    struct hs_blob_batch *batch;
    struct fetched *out;
    enum hs_prio prio; /* the syncing thread's, for its slots' requests */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    size_t next, n_done, n_told, n_ok;
    bool failed; /* an item failed, or the run was stopped: no more are taken */
};

/* Downloads the next item, unless none is left or one failed (the rest are not asked for, as a
 * sequential run stops at its first failure); false when it took none. */
static bool download_one(struct downloads *d, struct hs_client *client)
{
    pthread_mutex_lock(&d->lock);
    size_t i = d->next;
    bool take = !d->failed && i < d->n;
    d->next += take;
    pthread_mutex_unlock(&d->lock);
    if (!take)
        return false;
    struct fetched *f = &d->out[i];
    f->rc = fetch_item(d->e, client, d->m, &d->items[i], d->unchanged, d->batch, &f->staged, &f->a,
                       &f->err);
    pthread_mutex_lock(&d->lock);
    f->done = true;
    d->n_done++;
    d->failed |= f->rc != HS_OK;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    return true;
}

struct slot {
    struct downloads *d;
    struct hs_client *client; /* the slot's clone of the engine's */
    pthread_t thread;
};

static void *slot_main(void *arg)
{
    struct slot *s = arg;
    hs_limiter_set_thread_priority(s->d->prio);
    while (download_one(s->d, s->client))
        ;
    return NULL;
}

/* The caller's count of the model's artifacts done, for a person watching: the rows commit with
 * the model's result, so this commit alone is lazy (store.h, begin_lazy) and costs no disk sync.
 * True when the caller refused it: the run stops. */
static bool progress_lazy(struct hs_sync_engine *e, const struct hs_sync_progress *p)
{
    if (!e->in_txn || e->stopped)
        return e->stopped != HS_OK;
    struct hs_error err = {0};
    int rc = e->store->ops->begin_lazy(e->store, &err);
    if (rc == HS_OK)
        rc = write_tx_end(e, in_txn(e, p, &err), &err);
    if (rc && !e->stopped)
        hs_warn("sync=progress job=%lld model=%lld error=\"%s\"", (long long)p->job_id,
                (long long)p->model_id, err.msg);
    return e->stopped != HS_OK;
}

/* The progress of the items done since the last call (the syncing thread's, in the order they
 * finished). Under d->lock when slots run; it is dropped while the progress is told. */
static void tell_done(struct downloads *d, bool locked)
{
    for (size_t i = 0; i < d->n; i++) {
        struct fetched *f = &d->out[i];
        if (!f->done || f->told)
            continue;
        f->told = true;
        d->n_told++;
        if (f->rc != HS_OK)
            continue;
        d->n_ok++;
        if (locked)
            pthread_mutex_unlock(&d->lock);
        struct hs_sync_progress p = {.event = HS_PROGRESS_ARTIFACT,
                                     .job_id = d->job_id,
                                     .model_id = d->m->id,
                                     .model_name = d->m->name,
                                     .model_state = d->m->state,
                                     .artifacts_done = (int64_t)d->n_ok,
                                     .artifacts_total = (int64_t)d->n};
        bool stop = progress_lazy(d->e, &p);
        p.artifact = &f->a;
        progress(d->e, p);
        if (locked)
            pthread_mutex_lock(&d->lock);
        d->failed |= stop;
    }
}

/* Runs the downloads on up to e->download_slots threads, each with its own clone of the client
 * (the budget, connections and token are shared), while this thread tells the progress. */
static void run_slots(struct downloads *d)
{
    size_t k = d->e->download_slots > 1 ? (size_t)d->e->download_slots : 1;
    k = k < d->n ? k : d->n;
    struct slot *slots = hs_calloc(k + 1, sizeof *slots);
    size_t started = 0;
    for (size_t i = 0; k > 1 && i < k; i++) {
        slots[started].d = d;
        if (hs_client_clone(d->e->client, &slots[started].client) != HS_OK)
            break;
        hs_client_share_wait_hook(slots[started].client, d->e->client);
        if (pthread_create(&slots[started].thread, NULL, slot_main, &slots[started]) != 0) {
            hs_client_free(slots[started].client);
            break;
        }
        started++;
    }
    if (started == 0) { /* one at a time, here */
        while (download_one(d, d->e->client))
            tell_done(d, false);
    }
    pthread_mutex_lock(&d->lock);
    while (started && !(d->n_done == d->next && (d->failed || d->next == d->n))) {
        tell_done(d, true);
        if (!(d->n_done == d->next && (d->failed || d->next == d->n)) && d->n_told == d->n_done)
            pthread_cond_wait(&d->cond, &d->lock);
    }
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < started; i++) {
        pthread_join(slots[i].thread, NULL);
        struct hs_client_stats st;
        hs_client_get_stats(slots[i].client, &st);
        d->e->slot_requests += st.requests;
        hs_client_free(slots[i].client);
    }
    tell_done(d, false);
    free(slots);
}

/* The model's wanted items downloaded; the report gets those done in Hover's order, w the rows
 * of those downloaded; the first failure (in that order) is returned. */
static int download_all(struct downloads *d, struct hs_sync_model *r, struct model_writes *w,
                        struct hs_error *err)
{
    d->out = hs_calloc(d->n + 1, sizeof *d->out);
    d->prio = hs_limiter_thread_priority();
    pthread_mutex_init(&d->lock, NULL);
    pthread_cond_init(&d->cond, NULL);
    run_slots(d);
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    r->artifacts = hs_calloc(d->n + 1, sizeof *r->artifacts);
    w->staged = hs_calloc(d->n + 1, sizeof *w->staged);
    w->staged_at = hs_calloc(d->n + 1, sizeof *w->staged_at);
    int rc = HS_OK;
    for (size_t i = 0; i < d->n; i++) {
        struct fetched *f = &d->out[i];
        if (f->done && f->rc == HS_OK) {
            if (f->staged.path) {
                w->staged[w->n_staged] = f->staged;
                w->staged_at[w->n_staged++] = r->n_artifacts;
            }
            if (f->a.downloaded)
                r->downloaded++;
            else
                r->unchanged++;
            r->artifacts[r->n_artifacts++] = f->a;
            continue;
        }
        if (f->done && rc == HS_OK) {
            rc = f->rc;
            *err = f->err;
            r->message = hs_aprintf("%s: %s", d->items[i].kind,
                                    f->err.msg[0] ? f->err.msg : hs_err_name(f->rc));
        }
        hs_artifact_row_clear(&f->staged);
        artifact_free(&f->a);
    }
    free(d->out);
    return rc;
}

static void sync_complete_model(struct hs_sync_engine *e, int64_t job_id, const struct hs_model *m,
                                struct hs_sync_model *r, struct model_writes *w)
{
    struct hs_model_row stored = {0};
    struct hs_error err = {0};
    bool unchanged = false;
    if (e->store->records->model_get(e->store, m->id, &stored, NULL) == HS_OK)
        unchanged = stored.synced_updated_at && m->updated_at &&
                    strcmp(stored.synced_updated_at, m->updated_at) == 0;
    hs_model_row_clear(&stored);

    struct item *items = NULL;
    size_t n = 0, all = 0;
    collect_items(&e->profile, m, &items, &all, &n);
    progress(e, (struct hs_sync_progress){.event = HS_PROGRESS_MODEL_STARTED,
                                          .job_id = job_id,
                                          .model_id = m->id,
                                          .model_name = m->name,
                                          .model_state = m->state,
                                          .artifacts_total = (int64_t)n});
    w->n_wanted = n;
    struct hs_blob_batch *batch = hs_blob_batch_new();
    struct downloads d = {.e = e,
                          .job_id = job_id,
                          .m = m,
                          .items = items,
                          .n = n,
                          .unchanged = unchanged,
                          .batch = batch};
    int rc = download_all(&d, r, w, &err);
    for (size_t i = 0; i < n; i++)
        free(items[i].kind);
    /* The files of this model made durable together; their rows commit with its result, also
     * when a later artifact failed (a retry then finds them). */
    if (w->n_staged) {
        struct hs_error berr = {0};
        int brc = hs_blob_batch_sync(batch, &berr);
        if (brc) {
            for (size_t i = 0; i < w->n_staged; i++)
                hs_artifact_row_clear(&w->staged[i]);
            w->n_staged = 0;
            if (rc == HS_OK) {
                rc = brc;
                err = berr;
            }
        }
        hs_crashpoint("batch_synced"); /* the files durable, no row yet */
    }
    hs_blob_batch_free(batch);
    /* The rest commit with the model's result (record_model). */
    w->unfetched = hs_calloc(all - n + 1, sizeof *w->unfetched);
    for (size_t i = n; i < all; i++)
        w->unfetched[w->n_unfetched++] = items[i];
    free(items);
    if (rc == HS_OK && !unchanged)
        rc = extract_measurements(e, m, r, w, &err);
    if (rc == HS_OK)
        w->synced_at = m->updated_at;
    if (rc == HS_OK) {
        r->result = HS_RESULT_SYNCED;
    } else {
        r->result = HS_RESULT_ERROR;
        if (!r->message)
            r->message = hs_strdup(err.msg[0] ? err.msg : hs_err_name(rc));
    }
}

static enum hs_selection_status selection_status(enum hs_model_result r)
{
    switch (r) {
    case HS_RESULT_SYNCED:
        return HS_SEL_SYNCED;
    case HS_RESULT_PENDING:
        return HS_SEL_PENDING;
    case HS_RESULT_FAILED_UPSTREAM:
        return HS_SEL_FAILED_UPSTREAM;
    case HS_RESULT_ERROR:
        return HS_SEL_ERROR;
    }
    return HS_SEL_ERROR;
}

char *hs_sync_pending_message(const struct hs_model *m)
{
    return hs_aprintf("model is %s at Hover; it syncs once complete",
                      m->state ? m->state : "in no state");
}

static void handle_model(struct hs_sync_engine *e, int64_t job_id, const struct hs_model *m,
                         struct hs_sync_model *r, struct model_writes *w)
{
    r->id = m->id;
    r->name = hs_strdup(m->name);
    r->state = hs_strdup(m->state);
    if (!hs_model_is_complete(m))
        progress(e, (struct hs_sync_progress){.event = HS_PROGRESS_MODEL_STARTED,
                                              .job_id = job_id,
                                              .model_id = m->id,
                                              .model_name = m->name,
                                              .model_state = m->state});
    if (hs_model_is_complete(m)) {
        sync_complete_model(e, job_id, m, r, w);
    } else if (hs_streq(m->state, "failed")) {
        r->result = HS_RESULT_FAILED_UPSTREAM;
        r->message = hs_strdup("Hover could not reconstruct this model (state: failed)");
    } else {
        /* processing, uploading, or a state we do not know: not complete, so wait for it. */
        r->result = HS_RESULT_PENDING;
        r->message = hs_sync_pending_message(m);
    }
}

/* ---- the job ---- */

static const struct hs_model *find_model(const struct hs_job *j, int64_t id)
{
    for (size_t i = 0; i < j->n_models; i++)
        if (j->models[i].id == id)
            return &j->models[i];
    return NULL;
}

static int unknown_model_error(const struct hs_job *j, int64_t id, struct hs_error *err)
{
    struct hs_buf b;
    hs_buf_init(&b, 200);
    for (size_t i = 0; i < j->n_models; i++)
        if (hs_buf_appendf(&b, "%s%lld", i ? ", " : "", (long long)j->models[i].id))
            break;
    int rc = hs_fail(err, HS_ERR_INVALID, "model %lld is not on job %lld (its models: %s)",
                     (long long)id, (long long)j->id, b.len ? hs_buf_str(&b) : "none");
    hs_buf_free(&b);
    return rc;
}

/* The selection, checked against the job as Hover has it now: *out (new) gets the models. */
static int pick_models(const struct hs_job *job, const struct hs_sync_request *rq,
                       const struct hs_model ***out, size_t *n, struct hs_error *err)
{
    const struct hs_model **sel = hs_calloc(job->n_models + rq->n_model_ids + 1, sizeof *sel);
    size_t nsel = 0;
    if (rq->all_complete) {
        for (size_t i = 0; i < job->n_models; i++)
            if (hs_model_is_complete(&job->models[i]))
                sel[nsel++] = &job->models[i];
    } else {
        for (size_t i = 0; i < rq->n_model_ids; i++) {
            const struct hs_model *m = find_model(job, rq->model_ids[i]);
            if (!m) {
                free(sel);
                return unknown_model_error(job, rq->model_ids[i], err);
            }
            bool dup = false;
            for (size_t k = 0; k < nsel; k++)
                dup |= sel[k] == m;
            if (!dup)
                sel[nsel++] = m;
        }
    }
    *out = sel;
    *n = nsel;
    return HS_OK;
}

/* The artifacts a sync of the model downloads (0 until it is complete). */
static int64_t items_of(const struct hs_profile *p, const struct hs_model *m)
{
    if (!hs_model_is_complete(m))
        return 0;
    int64_t n = 0;
    for (size_t i = 0; i < m->n_artifacts; i++)
        n += hs_profile_wants_artifact(p, m, m->artifacts[i].kind);
    for (size_t i = 0; i < m->n_images; i++)
        n += m->images[i].url != NULL && hs_profile_wants_image(p, m, i);
    return n;
}

/* 1. The job, its models, the selection and the run row: one transaction. */
static int start_run(struct hs_sync_engine *e, const struct hs_job *job,
                     const struct hs_model *const *sel, size_t nsel, const char *trigger,
                     int64_t *run_id, struct hs_error *err)
{
    int rc = write_tx_begin(e, err);
    if (rc)
        return rc;
    rc = e->store->records->job_upsert(e->store, job, e->connection_key, NULL, err);
    for (size_t i = 0; rc == HS_OK && i < nsel; i++) {
        struct hs_selection s = {.job_id = job->id,
                                 .model_id = sel[i]->id,
                                 .status = HS_SEL_SELECTED,
                                 .connection_key = (char *)e->connection_key};
        rc = e->store->records->selection_put(e->store, &s, err);
        if (rc == HS_OK)
            rc =
                in_txn(e,
                       &(struct hs_sync_progress){.event = HS_PROGRESS_RUN_STARTED,
                                                  .job_id = job->id,
                                                  .model_id = sel[i]->id,
                                                  .model_name = sel[i]->name,
                                                  .model_state = sel[i]->state,
                                                  .artifacts_total = items_of(&e->profile, sel[i])},
                       err);
    }
    if (rc == HS_OK)
        rc =
            e->store->records->run_begin(e->store, job->id, trigger ? trigger : "cli", run_id, err);
    if (rc == HS_OK)
        rc = e->store->records->run_renew(e->store, *run_id, hs_run_lease_until(), err);
    return write_tx_end(e, rc, err);
}

/* The progress of a model whose result is known. */
static struct hs_sync_progress model_finished(int64_t job_id, const struct hs_sync_model *mr)
{
    return (struct hs_sync_progress){.event = HS_PROGRESS_MODEL_FINISHED,
                                     .job_id = job_id,
                                     .model_id = mr->id,
                                     .model_name = mr->name,
                                     .model_state = mr->state,
                                     .artifacts_done = (int64_t)mr->n_artifacts,
                                     .artifacts_total = (int64_t)mr->n_artifacts,
                                     .result = mr->result,
                                     .message = mr->message,
                                     .model = mr};
}

/* The rows of the model's downloaded artifacts, each with the progress it commits. */
static int put_staged(struct hs_sync_engine *e, int64_t job_id, struct hs_sync_model *mr,
                      const struct model_writes *w, struct hs_error *err)
{
    int rc = HS_OK;
    for (size_t i = 0; rc == HS_OK && i < w->n_staged; i++) {
        struct hs_sync_artifact *a = &mr->artifacts[w->staged_at[i]];
        rc = e->store->records->artifact_put(e->store, &w->staged[i], &a->changed, err);
        if (rc == HS_OK)
            rc = in_txn(e,
                        &(struct hs_sync_progress){.event = HS_PROGRESS_ARTIFACT,
                                                   .job_id = job_id,
                                                   .model_id = mr->id,
                                                   .model_name = mr->name,
                                                   .model_state = mr->state,
                                                   .artifacts_done = (int64_t)w->staged_at[i] + 1,
                                                   .artifacts_total = (int64_t)w->n_wanted,
                                                   .artifact = a},
                        err);
    }
    return rc;
}

/* 3. The model's result: its measurements and synced mark, its selection, its line in the run's
 * log and what the caller writes beside them, in one transaction. */
static void record_model(struct hs_sync_engine *e, int64_t job_id, int64_t run_id,
                         struct hs_sync_model *mr, const struct model_writes *w)
{
    struct hs_error werr = {0};
    int wrc = write_tx_begin(e, &werr);
    if (wrc == HS_OK)
        wrc = put_staged(e, job_id, mr, w, &werr);
    if (wrc == HS_OK && w->has_ms && mr->result == HS_RESULT_SYNCED)
        wrc = e->store->records->measurements_put(e->store, &w->ms, NULL, &werr);
    for (size_t i = 0; wrc == HS_OK && mr->result == HS_RESULT_SYNCED && i < w->n_unfetched; i++) {
        struct hs_artifact_row row = {.model_id = mr->id,
                                      .kind = w->unfetched[i].kind,
                                      .source_url = (char *)w->unfetched[i].url,
                                      .image_id = w->unfetched[i].image_id,
                                      .not_fetched = true};
        wrc = e->store->records->artifact_put(e->store, &row, NULL, &werr);
    }
    if (wrc == HS_OK && w->synced_at && mr->result == HS_RESULT_SYNCED)
        wrc = e->store->records->model_mark_synced(e->store, mr->id, w->synced_at, &werr);
    if (wrc == HS_OK) {
        struct hs_selection s = {.job_id = job_id,
                                 .model_id = mr->id,
                                 .status = selection_status(mr->result),
                                 .reason = mr->message,
                                 .connection_key = (char *)e->connection_key};
        wrc = e->store->records->selection_put(e->store, &s, &werr);
    }
    if (wrc == HS_OK)
        wrc = e->store->records->run_model_result(e->store, run_id, mr->id,
                                                  hs_model_result_name(mr->result), mr->message,
                                                  mr->downloaded, mr->unchanged, &werr);
    if (wrc == HS_OK) {
        struct hs_sync_progress p = model_finished(job_id, mr);
        wrc = in_txn(e, &p, &werr);
    }
    wrc = write_tx_end(e, wrc, &werr);
    for (size_t i = 0; wrc == HS_OK && i < w->n_staged; i++)
        hs_info("sync=artifact model=%lld kind=%s bytes=%lld changed=%d", (long long)mr->id,
                w->staged[i].kind, (long long)w->staged[i].bytes,
                mr->artifacts[w->staged_at[i]].changed);
    if (w->n_staged)
        hs_crashpoint("after_artifact_commit"); /* the model's rows and result committed */
    if (wrc) {
        /* The files and artifact rows are in; the selection stays open and the next run
         * completes it. */
        if (mr->result != HS_RESULT_ERROR) {
            free(mr->message);
            mr->message = hs_aprintf("recording the result failed: %s", werr.msg);
        }
        mr->result = HS_RESULT_ERROR;
    }
}

/* The run's status and request count; lazily when the caller commits durably next. */
static int end_run(struct hs_sync_engine *e, const struct hs_sync_report *r, struct hs_error *err)
{
    struct hs_store *st = e->store;
    if (!e->run_end_lazy)
        return st->records->run_end(st, r->run_id, r->status, r->hover_requests, err);
    int rc = st->ops->begin_lazy(st, err);
    if (rc)
        return rc;
    if ((rc = st->records->run_end(st, r->run_id, r->status, r->hover_requests, err))) {
        st->ops->rollback(st);
        return rc;
    }
    return st->ops->commit(st, err);
}

/* The run's artifact profile: the connection's, else the installation's. A list that does not
 * parse (checked when it was set, so only an older binary's) falls back to everything: nothing
 * a CRM reads goes missing. */
static void run_profile(struct hs_sync_engine *e)
{
    char *list = hs_profile_of(e->store, e->connection_key, e->artifacts);
    struct hs_error perr = {0};
    if (hs_profile_parse(list, &e->profile, &perr)) {
        hs_warn("sync=profile connection=%s error=\"%s\" msg=\"fetching every artifact\"",
                e->connection_key ? e->connection_key : "", perr.msg);
        e->profile = (struct hs_profile){.all = true};
    }
    free(list);
}

int hs_sync_job(struct hs_sync_engine *e, const struct hs_sync_request *rq,
                struct hs_sync_report **out, struct hs_error *err)
{
    struct hs_client_stats before, after;
    hs_client_get_stats(e->client, &before);
    e->slot_requests = 0;
    struct hs_job *fetched = NULL;
    const struct hs_job *job = rq->prefetched;
    const struct hs_model **sel = NULL;
    size_t nsel = 0;
    int rc;
    e->stopped = HS_OK;
    memset(&e->stopped_err, 0, sizeof e->stopped_err);
    run_profile(e);
    if (!job) {
        if ((rc = hs_client_show_job(e->client, rq->job_id, &fetched, err)))
            return rc;
        job = fetched;
    }
    if ((rc = pick_models(job, rq, &sel, &nsel, err)))
        goto fail;

    struct hs_sync_report *r = hs_calloc(1, sizeof *r);
    r->job_id = job->id;
    r->job_name = hs_strdup(job->name);
    r->reconstruction_state = hs_strdup(job->reconstruction_state);
    r->models = hs_calloc(nsel + 1, sizeof *r->models);
    if ((rc = start_run(e, job, sel, nsel, rq->trigger, &r->run_id, err))) {
        hs_sync_report_free(r);
        goto fail;
    }
    /* From here until run_end the heartbeat keeps the run's lease (sync/lease.h). */
    hs_run_lease_hold(e->store, r->run_id);
    hs_crashpoint("after_selection");

    /* 2. each model by its own state, then 3. its result. */
    for (size_t i = 0; i < nsel && !e->stopped; i++) {
        struct hs_sync_model *mr = &r->models[r->n_models++];
        struct model_writes w = {0};
        handle_model(e, job->id, sel[i], mr, &w);
        if (!e->stopped)
            record_model(e, job->id, r->run_id, mr, &w);
        model_writes_clear(&w);
        progress(e, model_finished(job->id, mr));
        hs_crashpoint("after_model");
    }

    hs_client_get_stats(e->client, &after);
    r->hover_requests = after.requests - before.requests + e->slot_requests;
    r->status = e->stopped ? "interrupted" : overall_status(r);
    hs_run_lease_drop(e->store, r->run_id);
    struct hs_error eerr = {0};
    if (end_run(e, r, &eerr))
        hs_warn("sync=run_end job=%lld run=%lld error=\"%s\"", (long long)job->id,
                (long long)r->run_id, eerr.msg);
    hs_info("sync=done job=%lld status=%s models=%zu requests=%lld", (long long)job->id, r->status,
            r->n_models, (long long)r->hover_requests);
    if (e->stopped) {
        /* The caller's transactions were refused: the run committed nothing more. */
        rc = e->stopped;
        if (err)
            *err = e->stopped_err;
        hs_sync_report_free(r);
        goto fail;
    }
    free(sel);
    hs_job_free(fetched);
    *out = r;
    return HS_OK;
fail:
    free(sel);
    hs_job_free(fetched);
    return rc;
}

static bool contains(const int64_t *v, size_t n, int64_t x)
{
    for (size_t i = 0; i < n; i++)
        if (v[i] == x)
            return true;
    return false;
}

/* One job of the pending run: the open selections ids (of n) that the plan runs, after its
 * vanished ones are closed; *r may stay NULL when none is left to run. */
static int pending_job(struct hs_sync_engine *e, int64_t job_id, int64_t *ids, size_t n,
                       struct hs_sync_report **r, struct hs_error *err)
{
    struct hs_job *job = NULL;
    struct hs_model_status *st = NULL;
    size_t nst = 0;
    struct hs_sync_plan plan = {0};
    int rc = hs_client_show_job(e->client, job_id, &job, err);
    if (rc == HS_OK)
        rc = e->store->records->job_models_status(e->store, job_id, &st, &nst, err);
    if (rc == HS_OK) {
        hs_sync_plan_make(HS_AUTOSYNC_NONE, job, st, nst, &plan);
        /* Only the selections asked about: the others are left for another run. */
        size_t nv = 0;
        for (size_t k = 0; k < plan.n_vanished; k++)
            if (contains(ids, n, plan.vanished[k]))
                plan.vanished[nv++] = plan.vanished[k];
        plan.n_vanished = nv;
        rc = hs_sync_plan_close_vanished(e->store, e->connection_key, job_id, &plan, err);
    }
    size_t keep = 0;
    for (size_t k = 0; rc == HS_OK && k < n; k++)
        if (contains(plan.sync, plan.n_sync, ids[k]) ||
            contains(plan.waiting, plan.n_waiting, ids[k]))
            ids[keep++] = ids[k];
    if (rc == HS_OK && keep) {
        struct hs_sync_request rq = {.job_id = job_id,
                                     .model_ids = ids,
                                     .n_model_ids = keep,
                                     .trigger = "pending",
                                     .prefetched = job};
        rc = hs_sync_job(e, &rq, r, err);
    } else if (rc == HS_OK) {
        rc = e->store->records->job_upsert(e->store, job, e->connection_key, NULL, err);
    }
    hs_sync_plan_clear(&plan);
    hs_model_statuses_free(st, nst);
    hs_job_free(job);
    return rc;
}

int hs_sync_pending(struct hs_sync_engine *e, struct hs_sync_report ***reports, size_t *n,
                    struct hs_error *err)
{
    struct hs_selection *sels = NULL;
    size_t ns = 0;
    int rc = e->store->records->selections_open(e->store, &sels, &ns, err);
    if (rc)
        return rc;
    struct hs_sync_report **out = hs_calloc(ns + 1, sizeof *out);
    size_t nout = 0;
    int64_t *ids = hs_calloc(ns + 1, sizeof *ids);
    bool *done = hs_calloc(ns + 1, sizeof *done);
    for (size_t i = 0; e->pending_filter && i < ns; i++)
        done[i] = !e->pending_filter(e->pending_filter_ctx, &sels[i]);
    for (size_t i = 0; i < ns; i++) {
        if (done[i])
            continue;
        /* Every open selection of this job, in one sync. */
        size_t nid = 0;
        for (size_t k = i; k < ns; k++)
            if (!done[k] && sels[k].job_id == sels[i].job_id) {
                ids[nid++] = sels[k].model_id;
                done[k] = true;
            }
        struct hs_error jerr = {0};
        struct hs_sync_report *r = NULL;
        int jrc = pending_job(e, sels[i].job_id, ids, nid, &r, &jerr);
        if (jrc) {
            hs_warn("sync=pending job=%lld error=\"%s\"", (long long)sels[i].job_id, jerr.msg);
            if (err && !err->msg[0])
                hs_fail(err, jrc, "job %lld: %s", (long long)sels[i].job_id, jerr.msg);
            rc = rc ? rc : jrc;
            continue;
        }
        if (r)
            out[nout++] = r;
    }
    free(ids);
    free(done);
    hs_selections_free(sels, ns);
    *reports = out;
    *n = nout;
    return rc;
}
