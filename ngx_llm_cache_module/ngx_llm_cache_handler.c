
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

#include "ngx_llm_cache_module.h"


static void ngx_llm_cache_body_handler(ngx_http_request_t *r);
static void ngx_llm_cache_lookup(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_lookup_done(void *data, ngx_int_t rc,
    ngx_str_t *value);
static void ngx_llm_cache_lock(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_lock_done(void *data, ngx_int_t rc,
    ngx_str_t *value);
static void ngx_llm_cache_wait(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_wait_handler(ngx_event_t *ev);
static void ngx_llm_cache_cleanup(void *data);
static ngx_int_t ngx_llm_cache_send_entry(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_str_t *value);
static void ngx_llm_cache_pass(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_llm_cache_status_e status,
    ngx_uint_t capture);
static void ngx_llm_cache_set_status(ngx_llm_cache_ctx_t *ctx,
    ngx_llm_cache_status_e status);
static ngx_int_t ngx_llm_cache_subrequest_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
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
    ctx->captured_last = &ctx->captured;

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

    /* a subrequest into a cached location is proxied, never cached */

    if (r->method != NGX_HTTP_POST || !lcf->enable || r != r->main) {
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 0);
        return;
    }

    switch (ngx_http_test_predicates(r, lcf->bypass)) {

    case NGX_ERROR:
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;

    case NGX_DECLINED:
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_BYPASS, 0);
        return;

    default: /* NGX_OK */
        break;
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
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "llm_cache: lookup \"%V\"", &ctx->key);

    ctx->op = ngx_llm_cache_redis_get(lcf->redis, &ctx->key,
                                      lcf->redis_timeout,
                                      ngx_llm_cache_lookup_done, ctx,
                                      r->connection->log);

    if (ctx->op == NULL) {
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 0);
    }
}


/* called from the Redis connection's event handlers, not the request's */

static void
ngx_llm_cache_lookup_done(void *data, ngx_int_t rc, ngx_str_t *value)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_connection_t          *c;
    ngx_http_request_t        *r;
    ngx_llm_cache_loc_conf_t  *lcf;

    r = ctx->request;
    c = r->connection;
    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ctx->op = NULL;

    switch (rc) {

    case NGX_OK:
        rc = ngx_llm_cache_send_entry(r, ctx, value);

        if (rc == NGX_DECLINED) {
            /* refused entry: answer from the provider and replace it */
            ngx_log_error(NGX_LOG_ERR, c->log, 0,
                          "llm_cache: malformed entry under \"%V\", "
                          "replacing it", &ctx->key);
            ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 1);
            break;
        }

        ngx_http_finalize_request(r, rc);
        break;

    case NGX_DECLINED:
        if (lcf->lock) {
            ngx_llm_cache_lock(r, ctx);
            break;
        }

        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_MISS, 1);
        break;

    default:
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 0);
        break;
    }

    ngx_http_run_posted_requests(c);
}


/*
 * Miss coalescing: the first miss for a key takes "<key>:lock" in Redis
 * (SET NX PX, shared by every worker and gateway on that Redis) and goes
 * to the provider; the others wait on a timer and look again until the
 * entry is there, the lock is free to take, or llm_cache_lock_timeout.
 */

static void
ngx_llm_cache_lock(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    u_char                    *p;
    ngx_llm_cache_loc_conf_t  *lcf;

    static ngx_uint_t          serial;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (ctx->lock_key.data == NULL) {
        ctx->lock_key.len = ctx->key.len + sizeof(":lock") - 1;
        ctx->lock_key.data = ngx_pnalloc(r->pool, ctx->lock_key.len);
        if (ctx->lock_key.data == NULL) {
            goto failed;
        }

        p = ngx_cpymem(ctx->lock_key.data, ctx->key.data, ctx->key.len);
        ngx_memcpy(p, ":lock", sizeof(":lock") - 1);

        /* names the holder, so only it removes the lock */

        ctx->lock_token.data = ngx_pnalloc(r->pool, 3 * NGX_INT_T_LEN + 3);
        if (ctx->lock_token.data == NULL) {
            goto failed;
        }

        ctx->lock_token.len = ngx_sprintf(ctx->lock_token.data, "%P-%ui-%xi",
                                          ngx_pid, ++serial,
                                          (ngx_int_t) ngx_random())
                              - ctx->lock_token.data;
    }

    ctx->op = ngx_llm_cache_redis_lock(lcf->redis, &ctx->lock_key,
                                       &ctx->lock_token, lcf->lock_timeout,
                                       lcf->redis_timeout,
                                       ngx_llm_cache_lock_done, ctx,
                                       r->connection->log);
    if (ctx->op != NULL) {
        return;
    }

failed:

    /* no lock to be had: each miss goes on its own, as without the lock */

    ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_MISS, 1);
}


static void
ngx_llm_cache_lock_done(void *data, ngx_int_t rc, ngx_str_t *value)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ctx->op = NULL;

    switch (rc) {

    case NGX_OK:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "llm_cache: took lock \"%V\"", &ctx->lock_key);

        ctx->lock_held = 1;
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_MISS, 1);
        break;

    case NGX_DECLINED:
        ngx_llm_cache_wait(r, ctx);
        break;

    default:
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_ERROR, 0);
        break;
    }

    ngx_http_run_posted_requests(c);
}


static void
ngx_llm_cache_wait(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    ngx_msec_t                 delay;
    ngx_msec_int_t             left;
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    if (!ctx->waited) {
        ctx->waited = 1;
        ctx->wait_start = ngx_current_msec;
        ctx->wait_delay = NGX_LLM_CACHE_WAIT_MIN;
    }

    left = (ngx_msec_int_t) (ctx->wait_start + lcf->lock_timeout
                             - ngx_current_msec);

    if (left <= 0) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "llm_cache: waited llm_cache_lock_timeout for "
                      "another request's answer, going to the provider");
        ngx_llm_cache_pass(r, ctx, NGX_LLM_CACHE_STATUS_MISS, 1);
        return;
    }

    /* look often at first: most answers take a second or two */

    delay = ngx_min(ctx->wait_delay, (ngx_msec_t) left);
    ctx->wait_delay = ngx_min(ctx->wait_delay * 2, NGX_LLM_CACHE_WAIT_MAX);

    ctx->wait_timer.handler = ngx_llm_cache_wait_handler;
    ctx->wait_timer.data = ctx;
    ctx->wait_timer.log = r->connection->log;

    ngx_add_timer(&ctx->wait_timer, delay);
}


static void
ngx_llm_cache_wait_handler(ngx_event_t *ev)
{
    ngx_llm_cache_ctx_t  *ctx = ev->data;

    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ctx->request;
    c = r->connection;

    ngx_llm_cache_lookup(r, ctx);

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

    ngx_llm_cache_loc_conf_t  *lcf;

    if (ctx->op) {
        ngx_llm_cache_redis_cancel(ctx->op);
        ctx->op = NULL;
    }

    if (ctx->wait_timer.timer_set) {
        ngx_del_timer(&ctx->wait_timer);
    }

    if (ctx->lock_held) {
        /* nothing was stored: let a waiter take over at once */
        ctx->lock_held = 0;

        lcf = ngx_http_get_module_loc_conf(ctx->request,
                                           ngx_llm_cache_module);
        ngx_llm_cache_redis_unlock(lcf->redis, &ctx->lock_key,
                                   &ctx->lock_token);
    }
}


/* a hit: the stored status, content type and body, with Age */

static ngx_int_t
ngx_llm_cache_send_entry(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx,
    ngx_str_t *value)
{
    time_t            created;
    ngx_int_t         rc;
    ngx_str_t         content_type, body;
    ngx_buf_t        *b;
    ngx_uint_t        status;
    ngx_chain_t       out;
    ngx_table_elt_t  *h;

    if (ngx_llm_cache_entry_decode(value->data, value->len, &status,
                                   &content_type, &created, &body)
        != NGX_OK)
    {
        return NGX_DECLINED;
    }

    ngx_llm_cache_set_status(ctx, NGX_LLM_CACHE_STATUS_HIT);
    ctx->age = ngx_max(ngx_time() - created, 0);
    ctx->has_age = 1;

    r->headers_out.status = status;
    r->headers_out.content_length_n = body.len;

    r->headers_out.content_type.data = ngx_pstrdup(r->pool, &content_type);
    if (r->headers_out.content_type.data == NULL && content_type.len) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    r->headers_out.content_type.len = content_type.len;
    r->headers_out.content_type_len = content_type.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->value.data = ngx_pnalloc(r->pool, NGX_TIME_T_LEN);
    if (h->value.data == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Age");
    h->value.len = ngx_sprintf(h->value.data, "%T", ctx->age)
                   - h->value.data;

    if (ngx_llm_cache_set_status_header(r, ctx) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    if (body.len == 0) {
        return ngx_http_send_special(r, NGX_HTTP_LAST);
    }

    /* the reply buffer belongs to hiredis and is gone after this call */

    b = ngx_create_temp_buf(r->pool, body.len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->pos, body.data, body.len);
    b->last_buf = 1;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
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
    ctx->capture = capture;

    if (capture) {
        /* the body filter copies memory buffers, never file ones */
        sr->filter_need_in_memory = 1;
    }

    r->write_event_handler = ngx_http_request_empty_handler;

    return;

failed:

    ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
}


static ngx_int_t
ngx_llm_cache_subrequest_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "llm_cache: provider subrequest done rc:%i complete:%ud",
                   rc, ctx->provider_complete);

    ctx->provider_done = 1;
    sr->parent->write_event_handler = ngx_llm_cache_finish;

    return rc;
}


/* the parent ends the response the subrequest streamed */

static void
ngx_llm_cache_finish(ngx_http_request_t *r)
{
    ngx_llm_cache_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_llm_cache_module);

    if (ctx == NULL || !ctx->provider_done) {
        return;
    }

    if (!r->header_sent) {
        ngx_http_finalize_request(r, NGX_HTTP_BAD_GATEWAY);
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
