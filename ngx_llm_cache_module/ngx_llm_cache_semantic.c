
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The semantic layer, the request's side.  After an exact miss, a request
 * whose last message is plain user text has that text embedded (a
 * background subrequest to llm_cache_semantic_embed, whose reply the body
 * filter reads and never sends) and looked up among the entries of its
 * partition: everything else of the request (namespace, provider, path,
 * parameters, model, system prompt, earlier turns) and the embedder, so a
 * paraphrase never crosses a tenant, a model, a prompt or a history.  The
 * nearest entries by signature are compared by exact cosine; one at least
 * llm_cache_semantic_threshold similar whose guards agree answers, from
 * the exact entry it points to, as HIT_SEMANTIC.  A stored answer is
 * indexed with its vector.  Every failure is a plain miss (fail open), and
 * a semantic hit is never written back to the exact layer.
 *
 * Redis, one hash tag per partition (one Cluster slot):
 *
 *   <prefix>v2:<ns>:<model>:s{<pid>}:i       ZSET, member id|sig|guards,
 *                                           score: its expiry in ms
 *   <prefix>v2:<ns>:<model>:s{<pid>}:e:<id>  the exact key and the vector,
 *                                           with the same expiry
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ngx_llm_cache_module.h"


/* the embedder's reply, at most; 8192 dimensions as JSON fit */
#define NGX_LLM_CACHE_SEM_MAX_REPLY     (1024 * 1024)

#define NGX_LLM_CACHE_SEM_LOG_INTERVAL  5


/* one call: the entry, the index, its trimming and its expiry */
#define NGX_LLM_CACHE_SEM_INDEX                                               \
    "redis.call('set', KEYS[1], ARGV[1], 'px', ARGV[2]) "                     \
    "redis.call('zadd', KEYS[2], ARGV[3], ARGV[4]) "                          \
    "redis.call('zremrangebyscore', KEYS[2], '-inf', '(' .. ARGV[5]) "        \
    "redis.call('zremrangebyrank', KEYS[2], 0, -(tonumber(ARGV[6]) + 1)) "    \
    "local t = redis.call('pttl', KEYS[2]) "                                  \
    "if t < tonumber(ARGV[2]) then "                                          \
    "redis.call('pexpire', KEYS[2], ARGV[2]) end "                            \
    "return 1"


struct ngx_llm_cache_sem_ctx_s {
    ngx_str_t                      text;          /* the embedded one */
    u_char                         guard[NGX_LLM_CACHE_SEM_GUARD_BYTES];
    ngx_str_t                      base;          /* ...:s{<pid>}: */
    ngx_str_t                      index;         /* base "i" */

    ngx_http_request_t            *embed_sr;
    u_char                        *reply;
    size_t                         reply_len;
    size_t                         reply_size;
    ngx_uint_t                     embed_status;
    ngx_msec_t                     embed_start;
    ngx_llm_cache_sem_vector_t     vec;
    u_char                         sig[NGX_LLM_CACHE_SEM_SIG_BYTES];
    float                          weights[NGX_LLM_CACHE_SEM_SIG_BITS];

    ngx_str_t                     *members;       /* the index, copied */
    ngx_uint_t                     nmembers;
    ngx_uint_t                     cand[NGX_LLM_CACHE_SEM_CANDIDATES];
    ngx_uint_t                     ncand;
    ngx_str_t                      hit_member;
    ngx_str_t                      hit_key;       /* of the exact entry */

    ngx_llm_cache_redis_op_t      *op;
    ngx_event_t                    timer;

    ngx_llm_cache_sem_status_e     status;
    double                         similarity;

    unsigned                       eligible:1;
    unsigned                       searched:1;
    unsigned                       waiting:1;     /* the request waits */
    unsigned                       embedding:1;   /* subrequest running */
    unsigned                       embedded:1;    /* vec and sig are good */
    unsigned                       failed:1;      /* no index, no retry */
    unsigned                       has_similarity:1;
    unsigned                       indexed:1;
    unsigned                       too_big:1;
};


static ngx_int_t ngx_llm_cache_semantic_text(ngx_http_request_t *r,
    ngx_llm_cache_json_t *root, ngx_llm_cache_json_t **node, ngx_str_t *text,
    char **reason);
static ngx_int_t ngx_llm_cache_semantic_embed(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_uint_t wait);
static u_char *ngx_llm_cache_semantic_escape(u_char *dst, ngx_str_t *src);
static ngx_int_t ngx_llm_cache_semantic_embed_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static void ngx_llm_cache_semantic_timeout(ngx_event_t *ev);
static void ngx_llm_cache_semantic_resume(ngx_http_request_t *r);
static void ngx_llm_cache_semantic_members(void *data, ngx_int_t rc,
    void *reply);
static void ngx_llm_cache_semantic_vectors(void *data, ngx_int_t rc,
    void *reply);
static void ngx_llm_cache_semantic_entry(void *data, ngx_int_t rc,
    ngx_str_t *value);
static void ngx_llm_cache_semantic_miss(ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_sem_status_e status);
static void ngx_llm_cache_semantic_forget(ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *member);
static void ngx_llm_cache_semantic_index(ngx_llm_cache_ctx_t *ctx);
static ngx_int_t ngx_llm_cache_semantic_vector_key(ngx_pool_t *pool,
    ngx_llm_cache_sem_ctx_t *sem, u_char *id, ngx_str_t *key);
static void ngx_llm_cache_semantic_log(ngx_log_t *log, ngx_str_t *reason);


static ngx_str_t  ngx_llm_cache_semantic_status_names[] = {
    ngx_null_string,
    ngx_string("BYPASS"),
    ngx_string("MISS"),
    ngx_string("HIT"),
    ngx_string("GUARD"),
    ngx_string("ERROR"),
    ngx_string("SHADOW_HIT")
};


/*
 * From the key's building: whether the semantic layer takes the request,
 * and if so its text, guards and partition.  Not taking it is no error.
 */

ngx_int_t
ngx_llm_cache_semantic_prepare(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_llm_cache_json_t *root)
{
    u_char                         *p;
    char                           *reason;
    ngx_int_t                       rc;
    ngx_str_t                       error;
    ngx_llm_cache_json_t           *node;
    ngx_llm_cache_sem_ctx_t        *sem;
    ngx_llm_cache_loc_conf_t       *lcf;
    ngx_llm_cache_semantic_conf_t  *scf;
    u_char                          digest[EVP_MAX_MD_SIZE];

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);
    scf = &lcf->semantic;

    sem = ngx_pcalloc(r->pool, sizeof(ngx_llm_cache_sem_ctx_t));
    if (sem == NULL) {
        return NGX_ERROR;
    }

    ctx->sem = sem;
    sem->status = NGX_LLM_CACHE_SEM_BYPASS;

    rc = ngx_llm_cache_semantic_text(r, root, &node, &sem->text, &reason);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK && sem->text.len > scf->max_input) {
        reason = "the text is over llm_cache_semantic_max_input";
        rc = NGX_DECLINED;
    }

    if (rc == NGX_DECLINED) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: semantic bypass: %s", reason);
        return NGX_OK;
    }

    /* the partition: the request without the embedded text */

    ngx_llm_cache_json_hide(node, 1);
    rc = ngx_llm_cache_partition_digest(r, root, &scf->identity, digest,
                                        &error);
    ngx_llm_cache_json_hide(node, 0);

    if (rc != NGX_OK) {
        return rc;
    }

    /* ctx->key ends in the 64 hex digits of its hash */

    sem->base.len = ctx->key.len - NGX_LLM_CACHE_KEY_HEX_LEN
                    + sizeof("s{}:") - 1 + 32;
    sem->base.data = ngx_pnalloc(r->pool, sem->base.len + 1);
    if (sem->base.data == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(sem->base.data, ctx->key.data,
                   ctx->key.len - NGX_LLM_CACHE_KEY_HEX_LEN);
    p = ngx_cpymem(p, "s{", 2);
    p = ngx_hex_dump(p, digest, 16);
    p = ngx_cpymem(p, "}:", 2);
    *p = 'i';

    sem->index.data = sem->base.data;
    sem->index.len = sem->base.len + 1;

    ngx_llm_cache_sem_guard_digest(sem->text.data, sem->text.len,
                                   sem->guard);

    sem->eligible = 1;
    sem->status = NGX_LLM_CACHE_SEM_NONE;

    return NGX_OK;
}


/*
 * The last message must be the user's plain text: a string, or text parts
 * only (joined by newlines); one choice only
 */

static ngx_int_t
ngx_llm_cache_semantic_text(ngx_http_request_t *r,
    ngx_llm_cache_json_t *root, ngx_llm_cache_json_t **node, ngx_str_t *text,
    char **reason)
{
    u_char                *p;
    size_t                 len;
    ngx_str_t              value;
    ngx_uint_t             parts;
    ngx_llm_cache_json_t  *last, *content, *part;

    if (ngx_llm_cache_json_value(ngx_llm_cache_json_member(root, "n"), 1,
                                 &value)
        == NGX_OK
        && !(value.len == 3 && ngx_strncmp(value.data, "1e0", 3) == 0))
    {
        *reason = "n is not 1";
        return NGX_DECLINED;
    }

    last = ngx_llm_cache_json_last(ngx_llm_cache_json_member(root,
                                                             "messages"));
    if (last == NULL) {
        *reason = "no messages";
        return NGX_DECLINED;
    }

    if (ngx_llm_cache_json_value(ngx_llm_cache_json_member(last, "role"), 0,
                                 &value)
        != NGX_OK
        || value.len != 4 || ngx_strncmp(value.data, "user", 4) != 0)
    {
        *reason = "the last message is not the user's";
        return NGX_DECLINED;
    }

    content = ngx_llm_cache_json_member(last, "content");
    *node = content;

    if (ngx_llm_cache_json_value(content, 0, text) == NGX_OK) {
        goto done;
    }

    part = ngx_llm_cache_json_first(content);
    if (part == NULL) {
        *reason = "the last message has no text";
        return NGX_DECLINED;
    }

    len = 0;
    parts = 0;

    for ( /* void */ ; part; part = ngx_llm_cache_json_next(part)) {

        if (ngx_llm_cache_json_value(ngx_llm_cache_json_member(part, "type"),
                                     0, &value)
            != NGX_OK
            || value.len != 4 || ngx_strncmp(value.data, "text", 4) != 0
            || ngx_llm_cache_json_value(ngx_llm_cache_json_member(part,
                                                                  "text"),
                                        0, &value)
               != NGX_OK)
        {
            *reason = "the last message has a part that is not text";
            return NGX_DECLINED;
        }

        len += value.len + 1;
        parts++;
    }

    text->data = ngx_pnalloc(r->pool, len);
    if (text->data == NULL) {
        return NGX_ERROR;
    }

    p = text->data;

    for (part = ngx_llm_cache_json_first(content);
         part;
         part = ngx_llm_cache_json_next(part))
    {
        (void) ngx_llm_cache_json_value(ngx_llm_cache_json_member(part,
                                                                  "text"),
                                        0, &value);
        if (p != text->data) {
            *p++ = '\n';
        }

        p = ngx_cpymem(p, value.data, value.len);
    }

    text->len = p - text->data;

done:

    if (text->len == 0) {
        *reason = "the last message is empty";
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * After an exact miss.  NGX_DONE: the look-up goes on and ends with
 * ngx_llm_cache_lookup_done() again, or with a hit; NGX_DECLINED: the
 * miss goes on at once.
 */

ngx_int_t
ngx_llm_cache_semantic_search(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx)
{
    u_char                     now[NGX_INT64_LEN];
    const char                *argv[5];
    size_t                     argvlen[5];
    ngx_time_t                *tp;
    ngx_llm_cache_sem_ctx_t   *sem;
    ngx_llm_cache_loc_conf_t  *lcf;

    sem = ctx->sem;

    if (!sem->eligible || sem->searched) {
        return NGX_DECLINED;
    }

    sem->searched = 1;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    tp = ngx_timeofday();

    argv[0] = "ZRANGE";
    argvlen[0] = 6;
    argv[1] = (const char *) sem->index.data;
    argvlen[1] = sem->index.len;
    argv[2] = (const char *) now;
    argvlen[2] = ngx_sprintf(now, "%L",
                             (int64_t) tp->sec * 1000 + tp->msec) - now;
    argv[3] = "+inf";
    argvlen[3] = 4;
    argv[4] = "BYSCORE";
    argvlen[4] = 7;

    sem->op = ngx_llm_cache_redis_command(lcf->redis, "semantic look-up "
                                          "failed", 5, argv, argvlen,
                                          lcf->redis_timeout,
                                          ngx_llm_cache_semantic_members,
                                          ctx, r->connection->log);
    if (sem->op == NULL) {
        sem->status = NGX_LLM_CACHE_SEM_ERROR;
        sem->failed = 1;
        return NGX_DECLINED;
    }

    return NGX_DONE;
}


static void
ngx_llm_cache_semantic_members(void *data, ngx_int_t rc, void *reply)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    size_t                    i;
    redisReply               *rr, *el;
    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_llm_cache_sem_ctx_t  *sem;

    r = ctx->request;
    c = r->connection;
    sem = ctx->sem;
    rr = reply;

    sem->op = NULL;

    if (rc != NGX_OK || rr == NULL || rr->type != REDIS_REPLY_ARRAY) {
        sem->failed = 1;
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
        return;
    }

    if (rr->elements == 0) {
        /* nothing to compare with: the embedding runs beside the provider */
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_MISS);
        return;
    }

    sem->members = ngx_palloc(r->pool, rr->elements * sizeof(ngx_str_t));
    if (sem->members == NULL) {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
        return;
    }

    for (i = 0; i < rr->elements; i++) {
        el = rr->element[i];

        if (el->type != REDIS_REPLY_STRING
            || el->len != NGX_LLM_CACHE_SEM_MEMBER_LEN)
        {
            continue;
        }

        sem->members[sem->nmembers].len = el->len;
        sem->members[sem->nmembers].data = ngx_pnalloc(r->pool, el->len);
        if (sem->members[sem->nmembers].data == NULL) {
            ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
            return;
        }

        ngx_memcpy(sem->members[sem->nmembers].data, el->str, el->len);
        sem->nmembers++;
    }

    if (ngx_llm_cache_semantic_embed(r, ctx, 1) != NGX_OK) {
        sem->failed = 1;
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
        return;
    }

    ngx_http_run_posted_requests(c);
}


/*
 * The embedding: POST {"input":..,"model":..} to the embed location, as
 * a background subrequest (its answer goes nowhere, and a provider
 * subrequest started meanwhile streams at once), with none of the
 * client's headers: its credentials are for the provider.
 */

static ngx_int_t
ngx_llm_cache_semantic_embed(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_uint_t wait)
{
    u_char                         *p, *body;
    size_t                          len;
    ngx_buf_t                      *b;
    ngx_chain_t                    *cl;
    ngx_table_elt_t                *h;
    ngx_http_request_t             *sr;
    ngx_llm_cache_sem_ctx_t        *sem;
    ngx_llm_cache_loc_conf_t       *lcf;
    ngx_http_request_body_t        *rb;
    ngx_http_post_subrequest_t     *psr;
    ngx_llm_cache_semantic_conf_t  *scf;

    sem = ctx->sem;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);
    scf = &lcf->semantic;

    len = sizeof("{\"input\":\"\",\"model\":\"\",\"dimensions\":}") - 1
          + 6 * sem->text.len + 6 * scf->model.len + NGX_INT_T_LEN;

    body = ngx_pnalloc(r->pool, len);
    if (body == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(body, "{\"input\":\"", sizeof("{\"input\":\"") - 1);
    p = ngx_llm_cache_semantic_escape(p, &sem->text);
    p = ngx_cpymem(p, "\",\"model\":\"", sizeof("\",\"model\":\"") - 1);
    p = ngx_llm_cache_semantic_escape(p, &scf->model);
    *p++ = '"';

    if (scf->dimensions) {
        p = ngx_sprintf(p, ",\"dimensions\":%ui", scf->dimensions);
    }

    *p++ = '}';
    len = p - body;

    psr = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (psr == NULL) {
        return NGX_ERROR;
    }

    psr->handler = ngx_llm_cache_semantic_embed_done;
    psr->data = ctx;

    if (ngx_http_subrequest(r, &scf->embed, NULL, &sr, psr,
                            NGX_HTTP_SUBREQUEST_BACKGROUND)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->method = NGX_HTTP_POST;
    ngx_str_set(&sr->method_name, "POST");
    sr->header_only = 0;
    sr->filter_need_in_memory = 1;

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 2,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    h = ngx_list_push(&sr->headers_in.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    ngx_str_set(&h->key, "Content-Type");
    ngx_str_set(&h->value, "application/json");
    h->lowcase_key = (u_char *) "content-type";
    h->hash = ngx_hash_key(h->lowcase_key, h->key.len);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    sr->headers_in.content_type = h;
    sr->headers_in.content_length_n = len;
    sr->headers_in.server = r->headers_in.server;

    rb = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    b = ngx_calloc_buf(r->pool);
    cl = ngx_alloc_chain_link(r->pool);

    if (rb == NULL || b == NULL || cl == NULL) {
        return NGX_ERROR;
    }

    b->start = body;
    b->pos = body;
    b->last = body + len;
    b->end = body + len;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl->buf = b;
    cl->next = NULL;

    rb->bufs = cl;
    sr->request_body = rb;

    ngx_http_set_ctx(sr, ctx, ngx_llm_cache_module);

    sem->embed_sr = sr;
    sem->embedding = 1;
    sem->embed_start = ngx_current_msec;

    if (wait) {
        sem->waiting = 1;

        sem->timer.handler = ngx_llm_cache_semantic_timeout;
        sem->timer.data = ctx;
        sem->timer.log = r->connection->log;

        ngx_add_timer(&sem->timer, scf->timeout);
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: semantic embedding of %uz bytes, wait:%ui",
                   sem->text.len, wait);

    return NGX_OK;
}


/* a JSON string's inside; the text is UTF-8 already (the parser saw to it) */

static u_char *
ngx_llm_cache_semantic_escape(u_char *dst, ngx_str_t *src)
{
    u_char  *s, *end;

    static u_char  hex[] = "0123456789abcdef";

    for (s = src->data, end = s + src->len; s < end; s++) {

        if (*s == '"' || *s == '\\') {
            *dst++ = '\\';
            *dst++ = *s;

        } else if (*s < 0x20) {
            dst = ngx_cpymem(dst, "\\u00", 4);
            *dst++ = hex[*s >> 4];
            *dst++ = hex[*s & 0xf];

        } else {
            *dst++ = *s;
        }
    }

    return dst;
}


ngx_uint_t
ngx_llm_cache_semantic_is_embed(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx)
{
    return ctx->sem->embed_sr == r;
}


ngx_int_t
ngx_llm_cache_semantic_header_filter(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx)
{
    ctx->sem->embed_status = r->headers_out.status;

    return NGX_OK;
}


ngx_int_t
ngx_llm_cache_semantic_body_filter(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_chain_t *in)
{
    u_char                   *p;
    size_t                    size, want;
    ngx_chain_t              *cl;
    ngx_llm_cache_sem_ctx_t  *sem;

    sem = ctx->sem;

    for (cl = in; cl; cl = cl->next) {

        if (!ngx_buf_in_memory(cl->buf)) {
            if (cl->buf->in_file) {
                sem->too_big = 1;
                cl->buf->file_pos = cl->buf->file_last;
            }

            continue;
        }

        size = cl->buf->last - cl->buf->pos;

        if (size && !sem->too_big) {

            if (sem->reply_len + size > NGX_LLM_CACHE_SEM_MAX_REPLY) {
                sem->too_big = 1;

            } else if (sem->reply_len + size > sem->reply_size) {
                want = ngx_max(2 * sem->reply_size,
                               ngx_max(sem->reply_len + size, 16384));
                want = ngx_min(want, NGX_LLM_CACHE_SEM_MAX_REPLY);

                p = ngx_pnalloc(ctx->request->pool, want);
                if (p == NULL) {
                    return NGX_ERROR;
                }

                if (sem->reply_len) {
                    ngx_memcpy(p, sem->reply, sem->reply_len);
                }

                sem->reply = p;
                sem->reply_size = want;
            }

            if (!sem->too_big) {
                ngx_memcpy(sem->reply + sem->reply_len, cl->buf->pos, size);
                sem->reply_len += size;
            }
        }

        /* consumed, so that proxy's buffers are reused */
        cl->buf->pos = cl->buf->last;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_semantic_embed_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_str_t                       reason;
    ngx_http_request_t             *r;
    ngx_llm_cache_sem_ctx_t        *sem;
    ngx_llm_cache_loc_conf_t       *lcf;

    r = ctx->request;
    sem = ctx->sem;

    if (!sem->embedding) {
        return rc;
    }

    sem->embedding = 0;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ngx_log_debug4(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: semantic embedding done rc:%i status:%ui "
                   "%uz bytes in %M ms", rc, sem->embed_status,
                   sem->reply_len, ngx_current_msec - sem->embed_start);

    ngx_str_null(&reason);

    if (sem->embed_status != NGX_HTTP_OK) {
        reason.data = ngx_pnalloc(r->pool, sizeof("the embedder answered ")
                                           + NGX_INT_T_LEN);
        if (reason.data) {
            reason.len = ngx_sprintf(reason.data, "the embedder answered %ui",
                                     sem->embed_status)
                         - reason.data;
        }

    } else if (rc != NGX_OK && rc != NGX_DONE) {
        ngx_str_set(&reason, "the embedding subrequest failed");

    } else if (sem->too_big) {
        ngx_str_set(&reason, "the embedder's reply is over 1m");

    } else {
        switch (ngx_llm_cache_sem_parse_embedding(r->pool, sem->reply,
                                                  sem->reply_len,
                                                  lcf->semantic.dimensions,
                                                  &sem->vec, &reason))
        {
        case NGX_OK:
            if (ngx_llm_cache_sem_signature_weights(&sem->vec, sem->sig,
                                                    sem->weights)
                != NGX_OK)
            {
                ngx_str_set(&reason, "no memory for the signature");
                break;
            }

            sem->embedded = 1;
            break;

        case NGX_DECLINED:
            break;

        default:
            ngx_str_set(&reason, "no memory for the vector");
            break;
        }
    }

    if (!sem->embedded) {
        /* nothing is indexed, the search (if it waits) is a miss */
        sem->failed = 1;
        ngx_llm_cache_semantic_log(r->connection->log, &reason);
    }

    if (sem->waiting) {
        /* the request goes on, once this subrequest is through */

        sem->waiting = 0;

        if (sem->timer.timer_set) {
            ngx_del_timer(&sem->timer);
        }

        r->write_event_handler = ngx_llm_cache_semantic_resume;
        (void) ngx_http_post_request(r, NULL);

        return rc;
    }

    /* it ran beside the provider: the answer may be stored already */

    if (sem->embedded && ctx->store_result == NGX_LLM_CACHE_STORED) {
        ngx_llm_cache_semantic_index(ctx);
    }

    return rc;
}


static void
ngx_llm_cache_semantic_timeout(ngx_event_t *ev)
{
    ngx_llm_cache_ctx_t  *ctx = ev->data;

    ngx_str_t  reason;

    ctx->sem->waiting = 0;

    ngx_str_set(&reason, "no embedding within llm_cache_semantic_timeout");
    ngx_llm_cache_semantic_log(ev->log, &reason);

    /* a late answer is still indexed with the provider's */
    ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
}


static void
ngx_llm_cache_semantic_resume(ngx_http_request_t *r)
{
    ngx_str_t                       key;
    ngx_uint_t                      i;
    const char                     *argv[1 + NGX_LLM_CACHE_SEM_CANDIDATES];
    size_t                          argvlen[1 + NGX_LLM_CACHE_SEM_CANDIDATES];
    ngx_llm_cache_ctx_t            *ctx;
    ngx_llm_cache_sem_ctx_t        *sem;
    ngx_llm_cache_loc_conf_t       *lcf;
    ngx_llm_cache_sem_member_t      m;

    r->write_event_handler = ngx_http_request_empty_handler;

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);
    sem = ctx->sem;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (!sem->embedded) {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
        return;
    }

    sem->ncand = ngx_llm_cache_sem_candidates_weighted(sem->sig,
                     sem->weights, sem->members, sem->nmembers,
                     ngx_llm_cache_sem_max_hamming(
                                 (double) lcf->semantic.threshold / 10000),
                     sem->cand, NGX_LLM_CACHE_SEM_CANDIDATES);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: semantic candidates %ui of %ui",
                   sem->ncand, sem->nmembers);

    if (sem->ncand == 0) {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_MISS);
        return;
    }

    argv[0] = "MGET";
    argvlen[0] = 4;

    for (i = 0; i < sem->ncand; i++) {
        if (ngx_llm_cache_sem_member_decode(sem->members[sem->cand[i]].data,
                                            sem->members[sem->cand[i]].len,
                                            &m)
            != NGX_OK)
        {
            ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
            return;
        }

        if (ngx_llm_cache_semantic_vector_key(r->pool, sem, m.id, &key)
            != NGX_OK)
        {
            ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
            return;
        }

        argv[1 + i] = (const char *) key.data;
        argvlen[1 + i] = key.len;
    }

    sem->op = ngx_llm_cache_redis_command(lcf->redis, "semantic look-up "
                                          "failed", 1 + sem->ncand, argv,
                                          argvlen, lcf->redis_timeout,
                                          ngx_llm_cache_semantic_vectors,
                                          ctx, r->connection->log);
    if (sem->op == NULL) {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
    }
}


/* the candidates' vectors: exact cosine decides, then the guards */

static void
ngx_llm_cache_semantic_vectors(void *data, ngx_int_t rc, void *reply)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    double                          t, cos, best;
    ngx_str_t                       key, *member;
    ngx_uint_t                      i, guard, refused;
    redisReply                     *rr, *el;
    ngx_http_request_t             *r;
    ngx_llm_cache_sem_ctx_t        *sem;
    ngx_llm_cache_loc_conf_t       *lcf;
    ngx_llm_cache_sem_member_t      m;
    ngx_llm_cache_sem_vector_t      vec;

    r = ctx->request;
    sem = ctx->sem;
    rr = reply;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    sem->op = NULL;

    if (rc != NGX_OK || rr == NULL || rr->type != REDIS_REPLY_ARRAY
        || rr->elements != sem->ncand)
    {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
        return;
    }

    t = (double) lcf->semantic.threshold / 10000;
    best = -2;
    refused = 0;
    member = NULL;

    for (i = 0; i < sem->ncand; i++) {
        el = rr->element[i];

        if (el->type != REDIS_REPLY_STRING
            || ngx_llm_cache_sem_entry_decode(r->pool, (u_char *) el->str,
                                              el->len, sem->vec.dims, &key,
                                              &vec)
               != NGX_OK)
        {
            /* expired, or of another embedder's dimension */
            ngx_llm_cache_semantic_forget(ctx, &sem->members[sem->cand[i]]);
            continue;
        }

        cos = ngx_llm_cache_sem_cosine(sem->vec.v, vec.v, vec.dims);

        if (!sem->has_similarity || cos > sem->similarity) {
            sem->similarity = cos;
            sem->has_similarity = 1;
        }

        if (cos < t) {
            continue;
        }

        (void) ngx_llm_cache_sem_member_decode(
                                         sem->members[sem->cand[i]].data,
                                         sem->members[sem->cand[i]].len, &m);

        guard = ngx_llm_cache_sem_guard_differ(sem->guard, m.guard,
                                               lcf->semantic.guards);
        if (guard) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                           "llm_cache: semantic candidate at %.4f refused "
                           "by guards 0x%xi", cos, guard);
            refused = 1;
            continue;
        }

        if (cos > best) {
            best = cos;
            member = &sem->members[sem->cand[i]];

            sem->hit_key.data = ngx_pstrdup(r->pool, &key);
            if (sem->hit_key.data == NULL) {
                ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
                return;
            }

            sem->hit_key.len = key.len;
        }
    }

    if (member == NULL) {
        ngx_llm_cache_semantic_miss(ctx, refused ? NGX_LLM_CACHE_SEM_GUARD
                                                 : NGX_LLM_CACHE_SEM_MISS);
        return;
    }

    sem->similarity = best;
    sem->hit_member = *member;

    if (lcf->semantic.mode == NGX_LLM_CACHE_SEMANTIC_SHADOW) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm_cache: semantic shadow hit at %.4f, from \"%V\"",
                      best, &sem->hit_key);

        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_SHADOW_HIT);
        return;
    }

    ctx->op = ngx_llm_cache_redis_get(lcf->redis, &sem->hit_key,
                                      lcf->redis_timeout,
                                      ngx_llm_cache_semantic_entry, ctx,
                                      r->connection->log);
    if (ctx->op == NULL) {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
    }
}


/* the exact entry that the nearest paraphrase was answered with */

static void
ngx_llm_cache_semantic_entry(void *data, ngx_int_t rc, ngx_str_t *value)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_connection_t         *c;
    ngx_http_request_t       *r;
    ngx_llm_cache_entry_t     e;
    ngx_llm_cache_sem_ctx_t  *sem;

    r = ctx->request;
    c = r->connection;
    sem = ctx->sem;

    ctx->op = NULL;

    if (rc == NGX_DECLINED) {
        /* purged or gone: its index entry goes too */
        ngx_llm_cache_semantic_forget(ctx, &sem->hit_member);
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_MISS);
        return;
    }

    if (rc != NGX_OK) {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_ERROR);
        return;
    }

    /* an expired one kept for llm_cache_use_stale answers no paraphrase */

    if (ngx_llm_cache_entry_parse(value->data, value->len, &e) != NGX_OK
        || (e.ttl && ngx_time() - e.created >= e.ttl))
    {
        ngx_llm_cache_semantic_miss(ctx, NGX_LLM_CACHE_SEM_MISS);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, c->log, 0,
                  "llm_cache: semantic hit at %.4f, from \"%V\"",
                  sem->similarity, &sem->hit_key);

    sem->status = NGX_LLM_CACHE_SEM_HIT;

    rc = ngx_llm_cache_send_decoded(r, ctx, &e,
                                    NGX_LLM_CACHE_STATUS_HIT_SEMANTIC);

    ngx_http_finalize_request(r, rc);
    ngx_http_run_posted_requests(c);
}


/* no paraphrase answers: on with the exact layer's miss */

static void
ngx_llm_cache_semantic_miss(ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_sem_status_e status)
{
    ctx->sem->status = status;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, ctx->request->connection->log, 0,
                   "llm_cache: semantic %V",
                   &ngx_llm_cache_semantic_status_names[status]);

    ngx_llm_cache_lookup_done(ctx, NGX_DECLINED, NULL);
}


static void
ngx_llm_cache_semantic_forget(ngx_llm_cache_ctx_t *ctx, ngx_str_t *member)
{
    ngx_str_t                    key;
    const char                  *argv[3];
    size_t                       argvlen[3];
    ngx_llm_cache_sem_ctx_t     *sem;
    ngx_llm_cache_loc_conf_t    *lcf;
    ngx_llm_cache_sem_member_t   m;

    sem = ctx->sem;
    lcf = ngx_http_get_module_loc_conf(ctx->request, ngx_llm_cache_module);

    if (ngx_llm_cache_sem_member_decode(member->data, member->len, &m)
        != NGX_OK)
    {
        return;
    }

    /* the index entry, and its vector if it is still there */

    argv[0] = "ZREM";
    argvlen[0] = 4;
    argv[1] = (const char *) sem->index.data;
    argvlen[1] = sem->index.len;
    argv[2] = (const char *) member->data;
    argvlen[2] = member->len;

    (void) ngx_llm_cache_redis_command(lcf->redis, "semantic clean-up "
                                       "failed", 3, argv, argvlen, 0, NULL,
                                       NULL, ctx->request->connection->log);

    if (ngx_llm_cache_semantic_vector_key(ctx->request->pool, sem, m.id,
                                          &key)
        != NGX_OK)
    {
        return;
    }

    argv[0] = "UNLINK";
    argvlen[0] = 6;
    argv[1] = (const char *) key.data;
    argvlen[1] = key.len;

    (void) ngx_llm_cache_redis_command(lcf->redis, "semantic clean-up "
                                       "failed", 2, argv, argvlen, 0, NULL,
                                       NULL, ctx->request->connection->log);
}


/*
 * To the provider with a capture: the vector, if the search did not
 * get one, is asked for beside it, for the index
 */

void
ngx_llm_cache_semantic_passed(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx)
{
    ngx_llm_cache_sem_ctx_t  *sem;

    sem = ctx->sem;

    if (!sem->eligible || sem->embedded || sem->embedding || sem->failed
        || sem->status == NGX_LLM_CACHE_SEM_HIT)
    {
        return;
    }

    if (ngx_llm_cache_semantic_embed(r, ctx, 0) != NGX_OK) {
        sem->failed = 1;
    }
}


/* the exact entry is stored: index it, if its vector is there */

void
ngx_llm_cache_semantic_stored(ngx_llm_cache_ctx_t *ctx)
{
    if (ctx->sem->embedded) {
        ngx_llm_cache_semantic_index(ctx);
    }
}


static void
ngx_llm_cache_semantic_index(ngx_llm_cache_ctx_t *ctx)
{
    int64_t                         now, expiry;
    time_t                          ttl;
    ngx_str_t                       entry, key;
    ngx_time_t                     *tp;
    ngx_http_request_t             *r;
    ngx_llm_cache_sem_ctx_t        *sem;
    ngx_llm_cache_loc_conf_t       *lcf;
    ngx_llm_cache_sem_member_t      m;
    const char                     *argv[11];
    size_t                          argvlen[11];
    u_char                          member[NGX_LLM_CACHE_SEM_MEMBER_LEN];
    u_char                          ms[NGX_INT64_LEN], at[NGX_INT64_LEN];
    u_char                          now_ms[NGX_INT64_LEN];
    u_char                          max[NGX_INT_T_LEN];

    sem = ctx->sem;
    r = ctx->request;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (sem->indexed || !sem->eligible) {
        return;
    }

    sem->indexed = 1;

    ttl = ctx->stored_ttl;

    if (lcf->semantic.ttl && lcf->semantic.ttl < ttl) {
        ttl = lcf->semantic.ttl;
    }

    if (RAND_bytes(m.id, NGX_LLM_CACHE_SEM_ID_BYTES) != 1) {
        return;
    }

    ngx_memcpy(m.sig, sem->sig, NGX_LLM_CACHE_SEM_SIG_BYTES);
    ngx_memcpy(m.guard, sem->guard, NGX_LLM_CACHE_SEM_GUARD_BYTES);

    ngx_llm_cache_sem_member_encode(&m, member);

    if (ngx_llm_cache_sem_entry_encode(r->pool, &sem->vec, &ctx->key, &entry)
        != NGX_OK)
    {
        return;
    }

    if (ngx_llm_cache_semantic_vector_key(r->pool, sem, m.id, &key)
        != NGX_OK)
    {
        return;
    }

    tp = ngx_timeofday();
    now = (int64_t) tp->sec * 1000 + tp->msec;
    expiry = now + (int64_t) ttl * 1000;

    /* EVAL 2 <entry> <index> <value> <px> <expiry> <member> <now> <max> */

    argv[0] = "EVAL";
    argv[1] = NGX_LLM_CACHE_SEM_INDEX;
    argv[2] = "2";
    argv[3] = (const char *) key.data;
    argv[4] = (const char *) sem->index.data;
    argv[5] = (const char *) entry.data;
    argv[6] = (const char *) ms;
    argv[7] = (const char *) at;
    argv[8] = (const char *) member;
    argv[9] = (const char *) now_ms;
    argv[10] = (const char *) max;

    argvlen[0] = 4;
    argvlen[1] = sizeof(NGX_LLM_CACHE_SEM_INDEX) - 1;
    argvlen[2] = 1;

    argvlen[3] = key.len;
    argvlen[4] = sem->index.len;
    argvlen[5] = entry.len;
    argvlen[6] = ngx_sprintf(ms, "%L", (int64_t) ttl * 1000) - ms;
    argvlen[7] = ngx_sprintf(at, "%L", expiry) - at;
    argvlen[8] = NGX_LLM_CACHE_SEM_MEMBER_LEN;
    argvlen[9] = ngx_sprintf(now_ms, "%L", now) - now_ms;
    argvlen[10] = ngx_sprintf(max, "%ui", lcf->semantic.max_entries) - max;

    (void) ngx_llm_cache_redis_command(lcf->redis, "semantic store failed",
                                       11, argv, argvlen, 0, NULL, NULL,
                                       r->connection->log);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: semantic index \"%V\" ttl:%T",
                   &sem->index, ttl);
}


/* <prefix>v2:<ns>:<model>:s{<pid>}:e:<id>, the vector of an index member */

static ngx_int_t
ngx_llm_cache_semantic_vector_key(ngx_pool_t *pool,
    ngx_llm_cache_sem_ctx_t *sem, u_char *id, ngx_str_t *key)
{
    u_char  *p;

    p = ngx_pnalloc(pool, sem->base.len + 2 + 2 * NGX_LLM_CACHE_SEM_ID_BYTES);
    if (p == NULL) {
        return NGX_ERROR;
    }

    key->data = p;

    p = ngx_cpymem(p, sem->base.data, sem->base.len);
    p = ngx_cpymem(p, "e:", 2);
    p = ngx_hex_dump(p, id, NGX_LLM_CACHE_SEM_ID_BYTES);

    key->len = p - key->data;

    return NGX_OK;
}


void
ngx_llm_cache_semantic_cleanup(ngx_llm_cache_ctx_t *ctx)
{
    ngx_llm_cache_sem_ctx_t  *sem;

    sem = ctx->sem;

    if (sem->timer.timer_set) {
        ngx_del_timer(&sem->timer);
    }

    if (sem->op) {
        ngx_llm_cache_redis_cancel(sem->op);
        sem->op = NULL;
    }
}


ngx_str_t *
ngx_llm_cache_semantic_status_name(ngx_llm_cache_ctx_t *ctx)
{
    if (ctx->sem == NULL) {
        return &ngx_llm_cache_semantic_status_names[0];
    }

    return &ngx_llm_cache_semantic_status_names[ctx->sem->status];
}


ngx_uint_t
ngx_llm_cache_semantic_outcome(ngx_llm_cache_ctx_t *ctx)
{
    return ctx->sem ? ctx->sem->status : 0;
}


/* "0.9731"; 0 bytes if nothing was compared */

ngx_int_t
ngx_llm_cache_semantic_similarity(ngx_llm_cache_ctx_t *ctx, u_char *buf)
{
    double  s;

    if (ctx->sem == NULL || !ctx->sem->has_similarity) {
        return 0;
    }

    s = ctx->sem->similarity;

    if (s < 0) {
        return ngx_sprintf(buf, "-%.4f", -s) - buf;
    }

    return ngx_sprintf(buf, "%.4f", s) - buf;
}


/* one line per interval, as the Redis failures are logged */

static void
ngx_llm_cache_semantic_log(ngx_log_t *log, ngx_str_t *reason)
{
    static time_t      logged;
    static ngx_uint_t  suppressed;

    if (ngx_time() - logged < NGX_LLM_CACHE_SEM_LOG_INTERVAL) {
        suppressed++;
        return;
    }

    logged = ngx_time();

    ngx_log_error(NGX_LOG_WARN, log, 0,
                  "llm_cache: semantic layer not used: %V (%ui more "
                  "suppressed), the exact cache answers", reason, suppressed);

    suppressed = 0;
}


/* a similarity, not a distance: 0.95, not 0.05 (a mistake others allow) */

char *
ngx_llm_cache_semantic_threshold_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_llm_cache_loc_conf_t *lcf = conf;

    ngx_int_t   n;
    ngx_str_t  *value;

    if (lcf->semantic.threshold != NGX_CONF_UNSET_UINT) {
        return "is duplicate";
    }

    value = cf->args->elts;

    /* fixed point, 4 decimals: "0.95", "0.9731", "1" */

    n = ngx_atofp(value[1].data, value[1].len, 4);

    if (n == NGX_ERROR || n < 5000 || n > 10000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_semantic_threshold\" must be a "
                           "cosine similarity from 0.5 to 1 with at most 4 "
                           "decimals, such as 0.95, not \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->semantic.threshold = n;

    return NGX_CONF_OK;
}


char *
ngx_llm_cache_semantic_merge(ngx_conf_t *cf, ngx_llm_cache_loc_conf_t *prev,
    ngx_llm_cache_loc_conf_t *conf)
{
    u_char                         *p;
    ngx_llm_cache_semantic_conf_t  *scf, *pscf;

    scf = &conf->semantic;
    pscf = &prev->semantic;

    ngx_conf_merge_uint_value(scf->mode, pscf->mode,
                              NGX_LLM_CACHE_SEMANTIC_OFF);
    ngx_conf_merge_str_value(scf->embed, pscf->embed, "");
    ngx_conf_merge_str_value(scf->model, pscf->model, "");
    ngx_conf_merge_uint_value(scf->dimensions, pscf->dimensions, 0);
    ngx_conf_merge_uint_value(scf->threshold, pscf->threshold, 9500);
    ngx_conf_merge_bitmask_value(scf->guards, pscf->guards,
                                 NGX_CONF_BITMASK_SET
                                 |NGX_LLM_CACHE_SEM_GUARD_NUMBERS
                                 |NGX_LLM_CACHE_SEM_GUARD_NEGATION);
    ngx_conf_merge_uint_value(scf->max_entries, pscf->max_entries, 1024);
    ngx_conf_merge_sec_value(scf->ttl, pscf->ttl, 0);
    ngx_conf_merge_size_value(scf->max_input, pscf->max_input, 2000);
    ngx_conf_merge_msec_value(scf->timeout, pscf->timeout, 500);

    if ((scf->guards & NGX_LLM_CACHE_SEM_GUARD_OFF)
        && (scf->guards & ~(NGX_CONF_BITMASK_SET|NGX_LLM_CACHE_SEM_GUARD_OFF)))
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_semantic_guard off\" cannot be "
                           "combined with guards");
        return NGX_CONF_ERROR;
    }

    if (scf->dimensions > NGX_LLM_CACHE_SEM_MAX_DIMS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_semantic_dimensions\" must be at "
                           "most %d", NGX_LLM_CACHE_SEM_MAX_DIMS);
        return NGX_CONF_ERROR;
    }

    if (scf->max_entries == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_semantic_max_entries\" must be more "
                           "than 0");
        return NGX_CONF_ERROR;
    }

    if (scf->mode == NGX_LLM_CACHE_SEMANTIC_OFF || conf->pass.len == 0) {
        return NGX_CONF_OK;
    }

    if (scf->embed.len == 0 || scf->embed.data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_semantic\" needs "
                           "\"llm_cache_semantic_embed\" naming the URI of "
                           "a location that proxies to an embeddings API");
        return NGX_CONF_ERROR;
    }

    if (scf->model.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_semantic\" needs "
                           "\"llm_cache_semantic_model\"");
        return NGX_CONF_ERROR;
    }

    /* the embedder's identity: another one makes other partitions */

    scf->identity.len = scf->embed.len + 1 + scf->model.len + 1
                        + NGX_INT_T_LEN + 1
                        + sizeof(NGX_LLM_CACHE_SEM_VERSION) - 1;
    scf->identity.data = ngx_pnalloc(cf->pool, scf->identity.len);
    if (scf->identity.data == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_sprintf(scf->identity.data, "%V|%V|%ui|%s", &scf->embed,
                    &scf->model, scf->dimensions, NGX_LLM_CACHE_SEM_VERSION);

    scf->identity.len = p - scf->identity.data;

    return NGX_CONF_OK;
}
