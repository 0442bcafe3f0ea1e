
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * hiredis's async API driven by nginx's event loop: one keep-alive
 * connection per configured server in every worker, its fd registered as
 * a level-triggered nginx connection (hiredis reads at most 16 KiB a call,
 * so an edge-triggered fd would stall on large replies), nginx timers for
 * the connect timeout and the reconnect backoff.  hiredis owns and closes
 * the fd; the cleanup hook below only gives the nginx connection back.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <hiredis/hiredis.h>
#include <hiredis/async.h>

#include "ngx_llm_cache_redis.h"


#define NGX_LLM_CACHE_REDIS_BACKOFF_MIN    100
#define NGX_LLM_CACHE_REDIS_BACKOFF_MAX    5000
#define NGX_LLM_CACHE_REDIS_LOG_INTERVAL   5


typedef enum {
    NGX_LLM_CACHE_REDIS_DOWN = 0,
    NGX_LLM_CACHE_REDIS_CONNECTING,
    NGX_LLM_CACHE_REDIS_READY
} ngx_llm_cache_redis_state_e;


struct ngx_llm_cache_redis_server_s {
    ngx_str_t                     spec;       /* the directive's arguments */
    ngx_str_t                     name;
    u_char                       *host;       /* ip text or unix path */
    int                           port;
    ngx_int_t                     db;
    ngx_str_t                     user;
    ngx_str_t                     password;
    ngx_msec_t                    connect_timeout;
    unsigned                      unix_socket:1;

    /* the worker's connection */
    redisAsyncContext            *ac;
    ngx_connection_t             *connection;
    ngx_llm_cache_redis_state_e   state;
    ngx_uint_t                    setup_pending;
    ngx_event_t                   reconnect;
    ngx_msec_t                    backoff;
    ngx_log_t                    *log;

    time_t                        failure_logged;
    ngx_uint_t                    failures_suppressed;

    unsigned                      closing:1;
    unsigned                      exiting:1;
    unsigned                      failed:1;
};


static ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_parse(
    ngx_conf_t *cf, ngx_str_t *value, ngx_uint_t n);
static void ngx_llm_cache_redis_connect(ngx_llm_cache_redis_server_t *s);
static void ngx_llm_cache_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_llm_cache_redis_schedule(ngx_llm_cache_redis_server_t *s);
static void ngx_llm_cache_redis_read_handler(ngx_event_t *rev);
static void ngx_llm_cache_redis_write_handler(ngx_event_t *wev);
static void ngx_llm_cache_redis_event(ngx_event_t *ev, ngx_int_t event,
    ngx_uint_t add);
static void ngx_llm_cache_redis_add_read(void *data);
static void ngx_llm_cache_redis_del_read(void *data);
static void ngx_llm_cache_redis_add_write(void *data);
static void ngx_llm_cache_redis_del_write(void *data);
static void ngx_llm_cache_redis_cleanup(void *data);
static void ngx_llm_cache_redis_on_connect(const redisAsyncContext *ac,
    int status);
static void ngx_llm_cache_redis_on_disconnect(const redisAsyncContext *ac,
    int status);
static void ngx_llm_cache_redis_setup_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_llm_cache_redis_get_reply(redisAsyncContext *ac,
    void *reply, void *privdata);
static void ngx_llm_cache_redis_set_reply(redisAsyncContext *ac,
    void *reply, void *privdata);


/*
 * The same llm_cache_redis arguments in many locations share one server,
 * so a worker keeps one connection to it, not one per location.
 */

ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_add(ngx_conf_t *cf, ngx_array_t *servers,
    ngx_str_t *value, ngx_uint_t n)
{
    u_char                         *p;
    size_t                          len;
    ngx_str_t                       spec;
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **s, *server;

    len = 0;

    for (i = 1; i < n; i++) {
        len += value[i].len + 1;
    }

    spec.data = ngx_pnalloc(cf->pool, len);
    if (spec.data == NULL) {
        return NULL;
    }

    p = spec.data;

    for (i = 1; i < n; i++) {
        p = ngx_cpymem(p, value[i].data, value[i].len);
        *p++ = ' ';
    }

    spec.len = p - spec.data;

    s = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        if (s[i]->spec.len == spec.len
            && ngx_memcmp(s[i]->spec.data, spec.data, spec.len) == 0)
        {
            return s[i];
        }
    }

    server = ngx_llm_cache_redis_parse(cf, value, n);
    if (server == NULL) {
        return NULL;
    }

    server->spec = spec;

    s = ngx_array_push(servers);
    if (s == NULL) {
        return NULL;
    }

    *s = server;

    return server;
}


static ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_parse(ngx_conf_t *cf, ngx_str_t *value, ngx_uint_t n)
{
    u_char                        *p;
    ngx_int_t                      db;
    ngx_str_t                      s, addr;
    ngx_url_t                      u;
    ngx_msec_t                     ms;
    ngx_uint_t                     i;
    ngx_llm_cache_redis_server_t  *server;

    server = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_redis_server_t));
    if (server == NULL) {
        return NULL;
    }

    server->db = -1;
    server->connect_timeout = 1000;
    server->name = value[1];

    for (i = 2; i < n; i++) {

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            db = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (db == NGX_ERROR) {
                goto invalid;
            }

            server->db = db;
            continue;
        }

        if (ngx_strncmp(value[i].data, "user=", 5) == 0) {
            server->user.data = value[i].data + 5;
            server->user.len = value[i].len - 5;
            if (server->user.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "password=", 9) == 0) {
            server->password.data = value[i].data + 9;
            server->password.len = value[i].len - 9;
            if (server->password.len == 0) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

            ms = ngx_parse_time(&s, 0);
            if (ms == (ngx_msec_t) NGX_ERROR || ms == 0) {
                goto invalid;
            }

            server->connect_timeout = ms;
            continue;
        }

        goto invalid;
    }

    if (server->user.len && server->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" user= needs password=");
        return NULL;
    }

    addr = value[1];

    if (addr.len > 5 && ngx_strncasecmp(addr.data, (u_char *) "unix:", 5)
                        == 0)
    {
        server->unix_socket = 1;
        server->host = ngx_pnalloc(cf->pool, addr.len - 5 + 1);
        if (server->host == NULL) {
            return NULL;
        }

        ngx_cpystrn(server->host, addr.data + 5, addr.len - 5 + 1);
        return server;
    }

    /* hiredis resolves names blocking: resolve them here, once */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = addr;
    u.default_port = 6379;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"llm_cache_redis\" address \"%V\"",
                               u.err, &addr);
        }

        return NULL;
    }

    if (u.naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" address \"%V\" "
                           "has no usable address", &addr);
        return NULL;
    }

    server->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (server->host == NULL) {
        return NULL;
    }

    p = server->host + ngx_sock_ntop(u.addrs[0].sockaddr,
                                     u.addrs[0].socklen, server->host,
                                     NGX_SOCKADDR_STRLEN, 0);
    *p = '\0';

    server->port = u.port ? u.port : 6379;

    return server;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"llm_cache_redis\"",
                       &value[i]);
    return NULL;
}


ngx_int_t
ngx_llm_cache_redis_init_worker(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **s;

    s = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        s[i]->log = cycle->log;
        s[i]->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

        s[i]->reconnect.handler = ngx_llm_cache_redis_reconnect_handler;
        s[i]->reconnect.data = s[i];
        s[i]->reconnect.log = cycle->log;
        s[i]->reconnect.cancelable = 1;

        ngx_llm_cache_redis_connect(s[i]);
    }

    return NGX_OK;
}


void
ngx_llm_cache_redis_exit_worker(ngx_array_t *servers)
{
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **s;

    s = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        s[i]->closing = 1;
        s[i]->exiting = 1;

        if (s[i]->reconnect.timer_set) {
            ngx_del_timer(&s[i]->reconnect);
        }

        if (s[i]->ac) {
            redisAsyncFree(s[i]->ac);
        }
    }
}


static void
ngx_llm_cache_redis_connect(ngx_llm_cache_redis_server_t *s)
{
    redisAsyncContext  *ac;
    ngx_connection_t   *c;

    if (s->unix_socket) {
        ac = redisAsyncConnectUnix((char *) s->host);

    } else {
        ac = redisAsyncConnect((char *) s->host, s->port);
    }

    if (ac == NULL) {
        ngx_llm_cache_redis_log_failure(s, s->log, "connect failed",
                                        "out of memory");
        ngx_llm_cache_redis_schedule(s);
        return;
    }

    if (ac->err) {
        ngx_llm_cache_redis_log_failure(s, s->log, "connect failed",
                                        ac->errstr);
        redisAsyncFree(ac);
        ngx_llm_cache_redis_schedule(s);
        return;
    }

    c = ngx_get_connection(ac->c.fd, s->log);
    if (c == NULL) {
        redisAsyncFree(ac);
        ngx_llm_cache_redis_schedule(s);
        return;
    }

    c->data = s;
    c->log = s->log;
    c->read->log = s->log;
    c->write->log = s->log;
    c->read->handler = ngx_llm_cache_redis_read_handler;
    c->write->handler = ngx_llm_cache_redis_write_handler;

    /* lets a graceful shutdown close it (ngx_close_idle_connections) */
    c->idle = 1;

    s->ac = ac;
    s->connection = c;
    s->state = NGX_LLM_CACHE_REDIS_CONNECTING;
    s->setup_pending = 0;

    ac->data = s;
    ac->ev.data = s;
    ac->ev.addRead = ngx_llm_cache_redis_add_read;
    ac->ev.delRead = ngx_llm_cache_redis_del_read;
    ac->ev.addWrite = ngx_llm_cache_redis_add_write;
    ac->ev.delWrite = ngx_llm_cache_redis_del_write;
    ac->ev.cleanup = ngx_llm_cache_redis_cleanup;

    /* setting the connect callback arms the write event */
    redisAsyncSetConnectCallback(ac, ngx_llm_cache_redis_on_connect);
    redisAsyncSetDisconnectCallback(ac, ngx_llm_cache_redis_on_disconnect);

    if (s->connection == NULL) {
        /* freed on the way */
        return;
    }

    ngx_add_timer(c->write, s->connect_timeout);

    /* queued now, sent first once the socket connects */

    if (s->password.len) {
        if (s->user.len) {
            if (redisAsyncCommand(ac, ngx_llm_cache_redis_setup_reply, s,
                                  "AUTH %b %b", s->user.data, s->user.len,
                                  s->password.data, s->password.len)
                == REDIS_OK)
            {
                s->setup_pending++;
            }

        } else if (redisAsyncCommand(ac, ngx_llm_cache_redis_setup_reply, s,
                                     "AUTH %b", s->password.data,
                                     s->password.len)
                   == REDIS_OK)
        {
            s->setup_pending++;
        }
    }

    if (s->db >= 0
        && redisAsyncCommand(ac, ngx_llm_cache_redis_setup_reply, s,
                             "SELECT %d", (int) s->db)
           == REDIS_OK)
    {
        s->setup_pending++;
    }
}


static void
ngx_llm_cache_redis_schedule(ngx_llm_cache_redis_server_t *s)
{
    if (s->closing || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (!s->reconnect.timer_set) {
        ngx_add_timer(&s->reconnect, s->backoff);
    }

    s->backoff = ngx_min(s->backoff * 2, NGX_LLM_CACHE_REDIS_BACKOFF_MAX);
}


static void
ngx_llm_cache_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_llm_cache_redis_server_t  *s = ev->data;

    if (s->ac == NULL && !s->closing) {
        ngx_llm_cache_redis_connect(s);
    }
}


static void
ngx_llm_cache_redis_read_handler(ngx_event_t *rev)
{
    ngx_connection_t              *c = rev->data;
    ngx_llm_cache_redis_server_t  *s = c->data;

    if (c->close) {
        /* graceful shutdown or reload: outstanding lookups fail open */
        s->closing = 1;
        redisAsyncFree(s->ac);
        return;
    }

    /* may free the context and the connection: touch neither after it */
    redisAsyncHandleRead(s->ac);
}


static void
ngx_llm_cache_redis_write_handler(ngx_event_t *wev)
{
    ngx_connection_t              *c = wev->data;
    ngx_llm_cache_redis_server_t  *s = c->data;

    if (wev->timedout) {
        wev->timedout = 0;
        ngx_llm_cache_redis_log_failure(s, s->log, "connect failed",
                                        "timed out");
        redisAsyncFree(s->ac);
        return;
    }

    redisAsyncHandleWrite(s->ac);
}


/* hiredis asks for read/write interest; level-triggered, see above */

static void
ngx_llm_cache_redis_event(ngx_event_t *ev, ngx_int_t event, ngx_uint_t add)
{
    if (add && !ev->active) {
        (void) ngx_add_event(ev, event, NGX_LEVEL_EVENT);

    } else if (!add && ev->active) {
        (void) ngx_del_event(ev, event, 0);
    }
}


static void
ngx_llm_cache_redis_add_read(void *data)
{
    ngx_llm_cache_redis_server_t  *s = data;

    ngx_llm_cache_redis_event(s->connection->read, NGX_READ_EVENT, 1);
}


static void
ngx_llm_cache_redis_del_read(void *data)
{
    ngx_llm_cache_redis_server_t  *s = data;

    ngx_llm_cache_redis_event(s->connection->read, NGX_READ_EVENT, 0);
}


static void
ngx_llm_cache_redis_add_write(void *data)
{
    ngx_llm_cache_redis_server_t  *s = data;

    ngx_llm_cache_redis_event(s->connection->write, NGX_WRITE_EVENT, 1);
}


static void
ngx_llm_cache_redis_del_write(void *data)
{
    ngx_llm_cache_redis_server_t  *s = data;

    ngx_llm_cache_redis_event(s->connection->write, NGX_WRITE_EVENT, 0);
}


/* called by hiredis just before it closes the fd and frees the context */

static void
ngx_llm_cache_redis_cleanup(void *data)
{
    ngx_llm_cache_redis_server_t  *s = data;

    ngx_connection_t  *c;

    c = s->connection;

    if (c != NULL) {
        if (c->read->timer_set) {
            ngx_del_timer(c->read);
        }

        if (c->write->timer_set) {
            ngx_del_timer(c->write);
        }

        if (c->read->posted) {
            ngx_delete_posted_event(c->read);
        }

        if (c->write->posted) {
            ngx_delete_posted_event(c->write);
        }

        ngx_llm_cache_redis_event(c->read, NGX_READ_EVENT, 0);
        ngx_llm_cache_redis_event(c->write, NGX_WRITE_EVENT, 0);

        ngx_free_connection(c);
        c->fd = (ngx_socket_t) -1;
    }

    if (s->state == NGX_LLM_CACHE_REDIS_READY) {
        s->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;
    }

    s->ac = NULL;
    s->connection = NULL;
    s->state = NGX_LLM_CACHE_REDIS_DOWN;
    s->failed = 1;

    ngx_llm_cache_redis_schedule(s);
}


static void
ngx_llm_cache_redis_ready(ngx_llm_cache_redis_server_t *s)
{
    s->state = NGX_LLM_CACHE_REDIS_READY;
    s->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

    if (s->failed) {
        s->failed = 0;
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "llm_cache: redis \"%V\" connected", &s->name);
    }
}


static void
ngx_llm_cache_redis_on_connect(const redisAsyncContext *ac, int status)
{
    ngx_llm_cache_redis_server_t  *s = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context right after this */
        ngx_llm_cache_redis_log_failure(s, s->log, "connect failed",
                                        ac->errstr);
        return;
    }

    if (s->connection && s->connection->write->timer_set) {
        ngx_del_timer(s->connection->write);
    }

    if (s->setup_pending == 0) {
        ngx_llm_cache_redis_ready(s);
    }
}


static void
ngx_llm_cache_redis_on_disconnect(const redisAsyncContext *ac, int status)
{
    ngx_llm_cache_redis_server_t  *s = ac->data;

    if (status != REDIS_OK && !s->closing) {
        ngx_llm_cache_redis_log_failure(s, s->log, "connection lost",
                                        ac->errstr);
    }
}


static void
ngx_llm_cache_redis_setup_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_llm_cache_redis_server_t  *s = privdata;

    redisReply  *rr = reply;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        /* AUTH or SELECT refused: never log the command, it has secrets */
        ngx_llm_cache_redis_log_failure(s, s->log,
                                        "refused the connection setup",
                                        rr->str);
        redisAsyncFree(ac);
        return;
    }

    if (--s->setup_pending == 0
        && s->state == NGX_LLM_CACHE_REDIS_CONNECTING)
    {
        ngx_llm_cache_redis_ready(s);
    }
}


ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_get(ngx_llm_cache_redis_server_t *s, ngx_str_t *key,
    ngx_llm_cache_redis_handler_pt handler, void *data)
{
    ngx_llm_cache_redis_op_t  *op;

    if (s->state != NGX_LLM_CACHE_REDIS_READY) {
        return NULL;
    }

    op = ngx_alloc(sizeof(ngx_llm_cache_redis_op_t), s->log);
    if (op == NULL) {
        return NULL;
    }

    op->handler = handler;
    op->data = data;
    op->server = s;

    if (redisAsyncCommand(s->ac, ngx_llm_cache_redis_get_reply, op,
                          "GET %b", key->data, key->len)
        != REDIS_OK)
    {
        ngx_free(op);
        return NULL;
    }

    return op;
}


void
ngx_llm_cache_redis_cancel(ngx_llm_cache_redis_op_t *op)
{
    /* the reply still arrives and frees the op */
    op->handler = NULL;
    op->data = NULL;
}


static void
ngx_llm_cache_redis_get_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_llm_cache_redis_op_t  *op = privdata;

    ngx_int_t                      rc;
    ngx_str_t                      value;
    redisReply                    *rr;
    ngx_llm_cache_redis_server_t  *s;

    rr = reply;
    s = op->server;

    ngx_str_null(&value);

    if (rr == NULL) {
        rc = NGX_ERROR;

    } else if (rr->type == REDIS_REPLY_NIL) {
        rc = NGX_DECLINED;

    } else if (rr->type == REDIS_REPLY_STRING) {
        rc = NGX_OK;
        value.data = (u_char *) rr->str;
        value.len = rr->len;

    } else {
        rc = NGX_ERROR;
        ngx_llm_cache_redis_log_failure(s, s->log, "GET failed",
                                        rr->type == REDIS_REPLY_ERROR
                                        ? rr->str : "unexpected reply");
    }

    if (op->handler && !s->exiting) {
        op->handler(op->data, rc, &value);
    }

    ngx_free(op);
}


ngx_int_t
ngx_llm_cache_redis_set(ngx_llm_cache_redis_server_t *s, ngx_str_t *key,
    ngx_str_t *value, time_t ttl)
{
    if (s->state != NGX_LLM_CACHE_REDIS_READY) {
        return NGX_DECLINED;
    }

    if (redisAsyncCommand(s->ac, ngx_llm_cache_redis_set_reply, s,
                          "SET %b %b EX %lld", key->data, key->len,
                          value->data, value->len, (long long) ttl)
        != REDIS_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
ngx_llm_cache_redis_set_reply(redisAsyncContext *ac, void *reply,
    void *privdata)
{
    ngx_llm_cache_redis_server_t  *s = privdata;

    redisReply  *rr = reply;

    if (rr != NULL && rr->type == REDIS_REPLY_ERROR) {
        ngx_llm_cache_redis_log_failure(s, s->log, "SET failed", rr->str);
    }
}


void
ngx_llm_cache_redis_log_failure(ngx_llm_cache_redis_server_t *s,
    ngx_log_t *log, const char *what, const char *detail)
{
    time_t  now;

    now = ngx_time();

    if (now - s->failure_logged < NGX_LLM_CACHE_REDIS_LOG_INTERVAL) {
        s->failures_suppressed++;
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "llm_cache: redis \"%V\" %s: %s, requests go to the "
                  "provider uncached (%ui similar messages suppressed)",
                  &s->name, what, detail, s->failures_suppressed);

    s->failure_logged = now;
    s->failures_suppressed = 0;
}
