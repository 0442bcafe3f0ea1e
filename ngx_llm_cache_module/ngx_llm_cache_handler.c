
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The content handler: read the body, build the key, one GET on Redis,
 * then either answer from the entry or hand the request to the provider
 * through a subrequest to the llm_cache_pass location, whose response
 * streams to the client (see ngx_llm_cache_filter.c).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <zlib.h>

#include "ngx_llm_cache_module.h"


/* the size of the buffers an entry is inflated into, as gunzip_buffers */
#define NGX_LLM_CACHE_INFLATE_SIZE  32768


static void ngx_llm_cache_body_handler(ngx_http_request_t *r);
static void ngx_llm_cache_lookup(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_cleanup(void *data);
static ngx_uint_t ngx_llm_cache_expired(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_str_t *value, ngx_llm_cache_entry_t *e);
static ngx_table_elt_t *ngx_llm_cache_add_header(ngx_http_request_t *r,
    char *name, char *value);
static ngx_uint_t ngx_llm_cache_accepts_gzip(ngx_http_request_t *r);
static ngx_int_t ngx_llm_cache_send_inflated(ngx_http_request_t *r,
    ngx_llm_cache_entry_t *e);
static void ngx_llm_cache_pass(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_llm_cache_status_e status,
    ngx_uint_t capture);
static void ngx_llm_cache_set_status(ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_status_e status);
static ngx_int_t ngx_llm_cache_subrequest_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_uint_t ngx_llm_cache_error_page(ngx_http_request_t *r,
    ngx_int_t status);
static void ngx_llm_cache_finish(ngx_http_request_t *r);


ngx_int_t
ngx_llm_cache_handler(ngx_http_request_t *r)
{
    ngx_int_t             rc;
    ngx_pool_cleanup_t   *cln;
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_llm_cache_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_llm_cache_cleanup;
    cln->data = ctx;

    ctx->request = r;

    ngx_http_set_ctx(r, ctx, ngx_llm_cache_module);

    rc = ngx_http_read_client_request_body(r, ngx_llm_cache_body_handler);

    if (rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        return rc;
    }

    return NGX_DONE;
}


static void
ngx_llm_cache_body_handler(ngx_http_request_t *r)
{
    off_t                      size;
    ngx_int_t                  rc;
    ngx_str_t                  reason;
    ngx_chain_t               *cl;
    ngx_llm_cache_ctx_t       *ctx;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);
    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

    /* llm_cache_purge: the purge is the answer, whatever the method */

    if (lcf->purge && r == r->main) {
        rc = ngx_http_test_predicates(r, lcf->purge);

        if (rc == NGX_DECLINED) {
            rc = ngx_llm_cache_purge(r, ctx);

            if (rc != NGX_DONE) {
                ngx_http_finalize_request(r, rc);
            }

            return;
        }

        if (rc == NGX_ERROR) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }
    }

    /* a subrequest into a cached location is proxied, never cached */

    if (r->method != NGX_HTTP_POST || !lcf->enable || r != r->main) {
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 0);
        return;
    }

    size = 0;

    if (r->request_body) {
        for (cl = r->request_body->bufs; cl; cl = cl->next) {
            size += ngx_buf_size(cl->buf);
        }
    }

    if (size > (off_t) lcf->max_body_size) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: body of %O bytes is over %uz, not cached",
                       size, lcf->max_body_size);
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 0);
        return;
    }

    if (r->request_body == NULL) {
        ngx_str_set(&reason, "the request has no body");
        rc = NGX_LLM_CACHE_JSON_INVALID;

    } else {
        rc = ngx_llm_cache_build_key(r, ctx, &reason);
    }

    switch (rc) {

    case NGX_OK:

        /* after the key: a map of $llm_cache_model may decide them */

        if (ngx_llm_cache_controls(r, ctx) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        if (ctx->refresh) {
            /* as proxy_cache_bypass: no look-up, the answer is stored */
            ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 1);
            return;
        }

        ngx_llm_cache_lookup(r, ctx);
        return;

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm_cache: request not cached: %V", &reason);
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 0);
        return;

    case NGX_LLM_CACHE_JSON_INVALID:

        /* the provider's own error, in its API's shape, costs nothing */

        if (lcf->invalid_json == NGX_LLM_CACHE_INVALID_JSON_PASS) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "llm_cache: request not cached: invalid JSON in "
                          "request body: %V", &reason);
            ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 0);
            return;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm_cache: invalid JSON in request body: %V", &reason);
        ngx_http_finalize_request(r,
                                  ngx_llm_cache_send_invalid(r, ctx, &reason));
        return;

    default:
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }
}


static void
ngx_llm_cache_lookup(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    ngx_int_t                  rc;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: lookup \"%V\"", &ctx->key);

    /* L1 first (ngx_llm_cache_l1.c): a hit there costs no round trip */

    if (lcf->l1) {
        rc = ngx_llm_cache_l1_lookup(r, ctx);

        if (rc != NGX_DECLINED) {
            ngx_http_finalize_request(r, rc);
            return;
        }
    }

    ctx->op = ngx_llm_cache_redis_get(lcf->redis, &ctx->key,
                                      lcf->redis_timeout,
                                      ngx_llm_cache_lookup_done, ctx,
                                      r->connection->log);

    if (ctx->op == NULL) {
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 0);
    }
}


/*
 * Called from the Redis connection's event handlers, not the request's,
 * and with the outcome of the lock (ngx_llm_cache_lock.c)
 */

void
ngx_llm_cache_lookup_done(void *data, ngx_int_t rc, ngx_str_t *value)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_llm_cache_entry_t      e;
    ngx_llm_cache_loc_conf_t  *lcf;

    r = ctx->request;
    c = r->connection;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ctx->op = NULL;

    switch (rc) {

    case NGX_OK:

        /* decoded once, for the expiry and the answer */

        if (ngx_llm_cache_entry_parse(value->data, value->len, &e)
            != NGX_OK)
        {
            /* refused entry: answer from the provider and replace it */
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "llm_cache: malformed entry under \"%V\", "
                          "replacing it", &ctx->key);
            ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 1);
            break;
        }

        if (ngx_llm_cache_expired(r, ctx, value, &e)) {
            /*
             * kept by llm_cache_stale_ttl: the provider's answer replaces
             * it (the store releases a lock held), its failure gets it
             */
            ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_MISS, 1);
            break;
        }

        /* found by the look-up after taking the lock: no need of it */
        ngx_llm_cache_lock_release(ctx);

        ctx->tier = NGX_LLM_CACHE_TIER_REDIS;

        rc = ngx_llm_cache_send_decoded(r, ctx, &e,
                                        NGX_LLM_CACHE_STATUS_HIT);

        if (lcf->l1) {
            /* the reply is still there: L1 keeps the bytes Redis has */
            ngx_llm_cache_l1_fill(r, ctx, value);
        }

        ngx_http_finalize_request(r, rc);
        break;

    case NGX_DECLINED:

        /* a paraphrase's entry, before the provider; it comes back here */

        if (ctx->sem && ngx_llm_cache_semantic_search(r, ctx) == NGX_DONE) {
            break;
        }

        /* a miss not to be stored makes nobody wait for it */

        if (lcf->lock && !ctx->no_store
            && ngx_llm_cache_lock_take(r, ctx) == NGX_OK)
        {
            /* the entry, a miss with the lock, or an error comes here */
            break;
        }

        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_MISS, 1);
        break;

    default:
        ngx_llm_cache_lock_release(ctx);
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 0);
        break;
    }

    ngx_http_run_posted_requests(c);
}


/*
 * A request that waited on another's miss says so in its status, and
 * $llm_cache_lock_wait says for how long
 */

static void
ngx_llm_cache_set_status(ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_status_e status)
{
    if (ctx->waited) {
        if (!ctx->wait_over) {
            ctx->wait_over = 1;
            ctx->wait_time = ngx_current_msec - ctx->wait_start;
        }

        if (status == NGX_LLM_CACHE_STATUS_MISS) {
            status = NGX_LLM_CACHE_STATUS_MISS_WAITED;

        } else if (status == NGX_LLM_CACHE_STATUS_HIT) {
            status = NGX_LLM_CACHE_STATUS_HIT_WAITED;
        }
    }

    ctx->status = status;
}


static void
ngx_llm_cache_cleanup(void *data)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_llm_cache_metrics_request(ctx);

    if (ctx->op) {
        ngx_llm_cache_redis_cancel(ctx->op);
        ctx->op = NULL;
    }

    if (ctx->sem) {
        ngx_llm_cache_semantic_cleanup(ctx);
    }

    /* nothing was stored: let a waiter take over at once */
    ngx_llm_cache_lock_cleanup(ctx);
}


/*
 * An entry past the ttl it was stored with, that Redis keeps for
 * llm_cache_use_stale: held in ctx->stale (the reply buffer belongs to
 * hiredis) while use_stale is on.  Entries of LLMC1 and LLMC2 have no
 * ttl: fresh for as long as Redis keeps them.
 */

static ngx_uint_t
ngx_llm_cache_expired(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *value, ngx_llm_cache_entry_t *e)
{
    ngx_llm_cache_loc_conf_t  *lcf;

    if (e->ttl == 0 || ngx_time() - e->created < e->ttl) {
        return 0;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: entry expired, age:%T ttl:%T",
                   ngx_time() - e->created, e->ttl);

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (lcf->use_stale & NGX_HTTP_UPSTREAM_FT_OFF) {
        return 1;
    }

    ctx->stale.data = ngx_pstrdup(r->pool, value);
    if (ctx->stale.data == NULL) {
        return 1;
    }

    ctx->stale.len = value->len;

    return 1;
}


/* a hit: the stored status, content type and body, with Age */

ngx_int_t
ngx_llm_cache_send_entry(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *value, ngx_llm_cache_status_e cache_status)
{
    ngx_llm_cache_entry_t  e;

    if (ngx_llm_cache_entry_parse(value->data, value->len, &e) != NGX_OK) {
        return NGX_DECLINED;
    }

    return ngx_llm_cache_send_decoded(r, ctx, &e, cache_status);
}


/*
 * A compressed entry goes to a client that takes gzip as it is stored,
 * as gzip_static would send a .gz file; to another one inflated.
 */

ngx_int_t
ngx_llm_cache_send_decoded(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_entry_t *e, ngx_llm_cache_status_e cache_status)
{
    ngx_int_t         rc;
    ngx_buf_t        *b;
    ngx_uint_t        gzip;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    ctx->usage = e->usage;

    ngx_llm_cache_set_status(ctx, cache_status);
    ctx->age = ngx_max(ngx_time() - e->created, 0);
    ctx->has_age = 1;

    gzip = 0;

    if (e->encoding == NGX_LLM_CACHE_ENCODING_GZIP) {
        gzip = ngx_llm_cache_accepts_gzip(r);

        if (ngx_llm_cache_add_header(r, "Vary", "Accept-Encoding") == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (gzip) {
            h = ngx_llm_cache_add_header(r, "Content-Encoding", "gzip");
            if (h == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            r->headers_out.content_encoding = h;
        }
    }

    r->headers_out.status = e->status;
    r->headers_out.content_length_n = gzip ? e->body.len : e->length;

    r->headers_out.content_type.data = ngx_pstrdup(r->pool,
                                                   &e->content_type);
    if (r->headers_out.content_type.data == NULL && e->content_type.len) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type.len = e->content_type.len;
    r->headers_out.content_type_len = e->content_type.len;

    h = ngx_llm_cache_add_header(r, "Age", NULL);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.len = ngx_sprintf(h->value.data, "%T", ctx->age)
                   - h->value.data;

    if (ngx_llm_cache_set_status_header(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (e->body.len == 0) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    if (e->encoding == NGX_LLM_CACHE_ENCODING_GZIP && !gzip) {
        return ngx_llm_cache_send_inflated(r, e);
    }

    /*
     * the reply buffer belongs to the Redis layer and is gone after this
     * call, and filters (sub_filter, ssi) may keep pointers into what
     * they were given: a copy
     */

    b = ngx_create_temp_buf(r->pool, e->body.len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->pos, e->body.data, e->body.len);
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/*
 * Inflated into buffers of NGX_LLM_CACHE_INFLATE_SIZE, each passed on as
 * it is filled and used again once sent.  The entry was checked (its
 * CRC-32 and length) before the header went: an error here is one of a
 * forged entry, and the connection is closed, as for a cut answer.
 */

static ngx_int_t
ngx_llm_cache_send_inflated(ngx_http_request_t *r, ngx_llm_cache_entry_t *e)
{
    int           zrc;
    size_t        total;
    z_stream      zs;
    ngx_int_t     rc;
    ngx_buf_t    *b;
    ngx_chain_t  *cl, *free, *busy;

    ngx_memzero(&zs, sizeof(z_stream));

    if (inflateInit2(&zs, MAX_WBITS + 16) != Z_OK) {
        return NGX_ERROR;
    }

    zs.next_in = e->body.data;
    zs.avail_in = e->body.len;

    free = NULL;
    busy = NULL;
    total = 0;
    rc = NGX_OK;

    for ( ;; ) {
        cl = ngx_chain_get_free_buf(r->pool, &free);
        if (cl == NULL) {
            rc = NGX_ERROR;
            break;
        }

        b = cl->buf;

        if (b->start == NULL) {
            b->start = ngx_palloc(r->pool, NGX_LLM_CACHE_INFLATE_SIZE);
            if (b->start == NULL) {
                rc = NGX_ERROR;
                break;
            }

            b->end = b->start + NGX_LLM_CACHE_INFLATE_SIZE;
            b->tag = (ngx_buf_tag_t) &ngx_llm_cache_module;
            b->temporary = 1;
        }

        b->pos = b->start;
        b->last = b->start;
        b->flush = 0;

        zs.next_out = b->pos;
        zs.avail_out = b->end - b->start;

        zrc = inflate(&zs, Z_NO_FLUSH);

        b->last = zs.next_out;
        total += b->last - b->pos;

        if ((zrc != Z_OK && zrc != Z_STREAM_END)
            || (zrc == Z_OK && zs.avail_out != 0)
            || total > e->length
            || memchr(b->pos, '\0', b->last - b->pos) != NULL
            || (zrc == Z_STREAM_END
                && (total != e->length || zs.avail_in != 0)))
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "llm_cache: compressed entry does not inflate "
                          "as stored (%d), closing the connection", zrc);
            rc = NGX_ERROR;
            break;
        }

        if (zrc == Z_STREAM_END) {
            b->last_buf = 1;
            b->last_in_chain = 1;
        }

        rc = ngx_http_output_filter(r, cl);

        if (rc == NGX_ERROR) {
            break;
        }

        ngx_chain_update_chains(r->pool, &free, &busy, &cl,
                                (ngx_buf_tag_t) &ngx_llm_cache_module);

        if (zrc == Z_STREAM_END) {
            break;
        }
    }

    inflateEnd(&zs);

    return rc;
}


/*
 * Whether Accept-Encoding takes gzip (q > 0), by name or by "*", for
 * HTTP/1.1 and later as gzip_http_version's default
 */

static ngx_uint_t
ngx_llm_cache_accepts_gzip(ngx_http_request_t *r)
{
    u_char           *p, *end, *name;
    size_t            len;
    ngx_int_t         gzip, star, *q;
    ngx_uint_t        i, nonzero;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    if (r->http_version < NGX_HTTP_VERSION_11) {
        return 0;
    }

    gzip = -1;     /* not named */
    star = -1;

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (!ngx_llm_cache_header_is(&h[i].key, "Accept-Encoding")) {
            continue;
        }

        p = h[i].value.data;
        end = p + h[i].value.len;

        while (p < end) {

            /* a coding: token *( OWS ";" OWS name "=" value ) */

            while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            name = p;

            while (p < end && *p != ',' && *p != ';' && *p != ' '
                   && *p != '\t')
            {
                p++;
            }

            len = p - name;

            if (len == 4 && ngx_strncasecmp(name, (u_char *) "gzip", 4) == 0)
            {
                q = &gzip;

            } else if (len == 6
                       && ngx_strncasecmp(name, (u_char *) "x-gzip", 6) == 0)
            {
                q = &gzip;

            } else if (len == 1 && *name == '*') {
                q = &star;

            } else {
                q = NULL;
            }

            nonzero = 1;

            while (p < end && *p != ',') {
                if (*p != ';') {
                    p++;
                    continue;
                }

                for (p++; p < end && (*p == ' ' || *p == '\t'); p++) { }

                if (end - p < 2 || (*p != 'q' && *p != 'Q') || p[1] != '=') {
                    continue;
                }

                /* qvalue: "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ] */

                nonzero = 0;

                for (p += 2; p < end && *p != ',' && *p != ';'; p++) {
                    if (*p >= '1' && *p <= '9') {
                        nonzero = 1;
                    }
                }
            }

            if (q && len) {
                *q = nonzero;
            }
        }
    }

    if (gzip != -1) {
        return gzip;
    }

    return star == 1;
}


static ngx_table_elt_t *
ngx_llm_cache_add_header(ngx_http_request_t *r, char *name, char *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NULL;
    }

    h->hash = 1;
    h->key.data = (u_char *) name;
    h->key.len = ngx_strlen(name);
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    if (value) {
        h->value.data = (u_char *) value;
        h->value.len = ngx_strlen(value);

    } else {
        ngx_str_null(&h->value);
    }

    return h;
}


/*
 * To the provider: a subrequest to <llm_cache_pass><uri> that keeps the
 * method, body and headers; its response goes to the client as it comes
 * and, with capture, is stored by the body filter when complete.
 */

static void
ngx_llm_cache_pass(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_status_e status, ngx_uint_t capture)
{
    u_char                       *p;
    ngx_str_t                     uri;
    ngx_http_request_t           *sr;
    ngx_llm_cache_loc_conf_t     *lcf;
    ngx_http_post_subrequest_t   *psr;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ngx_llm_cache_set_status(ctx, status);

    uri.len = lcf->pass.len + r->uri.len;
    uri.data = ngx_pnalloc(r->pool, uri.len);
    if (uri.data == NULL) {
        goto failed;
    }

    p = ngx_cpymem(uri.data, lcf->pass.data, lcf->pass.len);
    ngx_memcpy(p, r->uri.data, r->uri.len);

    psr = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (psr == NULL) {
        goto failed;
    }

    psr->handler = ngx_llm_cache_subrequest_done;
    psr->data = ctx;

    if (ngx_http_subrequest(r, &uri, &r->args, &sr, psr, 0) != NGX_OK) {
        goto failed;
    }

    /* ngx_http_subrequest() makes it a GET; the body is shared */

    sr->method = r->method;
    sr->method_name = r->method_name;
    sr->header_only = r->header_only;

    ngx_http_set_ctx(sr, ctx, ngx_llm_cache_module);

    ctx->sr = sr;
    ctx->capture = capture && !ctx->no_store;

    if (ctx->capture) {
        /* the body filter copies memory buffers, never file ones */
        sr->filter_need_in_memory = 1;

        if (ctx->sem) {
            /* its vector, if the search did not get one, meanwhile */
            ngx_llm_cache_semantic_passed(r, ctx);
        }
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    return;

failed:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


/*
 * Called at each finalization of the provider subrequest, including the
 * ones that an error_page there turns into an internal redirect.
 */

static ngx_int_t
ngx_llm_cache_subrequest_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_http_request_t  *r;

    r = ctx->request;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "llm_cache: provider subrequest done rc:%i complete:%ud",
                   rc, ctx->provider_complete);

    if (!r->header_sent
        && (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE)
        && rc != NGX_HTTP_CLIENT_CLOSED_REQUEST
        && rc != NGX_HTTP_REQUEST_TIME_OUT
        && rc != NGX_HTTP_CLOSE
        && !sr->connection->error)
    {
        if (rc != NGX_ERROR && ngx_llm_cache_error_page(sr, rc)) {
            /* the provider location's own error_page: a failover */
            return rc;
        }

        /*
         * nothing has reached the client: the public location answers
         * the error, with its own error_page, as it would with proxy_pass
         */

        ctx->provider_error = (rc == NGX_ERROR) ? NGX_HTTP_BAD_GATEWAY : rc;
        rc = NGX_OK;

        /* unless the header filter refused the provider's own answer */

        if (ctx->stale_failure == 0) {
            ctx->stale_failure =
                (ctx->provider_error == NGX_HTTP_GATEWAY_TIME_OUT)
                ? NGX_HTTP_UPSTREAM_FT_TIMEOUT : NGX_HTTP_UPSTREAM_FT_ERROR;
        }
    }

    ctx->provider_done = 1;
    r->write_event_handler = ngx_llm_cache_finish;

    return rc;
}


/* whether an error_page of the request's location takes this status */

static ngx_uint_t
ngx_llm_cache_error_page(ngx_http_request_t *r, ngx_int_t status)
{
    ngx_uint_t                 i;
    ngx_http_err_page_t       *err_page;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    /* the conditions of ngx_http_special_response_handler() */

    if (r->error_page || clcf->error_pages == NULL || r->uri_changes == 0) {
        return 0;
    }

    err_page = clcf->error_pages->elts;

    for (i = 0; i < clcf->error_pages->nelts; i++) {
        if (err_page[i].status == status) {
            return 1;
        }
    }

    return 0;
}


/*
 * The provider subrequest's context, also after an error_page redirect
 * cleared it (as srcache does, through the post_subrequest data).
 */

ngx_llm_cache_ctx_t *
ngx_llm_cache_get_ctx(ngx_http_request_t *r)
{
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

    if (ctx != NULL || r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_llm_cache_subrequest_done)
    {
        return ctx;
    }

    ctx = r->post_subrequest->data;

    ngx_http_set_ctx(r, ctx, ngx_llm_cache_module);

    /* an answer from a failover is passed on, never stored */

    if (!ctx->redirected) {
        ctx->redirected = 1;

        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: provider subrequest redirected, "
                       "its answer is not stored");
    }

    ctx->capture = 0;

    return ctx;
}


/*
 * A named location reached from the provider location (error_page
 * = @backup) proxies r->uri as it is: give it the client's URI, without
 * the llm_cache_pass prefix, as proxy_pass's backup would see.
 */

ngx_int_t
ngx_llm_cache_rewrite_handler(ngx_http_request_t *r)
{
    ngx_llm_cache_ctx_t       *ctx;
    ngx_http_core_loc_conf_t  *clcf;

    if (r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_llm_cache_subrequest_done)
    {
        return NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(r, ngx_http_core_module);

    if (!clcf->named) {
        return NGX_DECLINED;
    }

    ctx = ngx_llm_cache_get_ctx(r);

    r->uri = ctx->request->uri;

    return NGX_DECLINED;
}


/* the parent ends the response the subrequest streamed */

static void
ngx_llm_cache_finish(ngx_http_request_t *r)
{
    ngx_int_t                  rc;
    ngx_llm_cache_ctx_t       *ctx;
    ngx_llm_cache_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

    if (ctx == NULL || !ctx->provider_done) {
        return;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (!r->header_sent && ctx->stale.len
        && (ctx->stale_failure & lcf->use_stale))
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm_cache: provider failed with %ui, answering the "
                      "stale entry", ctx->provider_error);

        rc = ngx_llm_cache_send_entry(r, ctx, &ctx->stale,
                                      NGX_LLM_CACHE_STATUS_STALE);

        ngx_http_finalize_request(r, rc == NGX_DECLINED
                                     ? NGX_HTTP_INTERNAL_SERVER_ERROR : rc);
        return;
    }

    if (!r->header_sent) {
        if (ngx_llm_cache_set_status_header(r, ctx) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
            return;
        }

        ngx_http_finalize_request(r, ctx->provider_error
                                     ? (ngx_int_t) ctx->provider_error
                                     : NGX_HTTP_BAD_GATEWAY);
        return;
    }

    if (!ctx->provider_complete) {
        /*
         * the provider cut the response: end the client's connection
         * without the last chunk, as proxy_pass does, so it can tell
         */
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm_cache: provider response is incomplete, "
                      "closing the client connection");
        ngx_http_finalize_request(r, NGX_ERROR);
        return;
    }

    ngx_http_finalize_request(r, ngx_http_send_special(r, NGX_HTTP_LAST));
}
