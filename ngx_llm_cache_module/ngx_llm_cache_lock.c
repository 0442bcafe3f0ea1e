
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Miss coalescing (llm_cache_lock): the first miss for a key takes
 * "<key>:lock" in Redis ("{<key>}:lock" on Redis Cluster; SET NX PX,
 * shared by every worker and gateway on that Redis) and goes to the
 * provider; the others wait on a timer and look again until the entry is
 * there, the lock is free to take, or llm_cache_lock_timeout.
 *
 * The look-up and the lock are two commands, so a leader may store and
 * unlock between a miss and its SET NX: the one that takes the lock looks
 * up the entry once more before it goes to the provider.
 *
 * Every outcome goes back to the handler as a look-up's does, through
 * ngx_llm_cache_lookup_done(): the entry, a miss (with ctx->lock_held
 * when this request is the leader) or an error.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "ngx_llm_cache_module.h"


#define NGX_LLM_CACHE_LOCK_TOKEN_BYTES  16


static ngx_int_t ngx_llm_cache_lock_init(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_lock_done(void *data, ngx_int_t rc,
    ngx_str_t *value);
static void ngx_llm_cache_lock_lookup(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_lock_wait(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
static void ngx_llm_cache_lock_wait_handler(ngx_event_t *ev);


/*
 * After a miss: NGX_OK when the lock is asked for (the outcome comes
 * through ngx_llm_cache_lookup_done()), NGX_DECLINED when the request goes
 * to the provider now: it holds the lock already (its second look-up
 * missed), waited out llm_cache_lock_timeout, or there is no lock to be had
 */

ngx_int_t
ngx_llm_cache_lock_take(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    ngx_llm_cache_loc_conf_t  *lcf;

    if (ctx->lock_held || ctx->lock_given_up) {
        return NGX_DECLINED;
    }

    if (ctx->lock_key.data == NULL
        && ngx_llm_cache_lock_init(r, ctx) != NGX_OK)
    {
        return NGX_DECLINED;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ctx->op = ngx_llm_cache_redis_lock(lcf->redis, &ctx->lock_key,
                                       &ctx->lock_token, lcf->lock_timeout,
                                       lcf->redis_timeout,
                                       ngx_llm_cache_lock_done, ctx,
                                       r->connection->log);

    /* no lock to be had: each miss goes on its own, as without the lock */

    return ctx->op ? NGX_OK : NGX_DECLINED;
}


/*
 * The token names the holder, so that only it removes the lock: random,
 * because pids and clocks repeat across containers
 */

static ngx_int_t
ngx_llm_cache_lock_init(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    u_char                    *p;
    u_char                     rnd[NGX_LLM_CACHE_LOCK_TOKEN_BYTES];
    ngx_uint_t                 tag;
    ngx_llm_cache_loc_conf_t  *lcf;

    if (RAND_bytes(rnd, NGX_LLM_CACHE_LOCK_TOKEN_BYTES) != 1) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "llm_cache: RAND_bytes() failed (%ul), "
                      "going to the provider without the lock",
                      ERR_get_error());
        ERR_clear_error();
        return NGX_ERROR;
    }

    p = ngx_pnalloc(r->pool, ctx->key.len + sizeof("{}:lock") - 1
                             + 2 * NGX_LLM_CACHE_LOCK_TOKEN_BYTES);
    if (p == NULL) {
        return NGX_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    /*
     * On Redis Cluster, "{<key>}:lock" hashes to the entry's slot, so the
     * store's SET and the unlock behind it go to one node, in order.
     * A key with braces of its own keeps "<key>:lock" (its hash tag, if
     * any, is the lock's too); so do all keys on a single Redis.
     */

    tag = ngx_llm_cache_redis_is_cluster(lcf->redis)
          && ngx_strlchr(ctx->key.data, ctx->key.data + ctx->key.len, '{')
             == NULL
          && ngx_strlchr(ctx->key.data, ctx->key.data + ctx->key.len, '}')
             == NULL;

    ctx->lock_key.data = p;

    if (tag) {
        *p++ = '{';
    }

    p = ngx_cpymem(p, ctx->key.data, ctx->key.len);

    if (tag) {
        *p++ = '}';
    }

    p = ngx_cpymem(p, ":lock", sizeof(":lock") - 1);
    ctx->lock_key.len = p - ctx->lock_key.data;

    ctx->lock_token.data = p;
    ctx->lock_token.len = ngx_hex_dump(p, rnd, NGX_LLM_CACHE_LOCK_TOKEN_BYTES)
                          - p;

    return NGX_OK;
}


/* called from the Redis connection's event handlers, not the request's */

static void
ngx_llm_cache_lock_done(void *data, ngx_int_t rc, ngx_str_t *value)
{
    ngx_llm_cache_ctx_t  *ctx = data;

    ngx_http_request_t  *r;

    r = ctx->request;

    ctx->op = NULL;

    switch (rc) {

    case NGX_OK:
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "llm_cache: took lock \"%V\", looking again",
                       &ctx->lock_key);

        /* a leader may have stored and unlocked since the miss */

        ctx->lock_held = 1;
        ngx_llm_cache_lock_lookup(r, ctx);
        return;

    case NGX_DECLINED:
        ngx_llm_cache_lock_wait(r, ctx);
        return;

    case NGX_ABORT:
        /* refused (OOM, READONLY): a plain miss, as without the lock */
        ctx->lock_given_up = 1;
        ngx_llm_cache_lookup_done(ctx, NGX_DECLINED, NULL);
        return;

    default:
        ngx_llm_cache_lookup_done(ctx, NGX_ERROR, NULL);
        return;
    }
}


static void
ngx_llm_cache_lock_lookup(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
{
    ngx_llm_cache_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_llm_cache_module);

    ctx->op = ngx_llm_cache_redis_get(lcf->redis, &ctx->key,
                                      lcf->redis_timeout,
                                      ngx_llm_cache_lookup_done, ctx,
                                      r->connection->log);

    if (ctx->op == NULL) {
        ngx_llm_cache_lookup_done(ctx, NGX_ERROR, NULL);
    }
}


static void
ngx_llm_cache_lock_wait(ngx_http_request_t *r, ngx_llm_cache_ctx_t *ctx)
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

        ctx->lock_given_up = 1;
        ngx_llm_cache_lookup_done(ctx, NGX_DECLINED, NULL);
        return;
    }

    /* look often at first: most answers take a second or two */

    delay = ngx_min(ctx->wait_delay, (ngx_msec_t) left);
    ctx->wait_delay = ngx_min(ctx->wait_delay * 2, NGX_LLM_CACHE_WAIT_MAX);

    ctx->wait_timer.handler = ngx_llm_cache_lock_wait_handler;
    ctx->wait_timer.data = ctx;
    ctx->wait_timer.log = r->connection->log;

    ngx_add_timer(&ctx->wait_timer, delay);
}


static void
ngx_llm_cache_lock_wait_handler(ngx_event_t *ev)
{
    ngx_llm_cache_ctx_t  *ctx = ev->data;

    ngx_llm_cache_lock_lookup(ctx->request, ctx);
}


/* the leader is not going to store: let a waiter take over at once */

void
ngx_llm_cache_lock_release(ngx_llm_cache_ctx_t *ctx)
{
    ngx_llm_cache_loc_conf_t  *lcf;

    if (!ctx->lock_held) {
        return;
    }

    ctx->lock_held = 0;

    lcf = ngx_http_get_module_loc_conf(ctx->request, ngx_llm_cache_module);

    ngx_llm_cache_redis_unlock(lcf->redis, &ctx->lock_key, &ctx->lock_token);
}


/* the request goes away */

void
ngx_llm_cache_lock_cleanup(ngx_llm_cache_ctx_t *ctx)
{
    if (ctx->wait_timer.timer_set) {
        ngx_del_timer(&ctx->wait_timer);
    }

    ngx_llm_cache_lock_release(ctx);
}
