/* routes_jobs.c: one job fresh from Hover (GET /api/jobs/{id}) and its images proxied through
 * the service (GET /api/images/{id}).
 *
 * Show Job answers are cached a few seconds per job (the modal asks again as the user moves
 * around), and every one is upserted into the store so that the local search index learns the
 * job. Hover's image URLs need the org's token, which a browser does not have: the service keeps
 * image id -> (connection, URL, model) from the Show Jobs it served, downloads an image on first
 * use into the content-addressed store exactly as the sync engine does (kind image.<id>), and
 * serves it from there afterwards. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include "core/buf.h"
#include "core/log.h"
#include "core/mem.h"
#include "core/str.h"
#include "hover/oauth.h"
#include "server/internal.h"
#include "store/blobs.h"
#include "store/records.h"
#include "store/service.h"

#define IMAGE_MAX_BYTES ((size_t)20 << 20)

/* ---- the job as the API shows it ---- */

static json_t *str_or_null(const char *s)
{
    return s && *s ? hs_json_text(s) : json_null();
}

static char *address_full(const struct hs_address *a)
{
    struct hs_buf b;
    hs_buf_init(&b, 4096);
    const char *parts[] = {a->line1, a->line2, a->city};
    for (size_t i = 0; i < 3; i++)
        if (parts[i] && *parts[i])
            (void)hs_buf_appendf(&b, "%s%s", b.len ? ", " : "", parts[i]);
    bool region = a->region && *a->region, zip = a->postal_code && *a->postal_code;
    if (region || zip)
        (void)hs_buf_appendf(&b, "%s%s%s%s", b.len ? ", " : "", region ? a->region : "",
                             region && zip ? " " : "", zip ? a->postal_code : "");
    return hs_buf_take(&b, NULL);
}

static json_t *address_json(const struct hs_address *a)
{
    char *full = address_full(a);
    json_t *j = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "line1", str_or_null(a->line1), "line2",
        str_or_null(a->line2), "city", str_or_null(a->city), "region", str_or_null(a->region),
        "postal_code", str_or_null(a->postal_code), "country", str_or_null(a->country), "latitude",
        a->has_coords ? json_real(a->latitude) : json_null(), "longitude",
        a->has_coords ? json_real(a->longitude) : json_null(), "full", hs_json_text(full));
    free(full);
    return j;
}

static json_t *model_json(const struct hs_model *m)
{
    json_t *arts = json_array(), *imgs = json_array();
    for (size_t i = 0; i < m->n_artifacts; i++)
        json_array_append_new(arts, json_pack("{s:o}", "kind", hs_json_text(m->artifacts[i].kind)));
    json_t *thumb = json_null();
    for (size_t i = 0; i < m->n_images; i++) {
        char url[64];
        (void)snprintf(url, sizeof url, "/api/images/%lld", (long long)m->images[i].id);
        if (json_is_null(thumb))
            thumb = json_string(url);
        json_array_append_new(
            imgs, json_pack("{s:I, s:s}", "id", (json_int_t)m->images[i].id, "url", url));
    }
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o}", "id", (json_int_t)m->id,
                     "name", str_or_null(m->name), "state", str_or_null(m->state), "deliverable",
                     str_or_null(m->deliverable), "deliverable_id",
                     m->deliverable_id > 0 ? json_integer(m->deliverable_id) : json_null(),
                     "updated_at", str_or_null(m->updated_at), "complete", hs_model_is_complete(m),
                     "thumbnail_url", thumb, "images", imgs, "artifacts", arts);
}

static json_t *job_json(const struct hs_job *j, const char *connection)
{
    const struct hs_customer *c = &j->customer;
    json_t *models = json_array();
    for (size_t i = 0; i < j->n_models; i++)
        json_array_append_new(models, model_json(&j->models[i]));
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:o, s:o, s:o, s:o}", "id",
                     (json_int_t)j->id, "name", str_or_null(j->name), "reconstruction_state",
                     str_or_null(j->reconstruction_state), "external_identifier",
                     str_or_null(j->external_identifier), "org_id",
                     j->org_id > 0 ? json_integer(j->org_id) : json_null(), "archived", j->archived,
                     "created_at", str_or_null(j->created_at), "updated_at",
                     str_or_null(j->updated_at), "completed_at", str_or_null(j->completed_at),
                     "address", address_json(&j->address), "customer",
                     json_pack("{s:o, s:o, s:o, s:o}", "name", str_or_null(c->name), "first_name",
                               str_or_null(c->first_name), "email", str_or_null(c->email), "phone",
                               str_or_null(c->phone)),
                     "connection", hs_json_text(connection), "models", models);
}

/* Remembers where the job's images are fetched, in the store: GET /api/images/{id} may reach
 * another instance of the service. A failure only means those images are unknown for now. */
static void remember_images(struct hs_server *s, const struct hs_job *j, const char *connection)
{
    size_t n = 0, cap = 0;
    struct hs_image_source *v = NULL;
    for (size_t i = 0; i < j->n_models; i++) {
        const struct hs_model *m = &j->models[i];
        for (size_t k = 0; k < m->n_images; k++) {
            const struct hs_image *img = &m->images[k];
            if (img->id <= 0 || !img->url)
                continue;
            if (n == cap) {
                cap = cap ? 2 * cap : 16;
                v = hs_realloc(v, cap * sizeof *v);
            }
            v[n++] = (struct hs_image_source){.image_id = img->id,
                                              .model_id = m->id,
                                              .connection_key = (char *)connection,
                                              .url = img->url};
        }
    }
    struct hs_error err = {0};
    if (n && s->store->service->image_sources_put(s->store, v, n, s->clock->wall_ms(s->clock),
                                                  &err) != HS_OK)
        hs_warn("images msg=\"cannot remember the job's images\" job=%lld detail=\"%s\"",
                (long long)j->id, err.msg);
    free(v);
}

/* Stores a fresh Show Job answer in the cache (under cache_lock); doc is taken, raw copied. */
static void cache_put(struct hs_server *s, int64_t id, const char *connection, json_t *doc,
                      const char *raw)
{
    struct job_entry *e = NULL;
    for (size_t i = 0; i < JOB_CACHE_N && !e; i++)
        if (s->jobs[i].id == id)
            e = &s->jobs[i];
    if (!e)
        e = &s->jobs[s->jobs_next++ % JOB_CACHE_N];
    free(e->connection);
    free(e->raw);
    json_decref(e->doc);
    e->id = id;
    e->connection = hs_strdup(connection);
    e->doc = doc;
    e->raw = raw ? hs_strdup(raw) : NULL;
    e->at_ms = hs_server_mono_ms(s);
}

/* Show Job through one connection; HS_ERR_NOT_FOUND when the org does not have the job. */
static int show_through(struct hs_server *s, const char *key, int64_t job_id, json_t **doc,
                        struct hs_error *err)
{
    struct hs_client *c = NULL;
    int rc = hs_client_pool_acquire(s->pool, key, &c, err);
    if (rc)
        return rc;
    struct hs_job *job = NULL;
    rc = hs_client_show_job(c, job_id, &job, err);
    hs_client_pool_release(s->pool, c);
    hs_connection_note(s, key, rc == HS_ERR_NOT_FOUND ? HS_OK : rc);
    if (rc)
        return rc;
    struct hs_error uerr = {0};
    /* The local index learns every job the service sees; a failure here does not hide the job
     * from the user. */
    if (s->store->records->job_upsert(s->store, job, key, NULL, &uerr) != HS_OK)
        hs_warn("jobs msg=\"cannot store the job\" job=%lld detail=\"%s\"", (long long)job_id,
                uerr.msg);
    json_t *d = job_json(job, key);
    remember_images(s, job, key);
    pthread_mutex_lock(&s->cache_lock);
    cache_put(s, job_id, key, json_incref(d), job->raw_json);
    pthread_mutex_unlock(&s->cache_lock);
    hs_job_free(job);
    *doc = d;
    return HS_OK;
}

char *hs_job_recent_raw(struct hs_server *s, int64_t job_id, const char *connection,
                        int64_t max_age_ms)
{
    char *raw = NULL;
    pthread_mutex_lock(&s->cache_lock);
    for (size_t i = 0; i < JOB_CACHE_N; i++) {
        const struct job_entry *e = &s->jobs[i];
        if (e->id != job_id || !e->raw)
            continue;
        if (connection && hs_streq(connection, e->connection) &&
            hs_server_mono_ms(s) - e->at_ms <= max_age_ms)
            raw = hs_strdup(e->raw);
        break;
    }
    pthread_mutex_unlock(&s->cache_lock);
    return raw;
}

int hs_job_fetch(struct hs_server *s, int64_t job_id, const char *connection,
                 const struct hs_scope *scope, int64_t max_age_ms, json_t **doc, char **conn,
                 struct hs_error *err)
{
    if (max_age_ms < 0)
        max_age_ms = JOB_CACHE_MS;
    char *hint = NULL;
    pthread_mutex_lock(&s->cache_lock);
    for (size_t i = 0; i < JOB_CACHE_N; i++) {
        struct job_entry *e = &s->jobs[i];
        if (e->id != job_id || !e->doc)
            continue;
        /* Shown through a connection outside the scope: not this caller's to see (nor a hint:
         * which org has the job is not for it to learn either). */
        if ((connection && strcmp(connection, e->connection) != 0) ||
            !hs_scope_has(scope, e->connection))
            break;
        if (hs_server_mono_ms(s) - e->at_ms <= max_age_ms) {
            *doc = json_deep_copy(e->doc);
            *conn = hs_strdup(e->connection);
            pthread_mutex_unlock(&s->cache_lock);
            return HS_OK;
        }
        hint = hs_strdup(e->connection);
        break;
    }
    pthread_mutex_unlock(&s->cache_lock);

    /* Which orgs to ask: the one named, else the one that had the job, then every other. */
    char **keys = NULL;
    size_t n = 0;
    bool any = connection != NULL; /* a connection the caller may use exists */
    if (connection) {
        keys = hs_calloc(1, sizeof *keys);
        keys[n++] = hs_strdup(connection);
    } else {
        struct hs_connection_row *rows = NULL;
        size_t nr = 0;
        int rc = s->store->service->connections_list(s->store, &rows, &nr, err);
        if (rc) {
            free(hint);
            return rc;
        }
        keys = hs_calloc(nr + 2, sizeof *keys);
        if (hint)
            keys[n++] = hs_strdup(hint);
        for (size_t i = 0; i < nr; i++) {
            if (!hs_scope_has(scope, rows[i].key))
                continue;
            any = true;
            if (rows[i].has_token && !hs_streq(rows[i].key, hint))
                keys[n++] = hs_strdup(rows[i].key);
        }
        hs_connection_rows_free(rows, nr);
    }
    free(hint);
    /* A session without a connection has no job to see; anyone else needs an org connected. */
    int rc = n || (scope && !any)
                 ? HS_ERR_NOT_FOUND
                 : hs_fail(err, HS_ERR_NO_CREDENTIALS,
                           "no Hover org is connected: connect one first (GET /connect)");
    for (size_t i = 0; i < n && rc == HS_ERR_NOT_FOUND; i++) {
        rc = show_through(s, keys[i], job_id, doc, err);
        if (rc == HS_OK)
            *conn = hs_strdup(keys[i]);
    }
    if (rc == HS_ERR_NOT_FOUND)
        hs_fail(err, HS_ERR_NOT_FOUND, "job %lld not found in the connected Hover orgs",
                (long long)job_id);
    for (size_t i = 0; i < n; i++)
        free(keys[i]);
    free(keys);
    return rc;
}

/* Adds what the store knows of each model: synced before, and its selection. */
static int merge_status(struct hs_server *s, int64_t job_id, json_t *doc, struct hs_error *err)
{
    struct hs_model_status *st = NULL;
    size_t n = 0;
    int rc = s->store->records->job_models_status(s->store, job_id, &st, &n, err);
    if (rc)
        return rc;
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(doc, "models"), i, m)
    {
        int64_t id = json_integer_value(json_object_get(m, "id"));
        const struct hs_model_status *ms = NULL;
        for (size_t k = 0; k < n && !ms; k++)
            if (st[k].model_id == id)
                ms = &st[k];
        json_object_set_new(m, "synced", json_boolean(ms && ms->synced_updated_at));
        json_object_set_new(m, "synced_updated_at",
                            ms ? str_or_null(ms->synced_updated_at) : json_null());
        json_object_set_new(m, "selection",
                            ms && ms->has_selection
                                ? json_string(hs_selection_status_name(ms->selection))
                                : json_null());
        json_object_set_new(m, "selection_reason", ms ? str_or_null(ms->reason) : json_null());
    }
    hs_model_statuses_free(st, n);
    return HS_OK;
}

static int id_param(struct hs_req *q, const char *what, int64_t *id, struct hs_resp *r)
{
    if (hs_parse_i64_range(q->params[0], 1, INT64_MAX, id) != 0) {
        hs_resp_error(r, 400, "bad_request", "%s ids are positive integers", what);
        return -1;
    }
    return 0;
}

/* GET /api/jobs/{id}[?connection=] */
void hs_route_job_show(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    int64_t id;
    if (id_param(q, "job", &id, r) != 0)
        return;
    char *asked = NULL, *conn = NULL;
    const char *a = hs_req_arg(q, "connection");
    if (a && *a && hs_pick_connection(q, a, &asked, r) != 0)
        return;
    json_t *doc = NULL;
    struct hs_error err = {0};
    struct hs_scope scope_buf;
    int rc = hs_job_fetch(s, id, asked, hs_req_scope(q, &scope_buf), -1, &doc, &conn, &err);
    free(asked);
    if (rc == HS_OK)
        rc = merge_status(s, id, doc, &err);
    if (rc) {
        json_decref(doc);
        free(conn);
        hs_resp_fail(r, rc, &err, "showing the job");
        return;
    }
    free(conn);
    hs_resp_json(r, 200, doc);
}

/* ---- images ---- */

struct blob_sink {
    const struct hs_blobs *blobs;
    struct hs_blob_writer *w;
    struct hs_error *err;
};

static int sink_write(void *ctx, const char *data, size_t len)
{
    struct blob_sink *b = ctx;
    if (!b->w) {
        int rc = hs_blobs_begin(b->blobs, &b->w, b->err);
        if (rc)
            return rc;
    }
    return hs_blob_write(b->w, data, len, b->err);
}

static int sink_reset(void *ctx)
{
    struct blob_sink *b = ctx;
    hs_blob_abort(b->w);
    b->w = NULL;
    return 0;
}

static bool stored_file_present(const struct hs_server *s, const struct hs_artifact_row *a)
{
    int64_t size;
    return hs_blobs_size(s->blobs, a->path, &size, NULL) == HS_OK;
}

/* Downloads image e into the store (as the sync engine stores images) and fills *row. */
static int image_download(struct hs_server *s, const struct hs_image_source *e,
                          struct hs_artifact_row *row, struct hs_error *err)
{
    struct blob_sink sink = {.blobs = s->blobs, .err = err};
    struct hs_download_opts o = {
        .sink = sink_write,
        .sink_ctx = &sink,
        .reset = sink_reset,
        .max_bytes = IMAGE_MAX_BYTES,
    };
    struct hs_fetch_result fr = {0};
    struct hs_client *c = NULL;
    int rc = hs_client_pool_acquire(s->pool, e->connection_key, &c, err);
    if (rc)
        return rc;
    rc = hs_client_download(c, e->url, &o, &fr, err);
    hs_client_pool_release(s->pool, c);
    hs_connection_note(s, e->connection_key, rc == HS_ERR_NOT_FOUND ? HS_OK : rc);
    if (rc)
        goto out;
    if (!fr.content_type || strncasecmp(fr.content_type, "image/", 6) != 0) {
        rc = hs_fail(err, HS_ERR_HTTP, "Hover sent %s, not an image",
                     fr.content_type ? fr.content_type : "no content type");
        goto out;
    }
    if (!sink.w && (rc = hs_blobs_begin(s->blobs, &sink.w, err)))
        goto out;
    char sha[65], fetched[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    hs_iso8601_format((int64_t)ts.tv_sec, (int)(ts.tv_nsec / 1000000), fetched, sizeof fetched);
    memset(row, 0, sizeof *row);
    if ((rc = hs_blob_commit(sink.w, sha, &row->bytes, &row->path, err)))
        goto out;
    row->model_id = e->model_id;
    row->kind = hs_aprintf("image.%lld", (long long)e->image_id);
    row->source_url = hs_strdup(e->url);
    row->sha256 = hs_strdup(sha);
    row->content_type = hs_strdup(fr.content_type);
    row->etag = hs_strdup(fr.etag);
    row->fetched_at = hs_strdup(fetched);
    row->image_id = e->image_id;
    rc = s->store->records->artifact_put(s->store, row, NULL, err);
    if (rc)
        hs_artifact_row_clear(row);
    else
        hs_info("images msg=\"stored\" image=%lld model=%lld bytes=%lld", (long long)e->image_id,
                (long long)e->model_id, (long long)row->bytes);
out:
    hs_blob_abort(sink.w);
    hs_fetch_result_clear(&fr);
    return rc;
}

/* GET /api/images/{id} */
void hs_route_image(struct hs_req *q, struct hs_resp *r)
{
    struct hs_server *s = q->srv;
    int64_t id;
    if (id_param(q, "image", &id, r) != 0)
        return;
    static const char cache[] = "private, max-age=86400";
    struct hs_artifact_row a = {0};
    struct hs_error err = {0};
    struct hs_scope scope_buf;
    const struct hs_scope *scope = hs_req_scope(q, &scope_buf);
    int rc = s->store->records->artifact_by_image(s->store, id, scope, &a, &err);
    if (rc == HS_OK && stored_file_present(s, &a)) {
        hs_resp_stored_file(q, r, s->blobs, &a, cache);
        hs_artifact_row_clear(&a);
        return;
    }
    hs_artifact_row_clear(&a);
    if (rc && rc != HS_ERR_NOT_FOUND) {
        hs_resp_fail(r, rc, &err, "finding the image");
        return;
    }
    /* Listed by a job of another tenant's connection: unknown to this caller. */
    struct hs_image_source e = {0};
    rc = s->store->service->image_source_get(s->store, id, scope, &e, &err);
    if (rc && rc != HS_ERR_NOT_FOUND) {
        hs_resp_fail(r, rc, &err, "finding the image");
        return;
    }
    if (rc) {
        hs_resp_error(r, 404, "not_found",
                      "image %lld is unknown (images are served for jobs shown by "
                      "GET /api/jobs/{id})",
                      (long long)id);
        return;
    }
    /* Only a download spends a Hover request: a stored image does not count for the caller. */
    if (hs_quota_check(q, r) != 0) {
        hs_image_source_clear(&e);
        return;
    }
    memset(&err, 0, sizeof err);
    rc = image_download(s, &e, &a, &err);
    hs_image_source_clear(&e);
    if (rc) {
        hs_resp_fail(r, rc, &err, "fetching the image from Hover");
        return;
    }
    hs_resp_stored_file(q, r, s->blobs, &a, cache);
    hs_artifact_row_clear(&a);
}
