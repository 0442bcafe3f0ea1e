
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * A Redis master managed by Sentinel ("llm_cache_redis sentinel=name
 * addr...").  Every worker asks the sentinels, in turn, where the master is
 * (SENTINEL get-master-addr-by-name, on a short-lived connection,
 * connect_timeout for the whole exchange), and keeps one more connection,
 * to one of them, subscribed to +switch-master: a failover moves the pool
 * as soon as Sentinel announces it.  The pool (ngx_llm_cache_redis.c)
 * takes the address from here on every connect, checks with ROLE that it
 * reached a master before it uses a connection, and calls back here when
 * the master fails or answers READONLY (a demoted master): the sentinels
 * are asked again, at most every NGX_LLM_CACHE_SENTINEL_INTERVAL ms, until
 * they name another one.  While no master is known the pool has no
 * connection, so requests fail open at once.
 *
 * A sentinel that fails (down, slow, refuses AUTH, does not know the
 * name) is skipped: the next one is asked at once, and the one that
 * answered is asked first the next time.  Each is logged when it starts
 * failing and when it answers again, not on every try.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <netinet/tcp.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_llm_cache_redis_sentinel.h"


/* between rounds of questions; doubled up to the MAX while none answers */
#define NGX_LLM_CACHE_SENTINEL_INTERVAL      500
#define NGX_LLM_CACHE_SENTINEL_INTERVAL_MAX  5000

#define NGX_LLM_CACHE_SENTINEL_PORT          26379


typedef struct {
    ngx_str_t                         name;     /* as configured */
    u_char                           *host;     /* ip text or unix path */
    int                               port;
    unsigned                          unix_socket:1;
    unsigned                          failing:1;   /* logged as such */
} ngx_llm_cache_sentinel_addr_t;


typedef struct {
    ngx_llm_cache_redis_sentinel_t   *sentinel;
    redisAsyncContext                *ac;
    ngx_connection_t                 *connection;
    ngx_llm_cache_sentinel_addr_t    *addr;     /* the one it is to */
    ngx_uint_t                        index;    /* the next one to try */
    ngx_uint_t                        tried;    /* failed in this round */
    ngx_msec_t                        delay;    /* after a failed round */
    ngx_event_t                       timeout;  /* until answered */
    ngx_event_t                       retry;
    unsigned                          done:1;   /* answered, subscribed */
} ngx_llm_cache_sentinel_conn_t;


struct ngx_llm_cache_redis_sentinel_s {
    ngx_str_t                         master;   /* the master's name */
    ngx_llm_cache_sentinel_addr_t    *addrs;
    ngx_uint_t                        naddrs;
    ngx_str_t                         user;
    ngx_str_t                         password;

    /* the worker's side */
    ngx_llm_cache_redis_server_t     *server;
    ngx_log_t                        *log;
    ngx_msec_t                        timeout;
    ngx_llm_cache_sentinel_conn_t     query;
    ngx_llm_cache_sentinel_conn_t     sub;
    ngx_uint_t                        unknown;  /* "no such master" */
    ngx_uint_t                        switches; /* +switch-master seen */
    ngx_uint_t                        asked;    /* switches when asked */
    ngx_msec_t                        asked_at;

    u_char                            host[NGX_SOCKADDR_STRLEN + 1];
    int                               port;
    unsigned                          known:1;
    unsigned                          lost:1;      /* none named: logged */
    unsigned                          role_logged:1;
    unsigned                          subscribed:1;   /* once at least */
    unsigned                          exiting:1;
};


static ngx_int_t ngx_llm_cache_sentinel_parse_addr(ngx_conf_t *cf,
    ngx_llm_cache_sentinel_addr_t *a, ngx_str_t *value);
static void ngx_llm_cache_sentinel_ask(ngx_llm_cache_redis_sentinel_t *st);
static void ngx_llm_cache_sentinel_query(ngx_event_t *ev);
static void ngx_llm_cache_sentinel_query_closed(
    ngx_llm_cache_redis_sentinel_t *st);
static void ngx_llm_cache_sentinel_addr_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_llm_cache_sentinel_subscribe(ngx_event_t *ev);
static void ngx_llm_cache_sentinel_sub_closed(
    ngx_llm_cache_redis_sentinel_t *st);
static void ngx_llm_cache_sentinel_sub_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_llm_cache_sentinel_auth(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_sentinel_conn_t *sc);
static void ngx_llm_cache_sentinel_auth_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static ngx_int_t ngx_llm_cache_sentinel_address(u_char *host, size_t len,
    u_char *port, size_t plen, int *number);
static void ngx_llm_cache_sentinel_set(ngx_llm_cache_redis_sentinel_t *st,
    u_char *host, size_t len, int port, ngx_uint_t switched,
    ngx_str_t *from);
static ngx_int_t ngx_llm_cache_sentinel_connect(
    ngx_llm_cache_sentinel_conn_t *sc);
static void ngx_llm_cache_sentinel_next(ngx_llm_cache_sentinel_conn_t *sc);
static void ngx_llm_cache_sentinel_timeout_handler(ngx_event_t *ev);
static void ngx_llm_cache_sentinel_read_handler(ngx_event_t *rev);
static void ngx_llm_cache_sentinel_write_handler(ngx_event_t *wev);
static void ngx_llm_cache_sentinel_event(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t add);
static void ngx_llm_cache_sentinel_add_read(void *data);
static void ngx_llm_cache_sentinel_del_read(void *data);
static void ngx_llm_cache_sentinel_add_write(void *data);
static void ngx_llm_cache_sentinel_del_write(void *data);
static void ngx_llm_cache_sentinel_cleanup(void *data);
static void ngx_llm_cache_sentinel_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_llm_cache_sentinel_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_llm_cache_sentinel_fail(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_sentinel_addr_t *a, const char *what, const char *detail);
static void ngx_llm_cache_sentinel_ok(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_sentinel_addr_t *a);


/*
 * "sentinel=name" in value[1], then the sentinels' addresses up to the
 * first name=value parameter; the sentinel_password= and sentinel_user=
 * parameters anywhere after them (the others are the server's).  *next is
 * the index of the first parameter.
 */

ngx_llm_cache_redis_sentinel_t *
ngx_llm_cache_redis_sentinel_create(ngx_conf_t *cf, ngx_str_t *value,
    ngx_uint_t n, ngx_uint_t *next)
{
    u_char                          *p;
    ngx_str_t                       *field;
    ngx_uint_t                       i, k;
    ngx_llm_cache_redis_sentinel_t  *st;

    st = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_redis_sentinel_t));
    if (st == NULL) {
        return NULL;
    }

    st->master.data = value[1].data + 9;
    st->master.len = value[1].len - 9;

    if (st->master.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" sentinel= needs the name "
                           "of a master");
        return NULL;
    }

    /* it is a word in +switch-master messages */

    for (p = st->master.data; p < st->master.data + st->master.len; p++) {
        if (*p <= ' ' || *p == 0x7f) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" sentinel= master name "
                               "\"%V\" has a space or a control character",
                               &st->master);
            return NULL;
        }
    }

    for (k = 2; k < n; k++) {
        if (ngx_strlchr(value[k].data, value[k].data + value[k].len, '=')
            != NULL)
        {
            break;
        }
    }

    if (k == 2) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" sentinel=%V needs the "
                           "address of at least one sentinel", &st->master);
        return NULL;
    }

    st->naddrs = k - 2;
    st->addrs = ngx_pcalloc(cf->pool,
                            st->naddrs * sizeof(ngx_llm_cache_sentinel_addr_t));
    if (st->addrs == NULL) {
        return NULL;
    }

    for (i = 2; i < k; i++) {
        if (ngx_llm_cache_sentinel_parse_addr(cf, &st->addrs[i - 2],
                                              &value[i])
            != NGX_OK)
        {
            return NULL;
        }
    }

    for (i = k; i < n; i++) {

        if (ngx_strncmp(value[i].data, "sentinel_password=", 18) == 0) {
            field = &st->password;
            p = value[i].data + 18;

        } else if (ngx_strncmp(value[i].data, "sentinel_user=", 14) == 0) {
            field = &st->user;
            p = value[i].data + 14;

        } else if (ngx_strncmp(value[i].data, "sentinel", 8) == 0) {
            /* its name only: the value may be a secret */
            p = ngx_strlchr(value[i].data, value[i].data + value[i].len, '=');

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" sentinel=%V: unknown or "
                               "misplaced parameter \"%*s\" (the sentinels' "
                               "addresses come right after sentinel=)",
                               &st->master,
                               p ? (size_t) (p - value[i].data) : value[i].len,
                               value[i].data);
            return NULL;

        } else {
            continue;
        }

        field->data = p;
        field->len = value[i].data + value[i].len - p;

        if (field->len == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\" in "
                               "\"llm_cache_redis\"", &value[i]);
            return NULL;
        }
    }

    if (st->user.len && st->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" sentinel_user= needs "
                           "sentinel_password=");
        return NULL;
    }

    *next = k;

    return st;
}


static ngx_int_t
ngx_llm_cache_sentinel_parse_addr(ngx_conf_t *cf,
    ngx_llm_cache_sentinel_addr_t *a, ngx_str_t *value)
{
    u_char     *p;
    ngx_url_t   u;

    a->name = *value;

    if (value->len > 5
        && ngx_strncasecmp(value->data, (u_char *) "unix:", 5) == 0)
    {
        a->unix_socket = 1;
        a->host = ngx_pnalloc(cf->pool, value->len - 5 + 1);
        if (a->host == NULL) {
            return NGX_ERROR;
        }

        ngx_cpystrn(a->host, value->data + 5, value->len - 5 + 1);
        return NGX_OK;
    }

    /* hiredis resolves names blocking: resolve them here, once */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = *value;
    u.default_port = NGX_LLM_CACHE_SENTINEL_PORT;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"llm_cache_redis\" sentinel \"%V\"",
                               u.err, value);
        }

        return NGX_ERROR;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" sentinel \"%V\" has no "
                           "usable address", value);
        return NGX_ERROR;
    }

    a->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (a->host == NULL) {
        return NGX_ERROR;
    }

    p = a->host + ngx_sock_ntop(u.addrs[0].sockaddr, u.addrs[0].socklen,
                                a->host, NGX_SOCKADDR_STRLEN, 0);
    *p = '\0';

    a->port = u.port ? u.port : NGX_LLM_CACHE_SENTINEL_PORT;

    return NGX_OK;
}


ngx_int_t
ngx_llm_cache_redis_sentinel_init_worker(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_redis_server_t *s, ngx_msec_t timeout, ngx_log_t *log)
{
    ngx_uint_t                      i;
    ngx_llm_cache_sentinel_conn_t  *sc;

    st->server = s;
    st->log = log;
    st->timeout = timeout;

    for (i = 0; i < 2; i++) {
        sc = (i == 0) ? &st->query : &st->sub;

        sc->sentinel = st;
        sc->delay = NGX_LLM_CACHE_SENTINEL_INTERVAL;

        sc->timeout.handler = ngx_llm_cache_sentinel_timeout_handler;
        sc->timeout.data = sc;
        sc->timeout.log = log;
        sc->timeout.cancelable = 1;

        sc->retry.handler = (i == 0) ? ngx_llm_cache_sentinel_query
                                     : ngx_llm_cache_sentinel_subscribe;
        sc->retry.data = st;
        sc->retry.log = log;
        sc->retry.cancelable = 1;
    }

    /* no request waits for either: they start now, in this worker */

    ngx_llm_cache_sentinel_query(&st->query.retry);
    ngx_llm_cache_sentinel_subscribe(&st->sub.retry);

    return NGX_OK;
}


void
ngx_llm_cache_redis_sentinel_exit_worker(ngx_llm_cache_redis_sentinel_t *st)
{
    ngx_uint_t                      i;
    ngx_llm_cache_sentinel_conn_t  *sc;

    st->exiting = 1;

    for (i = 0; i < 2; i++) {
        sc = (i == 0) ? &st->query : &st->sub;

        if (sc->retry.timer_set) {
            ngx_del_timer(&sc->retry);
        }

        if (sc->ac) {
            redisAsyncFree(sc->ac);
        }
    }
}


ngx_int_t
ngx_llm_cache_redis_sentinel_address(ngx_llm_cache_redis_sentinel_t *st,
    u_char **host, int *port)
{
    if (!st->known) {
        return NGX_DECLINED;
    }

    *host = st->host;
    *port = st->port;

    return NGX_OK;
}


/*
 * The master failed (a connection lost or refused, a timeout, a ROLE
 * other than master) or refused a write (READONLY): the sentinels may
 * know of a new one.  Pool connections fail many times a second in an
 * outage, so a round is started at most every
 * NGX_LLM_CACHE_SENTINEL_INTERVAL ms; +switch-master usually comes first.
 */

void
ngx_llm_cache_redis_sentinel_failed(ngx_llm_cache_redis_sentinel_t *st,
    const char *what)
{
    if (st->log == NULL || st->exiting) {
        return;
    }

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, st->log, 0,
                   "llm_cache: redis master \"%V\": %s, asking the sentinels",
                   &st->master, what);

    ngx_llm_cache_sentinel_ask(st);
}


static void
ngx_llm_cache_sentinel_ask(ngx_llm_cache_redis_sentinel_t *st)
{
    ngx_msec_int_t  delay;

    if (st->query.ac || st->query.retry.timer_set) {
        /* a round is under way or due */
        return;
    }

    delay = (ngx_msec_int_t) (st->asked_at + NGX_LLM_CACHE_SENTINEL_INTERVAL
                              - ngx_current_msec);

    if (delay < 0 || delay > NGX_LLM_CACHE_SENTINEL_INTERVAL) {
        delay = 0;
    }

    ngx_add_timer(&st->query.retry, (ngx_msec_t) delay);
}


/*
 * The ROLE reply of a new pool connection: it is used only if it reached
 * a master (the sentinels may still name a demoted one, or a replica that
 * is being promoted).
 */

ngx_int_t
ngx_llm_cache_redis_sentinel_role(ngx_llm_cache_redis_sentinel_t *st,
    void *reply)
{
    redisReply  *rr = reply;
    redisReply  *role;

    if (rr->type == REDIS_REPLY_ARRAY && rr->elements > 0) {
        role = rr->element[0];

        if (role->type == REDIS_REPLY_STRING && role->len == 6
            && ngx_strncmp(role->str, "master", 6) == 0)
        {
            return NGX_OK;
        }

        if (!st->role_logged) {
            st->role_logged = 1;
            ngx_log_error(NGX_LOG_WARN, st->log, 0,
                          "llm_cache: redis %s:%d, named master \"%V\" by "
                          "the sentinels, says ROLE \"%*s\": not used, the "
                          "sentinels are asked again", st->host, st->port,
                          &st->master,
                          role->type == REDIS_REPLY_STRING ? role->len : 0,
                          role->type == REDIS_REPLY_STRING ? role->str : "");
        }

        return NGX_DECLINED;
    }

    if (!st->role_logged) {
        st->role_logged = 1;
        ngx_log_error(NGX_LOG_WARN, st->log, 0,
                      "llm_cache: redis %s:%d, named master \"%V\" by the "
                      "sentinels, does not answer ROLE (%s): not used (an "
                      "ACL user needs +role)", st->host, st->port,
                      &st->master,
                      rr->type == REDIS_REPLY_ERROR ? rr->str
                                                    : "not an array");
    }

    return NGX_DECLINED;
}


/* the query's retry timer: ask the next sentinel */

static void
ngx_llm_cache_sentinel_query(ngx_event_t *ev)
{
    ngx_llm_cache_redis_sentinel_t  *st = ev->data;

    ngx_llm_cache_sentinel_conn_t  *sc;

    sc = &st->query;

    if (sc->ac || st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (sc->tried == 0) {
        /* a new round */
        st->asked_at = ngx_current_msec;
        st->unknown = 0;
    }

    st->asked = st->switches;

    if (ngx_llm_cache_sentinel_connect(sc) != NGX_OK) {
        ngx_llm_cache_sentinel_query_closed(st);
        return;
    }

    ngx_llm_cache_sentinel_auth(st, sc);

    if (redisAsyncCommand(sc->ac, ngx_llm_cache_sentinel_addr_reply, st,
                          "SENTINEL get-master-addr-by-name %b",
                          st->master.data, st->master.len)
        != REDIS_OK)
    {
        redisAsyncFree(sc->ac);
    }
}


static void
ngx_llm_cache_sentinel_query_closed(ngx_llm_cache_redis_sentinel_t *st)
{
    ngx_llm_cache_sentinel_conn_t  *sc;

    sc = &st->query;

    if (st->exiting) {
        return;
    }

    if (sc->done) {
        /* answered: the round is over, this one is asked first next time */
        sc->tried = 0;
        sc->delay = NGX_LLM_CACHE_SENTINEL_INTERVAL;
        return;
    }

    ngx_llm_cache_sentinel_next(sc);

    if (sc->tried) {
        /* the next sentinel, at once */
        ngx_add_timer(&sc->retry, 0);
        return;
    }

    /* a round without an answer */

    if (!st->lost) {
        st->lost = 1;

        if (st->known) {
            ngx_log_error(NGX_LOG_ERR, st->log, 0,
                          "llm_cache: no sentinel answered for master "
                          "\"%V\" (%ui asked, %ui do not know it), "
                          "%s:%d stays in use", &st->master, st->naddrs,
                          st->unknown, st->host, st->port);

        } else if (st->unknown == st->naddrs) {
            ngx_log_error(NGX_LOG_ERR, st->log, 0,
                          "llm_cache: no sentinel knows master \"%V\" "
                          "(%ui asked), requests go to the provider "
                          "uncached", &st->master, st->naddrs);

        } else {
            ngx_log_error(NGX_LOG_ERR, st->log, 0,
                          "llm_cache: no sentinel named master \"%V\" "
                          "(%ui asked, %ui do not know it), requests go to "
                          "the provider uncached", &st->master, st->naddrs,
                          st->unknown);
        }
    }

    if (st->known) {
        /* the pool's next failure asks again */
        return;
    }

    ngx_add_timer(&sc->retry, sc->delay);
    sc->delay = ngx_min(sc->delay * 2, NGX_LLM_CACHE_SENTINEL_INTERVAL_MAX);
}


/* SENTINEL get-master-addr-by-name: [ip, port], or nil for an unknown name */

static void
ngx_llm_cache_sentinel_addr_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_llm_cache_redis_sentinel_t  *st = privdata;

    int                             port;
    redisReply                     *rr, *h, *p;
    ngx_llm_cache_sentinel_conn_t  *sc;

    rr = reply;
    sc = &st->query;

    if (rr == NULL) {
        /* the connection went away: its cleanup goes on */
        return;
    }

    if (rr->type == REDIS_REPLY_NIL) {
        st->unknown++;
        ngx_llm_cache_sentinel_fail(st, sc->addr, "answered",
                                    "no such master");
        redisAsyncFree(ac);
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_llm_cache_sentinel_fail(st, sc->addr, "answered an error",
                                    rr->str);
        redisAsyncFree(ac);
        return;
    }

    if (rr->type != REDIS_REPLY_ARRAY || rr->elements != 2
        || rr->element[0]->type != REDIS_REPLY_STRING
        || rr->element[1]->type != REDIS_REPLY_STRING)
    {
        ngx_llm_cache_sentinel_fail(st, sc->addr, "answered",
                                    "not an address");
        redisAsyncFree(ac);
        return;
    }

    h = rr->element[0];
    p = rr->element[1];

    if (ngx_llm_cache_sentinel_address((u_char *) h->str, h->len,
                                       (u_char *) p->str, p->len, &port)
        != NGX_OK)
    {
        ngx_llm_cache_sentinel_fail(st, sc->addr, "answered",
                                    "not an IP address and port (a host "
                                    "name would block the worker: set "
                                    "\"sentinel announce-hostnames no\")");
        redisAsyncFree(ac);
        return;
    }

    sc->done = 1;
    st->lost = 0;
    ngx_llm_cache_sentinel_ok(st, sc->addr);

    if (st->asked != st->switches) {
        /* asked before the last +switch-master: the answer may be older */
        ngx_log_debug1(NGX_LOG_DEBUG_CORE, st->log, 0,
                       "llm_cache: sentinel %V answered before the last "
                       "+switch-master, ignored", &sc->addr->name);

    } else {
        ngx_llm_cache_sentinel_set(st, (u_char *) h->str, h->len, port, 0,
                                   &sc->addr->name);
    }

    redisAsyncFree(ac);
}


/* the subscription's retry timer: subscribe on the next sentinel */

static void
ngx_llm_cache_sentinel_subscribe(ngx_event_t *ev)
{
    ngx_llm_cache_redis_sentinel_t  *st = ev->data;

    ngx_llm_cache_sentinel_conn_t  *sc;

    sc = &st->sub;

    if (sc->ac || st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (ngx_llm_cache_sentinel_connect(sc) != NGX_OK) {
        ngx_llm_cache_sentinel_sub_closed(st);
        return;
    }

    /* hiredis hands AUTH's reply to its callback before any message */

    ngx_llm_cache_sentinel_auth(st, sc);

    if (redisAsyncCommand(sc->ac, ngx_llm_cache_sentinel_sub_reply, st,
                          "SUBSCRIBE +switch-master")
        != REDIS_OK)
    {
        redisAsyncFree(sc->ac);
    }
}


static void
ngx_llm_cache_sentinel_sub_closed(ngx_llm_cache_redis_sentinel_t *st)
{
    ngx_llm_cache_sentinel_conn_t  *sc;

    sc = &st->sub;

    if (st->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (sc->done) {
        /* it was subscribed: the next sentinel, at once */
        sc->done = 0;
        sc->tried = 0;
        sc->delay = NGX_LLM_CACHE_SENTINEL_INTERVAL;
        sc->index = (sc->index + 1) % st->naddrs;
        ngx_add_timer(&sc->retry, 0);
        return;
    }

    ngx_llm_cache_sentinel_next(sc);

    if (sc->tried) {
        ngx_add_timer(&sc->retry, 0);
        return;
    }

    ngx_add_timer(&sc->retry, sc->delay);
    sc->delay = ngx_min(sc->delay * 2, NGX_LLM_CACHE_SENTINEL_INTERVAL_MAX);
}


/*
 * ["subscribe", "+switch-master", 1] once, then
 * ["message", "+switch-master", "<name> <old ip> <old port> <ip> <port>"]
 */

static void
ngx_llm_cache_sentinel_sub_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_llm_cache_redis_sentinel_t  *st = privdata;

    int                             port;
    u_char                         *p, *last, *word[5];
    size_t                          len[5];
    ngx_uint_t                      n;
    redisReply                     *rr, *kind, *msg;
    ngx_llm_cache_sentinel_conn_t  *sc;

    rr = reply;
    sc = &st->sub;

    if (rr == NULL || rr->type != REDIS_REPLY_ARRAY || rr->elements < 3
        || rr->element[0]->type != REDIS_REPLY_STRING)
    {
        return;
    }

    kind = rr->element[0];

    if (kind->len == 9 && ngx_strncmp(kind->str, "subscribe", 9) == 0) {

        if (sc->timeout.timer_set) {
            ngx_del_timer(&sc->timeout);
        }

        sc->done = 1;
        sc->tried = 0;
        sc->delay = NGX_LLM_CACHE_SENTINEL_INTERVAL;
        ngx_llm_cache_sentinel_ok(st, sc->addr);

        ngx_log_debug1(NGX_LOG_DEBUG_CORE, st->log, 0,
                       "llm_cache: subscribed to +switch-master on "
                       "sentinel %V", &sc->addr->name);

        if (st->subscribed) {
            /* a +switch-master may have gone by while there was none */
            ngx_llm_cache_sentinel_ask(st);
        }

        st->subscribed = 1;
        return;
    }

    msg = rr->element[2];

    if (kind->len != 7 || ngx_strncmp(kind->str, "message", 7) != 0
        || msg->type != REDIS_REPLY_STRING)
    {
        return;
    }

    p = (u_char *) msg->str;
    last = p + msg->len;

    for (n = 0; n < 5 && p < last; n++) {
        word[n] = p;

        while (p < last && *p != ' ') {
            p++;
        }

        len[n] = p - word[n];

        while (p < last && *p == ' ') {
            p++;
        }
    }

    if (n < 5 || len[0] != st->master.len
        || ngx_strncmp(word[0], st->master.data, len[0]) != 0)
    {
        /* another master's, or not what Sentinel sends */
        return;
    }

    if (ngx_llm_cache_sentinel_address(word[3], len[3], word[4], len[4],
                                       &port)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_WARN, st->log, 0,
                      "llm_cache: sentinel %V announced +switch-master "
                      "\"%*s\": not an IP address and port, the sentinels "
                      "are asked", &sc->addr->name, msg->len, msg->str);
        ngx_llm_cache_sentinel_ask(st);
        return;
    }

    st->switches++;

    ngx_llm_cache_sentinel_set(st, word[3], len[3], port, 1, &sc->addr->name);
}


/* queued first on a new connection; its reply comes before any other */

static void
ngx_llm_cache_sentinel_auth(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_sentinel_conn_t *sc)
{
    if (st->password.len == 0) {
        return;
    }

    if (st->user.len) {
        (void) redisAsyncCommand(sc->ac, ngx_llm_cache_sentinel_auth_reply,
                                 sc, "AUTH %b %b", st->user.data,
                                 st->user.len, st->password.data,
                                 st->password.len);
        return;
    }

    (void) redisAsyncCommand(sc->ac, ngx_llm_cache_sentinel_auth_reply, sc,
                             "AUTH %b", st->password.data, st->password.len);
}


/* AUTH refused: never log the command, it has the password */

static void
ngx_llm_cache_sentinel_auth_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_llm_cache_sentinel_conn_t  *sc = privdata;

    redisReply  *rr = reply;

    if (rr == NULL || rr->type != REDIS_REPLY_ERROR) {
        return;
    }

    ngx_llm_cache_sentinel_fail(sc->sentinel, sc->addr, "refused AUTH",
                                rr->str);
    redisAsyncFree(ac);
}


/* an IP address (hiredis would resolve a name blocking) and a port */

static ngx_int_t
ngx_llm_cache_sentinel_address(u_char *host, size_t len, u_char *port,
    size_t plen, int *number)
{
    ngx_int_t  n;
#if (NGX_HAVE_INET6)
    u_char     addr6[16];
#endif

    n = ngx_atoi(port, plen);
    if (n < 1 || n > 65535) {
        return NGX_ERROR;
    }

    *number = (int) n;

    if (len == 0 || len > NGX_SOCKADDR_STRLEN) {
        return NGX_ERROR;
    }

    if (ngx_inet_addr(host, len) != INADDR_NONE) {
        return NGX_OK;
    }

#if (NGX_HAVE_INET6)
    if (ngx_inet6_addr(host, len, addr6) == NGX_OK) {
        return NGX_OK;
    }
#endif

    return NGX_ERROR;
}


/* the master is there now: the pool moves to it if it was elsewhere */

static void
ngx_llm_cache_sentinel_set(ngx_llm_cache_redis_sentinel_t *st, u_char *host,
    size_t len, int port, ngx_uint_t switched, ngx_str_t *from)
{
    if (st->known && st->port == port && ngx_strlen(st->host) == len
        && ngx_strncmp(st->host, host, len) == 0)
    {
        return;
    }

    ngx_memcpy(st->host, host, len);
    st->host[len] = '\0';
    st->port = port;
    st->known = 1;
    st->role_logged = 0;

    if (switched) {
        ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                      "llm_cache: redis master \"%V\" moved to %s:%d "
                      "(+switch-master from sentinel %V)", &st->master,
                      st->host, st->port, from);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                      "llm_cache: redis master \"%V\" is %s:%d "
                      "(sentinel %V)", &st->master, st->host, st->port,
                      from);
    }

    ngx_llm_cache_redis_repoint(st->server);
}


static ngx_int_t
ngx_llm_cache_sentinel_connect(ngx_llm_cache_sentinel_conn_t *sc)
{
    ngx_llm_cache_redis_sentinel_t  *st = sc->sentinel;

    redisAsyncContext              *ac;
    ngx_connection_t               *c;
    ngx_llm_cache_sentinel_addr_t  *a;

    a = &st->addrs[sc->index];

    sc->addr = a;
    sc->done = 0;

    if (a->unix_socket) {
        ac = redisAsyncConnectUnix((char *) a->host);

    } else {
        ac = redisAsyncConnect((char *) a->host, a->port);
    }

    if (ac == NULL) {
        ngx_llm_cache_sentinel_fail(st, a, "connect failed", "out of memory");
        return NGX_ERROR;
    }

    if (ac->err) {
        ngx_llm_cache_sentinel_fail(st, a, "connect failed", ac->errstr);
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    c = ngx_get_connection(ac->c.fd, st->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        return NGX_ERROR;
    }

    if (!a->unix_socket) {
        /* TCP keepalive on the subscription, as on the pool's */
        ngx_llm_cache_redis_keepalive(ac->c.fd, st->log);
    }

    c->data = sc;
    c->log = st->log;
    c->read->log = st->log;
    c->write->log = st->log;
    c->read->handler = ngx_llm_cache_sentinel_read_handler;
    c->write->handler = ngx_llm_cache_sentinel_write_handler;

    sc->ac = ac;
    sc->connection = c;

    ac->data = sc;
    ac->ev.data = sc;
    ac->ev.addRead = ngx_llm_cache_sentinel_add_read;
    ac->ev.delRead = ngx_llm_cache_sentinel_del_read;
    ac->ev.addWrite = ngx_llm_cache_sentinel_add_write;
    ac->ev.delWrite = ngx_llm_cache_sentinel_del_write;
    ac->ev.cleanup = ngx_llm_cache_sentinel_cleanup;

    /* setting the connect callback arms the write event */
    redisAsyncSetConnectCallback(ac, ngx_llm_cache_sentinel_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_llm_cache_sentinel_on_disconnect);

    /* the connect, AUTH and the answer (or the subscription) */
    ngx_add_timer(&sc->timeout, st->timeout);

    return NGX_OK;
}


/* this sentinel failed: the next one, or the round is over (tried 0) */

static void
ngx_llm_cache_sentinel_next(ngx_llm_cache_sentinel_conn_t *sc)
{
    ngx_llm_cache_redis_sentinel_t  *st = sc->sentinel;

    sc->index = (sc->index + 1) % st->naddrs;

    if (++sc->tried >= st->naddrs) {
        sc->tried = 0;
    }
}


static void
ngx_llm_cache_sentinel_timeout_handler(ngx_event_t *ev)
{
    ngx_llm_cache_sentinel_conn_t  *sc = ev->data;

    ngx_llm_cache_sentinel_fail(sc->sentinel, sc->addr, "timed out",
                                "no answer within connect_timeout");

    if (sc->ac) {
        redisAsyncFree(sc->ac);
    }
}


static void
ngx_llm_cache_sentinel_read_handler(ngx_event_t *rev)
{
    ngx_connection_t               *c = rev->data;
    ngx_llm_cache_sentinel_conn_t  *sc = c->data;

    redisAsyncHandleRead(sc->ac);
}


static void
ngx_llm_cache_sentinel_write_handler(ngx_event_t *wev)
{
    ngx_connection_t               *c = wev->data;
    ngx_llm_cache_sentinel_conn_t  *sc = c->data;

    redisAsyncHandleWrite(sc->ac);
}


/* level-triggered, as the pool's (ngx_llm_cache_redis.c) */

static void
ngx_llm_cache_sentinel_event(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t add)
{
    if (add && !ev->active) {
        (void) ngx_add_event(ev, event, NGX_LEVEL_EVENT);

    } else if (!add && ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


static void
ngx_llm_cache_sentinel_add_read(void *data)
{
    ngx_llm_cache_sentinel_conn_t  *sc = data;

    ngx_llm_cache_sentinel_event(sc->connection->read, NGX_READ_EVENT, 1);
}


static void
ngx_llm_cache_sentinel_del_read(void *data)
{
    ngx_llm_cache_sentinel_conn_t  *sc = data;

    ngx_llm_cache_sentinel_event(sc->connection->read, NGX_READ_EVENT, 0);
}


static void
ngx_llm_cache_sentinel_add_write(void *data)
{
    ngx_llm_cache_sentinel_conn_t  *sc = data;

    ngx_llm_cache_sentinel_event(sc->connection->write, NGX_WRITE_EVENT, 1);
}


static void
ngx_llm_cache_sentinel_del_write(void *data)
{
    ngx_llm_cache_sentinel_conn_t  *sc = data;

    ngx_llm_cache_sentinel_event(sc->connection->write, NGX_WRITE_EVENT, 0);
}


/*
 * Called by hiredis just before it closes the fd and frees the context;
 * what comes next (the next sentinel, a retry) runs from a timer.
 */

static void
ngx_llm_cache_sentinel_cleanup(void *data)
{
    ngx_llm_cache_sentinel_conn_t  *sc = data;

    ngx_connection_t  *c;

    c = sc->connection;

    if (c != NULL) {
        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_llm_cache_sentinel_event(c->read, NGX_READ_EVENT, 0);
        ngx_llm_cache_sentinel_event(c->write, NGX_WRITE_EVENT, 0);

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    if (sc->timeout.timer_set) {
        ngx_del_timer(&sc->timeout);
    }

    sc->ac = NULL;
    sc->connection = NULL;

    if (sc == &sc->sentinel->query) {
        ngx_llm_cache_sentinel_query_closed(sc->sentinel);

    } else {
        ngx_llm_cache_sentinel_sub_closed(sc->sentinel);
    }
}


static void
ngx_llm_cache_sentinel_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_llm_cache_sentinel_conn_t  *sc = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this */
        ngx_llm_cache_sentinel_fail(sc->sentinel, sc->addr, "connect failed",
                                    ac->errstr);
    }
}


static void
ngx_llm_cache_sentinel_on_disconnect(const redisAsyncContext *ac,
    int status)
{
    ngx_llm_cache_sentinel_conn_t  *sc = ac->data;

    if (status != REDIS_OK && !sc->sentinel->exiting) {
        ngx_llm_cache_sentinel_fail(sc->sentinel, sc->addr,
                                    "connection lost", ac->errstr);
    }
}


/* logged when it starts failing, and when it answers again */

static void
ngx_llm_cache_sentinel_fail(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_sentinel_addr_t *a, const char *what, const char *detail)
{
    if (a->failing) {
        ngx_log_debug4(NGX_LOG_DEBUG_CORE, st->log, 0,
                       "llm_cache: sentinel %V for master \"%V\" %s: %s",
                       &a->name, &st->master, what, detail);
        return;
    }

    a->failing = 1;

    ngx_log_error(NGX_LOG_WARN, st->log, 0,
                  "llm_cache: sentinel %V for master \"%V\" %s: %s, "
                  "skipped", &a->name, &st->master, what, detail);
}


static void
ngx_llm_cache_sentinel_ok(ngx_llm_cache_redis_sentinel_t *st,
    ngx_llm_cache_sentinel_addr_t *a)
{
    if (!a->failing) {
        return;
    }

    a->failing = 0;

    ngx_log_error(NGX_LOG_NOTICE, st->log, 0,
                  "llm_cache: sentinel %V for master \"%V\" answers again",
                  &a->name, &st->master);
}
