
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Redis Cluster: "llm_cache_redis cluster=host:port,host:port ...".
 *
 * The cluster= server has no connections of its own.  Each worker keeps
 * one ordinary server (pool, pipelining, timeouts, circuit breaker) per
 * node it has heard of: the seeds first, then the masters of the slot map
 * that CLUSTER SLOTS gives.  A command goes to the master of its key's
 * slot (CRC16 of the key, or of its hash tag {...}); a command without a
 * key to the first master, and the purge goes through every master in
 * turn (ngx_llm_cache_redis_master()).  Until the map is in, commands go
 * to a seed and its MOVED answers take them on.
 *
 * MOVED sends the command again to the node named (its op keeps a copy of
 * the command) and marks the map stale; ASK sends it there once, behind
 * ASKING on the same connection.  The map is asked for again, at most
 * every NGX_LLM_CACHE_CLUSTER_REFRESH ms, while it is stale or one of its
 * masters is not usable (a node failing may be a master failing over):
 * until a replica is promoted, the dead master's slots fail open as a
 * single Redis does, then the new map sends them to the new master.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>

#include "ngx_llm_cache_redis_cluster.h"


#define NGX_LLM_CACHE_CLUSTER_SLOTS      16384
#define NGX_LLM_CACHE_CLUSTER_REFRESH    250
#define NGX_LLM_CACHE_CLUSTER_TIMEOUT    1000
#define NGX_LLM_CACHE_CLUSTER_REDIRECTS  5

/* masters compared to tell a new map in the log */
#define NGX_LLM_CACHE_CLUSTER_MASTERS    64


typedef struct {
    u_char                         *host;      /* ip text */
    size_t                          len;
    int                             port;
} ngx_llm_cache_redis_cluster_seed_t;


struct ngx_llm_cache_redis_cluster_s {
    ngx_llm_cache_redis_server_t   *server;    /* the parameters */
    ngx_array_t                    *seeds;

    /* the worker's side */
    ngx_cycle_t                    *cycle;
    ngx_array_t                    *nodes;     /* every node heard of */
    ngx_array_t                    *masters;   /* the map's, in its order */
    ngx_llm_cache_redis_server_t  **slots;
    ngx_event_t                     timer;
    ngx_llm_cache_redis_op_t       *refresh;   /* CLUSTER SLOTS under way */
    ngx_llm_cache_redis_server_t   *asked;
    ngx_msec_t                      refreshed;
    ngx_uint_t                      next;
    unsigned                        stale:1;
    unsigned                        exiting:1;
};


static ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_cluster_node(
    ngx_llm_cache_redis_cluster_t *cl, u_char *host, size_t len, int port);
static ngx_uint_t ngx_llm_cache_redis_cluster_healthy(
    ngx_llm_cache_redis_cluster_t *cl);
static void ngx_llm_cache_redis_cluster_schedule(
    ngx_llm_cache_redis_cluster_t *cl);
static void ngx_llm_cache_redis_cluster_timer(ngx_event_t *ev);
static void ngx_llm_cache_redis_cluster_refresh(
    ngx_llm_cache_redis_cluster_t *cl);
static void ngx_llm_cache_redis_cluster_slots(void *data, ngx_int_t rc,
    void *reply);
static ngx_int_t ngx_llm_cache_redis_cluster_valid(redisReply *rr);


/* the seeds: "host:port,host:port", resolved here, once, as servers are */

ngx_llm_cache_redis_cluster_t *
ngx_llm_cache_redis_cluster_parse(ngx_conf_t *cf,
    ngx_llm_cache_redis_server_t *server, ngx_str_t *seeds)
{
    u_char                              *p, *last, *comma;
    ngx_url_t                            u;
    ngx_llm_cache_redis_cluster_t       *cl;
    ngx_llm_cache_redis_cluster_seed_t  *seed;

    cl = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_redis_cluster_t));
    if (cl == NULL) {
        return NULL;
    }

    cl->server = server;

    cl->seeds = ngx_array_create(cf->pool, 4,
                                 sizeof(ngx_llm_cache_redis_cluster_seed_t));
    if (cl->seeds == NULL) {
        return NULL;
    }

    p = seeds->data;
    last = seeds->data + seeds->len;

    while (p <= last) {
        comma = ngx_strlchr(p, last, ',');
        if (comma == NULL) {
            comma = last;
        }

        ngx_memzero(&u, sizeof(ngx_url_t));

        u.url.data = p;
        u.url.len = comma - p;
        u.default_port = 6379;

        if (u.url.len == 0
            || (u.url.len > 5
                && ngx_strncasecmp(p, (u_char *) "unix:", 5) == 0))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" cluster= wants "
                               "host:port seeds separated by commas, "
                               "not \"%V\"", seeds);
            return NULL;
        }

        if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
            if (u.err) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "%s in \"llm_cache_redis\" cluster seed "
                                   "\"%V\"", u.err, &u.url);
            }

            return NULL;
        }

        if (u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" cluster seed \"%V\" "
                               "has no usable address", &u.url);
            return NULL;
        }

        seed = ngx_array_push(cl->seeds);
        if (seed == NULL) {
            return NULL;
        }

        seed->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
        if (seed->host == NULL) {
            return NULL;
        }

        seed->len = ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                  seed->host, NGX_SOCKADDR_STRLEN, 0);
        seed->host[seed->len] = '\0';
        seed->port = u.port ? u.port : 6379;

        p = comma + 1;
    }

    return cl;
}


ngx_int_t
ngx_llm_cache_redis_cluster_init_worker(ngx_llm_cache_redis_cluster_t *cl,
    ngx_cycle_t *cycle)
{
    ngx_uint_t                           i;
    ngx_llm_cache_redis_cluster_seed_t  *seed;

    cl->cycle = cycle;

    cl->nodes = ngx_array_create(cycle->pool, 8,
                                 sizeof(ngx_llm_cache_redis_server_t *));
    cl->masters = ngx_array_create(cycle->pool, 8,
                                   sizeof(ngx_llm_cache_redis_server_t *));
    cl->slots = ngx_pcalloc(cycle->pool, NGX_LLM_CACHE_CLUSTER_SLOTS
                                 * sizeof(ngx_llm_cache_redis_server_t *));

    if (cl->nodes == NULL || cl->masters == NULL || cl->slots == NULL) {
        return NGX_ERROR;
    }

    cl->timer.handler = ngx_llm_cache_redis_cluster_timer;
    cl->timer.data = cl;
    cl->timer.log = cycle->log;
    cl->timer.cancelable = 1;

    /* the map, as soon as a seed's connection is set up */

    cl->stale = 1;
    cl->refreshed = ngx_current_msec - NGX_LLM_CACHE_CLUSTER_REFRESH;

    seed = cl->seeds->elts;

    for (i = 0; i < cl->seeds->nelts; i++) {
        if (ngx_llm_cache_redis_cluster_node(cl, seed[i].host, seed[i].len,
                                             seed[i].port)
            == NULL)
        {
            return NGX_ERROR;
        }
    }

    ngx_llm_cache_redis_cluster_schedule(cl);

    return NGX_OK;
}


void
ngx_llm_cache_redis_cluster_exit_worker(ngx_llm_cache_redis_cluster_t *cl)
{
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **node;

    cl->exiting = 1;

    if (cl->timer.timer_set) {
        ngx_del_timer(&cl->timer);
    }

    if (cl->nodes == NULL) {
        return;
    }

    node = cl->nodes->elts;

    for (i = 0; i < cl->nodes->nelts; i++) {
        ngx_llm_cache_redis_node_exit(node[i]);
    }
}


/* the node server at this address, made (and connecting) if new */

static ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_cluster_node(ngx_llm_cache_redis_cluster_t *cl,
    u_char *host, size_t len, int port)
{
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **node, *s;

    node = cl->nodes->elts;

    for (i = 0; i < cl->nodes->nelts; i++) {
        if (ngx_llm_cache_redis_node_is(node[i], host, len, port)) {
            return node[i];
        }
    }

    s = ngx_llm_cache_redis_node(cl->server, cl, host, len, port,
                                 cl->cycle);
    if (s == NULL) {
        return NULL;
    }

    node = ngx_array_push(cl->nodes);
    if (node == NULL) {
        return NULL;
    }

    *node = s;

    return s;
}


/* CRC16-CCITT (XModem) of the key, or of its hash tag, mod 16384 */

ngx_uint_t
ngx_llm_cache_redis_cluster_slot(u_char *key, size_t len)
{
    u_char      *open, *close, *last;
    uint16_t     crc;
    ngx_uint_t   i;

    last = key + len;

    open = ngx_strlchr(key, last, '{');

    if (open) {
        close = ngx_strlchr(open + 1, last, '}');

        if (close && close > open + 1) {
            key = open + 1;
            last = close;
        }
    }

    crc = 0;

    while (key < last) {
        crc ^= (uint16_t) (*key++ << 8);

        for (i = 0; i < 8; i++) {
            crc = (crc & 0x8000) ? (uint16_t) ((crc << 1) ^ 0x1021)
                                 : (uint16_t) (crc << 1);
        }
    }

    return crc & (NGX_LLM_CACHE_CLUSTER_SLOTS - 1);
}


ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_cluster_route(ngx_llm_cache_redis_cluster_t *cl,
    u_char *key, size_t len)
{
    ngx_llm_cache_redis_server_t  *s;

    s = cl->slots ? cl->slots[ngx_llm_cache_redis_cluster_slot(key, len)]
                  : NULL;

    if (s == NULL) {
        /* no map yet, or a slot no one serves: MOVED will tell */
        s = ngx_llm_cache_redis_cluster_master(cl, 0);
    }

    return s ? s : cl->server;
}


/* EVAL and EVALSHA by their first key, the others by their argv[1] */

ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_cluster_route_argv(ngx_llm_cache_redis_cluster_t *cl,
    int argc, const char **argv, const size_t *argvlen)
{
    ngx_int_t  numkeys;

    if (argc >= 3
        && ((argvlen[0] == 4
             && ngx_strncasecmp((u_char *) argv[0], (u_char *) "EVAL", 4)
                == 0)
            || (argvlen[0] == 7
                && ngx_strncasecmp((u_char *) argv[0],
                                   (u_char *) "EVALSHA", 7)
                   == 0)))
    {
        numkeys = ngx_atoi((u_char *) argv[2], argvlen[2]);

        if (numkeys > 0 && argc >= 4) {
            return ngx_llm_cache_redis_cluster_route(cl, (u_char *) argv[3],
                                                     argvlen[3]);
        }

        return ngx_llm_cache_redis_cluster_master(cl, 0);
    }

    if (argc >= 2) {
        return ngx_llm_cache_redis_cluster_route(cl, (u_char *) argv[1],
                                                 argvlen[1]);
    }

    return ngx_llm_cache_redis_cluster_master(cl, 0);
}


/* the n-th master of the map; before there is one, the first seed */

ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_cluster_master(ngx_llm_cache_redis_cluster_t *cl,
    ngx_uint_t n)
{
    ngx_llm_cache_redis_server_t  **s;

    if (cl->masters == NULL) {
        return NULL;
    }

    if (cl->masters->nelts) {
        s = cl->masters->elts;
        return n < cl->masters->nelts ? s[n] : NULL;
    }

    s = cl->nodes->elts;

    return (n == 0 && cl->nodes->nelts) ? s[0] : NULL;
}


/*
 * "MOVED 3999 127.0.0.1:6381" or "ASK 3999 127.0.0.1:6381": NGX_OK when
 * the op is sent there, otherwise the error reply stands
 */

ngx_int_t
ngx_llm_cache_redis_cluster_redirect(ngx_llm_cache_redis_cluster_t *cl,
    ngx_llm_cache_redis_server_t *from, ngx_llm_cache_redis_op_t *op,
    const char *error, size_t len)
{
    int                            port, any;
    u_char                        *p, *last, *colon, *host;
    size_t                         hlen;
    ngx_int_t                      slot;
    ngx_str_t                     *here;
    ngx_uint_t                     asking;
    ngx_llm_cache_redis_server_t  *node;

    p = (u_char *) error;
    last = p + len;

    if (len > 6 && ngx_strncmp(p, "MOVED ", 6) == 0) {
        asking = 0;
        p += 6;

    } else if (len > 4 && ngx_strncmp(p, "ASK ", 4) == 0) {
        asking = 1;
        p += 4;

    } else {
        return NGX_DECLINED;
    }

    host = ngx_strlchr(p, last, ' ');
    if (host == NULL) {
        goto invalid;
    }

    slot = ngx_atoi(p, host - p);
    host++;

    colon = NULL;

    for (p = last - 1; p >= host; p--) {
        if (*p == ':') {
            colon = p;
            break;
        }
    }

    if (slot == NGX_ERROR || slot >= NGX_LLM_CACHE_CLUSTER_SLOTS
        || colon == NULL)
    {
        goto invalid;
    }

    port = (int) ngx_atoi(colon + 1, last - colon - 1);
    if (port == NGX_ERROR || port < 1 || port > 65535) {
        goto invalid;
    }

    hlen = colon - host;

    if (hlen == 0) {
        /* the node does not know its endpoint: the one we asked */
        here = ngx_llm_cache_redis_node_host(from, &any);
        host = here->data;
        hlen = here->len;
    }

    if (op->redirects >= NGX_LLM_CACHE_CLUSTER_REDIRECTS) {
        ngx_log_error(NGX_LOG_ERR, op->log, 0,
                      "llm_cache: redis cluster: \"%s\" after %d "
                      "redirections, given up", error, op->redirects);
        return NGX_DECLINED;
    }

    node = ngx_llm_cache_redis_cluster_node(cl, host, hlen, port);
    if (node == NULL) {
        return NGX_DECLINED;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, op->log, 0,
                   "llm_cache: redis cluster: \"%s\", to %V", error,
                   ngx_llm_cache_redis_node_host(node, &any));

    if (!asking) {
        /* the slot has moved for good: take it there, and the rest too */
        cl->slots[slot] = node;
        cl->stale = 1;
        ngx_llm_cache_redis_cluster_schedule(cl);
    }

    return ngx_llm_cache_redis_resend(op, node, asking);

invalid:

    ngx_log_error(NGX_LOG_ERR, op->log, 0,
                  "llm_cache: redis cluster: bad redirection \"%s\"", error);

    return NGX_DECLINED;
}


void
ngx_llm_cache_redis_cluster_node_failed(ngx_llm_cache_redis_cluster_t *cl)
{
    ngx_llm_cache_redis_cluster_schedule(cl);
}


ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_cluster_server(ngx_llm_cache_redis_cluster_t *cl)
{
    return cl->server;
}


/* every master of the map connected and not held off by its breaker */

static ngx_uint_t
ngx_llm_cache_redis_cluster_healthy(ngx_llm_cache_redis_cluster_t *cl)
{
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **m;

    if (cl->masters->nelts == 0) {
        return 0;
    }

    m = cl->masters->elts;

    for (i = 0; i < cl->masters->nelts; i++) {
        if (!ngx_llm_cache_redis_node_usable(m[i])) {
            return 0;
        }
    }

    return 1;
}


static void
ngx_llm_cache_redis_cluster_schedule(ngx_llm_cache_redis_cluster_t *cl)
{
    ngx_msec_int_t  delay;

    if (cl->exiting || cl->timer.timer_set || cl->slots == NULL
        || ngx_exiting || ngx_terminate || ngx_quit)
    {
        return;
    }

    delay = (ngx_msec_int_t) (cl->refreshed + NGX_LLM_CACHE_CLUSTER_REFRESH
                              - ngx_current_msec);

    ngx_add_timer(&cl->timer, (ngx_msec_t) ngx_max(delay, 1));
}


static void
ngx_llm_cache_redis_cluster_timer(ngx_event_t *ev)
{
    ngx_llm_cache_redis_cluster_t  *cl = ev->data;

    if (cl->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (cl->refresh == NULL
        && (cl->stale || !ngx_llm_cache_redis_cluster_healthy(cl)))
    {
        ngx_llm_cache_redis_cluster_refresh(cl);
    }

    /* again while something is wrong: a failover takes a second or two */

    if (cl->refresh || cl->stale
        || !ngx_llm_cache_redis_cluster_healthy(cl))
    {
        ngx_add_timer(&cl->timer, NGX_LLM_CACHE_CLUSTER_REFRESH);
    }
}


/* CLUSTER SLOTS to a usable node, the next one each time; else any */

static void
ngx_llm_cache_redis_cluster_refresh(ngx_llm_cache_redis_cluster_t *cl)
{
    ngx_uint_t                      i, n, pass;
    const char                     *argv[2];
    size_t                          argvlen[2];
    ngx_llm_cache_redis_server_t  **node, *s;

    argv[0] = "CLUSTER";
    argvlen[0] = 7;
    argv[1] = "SLOTS";
    argvlen[1] = 5;

    node = cl->nodes->elts;
    n = cl->nodes->nelts;

    for (pass = 0; pass < 2; pass++) {
        for (i = 0; i < n; i++) {
            s = node[(cl->next + i) % n];

            if (pass == 0 && !ngx_llm_cache_redis_node_usable(s)) {
                continue;
            }

            cl->refresh = ngx_llm_cache_redis_command(s,
                              "cluster slot map failed", 2, argv, argvlen,
                              NGX_LLM_CACHE_CLUSTER_TIMEOUT,
                              ngx_llm_cache_redis_cluster_slots, cl,
                              cl->cycle->log);

            if (cl->refresh) {
                cl->asked = s;
                cl->next = (cl->next + i + 1) % n;
                cl->refreshed = ngx_current_msec;
                return;
            }
        }
    }
}


/*
 * [[start, end, [host, port, id, ...], replicas...], ...]: the map is
 * replaced only by a whole, well-formed one
 */

static void
ngx_llm_cache_redis_cluster_slots(void *data, ngx_int_t rc, void *reply)
{
    ngx_llm_cache_redis_cluster_t *cl = data;

    int                             port, any;
    u_char                         *host;
    size_t                          len;
    ngx_str_t                      *here;
    ngx_uint_t                      i, j, slot, changed, nold;
    redisReply                     *rr, *e, *m;
    ngx_llm_cache_redis_server_t  **masters, **pm, *s;
    ngx_llm_cache_redis_server_t   *old[NGX_LLM_CACHE_CLUSTER_MASTERS];

    rr = reply;
    cl->refresh = NULL;

    if (cl->exiting) {
        return;
    }

    if (rc != NGX_OK || ngx_llm_cache_redis_cluster_valid(rr) != NGX_OK) {
        if (rc == NGX_OK) {
            ngx_log_error(NGX_LOG_WARN, cl->cycle->log, 0,
                          "llm_cache: redis cluster: no usable CLUSTER SLOTS "
                          "answer, asking another node");
        }

        ngx_llm_cache_redis_cluster_schedule(cl);
        return;
    }

    /* the masters before, to tell whether they changed */

    nold = ngx_min(cl->masters->nelts, NGX_LLM_CACHE_CLUSTER_MASTERS);
    ngx_memcpy(old, cl->masters->elts,
               nold * sizeof(ngx_llm_cache_redis_server_t *));

    ngx_memzero(cl->slots, NGX_LLM_CACHE_CLUSTER_SLOTS
                           * sizeof(ngx_llm_cache_redis_server_t *));

    for (i = 0; i < rr->elements; i++) {
        e = rr->element[i];
        m = e->element[2];

        host = (u_char *) m->element[0]->str;
        len = m->element[0]->len;
        port = (int) m->element[1]->integer;

        if (len == 0 || (len == 1 && host[0] == '?')) {
            /* the node does not know its endpoint: the one we asked */
            here = ngx_llm_cache_redis_node_host(cl->asked, &any);
            host = here->data;
            len = here->len;
        }

        s = ngx_llm_cache_redis_cluster_node(cl, host, len, port);
        if (s == NULL) {
            continue;
        }

        for (slot = (ngx_uint_t) e->element[0]->integer;
             slot <= (ngx_uint_t) e->element[1]->integer;
             slot++)
        {
            cl->slots[slot] = s;
        }
    }

    /* the masters in slot order: the purge goes through them */

    cl->masters->nelts = 0;

    for (slot = 0; slot < NGX_LLM_CACHE_CLUSTER_SLOTS; slot++) {
        s = cl->slots[slot];

        if (s == NULL) {
            continue;
        }

        masters = cl->masters->elts;

        for (j = 0; j < cl->masters->nelts; j++) {
            if (masters[j] == s) {
                break;
            }
        }

        if (j < cl->masters->nelts) {
            continue;
        }

        pm = ngx_array_push(cl->masters);
        if (pm == NULL) {
            break;
        }

        *pm = s;
    }

    changed = (cl->masters->nelts != nold
               || ngx_memcmp(old, cl->masters->elts,
                             nold * sizeof(ngx_llm_cache_redis_server_t *))
                  != 0);

    if (changed) {
        ngx_log_error(NGX_LOG_NOTICE, cl->cycle->log, 0,
                      "llm_cache: redis cluster: slot map of %ui masters "
                      "from %V", cl->masters->nelts,
                      ngx_llm_cache_redis_node_host(cl->asked, &any));
    }

    cl->stale = 0;
}


static ngx_int_t
ngx_llm_cache_redis_cluster_valid(redisReply *rr)
{
    ngx_uint_t   i;
    redisReply  *e, *m;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements == 0) {
        return NGX_DECLINED;
    }

    for (i = 0; i < rr->elements; i++) {
        e = rr->element[i];

        if (e->type != REDIS_REPLY_ARRAY || e->elements < 3
            || e->element[0]->type != REDIS_REPLY_INTEGER
            || e->element[1]->type != REDIS_REPLY_INTEGER
            || e->element[2]->type != REDIS_REPLY_ARRAY
            || e->element[0]->integer < 0
            || e->element[1]->integer >= NGX_LLM_CACHE_CLUSTER_SLOTS
            || e->element[0]->integer > e->element[1]->integer)
        {
            return NGX_DECLINED;
        }

        m = e->element[2];

        if (m->elements < 2
            || m->element[0]->type != REDIS_REPLY_STRING
            || m->element[1]->type != REDIS_REPLY_INTEGER
            || m->element[1]->integer < 1
            || m->element[1]->integer > 65535)
        {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}
