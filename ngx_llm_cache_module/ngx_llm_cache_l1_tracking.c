
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The L1 invalidation channel: Redis's server-assisted client-side
 * caching.  One worker of this nginx (the first to find the zone without
 * a live owner) holds one connection per L1 zone that runs
 *
 *     CLIENT ID
 *     CLIENT TRACKING on REDIRECT <its id> BCAST PREFIX <key prefix> ...
 *     SUBSCRIBE __redis__:invalidate
 *
 * and removes from the shared zone every key Redis names: a write from
 * any gateway (a store, a refresh, a purge's UNLINK, an expiry, an
 * eviction) reaches every gateway's L1 in one message.  A null message
 * (FLUSHDB, FLUSHALL) empties L1.
 *
 * BCAST, not the default tracking mode: the default makes Redis remember,
 * per tracked connection, every key that connection read, and only those
 * are invalidated; that would put tracking on the pool's data
 * connections (the ones that read), each with its own REDIRECT and
 * memory in Redis growing with the keys read.  With BCAST Redis keeps
 * only the prefixes and tells the subscriber of every write under them,
 * whoever read what: nothing changes on the data connections, and the
 * channel is one connection per nginx.
 *
 * While the channel is not subscribed (connecting, lost, Redis away) the
 * zone's "up" is off and L1 answers nothing (requests go to Redis as
 * usual); when it comes back L1 starts empty, since invalidations may
 * have been missed.  A PING every second finds a connection that went
 * silent.  If the owner exits, another worker takes over at its next
 * tick.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <hiredis/hiredis.h>

#include "ngx_llm_cache_module.h"
#include "ngx_llm_cache_l1.h"


#define NGX_LLM_CACHE_L1_TICK        250
#define NGX_LLM_CACHE_L1_RETRY       500
#define NGX_LLM_CACHE_L1_PING        1000
#define NGX_LLM_CACHE_L1_PING_WAIT   2000
#define NGX_LLM_CACHE_L1_PREFIXES    32

#define NGX_LLM_CACHE_L1_CHANNEL     "__redis__:invalidate"


static void ngx_llm_cache_l1_tick(ngx_event_t *ev);
static void ngx_llm_cache_l1_connect(ngx_llm_cache_l1_zone_t *z);
static void ngx_llm_cache_l1_setup_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *data);
static void ngx_llm_cache_l1_id_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *data);
static void ngx_llm_cache_l1_subscribe_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *data);
static void ngx_llm_cache_l1_ping_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *data);
static void ngx_llm_cache_l1_message(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *data);
static void ngx_llm_cache_l1_on_close(ngx_llm_cache_redis_link_t *lk,
    ngx_int_t status);
static void ngx_llm_cache_l1_lost(ngx_llm_cache_l1_zone_t *z,
    const char *why);


ngx_int_t
ngx_llm_cache_l1_init_worker(ngx_cycle_t *cycle, ngx_array_t *zones)
{
    ngx_uint_t                 i;
    ngx_llm_cache_l1_zone_t  **z;

    if (zones == NULL) {
        return NGX_OK;
    }

    z = zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        if (z[i]->redis == NULL) {
            /* used by no cached location */
            continue;
        }

        z[i]->log = cycle->log;
        z[i]->tick.handler = ngx_llm_cache_l1_tick;
        z[i]->tick.data = z[i];
        z[i]->tick.log = cycle->log;
        z[i]->tick.cancelable = 1;

        ngx_add_timer(&z[i]->tick, 1);
    }

    return NGX_OK;
}


void
ngx_llm_cache_l1_exit_worker(ngx_array_t *zones)
{
    ngx_uint_t                 i;
    ngx_llm_cache_l1_zone_t  **z;

    if (zones == NULL) {
        return;
    }

    z = zones->elts;

    for (i = 0; i < zones->nelts; i++) {
        if (z[i]->tick.timer_set) {
            ngx_del_timer(&z[i]->tick);
        }

        if (z[i]->sh == NULL || z[i]->sh->owner != ngx_pid) {
            continue;
        }

        if (z[i]->link) {
            /* on_close takes L1 down */
            ngx_llm_cache_redis_link_free(z[i]->link);

        } else {
            ngx_llm_cache_l1_flush(z[i], 0);
        }

        /* the next worker's tick takes it over */

        ngx_shmtx_lock(&z[i]->shpool->mutex);
        z[i]->sh->owner = 0;
        ngx_shmtx_unlock(&z[i]->shpool->mutex);
    }
}


/* the election, the reconnect and the keepalive PING */

static void
ngx_llm_cache_l1_tick(ngx_event_t *ev)
{
    ngx_llm_cache_l1_zone_t  *z = ev->data;

    ngx_pid_t               owner;
    ngx_llm_cache_l1_sh_t  *sh;

    sh = z->sh;

    if (ngx_exiting || ngx_quit || ngx_terminate) {
        return;
    }

    ngx_shmtx_lock(&z->shpool->mutex);

    owner = sh->owner;

    if (owner == 0
        || (owner != ngx_pid && kill(owner, 0) == -1 && ngx_errno == ESRCH))
    {
        /* nobody, or a worker that died without a word */
        sh->owner = ngx_pid;
        owner = ngx_pid;
        sh->up = 0;
    }

    ngx_shmtx_unlock(&z->shpool->mutex);

    if (owner == ngx_pid) {

        if (z->link == NULL) {
            if ((ngx_msec_int_t) (ngx_current_msec - z->retry_at) >= 0) {
                ngx_llm_cache_l1_connect(z);
            }

        } else if (z->link->ready) {

            if (z->ping_pending) {
                if (ngx_current_msec - z->ping_sent
                    > NGX_LLM_CACHE_L1_PING_WAIT)
                {
                    ngx_llm_cache_l1_lost(z, "PING not answered");
                    ngx_llm_cache_redis_link_free(z->link);
                }

            } else if (ngx_current_msec - z->ping_sent
                       >= NGX_LLM_CACHE_L1_PING)
            {
                if (ngx_llm_cache_redis_link_commandf(z->link,
                        ngx_llm_cache_l1_ping_reply, z, "PING")
                    == NGX_OK)
                {
                    z->ping_pending = 1;
                    z->ping_sent = ngx_current_msec;
                }
            }
        }
    }

    ngx_add_timer(&z->tick, NGX_LLM_CACHE_L1_TICK);
}


static void
ngx_llm_cache_l1_connect(ngx_llm_cache_l1_zone_t *z)
{
    ngx_llm_cache_redis_link_t  *lk;

    z->retry_at = ngx_current_msec + NGX_LLM_CACHE_L1_RETRY;

    lk = ngx_llm_cache_redis_open_link(z->redis,
                                       ngx_llm_cache_l1_setup_reply, z,
                                       z->log);
    if (lk == NULL) {
        ngx_llm_cache_l1_lost(z, "no address or out of memory");
        return;
    }

    if (lk->failed) {
        ngx_llm_cache_l1_lost(z, (char *) lk->errstr);
        ngx_llm_cache_redis_link_free(lk);
        return;
    }

    lk->data = z;
    lk->on_close = ngx_llm_cache_l1_on_close;
    lk->push = ngx_llm_cache_l1_message;

    z->link = lk;
    z->ping_pending = 0;
    z->ping_sent = ngx_current_msec;

    if (ngx_llm_cache_redis_link_commandf(lk, ngx_llm_cache_l1_id_reply, z,
                                          "CLIENT ID")
        != NGX_OK)
    {
        ngx_llm_cache_redis_link_free(lk);
    }
}


/* AUTH or SELECT */

static void
ngx_llm_cache_l1_setup_reply(ngx_llm_cache_redis_link_t *lk, void *reply,
    void *data)
{
    ngx_llm_cache_l1_zone_t  *z = data;

    redisReply  *rr = reply;

    if (rr && rr->type == REDIS_REPLY_ERROR) {
        ngx_llm_cache_l1_lost(z, "AUTH or SELECT refused");
        ngx_llm_cache_redis_link_free(lk);
    }
}


static void
ngx_llm_cache_l1_id_reply(ngx_llm_cache_redis_link_t *lk, void *reply,
    void *data)
{
    ngx_llm_cache_l1_zone_t  *z = data;

    u_char       id[NGX_INT64_LEN];
    int          argc;
    size_t       argvlen[6 + 2 * NGX_LLM_CACHE_L1_PREFIXES];
    ngx_str_t   *pfx;
    ngx_uint_t   i, j;
    redisReply  *rr = reply;
    const char  *argv[6 + 2 * NGX_LLM_CACHE_L1_PREFIXES];

    if (rr == NULL) {
        return;
    }

    if (rr->type != REDIS_REPLY_INTEGER) {
        ngx_llm_cache_l1_lost(z, rr->type == REDIS_REPLY_ERROR
                                 ? rr->str : "CLIENT ID: not an integer");
        ngx_llm_cache_redis_link_free(lk);
        return;
    }

    z->client_id = rr->integer;

    argv[0] = "CLIENT";
    argv[1] = "TRACKING";
    argv[2] = "on";
    argv[3] = "REDIRECT";
    argv[4] = (char *) id;
    argv[5] = "BCAST";

    argvlen[0] = 6;
    argvlen[1] = 8;
    argvlen[2] = 2;
    argvlen[3] = 8;
    argvlen[4] = ngx_sprintf(id, "%L", z->client_id) - id;
    argvlen[5] = 5;

    argc = 6;

    /*
     * Redis refuses overlapping prefixes: one that another starts with
     * is covered by it.  An empty prefix (no PREFIX at all) is every key.
     */

    pfx = z->prefixes.elts;

    for (i = 0; i < z->prefixes.nelts; i++) {

        if (pfx[i].len == 0) {
            argc = 6;
            break;
        }

        for (j = 0; j < z->prefixes.nelts; j++) {
            if (j != i
                && pfx[j].len < pfx[i].len
                && ngx_strncmp(pfx[j].data, pfx[i].data, pfx[j].len) == 0)
            {
                break;
            }
        }

        if (j < z->prefixes.nelts
            || argc >= 6 + 2 * NGX_LLM_CACHE_L1_PREFIXES)
        {
            continue;
        }

        argv[argc] = "PREFIX";
        argvlen[argc++] = 6;
        argv[argc] = (char *) pfx[i].data;
        argvlen[argc++] = pfx[i].len;
    }

    if (ngx_llm_cache_redis_link_command(lk, ngx_llm_cache_l1_setup_reply,
                                         z, argc, argv, argvlen)
        != NGX_OK
        || ngx_llm_cache_redis_link_commandf(lk,
               ngx_llm_cache_l1_subscribe_reply, z,
               "SUBSCRIBE " NGX_LLM_CACHE_L1_CHANNEL)
           != NGX_OK)
    {
        ngx_llm_cache_redis_link_free(lk);
    }
}


/* subscribed: from now on no invalidation is missed, L1 answers again */

static void
ngx_llm_cache_l1_subscribe_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *data)
{
    ngx_llm_cache_l1_zone_t  *z = data;

    redisReply  *rr = reply;

    if (rr == NULL) {
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY) {
        ngx_llm_cache_l1_lost(z, rr->type == REDIS_REPLY_ERROR
                                 ? rr->str : "SUBSCRIBE refused");
        ngx_llm_cache_redis_link_free(lk);
        return;
    }

    ngx_llm_cache_redis_link_ready(lk);

    ngx_llm_cache_l1_flush(z, 1);

    ngx_log_error(NGX_LOG_NOTICE, z->log, 0,
                  "llm_cache: L1 zone \"%V\" follows Redis \"%V\" "
                  "invalidations, client id %L",
                  &z->shm_zone->shm.name, ngx_llm_cache_redis_name(z->redis),
                  z->client_id);

    z->lost_logged = 0;
}


static void
ngx_llm_cache_l1_ping_reply(ngx_llm_cache_redis_link_t *lk, void *reply,
    void *data)
{
    ngx_llm_cache_l1_zone_t  *z = data;

    if (reply) {
        z->ping_pending = 0;
    }
}


/* ["message", "__redis__:invalidate", [key, ...] or nil] */

static void
ngx_llm_cache_l1_message(ngx_llm_cache_redis_link_t *lk, void *reply,
    void *data)
{
    ngx_llm_cache_l1_zone_t  *z = data;

    size_t       i;
    redisReply  *rr = reply, *keys;

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 3
        || rr->element[0]->type != REDIS_REPLY_STRING
        || ngx_strcmp(rr->element[0]->str, "message") != 0)
    {
        return;
    }

    keys = rr->element[2];

    if (keys->type == REDIS_REPLY_NIL) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, z->log, 0,
                       "llm_cache: l1 flushed by Redis");

        ngx_llm_cache_l1_flush(z, 1);
        return;
    }

    if (keys->type == REDIS_REPLY_STRING) {
        ngx_llm_cache_l1_remove(z, (u_char *) keys->str, keys->len);
        return;
    }

    if (keys->type != REDIS_REPLY_ARRAY) {
        return;
    }

    for (i = 0; i < keys->elements; i++) {
        if (keys->element[i]->type == REDIS_REPLY_STRING) {
            ngx_log_debug2(NGX_LOG_DEBUG_HTTP, z->log, 0,
                           "llm_cache: l1 invalidate \"%*s\"",
                           keys->element[i]->len, keys->element[i]->str);

            ngx_llm_cache_l1_remove(z, (u_char *) keys->element[i]->str,
                                    keys->element[i]->len);
        }
    }
}


static void
ngx_llm_cache_l1_on_close(ngx_llm_cache_redis_link_t *lk, ngx_int_t status)
{
    ngx_llm_cache_l1_zone_t  *z = lk->data;

    z->link = NULL;
    z->ping_pending = 0;

    if (status != NGX_OK) {
        ngx_llm_cache_l1_lost(z, (char *) lk->errstr);
    }

    ngx_llm_cache_l1_flush(z, 0);
}


/* once per outage */

static void
ngx_llm_cache_l1_lost(ngx_llm_cache_l1_zone_t *z, const char *why)
{
    if (z->sh->up) {
        ngx_llm_cache_l1_flush(z, 0);
    }

    if (z->lost_logged) {
        return;
    }

    z->lost_logged = 1;

    ngx_log_error(NGX_LOG_WARN, z->log, 0,
                  "llm_cache: L1 zone \"%V\" has no invalidation channel "
                  "to Redis \"%V\" (%s), L1 is off until it is back",
                  &z->shm_zone->shm.name, ngx_llm_cache_redis_name(z->redis),
                  why);
}
