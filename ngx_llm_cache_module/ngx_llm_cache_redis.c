
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Redis on nginx's event loop.  Every worker keeps a small pool of
 * keep-alive connections to each configured server; commands pipeline on
 * the first ready one and spill over to the others when it is busy or
 * lost.  The connections are the module's own transport
 * (ngx_llm_cache_redis_conn.c: nginx's sockets and SSL layer, hiredis's
 * command formatter and reply parser); nginx timers give the command
 * timeouts and the jittered reconnect backoff.  A rediss:// server is
 * reached over TLS; a host name is resolved again at each connect when a
 * "resolver" is configured, else once at start.
 *
 * A command that times out closes its connection, as proxy_read_timeout
 * ends an upstream one: a connection that went silent (a partition, a
 * failed-over endpoint) would otherwise be picked for ever.  Connection
 * failures and timeouts count towards the circuit breaker; an error reply
 * (OOM, READONLY, WRONGTYPE) is an answer, logged and never counted.  After
 * max_fails failures in a row the server is not used (requests fail open
 * at once) while one connection keeps being reopened: the first one set up
 * puts the server back in use.  If the last failure was a command timeout
 * on a set-up connection (Redis takes connections but does not answer in
 * time), it is left alone for fail_timeout instead, then one command on a
 * connection set up since probes it.
 *
 * A Sentinel-managed master (sentinel=) has no fixed address: connect
 * takes the one ngx_llm_cache_redis_sentinel.c knows (none known: no
 * connection, requests fail open), a ROLE other than master refuses the
 * connection, failures and READONLY replies are reported there, and
 * ngx_llm_cache_redis_repoint() moves the pool when the master moves.
 *
 * A Redis Cluster (cluster=) server has no pool: the public functions
 * route each command by its key's slot to a node server, an ordinary
 * server made by ngx_llm_cache_redis_node() from the slot map that
 * ngx_llm_cache_redis_cluster.c keeps.  A node server's ops keep a copy
 * of their command, sent again by ngx_llm_cache_redis_resend() when the
 * reply is MOVED or ASK; its failures make the map be asked for again.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include <netinet/tcp.h>

#include <hiredis/hiredis.h>

#include "ngx_llm_cache_redis.h"
#include "ngx_llm_cache_redis_conn.h"
#include "ngx_llm_cache_redis_cluster.h"
#include "ngx_llm_cache_redis_sentinel.h"
#include "ngx_llm_cache_module.h"     /* the metrics hooks */


#define NGX_LLM_CACHE_REDIS_BACKOFF_MIN    100
#define NGX_LLM_CACHE_REDIS_BACKOFF_MAX    5000
#define NGX_LLM_CACHE_REDIS_LOG_INTERVAL   5
#define NGX_LLM_CACHE_REDIS_POOL_MAX       64

/* reconnect delay while no connection is ready: the pool's recovery time */
#define NGX_LLM_CACHE_REDIS_PROBE          200

/* TCP keepalive: a peer gone without a word is noticed in 30 s */
#define NGX_LLM_CACHE_REDIS_KEEPIDLE       15
#define NGX_LLM_CACHE_REDIS_KEEPINTVL      5
#define NGX_LLM_CACHE_REDIS_KEEPCNT        3

/* replies outstanding on a connection before the next one is used */
#define NGX_LLM_CACHE_REDIS_PIPELINE       64


/* deletes the lock only if it is still ours */
#define NGX_LLM_CACHE_REDIS_UNLOCK                                            \
    "if redis.call('get', KEYS[1]) == ARGV[1] then "                          \
    "return redis.call('del', KEYS[1]) end return 0"


typedef enum {
    NGX_LLM_CACHE_REDIS_DOWN = 0,
    NGX_LLM_CACHE_REDIS_CONNECTING,
    NGX_LLM_CACHE_REDIS_READY
} ngx_llm_cache_redis_state_e;


struct ngx_llm_cache_redis_conn_s {
    ngx_llm_cache_redis_server_t  *server;
    ngx_llm_cache_redis_link_t    *link;
    ngx_resolver_ctx_t            *resolving;
    ngx_llm_cache_redis_state_e    state;
    ngx_uint_t                     setup_pending;
    ngx_uint_t                     pending;    /* replies outstanding */
    ngx_event_t                    reconnect;
    ngx_msec_t                     backoff;

    /* the address a name resolved to at this connect */
    ngx_sockaddr_t                 sockaddr;
    socklen_t                      socklen;
    ngx_str_t                      addr_name;
    u_char                         addr_text[NGX_SOCKADDR_STRLEN];
};


struct ngx_llm_cache_redis_server_s {
    ngx_str_t                      spec;      /* the directive's arguments */
    ngx_str_t                      name;
    u_char                        *host;      /* ip text or unix path */
    int                            port;
    ngx_int_t                      db;
    ngx_str_t                      user;
    ngx_str_t                      password;
    ngx_msec_t                     connect_timeout;
    ngx_uint_t                     pool_size;
    ngx_uint_t                     max_fails;
    ngx_msec_t                     fail_timeout;
    unsigned                       unix_socket:1;

    struct sockaddr               *sockaddr;  /* resolved at start */
    socklen_t                      socklen;
    ngx_str_t                      addr_name;
    ngx_str_t                      host_name; /* as configured, no port */
    unsigned                       tls_wanted:1;   /* rediss:// */
    unsigned                       is_name:1;      /* not an address */
    unsigned                       attached:1;
    ngx_llm_cache_redis_tls_t     *tls;
    ngx_llm_cache_redis_ssl_conf_t ssl_conf;
    ngx_resolver_t                *resolver;  /* NULL: none configured */
    ngx_msec_t                     resolver_timeout;

    /* a Sentinel-managed master: host and port come from there */
    ngx_llm_cache_redis_sentinel_t *sentinel;

    /*
     * Redis Cluster: a cluster= server has no connections of its own, it
     * routes each command to one of its node servers, made in the worker
     * from the slot map (ngx_llm_cache_redis_cluster.c); node is set on
     * those
     */
    ngx_llm_cache_redis_cluster_t *cluster;
    unsigned                       node:1;

    /* the worker's side */
    ngx_llm_cache_redis_conn_t    *conns;
    ngx_llm_cache_redis_conn_t    *prober;    /* reopened at once */
    ngx_log_t                     *log;

    /* the circuit breaker */
    ngx_uint_t                     fails;
    ngx_msec_t                     failed_at;
    ngx_msec_t                     retry_at;
    unsigned                       tripped:1;
    unsigned                       probing:1;
    unsigned                       was_down:1;
    unsigned                       exiting:1;
    unsigned                       slow:1;    /* last failure: a timeout
                                                 on a set-up connection */

    time_t                         failure_logged;
    ngx_uint_t                     failures_suppressed;
    time_t                         refusal_logged;
    ngx_uint_t                     refusals_suppressed;
};


static ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_parse(
    ngx_conf_t *cf, ngx_str_t *value, ngx_uint_t n);
static ngx_msec_t ngx_llm_cache_redis_parse_msec(ngx_str_t *value,
    size_t prefix);
static ngx_int_t ngx_llm_cache_redis_resolve_once(ngx_conf_t *cf,
    ngx_llm_cache_redis_server_t *server);
static ngx_int_t ngx_llm_cache_redis_set_addr(ngx_conf_t *cf,
    ngx_llm_cache_redis_server_t *server, ngx_url_t *u);
static ngx_int_t ngx_llm_cache_redis_start(ngx_llm_cache_redis_server_t *s,
    ngx_cycle_t *cycle);
static void ngx_llm_cache_redis_stop(ngx_llm_cache_redis_server_t *s);
static void ngx_llm_cache_redis_connect(ngx_llm_cache_redis_conn_t *rc);
static void ngx_llm_cache_redis_reconnect_handler(ngx_event_t *ev);
static void ngx_llm_cache_redis_schedule(ngx_llm_cache_redis_conn_t *rc);
static void ngx_llm_cache_redis_resolved(ngx_resolver_ctx_t *ctx);
static void ngx_llm_cache_redis_open(ngx_llm_cache_redis_conn_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name);
static void ngx_llm_cache_redis_on_close(ngx_llm_cache_redis_link_t *lk,
    ngx_int_t status);
static void ngx_llm_cache_redis_setup_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata);
static void ngx_llm_cache_redis_name_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata);
static void ngx_llm_cache_redis_role_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata);
static ngx_int_t ngx_llm_cache_redis_peer_addr(
    ngx_llm_cache_redis_conn_t *rc, u_char *host, int port);
static ngx_llm_cache_redis_conn_t *ngx_llm_cache_redis_pick(
    ngx_llm_cache_redis_server_t *s, ngx_log_t *log, const char *what,
    ngx_uint_t probe);
static ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_send(
    ngx_llm_cache_redis_conn_t *rc, const char *what, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_llm_cache_redis_send_unlock(ngx_llm_cache_redis_conn_t *rc,
    ngx_str_t *lock, ngx_str_t *token);
static ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_send_block(
    ngx_llm_cache_redis_conn_t *rc, const char *what, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log,
    int argc, const char **argv, const size_t *argvlen, u_char **block,
    u_char *end);
static ngx_int_t ngx_llm_cache_redis_copy_argv(ngx_llm_cache_redis_op_t *op,
    int argc, const char **argv, const size_t *argvlen);
static void ngx_llm_cache_redis_free_op(ngx_llm_cache_redis_op_t *op);
static void ngx_llm_cache_redis_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata);
static void ngx_llm_cache_redis_op_timeout(ngx_event_t *ev);
static void ngx_llm_cache_redis_succeeded(ngx_llm_cache_redis_server_t *s,
    ngx_llm_cache_redis_op_t *op);
static void ngx_llm_cache_redis_failed(ngx_llm_cache_redis_server_t *s,
    ngx_llm_cache_redis_op_t *op, ngx_log_t *log, const char *what,
    const char *detail, ngx_uint_t slow);
static void ngx_llm_cache_redis_log_failure(ngx_llm_cache_redis_server_t *s,
    ngx_log_t *log, const char *what, const char *detail);
static void ngx_llm_cache_redis_log_refusal(ngx_llm_cache_redis_server_t *s,
    ngx_log_t *log, const char *what, const char *detail);


/*
 * The same llm_cache_redis arguments in many locations share one server,
 * so a worker keeps one pool for it, not one per location.
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
    ngx_int_t                      db, num;
    ngx_str_t                      addr;
    ngx_url_t                      u;
    ngx_uint_t                     i, first;
    ngx_llm_cache_redis_server_t  *server;

    server = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_redis_server_t));
    if (server == NULL) {
        return NULL;
    }

    server->db = -1;
    server->connect_timeout = 1000;
    server->pool_size = 2;
    server->max_fails = 5;
    server->fail_timeout = 3000;
    server->name = value[1];

    first = 2;

    if (ngx_strncmp(value[1].data, "sentinel=", 9) == 0) {
        /* the sentinels' addresses, then the parameters */
        server->sentinel = ngx_llm_cache_redis_sentinel_create(cf, value, n,
                                                               &first);
        if (server->sentinel == NULL) {
            return NULL;
        }
    }

    for (i = first; i < n; i++) {

        if (ngx_strncmp(value[i].data, "sentinel_", 9) == 0) {
            if (server->sentinel) {
                /* taken by ngx_llm_cache_redis_sentinel_create() */
                continue;
            }

            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" sentinel_* parameters "
                               "need sentinel=");
            return NULL;
        }

        if (ngx_strncmp(value[i].data, "db=", 3) == 0) {
            db = ngx_atoi(value[i].data + 3, value[i].len - 3);
            if (db == NGX_ERROR || db > NGX_MAX_INT32_VALUE) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"llm_cache_redis\" db= must be "
                                   "from 0 to %d, not \"%V\"",
                                   NGX_MAX_INT32_VALUE, &value[i]);
                return NULL;
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

        if (ngx_strncmp(value[i].data, "pool=", 5) == 0) {
            num = ngx_atoi(value[i].data + 5, value[i].len - 5);
            if (num == NGX_ERROR || num < 1
                || num > NGX_LLM_CACHE_REDIS_POOL_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "\"llm_cache_redis\" pool= must be "
                                   "from 1 to %d, not \"%V\"",
                                   NGX_LLM_CACHE_REDIS_POOL_MAX, &value[i]);
                return NULL;
            }

            server->pool_size = num;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_fails=", 10) == 0) {
            num = ngx_atoi(value[i].data + 10, value[i].len - 10);
            if (num == NGX_ERROR) {
                goto invalid;
            }

            server->max_fails = num;
            continue;
        }

        if (ngx_strncmp(value[i].data, "fail_timeout=", 13) == 0) {
            server->fail_timeout = ngx_llm_cache_redis_parse_msec(&value[i],
                                                                  13);
            if (server->fail_timeout == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "connect_timeout=", 16) == 0) {
            server->connect_timeout = ngx_llm_cache_redis_parse_msec(
                                                               &value[i], 16);
            if (server->connect_timeout == (ngx_msec_t) NGX_ERROR) {
                goto invalid;
            }

            continue;
        }

        goto invalid;
    }

    if (server->user.len && server->password.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" user= needs password=");
        return NULL;
    }

    if (server->sentinel) {
        return server;
    }

    addr = value[1];

    if (addr.len > 8 && ngx_strncmp(addr.data, "cluster=", 8) == 0) {
        if (server->db >= 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" db= cannot be used "
                               "with cluster= (Redis Cluster has db 0 only)");
            return NULL;
        }

        addr.data += 8;
        addr.len -= 8;

        server->cluster = ngx_llm_cache_redis_cluster_parse(cf, server,
                                                            &addr);

        return server->cluster ? server : NULL;
    }

    if (addr.len > 9
        && ngx_strncasecmp(addr.data, (u_char *) "rediss://", 9) == 0)
    {
        server->tls_wanted = 1;
        addr.data += 9;
        addr.len -= 9;

    } else if (addr.len > 8
               && ngx_strncasecmp(addr.data, (u_char *) "redis://", 8) == 0)
    {
        addr.data += 8;
        addr.len -= 8;
    }

    if (addr.len > 5 && ngx_strncasecmp(addr.data, (u_char *) "unix:", 5)
                        == 0)
    {
        if (server->tls_wanted) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "\"llm_cache_redis\" \"%V\": Redis has no "
                               "TLS on a unix socket", &value[1]);
            return NULL;
        }

        server->unix_socket = 1;
        server->host = ngx_pnalloc(cf->pool, addr.len - 5 + 1);
        if (server->host == NULL) {
            return NULL;
        }

        ngx_cpystrn(server->host, addr.data + 5, addr.len - 5 + 1);

        ngx_memzero(&u, sizeof(ngx_url_t));
        u.url = addr;

        if (ngx_parse_url(cf->pool, &u) != NGX_OK || u.naddrs == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"llm_cache_redis\" address \"%V\"",
                               u.err ? u.err : "no address", &addr);
            return NULL;
        }

        server->sockaddr = u.addrs[0].sockaddr;
        server->socklen = u.addrs[0].socklen;
        server->addr_name = u.addrs[0].name;

        return server;
    }

    /*
     * a name is resolved at merge time, once, unless a "resolver" is
     * there to resolve it at each connect (ngx_llm_cache_redis_merge())
     */

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = addr;
    u.default_port = 6379;
    u.no_resolve = 1;

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in \"llm_cache_redis\" address \"%V\"",
                               u.err, &addr);
        }

        return NULL;
    }

    server->port = u.port ? u.port : 6379;
    server->host_name = u.host;
    server->is_name = (u.naddrs == 0);

    if (server->is_name) {
        return server;
    }

    if (ngx_llm_cache_redis_set_addr(cf, server, &u) != NGX_OK) {
        return NULL;
    }

    return server;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\" in \"llm_cache_redis\"",
                       &value[i]);
    return NULL;
}


/*
 * At merge time, for a location's llm_cache_redis: its TLS settings (for
 * a rediss:// server) and its resolver (for a host name).  The first
 * location to use a server gives it these; a location with other ones
 * gets a server of its own (the same address, another pool).
 */

char *
ngx_llm_cache_redis_merge(ngx_conf_t *cf, ngx_array_t *servers,
    ngx_llm_cache_redis_server_t **redis, ngx_uint_t redis_here,
    ngx_llm_cache_redis_server_t *prev_redis,
    ngx_llm_cache_redis_ssl_conf_t *prev_ssl,
    ngx_llm_cache_redis_ssl_conf_t *ssl, ngx_resolver_t *resolver,
    ngx_msec_t resolver_timeout)
{
    ngx_uint_t                      i, ssl_here;
    ngx_llm_cache_redis_server_t  **sp, *s, *t;

    /*
     * TLS settings in the block of a clear-text llm_cache_redis would not
     * be used: clear text by mistake.  The http{} block is never merged
     * itself: it is checked as the parent of a server{}.
     */

    ssl_here = ngx_llm_cache_redis_ssl_conf_set(ssl);

    if (!prev_ssl->merged && prev_redis != NGX_CONF_UNSET_PTR
        && prev_redis != NULL && !prev_redis->tls_wanted
        && ngx_llm_cache_redis_ssl_conf_set(prev_ssl))
    {
        s = prev_redis;
        goto clear_text;
    }

    if (ngx_llm_cache_redis_ssl_merge_conf(cf, prev_ssl, ssl)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    s = *redis;

    if (s == NULL) {
        return NGX_CONF_OK;
    }

    if (!s->tls_wanted && ssl_here && redis_here) {
        goto clear_text;
    }

    if (resolver && (!s->is_name || s->unix_socket
                     || resolver->connections.nelts == 0))
    {
        resolver = NULL;
    }

    sp = servers->elts;
    t = NULL;

    for (i = 0; i < servers->nelts; i++) {
        if (sp[i]->spec.len != s->spec.len
            || ngx_memcmp(sp[i]->spec.data, s->spec.data, s->spec.len) != 0)
        {
            continue;
        }

        if (!sp[i]->attached) {
            t = sp[i];
            break;
        }

        if (sp[i]->resolver == resolver
            && (!s->tls_wanted
                || ngx_llm_cache_redis_ssl_conf_equal(&sp[i]->ssl_conf, ssl)))
        {
            *redis = sp[i];
            return NGX_CONF_OK;
        }
    }

    if (t == NULL) {
        t = ngx_palloc(cf->pool, sizeof(ngx_llm_cache_redis_server_t));
        if (t == NULL) {
            return NGX_CONF_ERROR;
        }

        *t = *s;

        sp = ngx_array_push(servers);
        if (sp == NULL) {
            return NGX_CONF_ERROR;
        }

        *sp = t;
    }

    t->attached = 1;
    t->resolver = resolver;
    t->resolver_timeout = resolver_timeout;
    t->tls = NULL;

    if (t->is_name && t->sockaddr == NULL && resolver == NULL
        && ngx_llm_cache_redis_resolve_once(cf, t) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (t->tls_wanted) {
        t->ssl_conf = *ssl;

        t->tls = ngx_llm_cache_redis_tls_create(cf, &t->ssl_conf,
                                                &t->host_name);
        if (t->tls == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    *redis = t;

    return NGX_CONF_OK;

clear_text:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"llm_cache_redis_ssl_*\" directives need a "
                       "\"rediss://\" address in \"llm_cache_redis\", "
                       "not \"%V\"", &s->name);
    return NGX_CONF_ERROR;
}


/* a name without a resolver: resolved now, once (as hiredis needed) */

static ngx_int_t
ngx_llm_cache_redis_resolve_once(ngx_conf_t *cf,
    ngx_llm_cache_redis_server_t *server)
{
    ngx_url_t  u;

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = server->host_name;
    u.host = server->host_name;
    u.port = (in_port_t) server->port;
    u.default_port = 6379;

    if (ngx_inet_resolve_host(cf->pool, &u) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "%s in \"llm_cache_redis\" address \"%V\"",
                           u.err ? u.err : "cannot resolve", &server->name);
        return NGX_ERROR;
    }

    return ngx_llm_cache_redis_set_addr(cf, server, &u);
}


static ngx_int_t
ngx_llm_cache_redis_set_addr(ngx_conf_t *cf,
    ngx_llm_cache_redis_server_t *server, ngx_url_t *u)
{
    u_char  *p;

    if (u->naddrs == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"llm_cache_redis\" address \"%V\" "
                           "has no usable address", &server->name);
        return NGX_ERROR;
    }

    server->host = ngx_pnalloc(cf->pool, NGX_SOCKADDR_STRLEN + 1);
    if (server->host == NULL) {
        return NGX_ERROR;
    }

    p = server->host + ngx_sock_ntop(u->addrs[0].sockaddr,
                                     u->addrs[0].socklen, server->host,
                                     NGX_SOCKADDR_STRLEN, 0);
    *p = '\0';

    server->sockaddr = u->addrs[0].sockaddr;
    server->socklen = u->addrs[0].socklen;
    server->addr_name = u->addrs[0].name;

    return NGX_OK;
}


/* "name=time" after the prefix: a time over 0, or NGX_ERROR */

static ngx_msec_t
ngx_llm_cache_redis_parse_msec(ngx_str_t *value, size_t prefix)
{
    ngx_str_t   s;
    ngx_msec_t  ms;

    s.data = value->data + prefix;
    s.len = value->len - prefix;

    ms = ngx_parse_time(&s, 0);

    return ms == 0 ? (ngx_msec_t) NGX_ERROR : ms;
}


ngx_int_t
ngx_llm_cache_redis_init_worker(ngx_cycle_t *cycle, ngx_array_t *servers)
{
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t  **s;

    s = servers->elts;

    for (i = 0; i < servers->nelts; i++) {
        s[i]->log = cycle->log;

        if (!s[i]->attached) {
            /* used by no location (its settings come with one) */
            continue;
        }

        if (s[i]->cluster) {
            /* its node servers are started from the slot map */
            if (ngx_llm_cache_redis_cluster_init_worker(s[i]->cluster, cycle)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

            continue;
        }

        if (ngx_llm_cache_redis_start(s[i], cycle) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_llm_cache_redis_start(ngx_llm_cache_redis_server_t *s,
    ngx_cycle_t *cycle)
{
    ngx_uint_t                   j;
    ngx_llm_cache_redis_conn_t  *rc;

    s->conns = ngx_pcalloc(cycle->pool,
                           s->pool_size * sizeof(ngx_llm_cache_redis_conn_t));
    if (s->conns == NULL) {
        return NGX_ERROR;
    }

    for (j = 0; j < s->pool_size; j++) {
        rc = &s->conns[j];

        rc->server = s;
        rc->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

        rc->reconnect.handler = ngx_llm_cache_redis_reconnect_handler;
        rc->reconnect.data = rc;
        rc->reconnect.log = cycle->log;

        /* no request waits for it: shutdown need not wait for it */
        rc->reconnect.cancelable = 1;

        ngx_llm_cache_redis_connect(rc);
    }

    if (s->sentinel
        && ngx_llm_cache_redis_sentinel_init_worker(s->sentinel, s,
                                                    s->connect_timeout,
                                                    cycle->log)
           != NGX_OK)
    {
        return NGX_ERROR;
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
        if (s[i]->cluster) {
            s[i]->exiting = 1;
            ngx_llm_cache_redis_cluster_exit_worker(s[i]->cluster);
            continue;
        }

        ngx_llm_cache_redis_stop(s[i]);
    }
}


static void
ngx_llm_cache_redis_stop(ngx_llm_cache_redis_server_t *s)
{
    ngx_uint_t                   j;
    ngx_llm_cache_redis_conn_t  *rc;

    s->exiting = 1;

    if (s->sentinel) {
        ngx_llm_cache_redis_sentinel_exit_worker(s->sentinel);
    }

    if (s->tripped) {
        /* the gauge of open breakers is shared: this one goes */
        ngx_llm_cache_metrics_redis_event(s, &s->name,
            NGX_LLM_CACHE_METRICS_REDIS_BREAKER_CLOSE);
    }

    if (s->conns == NULL) {
        return;
    }

    for (j = 0; j < s->pool_size; j++) {
        rc = &s->conns[j];

        if (rc->reconnect.timer_set) {
            ngx_del_timer(&rc->reconnect);
        }

        if (rc->resolving) {
            ngx_resolve_name_done(rc->resolving);
            rc->resolving = NULL;
        }

        if (rc->link) {
            /* what the last requests stored: out if the socket takes it */
            if (rc->state == NGX_LLM_CACHE_REDIS_READY) {
                ngx_llm_cache_redis_link_flush(rc->link);
            }

            if (rc->link) {
                ngx_llm_cache_redis_link_free(rc->link);
            }
        }
    }
}


/*
 * A name is resolved with the "resolver" at each connect, so an endpoint
 * that moves (a managed Redis failing over) is followed; without one, the
 * address found at start is used.
 */

static void
ngx_llm_cache_redis_connect(ngx_llm_cache_redis_conn_t *rc)
{
    ngx_llm_cache_redis_server_t *s = rc->server;

    int                  port;
    u_char              *host;
    ngx_resolver_ctx_t  *ctx;

    if (s->sentinel || s->node) {
        host = s->host;
        port = s->port;

        if (s->sentinel
            && ngx_llm_cache_redis_sentinel_address(s->sentinel, &host, &port)
               != NGX_OK)
        {
            /* no master known yet: the sentinels' answer opens it (repoint) */
            return;
        }

        if (ngx_llm_cache_redis_peer_addr(rc, host, port) != NGX_OK) {
            ngx_llm_cache_redis_failed(s, NULL, s->log, "connect failed",
                                       "not an IP address", 0);
            ngx_llm_cache_redis_schedule(rc);
            return;
        }

        ngx_llm_cache_redis_open(rc, &rc->sockaddr.sockaddr, rc->socklen,
                                 &rc->addr_name);
        return;
    }

    if (s->resolver == NULL || !s->is_name) {
        ngx_llm_cache_redis_open(rc, s->sockaddr, s->socklen, &s->addr_name);
        return;
    }

    ctx = ngx_resolve_start(s->resolver, NULL);

    if (ctx == NULL || ctx == NGX_NO_RESOLVER) {
        ngx_llm_cache_redis_failed(s, NULL, s->log, "connect failed",
                                   "cannot start resolving", 0);
        ngx_llm_cache_redis_schedule(rc);
        return;
    }

    ctx->name = s->host_name;
    ctx->handler = ngx_llm_cache_redis_resolved;
    ctx->data = rc;
    ctx->timeout = s->resolver_timeout;
    ctx->cancelable = 1;

    rc->resolving = ctx;
    rc->state = NGX_LLM_CACHE_REDIS_DOWN;

    if (ngx_resolve_name(ctx) != NGX_OK) {
        /* ctx is freed */
        rc->resolving = NULL;
        ngx_llm_cache_redis_failed(s, NULL, s->log, "connect failed",
                                   "cannot resolve", 0);
        ngx_llm_cache_redis_schedule(rc);
    }
}


static void
ngx_llm_cache_redis_resolved(ngx_resolver_ctx_t *ctx)
{
    ngx_llm_cache_redis_conn_t  *rc = ctx->data;

    u_char                         *p;
    ngx_uint_t                      i;
    ngx_llm_cache_redis_server_t   *s;

    s = rc->server;
    rc->resolving = NULL;

    if (ctx->state || ctx->naddrs == 0) {
        p = ngx_snprintf(rc->addr_text, sizeof(rc->addr_text) - 1,
                         "\"%V\" could not be resolved (%i: %s)",
                         &ctx->name, ctx->state,
                         ngx_resolver_strerror(ctx->state));
        *p = '\0';

        ngx_resolve_name_done(ctx);

        ngx_llm_cache_redis_failed(s, NULL, s->log, "connect failed",
                                   (char *) rc->addr_text, 0);
        ngx_llm_cache_redis_schedule(rc);
        return;
    }

    /* the resolver rotates the addresses: the first one */

    i = 0;

    ngx_memcpy(&rc->sockaddr, ctx->addrs[i].sockaddr, ctx->addrs[i].socklen);
    rc->socklen = ctx->addrs[i].socklen;

    ngx_inet_set_port(&rc->sockaddr.sockaddr, (in_port_t) s->port);

    rc->addr_name.data = rc->addr_text;
    rc->addr_name.len = ngx_sock_ntop(&rc->sockaddr.sockaddr, rc->socklen,
                                      rc->addr_text, NGX_SOCKADDR_STRLEN, 1);

    ngx_resolve_name_done(ctx);

    ngx_log_debug2(NGX_LOG_DEBUG_CORE, s->log, 0,
                   "llm_cache: redis \"%V\" resolved to %V",
                   &s->name, &rc->addr_name);

    ngx_llm_cache_redis_open(rc, &rc->sockaddr.sockaddr, rc->socklen,
                             &rc->addr_name);
}


/* the master's address as a sentinel names it: IP text and a port */

static ngx_int_t
ngx_llm_cache_redis_peer_addr(ngx_llm_cache_redis_conn_t *rc, u_char *host,
    int port)
{
    size_t     len;
    in_addr_t  addr;

    len = ngx_strlen(host);

    ngx_memzero(&rc->sockaddr, sizeof(ngx_sockaddr_t));

    addr = ngx_inet_addr(host, len);

    if (addr != INADDR_NONE) {
        rc->sockaddr.sockaddr_in.sin_family = AF_INET;
        rc->sockaddr.sockaddr_in.sin_addr.s_addr = addr;
        rc->socklen = sizeof(struct sockaddr_in);

#if (NGX_HAVE_INET6)
    } else if (ngx_inet6_addr(host, len,
                              rc->sockaddr.sockaddr_in6.sin6_addr.s6_addr)
               == NGX_OK)
    {
        rc->sockaddr.sockaddr_in6.sin6_family = AF_INET6;
        rc->socklen = sizeof(struct sockaddr_in6);
#endif

    } else {
        return NGX_ERROR;
    }

    ngx_inet_set_port(&rc->sockaddr.sockaddr, (in_port_t) port);

    rc->addr_name.data = rc->addr_text;
    rc->addr_name.len = ngx_sock_ntop(&rc->sockaddr.sockaddr, rc->socklen,
                                      rc->addr_text, NGX_SOCKADDR_STRLEN, 1);

    return NGX_OK;
}


static void
ngx_llm_cache_redis_open(ngx_llm_cache_redis_conn_t *rc,
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name)
{
    ngx_llm_cache_redis_server_t *s = rc->server;

    ngx_llm_cache_redis_link_t  *lk;

    lk = ngx_llm_cache_redis_link_open(sockaddr, socklen, name, s->tls,
                                       s->connect_timeout, s->log);

    if (lk == NULL) {
        ngx_llm_cache_redis_failed(s, NULL, s->log, "connect failed",
                                   "out of memory", 0);
        ngx_llm_cache_redis_schedule(rc);
        return;
    }

    if (lk->failed) {
        ngx_llm_cache_redis_failed(s, NULL, s->log, "connect failed",
                                   (char *) lk->errstr, 0);
        ngx_llm_cache_redis_link_free(lk);
        ngx_llm_cache_redis_schedule(rc);
        return;
    }

    if (!s->unix_socket) {
        ngx_llm_cache_redis_keepalive(ngx_llm_cache_redis_link_fd(lk),
                                      s->log);
    }

    lk->data = rc;
    lk->on_close = ngx_llm_cache_redis_on_close;

    rc->link = lk;
    rc->state = NGX_LLM_CACHE_REDIS_CONNECTING;
    rc->setup_pending = 0;
    rc->pending = 0;

    /* queued now, sent first once the socket connects */

    if (s->password.len) {
        if (s->user.len) {
            if (ngx_llm_cache_redis_link_commandf(lk,
                    ngx_llm_cache_redis_setup_reply, rc, "AUTH %b %b",
                    s->user.data, s->user.len, s->password.data,
                    s->password.len)
                == NGX_OK)
            {
                rc->setup_pending++;
            }

        } else if (ngx_llm_cache_redis_link_commandf(lk,
                       ngx_llm_cache_redis_setup_reply, rc, "AUTH %b",
                       s->password.data, s->password.len)
                   == NGX_OK)
        {
            rc->setup_pending++;
        }
    }

    if (s->db >= 0
        && ngx_llm_cache_redis_link_commandf(lk,
               ngx_llm_cache_redis_setup_reply, rc, "SELECT %d", (int) s->db)
           == NGX_OK)
    {
        rc->setup_pending++;
    }

    /* what the sentinels named is used only if it is still a master */

    if (s->sentinel
        && ngx_llm_cache_redis_link_commandf(lk,
               ngx_llm_cache_redis_role_reply, rc, "ROLE")
           == NGX_OK)
    {
        rc->setup_pending++;
    }

    /*
     * For CLIENT LIST, and so that a connection is ready only once the
     * server has answered something: a port that accepts and never
     * answers, or answers garbage, never becomes ready (and is recycled
     * after connect_timeout).  An ACL that forbids it is no reason to
     * fail.
     */
    if (ngx_llm_cache_redis_link_commandf(lk, ngx_llm_cache_redis_name_reply,
                                          rc, "CLIENT SETNAME llm_cache")
        == NGX_OK)
    {
        rc->setup_pending++;
    }
}


/*
 * A connection that only goes idle is never written to, so without
 * keepalive probes a peer that vanished (a partition, a failed-over
 * endpoint) would be noticed only by the next command's timeout.
 */

void
ngx_llm_cache_redis_keepalive(ngx_socket_t fd, ngx_log_t *log)
{
    int  value;

    value = 1;

    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, (const void *) &value,
                   sizeof(int))
        == -1)
    {
        ngx_log_error(NGX_LOG_ALERT, log, ngx_socket_errno,
                      "llm_cache: setsockopt(SO_KEEPALIVE) failed, ignored");
        return;
    }

#if (NGX_HAVE_KEEPALIVE_TUNABLE)

    value = NGX_LLM_CACHE_REDIS_KEEPIDLE;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, (const void *) &value,
                      sizeof(int));

    value = NGX_LLM_CACHE_REDIS_KEEPINTVL;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, (const void *) &value,
                      sizeof(int));

    value = NGX_LLM_CACHE_REDIS_KEEPCNT;
    (void) setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, (const void *) &value,
                      sizeof(int));

#endif
}


/*
 * Capped exponential backoff with jitter, so the workers of every gateway
 * do not reconnect in step.  While no connection is ready, one of them
 * (the prober) is reopened every NGX_LLM_CACHE_REDIS_PROBE ms at most,
 * whatever the outage's length, so the server is in use again soon after
 * it answers; the others back off and are called back when it is set up.
 */

static void
ngx_llm_cache_redis_schedule(ngx_llm_cache_redis_conn_t *rc)
{
    ngx_llm_cache_redis_server_t *s = rc->server;

    ngx_uint_t  i;
    ngx_msec_t  delay, probe;

    if (s->exiting || ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (rc->reconnect.timer_set) {
        return;
    }

    delay = rc->backoff / 2 + (ngx_msec_t) ngx_random() % (rc->backoff / 2 + 1);

    rc->backoff = ngx_min(rc->backoff * 2, NGX_LLM_CACHE_REDIS_BACKOFF_MAX);

    if (s->prober == NULL || s->prober == rc) {
        s->prober = rc;

        for (i = 0; i < s->pool_size; i++) {
            if (s->conns[i].state == NGX_LLM_CACHE_REDIS_READY) {
                s->prober = NULL;
                break;
            }
        }

        if (s->prober == rc) {
            probe = NGX_LLM_CACHE_REDIS_PROBE / 2
                    + (ngx_msec_t) ngx_random()
                      % (NGX_LLM_CACHE_REDIS_PROBE / 2 + 1);

            delay = ngx_min(delay, probe);
        }
    }

    ngx_add_timer(&rc->reconnect, delay);
}


static void
ngx_llm_cache_redis_reconnect_handler(ngx_event_t *ev)
{
    ngx_llm_cache_redis_conn_t  *rc = ev->data;

    if (rc->link == NULL && rc->resolving == NULL && !rc->server->exiting) {
        ngx_llm_cache_redis_connect(rc);
    }
}


/*
 * The link closes, after the callbacks of the commands still outstanding
 * got a NULL reply: a lost connection is a failure, then it is reopened.
 * Before TCP (and TLS) was up, or at connect_timeout, it is the connect
 * that failed.
 */

static void
ngx_llm_cache_redis_on_close(ngx_llm_cache_redis_link_t *lk,
    ngx_int_t status)
{
    ngx_llm_cache_redis_conn_t  *rc = lk->data;

    if (status != NGX_OK && !rc->server->exiting) {
        ngx_llm_cache_redis_failed(rc->server, NULL, rc->server->log,
                                   (lk->connected && !lk->timedout)
                                   ? "connection lost" : "connect failed",
                                   (char *) lk->errstr, 0);
    }

    if (rc->state == NGX_LLM_CACHE_REDIS_READY) {
        rc->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;
    }

    rc->link = NULL;
    rc->state = NGX_LLM_CACHE_REDIS_DOWN;
    rc->pending = 0;

    ngx_llm_cache_redis_schedule(rc);
}


static void
ngx_llm_cache_redis_ready(ngx_llm_cache_redis_conn_t *rc)
{
    ngx_llm_cache_redis_server_t *s = rc->server;

    ngx_uint_t                   i;
    ngx_llm_cache_redis_conn_t  *other;

    rc->state = NGX_LLM_CACHE_REDIS_READY;
    rc->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

    ngx_llm_cache_metrics_redis_event(s, &s->name,
                                      NGX_LLM_CACHE_METRICS_REDIS_CONNECT);

    if (rc->link) {
        /* the connect timeout ran until the set-up was answered */
        ngx_llm_cache_redis_link_ready(rc->link);
    }

    s->prober = NULL;

    /* Redis answers: the others need not wait for their backoff */

    for (i = 0; i < s->pool_size; i++) {
        other = &s->conns[i];

        if (other->state == NGX_LLM_CACHE_REDIS_DOWN
            && other->reconnect.timer_set
            && other->backoff > NGX_LLM_CACHE_REDIS_BACKOFF_MIN)
        {
            ngx_del_timer(&other->reconnect);
            other->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;
            ngx_llm_cache_redis_schedule(other);
        }
    }

    if (s->was_down) {
        s->was_down = 0;
        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "llm_cache: redis \"%V\" connected", &s->name);
    }

    if (s->tripped && !s->slow) {
        /* it answered a new connection's set-up: it is back */
        ngx_llm_cache_metrics_redis_event(s, &s->name,
            NGX_LLM_CACHE_METRICS_REDIS_BREAKER_CLOSE);
        s->tripped = 0;
        s->probing = 0;
        s->fails = 0;

        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "llm_cache: redis \"%V\" answers again, in use",
                      &s->name);
    }
}


static void
ngx_llm_cache_redis_setup_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata)
{
    ngx_llm_cache_redis_conn_t  *rc = privdata;

    redisReply  *rr = reply;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        /* AUTH or SELECT refused: never log the command, it has secrets */
        ngx_llm_cache_redis_failed(rc->server, NULL, rc->server->log,
                                   "refused the connection setup", rr->str,
                                   0);
        ngx_llm_cache_redis_link_free(lk);
        return;
    }

    if (--rc->setup_pending == 0
        && rc->state == NGX_LLM_CACHE_REDIS_CONNECTING)
    {
        ngx_llm_cache_redis_ready(rc);
    }
}


static void
ngx_llm_cache_redis_name_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata)
{
    ngx_llm_cache_redis_conn_t  *rc = privdata;

    redisReply  *rr = reply;

    if (rr == NULL) {
        return;
    }

    if (rr->type == REDIS_REPLY_ERROR) {
        ngx_log_debug1(NGX_LOG_DEBUG_CORE, rc->server->log, 0,
                       "llm_cache: redis CLIENT SETNAME refused: %s",
                       rr->str);
    }

    if (--rc->setup_pending == 0
        && rc->state == NGX_LLM_CACHE_REDIS_CONNECTING)
    {
        ngx_llm_cache_redis_ready(rc);
    }
}


/* ROLE on a Sentinel-managed master's connection: "master", or it goes */

static void
ngx_llm_cache_redis_role_reply(ngx_llm_cache_redis_link_t *lk,
    void *reply, void *privdata)
{
    ngx_llm_cache_redis_conn_t  *rc = privdata;

    if (reply == NULL) {
        return;
    }

    if (ngx_llm_cache_redis_sentinel_role(rc->server->sentinel, reply)
        != NGX_OK)
    {
        /* counted as a failure, which asks the sentinels again */
        ngx_llm_cache_redis_failed(rc->server, NULL, rc->server->log,
                                   "connect failed", "not a master (ROLE)",
                                   0);
        ngx_llm_cache_redis_link_free(lk);
        return;
    }

    if (--rc->setup_pending == 0
        && rc->state == NGX_LLM_CACHE_REDIS_CONNECTING)
    {
        ngx_llm_cache_redis_ready(rc);
    }
}


/*
 * The first ready connection with fewer than NGX_LLM_CACHE_REDIS_PIPELINE
 * replies outstanding, else the ready one with the fewest: commands pile
 * onto one connection, so one write and one read carry many of them (two
 * connections sharing the load halve the batching and cost a quarter of
 * the hit rate), and the others take over when it is busy or lost.  NULL
 * (and a log line) when the server is not to be used now.
 */

static ngx_llm_cache_redis_conn_t *
ngx_llm_cache_redis_pick(ngx_llm_cache_redis_server_t *s, ngx_log_t *log,
    const char *what, ngx_uint_t probe)
{
    ngx_uint_t                   i;
    ngx_llm_cache_redis_conn_t  *rc, *best;

    if (s->conns == NULL || s->exiting) {
        return NULL;
    }

    if (s->tripped) {
        /*
         * only a command with a timeout may probe (its answer will come),
         * on a connection set up since the breaker opened
         */

        if ((ngx_msec_int_t) (ngx_current_msec - s->retry_at) < 0
            || s->probing || !probe)
        {
            ngx_llm_cache_redis_log_failure(s, log, what,
                                            "not used after repeated "
                                            "failures");
            return NULL;
        }
    }

    best = NULL;

    for (i = 0; i < s->pool_size; i++) {
        rc = &s->conns[i];

        if (rc->state != NGX_LLM_CACHE_REDIS_READY) {
            continue;
        }

        if (rc->pending < NGX_LLM_CACHE_REDIS_PIPELINE) {
            best = rc;
            break;
        }

        if (best == NULL || rc->pending < best->pending) {
            best = rc;
        }
    }

    if (best == NULL && !s->tripped) {
        /*
         * none ready: queue behind the set-up of one being opened (at
         * start-up, after a reconnect); if it never answers, the command
         * times out and the request fails open as with any slow server
         */

        for (i = 0; i < s->pool_size; i++) {
            if (s->conns[i].state == NGX_LLM_CACHE_REDIS_CONNECTING) {
                best = &s->conns[i];
                break;
            }
        }
    }

    if (best == NULL) {
        ngx_llm_cache_redis_log_failure(s, log, what, "not connected");
        return NULL;
    }

    return best;
}


static ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_send(ngx_llm_cache_redis_conn_t *rc, const char *what,
    ngx_msec_t timeout, ngx_llm_cache_redis_handler_pt handler, void *data,
    ngx_log_t *log, int argc, const char **argv, const size_t *argvlen)
{
    return ngx_llm_cache_redis_send_block(rc, what, timeout, handler, data,
                                          log, argc, argv, argvlen, NULL,
                                          NULL);
}


/*
 * With a block (*block, end: see ngx_llm_cache_redis_link_command_in_place),
 * the argument in it may be sent from where it is; *block is then NULL,
 * the block the link's
 */

static ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_send_block(ngx_llm_cache_redis_conn_t *rc,
    const char *what, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log,
    int argc, const char **argv, const size_t *argvlen, u_char **block,
    u_char *end)
{
    ngx_int_t                  n;
    ngx_llm_cache_redis_op_t  *op;

    op = ngx_calloc(sizeof(ngx_llm_cache_redis_op_t), rc->server->log);
    if (op == NULL) {
        return NULL;
    }

    op->handler = handler;
    op->data = data;
    op->conn = rc;
    op->log = log;
    op->what = what;
    op->sent = ngx_current_msec;
    op->probe = rc->server->tripped;
    op->timeout = timeout;

    if (rc->server->cluster
        && ngx_llm_cache_redis_copy_argv(op, argc, argv, argvlen) != NGX_OK)
    {
        ngx_free(op);
        return NULL;
    }

    n = NGX_DECLINED;

    if (block && *block && !rc->server->cluster) {
        n = ngx_llm_cache_redis_link_command_in_place(rc->link,
                                                  ngx_llm_cache_redis_reply,
                                                  op, argc, argv, argvlen,
                                                  *block, end);
        if (n == NGX_OK) {
            *block = NULL;
        }
    }

    if (n == NGX_DECLINED) {
        n = ngx_llm_cache_redis_link_command(rc->link,
                                             ngx_llm_cache_redis_reply, op,
                                             argc, argv, argvlen);
    }

    if (n != NGX_OK) {
        ngx_llm_cache_redis_free_op(op);
        return NULL;
    }

    rc->pending++;

    if (op->probe) {
        /* half open: this one command tells whether it is back */
        rc->server->probing = 1;
    }

    if (timeout) {
        op->timer.handler = ngx_llm_cache_redis_op_timeout;
        op->timer.data = op;
        op->timer.log = log;

        ngx_add_timer(&op->timer, timeout);
    }

    return op;
}


static void
ngx_llm_cache_redis_reply(ngx_llm_cache_redis_link_t *lk, void *reply,
    void *privdata)
{
    ngx_llm_cache_redis_op_t  *op = privdata;

    ngx_int_t                      rc;
    ngx_str_t                      value;
    ngx_uint_t                     redirect;
    redisReply                    *rr;
    ngx_llm_cache_redis_server_t  *s;

    rr = reply;
    s = op->conn->server;
    redirect = 0;

    if (op->conn->pending) {
        op->conn->pending--;
    }

    if (op->timer.timer_set) {
        ngx_del_timer(&op->timer);
    }

    ngx_str_null(&value);

    if (rr == NULL) {
        /* the connection went away; its loss is counted once, elsewhere */
        rc = NGX_ERROR;

    } else if (rr->type == REDIS_REPLY_NIL) {
        rc = NGX_DECLINED;

    } else if (rr->type == REDIS_REPLY_ERROR) {
        /* an answer all the same: Redis is there and refused this one */
        rc = NGX_ABORT;

        /* Redis Cluster: MOVED or ASK, followed below */
        redirect = op->argv != NULL
                   && (ngx_strncmp(rr->str, "MOVED ", 6) == 0
                       || ngx_strncmp(rr->str, "ASK ", 4) == 0);

        if (!redirect) {
            ngx_llm_cache_redis_log_refusal(s, s->log, op->what, rr->str);
        }

        if (s->sentinel && ngx_strncmp(rr->str, "READONLY", 8) == 0) {
            /* a demoted master: the sentinels know the new one */
            ngx_llm_cache_redis_sentinel_failed(s->sentinel, "READONLY");
        }

    } else {
        rc = NGX_OK;

        if (rr->type == REDIS_REPLY_STRING
            || rr->type == REDIS_REPLY_STATUS)
        {
            value.data = (u_char *) rr->str;
            value.len = rr->len;
        }
    }

    /* a reply that came too late shows a slow server, not a good one */

    ngx_llm_cache_metrics_redis_reply(s, &s->name, op->sent,
                                      rr != NULL && !op->timed_out);

    if (rr != NULL && !op->timed_out) {
        ngx_llm_cache_redis_succeeded(s, op);
    }

    if (op->probe && !op->timed_out && s->tripped) {
        /* the probe is over; a failure was counted where it happened */
        s->probing = 0;
    }

    if (redirect && !op->timed_out && !s->exiting) {
        if (ngx_llm_cache_redis_cluster_redirect(s->cluster, s, op, rr->str,
                                                 rr->len)
            == NGX_OK)
        {
            /* the same op is on its way to the node named */
            return;
        }

        ngx_llm_cache_redis_log_refusal(s, s->log, op->what, rr->str);
    }

    if (op->handler && !s->exiting) {
        op->handler(op->data, rc, &value);

    } else if (op->reply_handler && !s->exiting) {
        op->reply_handler(op->data, rc, rr);
    }

    ngx_llm_cache_redis_free_op(op);
}


/*
 * The request stops waiting.  A command sent on a set-up connection that
 * got no answer in time closes it, as proxy_read_timeout ends an upstream
 * connection: it went silent, or every command behind this one would wait
 * as long; the commands still on it fail at once, and it is reopened.  A
 * connection still being set up has its connect timer.  Otherwise the
 * reply, when it comes, frees the op.
 */

static void
ngx_llm_cache_redis_op_timeout(ngx_event_t *ev)
{
    ngx_llm_cache_redis_op_t  *op = ev->data;

    void                            *data;
    ngx_uint_t                       live;
    ngx_llm_cache_redis_conn_t      *rc;
    ngx_llm_cache_redis_link_t      *lk;
    ngx_llm_cache_redis_reply_pt     reply_handler;
    ngx_llm_cache_redis_handler_pt   handler;

    rc = op->conn;
    lk = rc->link;
    handler = op->handler;
    reply_handler = op->reply_handler;
    data = op->data;

    op->handler = NULL;
    op->reply_handler = NULL;
    op->timed_out = 1;

    /* behind a set-up that is not answered, it is the connection failing */
    live = (rc->state == NGX_LLM_CACHE_REDIS_READY);

    ngx_llm_cache_redis_failed(rc->server, op, op->log, "timed out",
                               "no reply within llm_cache_redis_timeout",
                               live);

    if (live && rc->state == NGX_LLM_CACHE_REDIS_READY && rc->link == lk) {
        /* not to be picked by what the failing commands' handlers send */
        rc->state = NGX_LLM_CACHE_REDIS_DOWN;
        rc->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

        /* frees op too, if the breaker did not */
        ngx_llm_cache_redis_link_free(lk);
    }

    if (handler) {
        handler(data, NGX_ERROR, NULL);

    } else if (reply_handler) {
        reply_handler(data, NGX_ERROR, NULL);
    }
}


/*
 * The request goes away.  The timer stays: an answer that never comes
 * must still count as a failure, or a half-open breaker whose probe was
 * cancelled would wait for it forever.
 */

void
ngx_llm_cache_redis_cancel(ngx_llm_cache_redis_op_t *op)
{
    op->handler = NULL;
    op->reply_handler = NULL;
    op->data = NULL;
    op->log = op->conn->server->log;
    op->timer.log = op->log;
}


ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_get(ngx_llm_cache_redis_server_t *s, ngx_str_t *key,
    ngx_msec_t timeout, ngx_llm_cache_redis_handler_pt handler, void *data,
    ngx_log_t *log)
{
    const char                  *argv[2];
    size_t                       argvlen[2];
    ngx_llm_cache_redis_conn_t  *rc;

    if (s->cluster && !s->node) {
        s = ngx_llm_cache_redis_cluster_route(s->cluster, key->data,
                                              key->len);
    }

    rc = ngx_llm_cache_redis_pick(s, log, "GET failed", 1);
    if (rc == NULL) {
        return NULL;
    }

    argv[0] = "GET";
    argvlen[0] = 3;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;

    return ngx_llm_cache_redis_send(rc, "GET failed", timeout, handler, data,
                                    log, 2, argv, argvlen);
}


/* SET lock token NX PX ttl: NGX_OK when taken, NGX_DECLINED when held */

ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_lock(ngx_llm_cache_redis_server_t *s, ngx_str_t *key,
    ngx_str_t *token, ngx_msec_t ttl, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log)
{
    u_char                       ms[NGX_INT_T_LEN];
    const char                  *argv[6];
    size_t                       argvlen[6];
    ngx_llm_cache_redis_conn_t  *rc;

    if (s->cluster && !s->node) {
        s = ngx_llm_cache_redis_cluster_route(s->cluster, key->data,
                                              key->len);
    }

    rc = ngx_llm_cache_redis_pick(s, log, "lock failed", 1);
    if (rc == NULL) {
        return NULL;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;
    argv[2] = (const char *) token->data;
    argvlen[2] = token->len;
    argv[3] = "NX";
    argvlen[3] = 2;
    argv[4] = "PX";
    argvlen[4] = 2;
    argv[5] = (const char *) ms;
    argvlen[5] = ngx_sprintf(ms, "%M", ttl) - ms;

    return ngx_llm_cache_redis_send(rc, "lock failed", timeout, handler, data,
                                    log, 6, argv, argvlen);
}


/*
 * SET key value EX ttl and, for the holder of the miss lock, the unlock
 * right behind it on the same connection, so waiters that see the lock go
 * find the entry.  Nothing waits for the replies.
 */

ngx_int_t
ngx_llm_cache_redis_set(ngx_llm_cache_redis_server_t *s, ngx_str_t *key,
    ngx_str_t *value, time_t ttl, ngx_str_t *lock, ngx_str_t *token,
    u_char **block, u_char *end)
{
    u_char                       ex[NGX_TIME_T_LEN];
    const char                    *argv[5];
    size_t                         argvlen[5];
    ngx_llm_cache_redis_conn_t    *rc;
    ngx_llm_cache_redis_server_t  *cluster;

    cluster = NULL;

    if (s->cluster && !s->node) {
        cluster = s;
        s = ngx_llm_cache_redis_cluster_route(s->cluster, key->data,
                                              key->len);
    }

    rc = ngx_llm_cache_redis_pick(s, s->log, "SET failed", 0);
    if (rc == NULL) {
        return NGX_DECLINED;
    }

    argv[0] = "SET";
    argvlen[0] = 3;
    argv[1] = (const char *) key->data;
    argvlen[1] = key->len;
    argv[2] = (const char *) value->data;
    argvlen[2] = value->len;
    argv[3] = "EX";
    argvlen[3] = 2;
    argv[4] = (const char *) ex;
    argvlen[4] = ngx_sprintf(ex, "%T", ttl) - ex;

    if (ngx_llm_cache_redis_send_block(rc, "SET failed", 0, NULL, NULL,
                                       s->log, 5, argv, argvlen, block, end)
        == NULL)
    {
        return NGX_ERROR;
    }

    if (lock && lock->len) {
        if (cluster
            && ngx_llm_cache_redis_cluster_route(cluster->cluster, lock->data,
                                                 lock->len)
               != s)
        {
            /* not in the entry's slot (see the lock key): on its own */
            ngx_llm_cache_redis_unlock(cluster, lock, token);

        } else {
            ngx_llm_cache_redis_send_unlock(rc, lock, token);
        }
    }

    return NGX_OK;
}


void
ngx_llm_cache_redis_unlock(ngx_llm_cache_redis_server_t *s, ngx_str_t *lock,
    ngx_str_t *token)
{
    ngx_llm_cache_redis_conn_t  *rc;

    if (s->cluster && !s->node) {
        s = ngx_llm_cache_redis_cluster_route(s->cluster, lock->data,
                                              lock->len);
    }

    rc = ngx_llm_cache_redis_pick(s, s->log, "unlock failed", 0);
    if (rc == NULL) {
        /* the lock expires by itself */
        return;
    }

    ngx_llm_cache_redis_send_unlock(rc, lock, token);
}


static void
ngx_llm_cache_redis_send_unlock(ngx_llm_cache_redis_conn_t *rc,
    ngx_str_t *lock, ngx_str_t *token)
{
    const char  *argv[5];
    size_t       argvlen[5];

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = NGX_LLM_CACHE_REDIS_UNLOCK;
    argvlen[1] = sizeof(NGX_LLM_CACHE_REDIS_UNLOCK) - 1;
    argv[2] = "1";
    argvlen[2] = 1;
    argv[3] = (const char *) lock->data;
    argvlen[3] = lock->len;
    argv[4] = (const char *) token->data;
    argvlen[4] = token->len;

    (void) ngx_llm_cache_redis_send(rc, "unlock failed", 0, NULL, NULL,
                                    rc->server->log, 5, argv, argvlen);
}


static void
ngx_llm_cache_redis_succeeded(ngx_llm_cache_redis_server_t *s,
    ngx_llm_cache_redis_op_t *op)
{
    if (s->tripped && !op->probe) {
        /* sent before the breaker opened: only the probe may close it */
        return;
    }

    s->fails = 0;

    if (s->tripped) {
        ngx_llm_cache_metrics_redis_event(s, &s->name,
            NGX_LLM_CACHE_METRICS_REDIS_BREAKER_CLOSE);
        s->tripped = 0;
        s->probing = 0;

        ngx_log_error(NGX_LOG_NOTICE, s->log, 0,
                      "llm_cache: redis \"%V\" answers again, in use",
                      &s->name);
    }
}


/*
 * The circuit breaker counts failures in a row and opens at max_fails.
 * Commands that were already on their way when a failure was counted
 * fail with it, as one incident: a stall that times out every pipelined
 * GET at once is one failure, not one per request in flight.
 */

static void
ngx_llm_cache_redis_failed(ngx_llm_cache_redis_server_t *s,
    ngx_llm_cache_redis_op_t *op, ngx_log_t *log, const char *what,
    const char *detail, ngx_uint_t slow)
{
    ngx_uint_t                   i;
    ngx_llm_cache_redis_conn_t  *rc;

    if (s->sentinel) {
        /* the master may have moved: the sentinels are asked again */
        ngx_llm_cache_redis_sentinel_failed(s->sentinel, what);
    }

    ngx_llm_cache_redis_log_failure(s, log, what, detail);
    ngx_llm_cache_metrics_redis_event(s, &s->name,
                                      NGX_LLM_CACHE_METRICS_REDIS_FAILURE);

    s->was_down = 1;

    if (s->cluster && !s->exiting) {
        /* a node failing may be a master failing over: ask for the map */
        ngx_llm_cache_redis_cluster_node_failed(s->cluster);
    }

    if (op && s->fails
        && (ngx_msec_int_t) (op->sent - s->failed_at) <= 0)
    {
        return;
    }

    s->fails++;
    s->failed_at = ngx_current_msec;
    s->slow = slow;

    if (s->max_fails == 0 || s->fails < s->max_fails) {
        return;
    }

    s->retry_at = ngx_current_msec + s->fail_timeout;
    s->probing = 0;

    if (s->tripped) {
        return;
    }

    s->tripped = 1;
    ngx_llm_cache_metrics_redis_event(s, &s->name,
                                      NGX_LLM_CACHE_METRICS_REDIS_BREAKER_OPEN);

    if (slow) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "llm_cache: redis \"%V\" failed %ui times in a row, "
                      "not used for %M ms", &s->name, s->fails,
                      s->fail_timeout);

    } else {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "llm_cache: redis \"%V\" failed %ui times in a row, "
                      "not used until a new connection is set up",
                      &s->name, s->fails);
    }

    /*
     * Only connections set up from now on are trusted: one of these may
     * be the one that went silent, and the probe must not go to it.  The
     * commands on them fail at once, as the breaker would have them do.
     */

    for (i = 0; s->conns && i < s->pool_size; i++) {
        rc = &s->conns[i];

        if (rc->state == NGX_LLM_CACHE_REDIS_READY && rc->link
            && !ngx_llm_cache_redis_link_closing(rc->link))
        {
            rc->state = NGX_LLM_CACHE_REDIS_DOWN;
            rc->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

            ngx_llm_cache_redis_link_free(rc->link);
        }
    }
}


/*
 * The sentinels name another master (ngx_llm_cache_redis_sentinel.c): the
 * connections to the old one go (the commands on them fail open) and each
 * is reopened at once, to the new address.  The breaker, if open, closes
 * when the first is set up: the old master's slowness says nothing of the
 * new one.
 */

void
ngx_llm_cache_redis_repoint(ngx_llm_cache_redis_server_t *s)
{
    ngx_uint_t                   i;
    ngx_llm_cache_redis_conn_t  *rc;

    if (s->conns == NULL || s->exiting) {
        return;
    }

    /* none is picked by what the failing commands' handlers send */

    for (i = 0; i < s->pool_size; i++) {
        s->conns[i].state = NGX_LLM_CACHE_REDIS_DOWN;
    }

    for (i = 0; i < s->pool_size; i++) {
        rc = &s->conns[i];

        if (rc->link && !ngx_llm_cache_redis_link_closing(rc->link)) {
            ngx_llm_cache_redis_link_free(rc->link);
        }
    }

    s->prober = NULL;
    s->slow = 0;

    for (i = 0; i < s->pool_size; i++) {
        rc = &s->conns[i];

        if (rc->reconnect.timer_set) {
            ngx_del_timer(&rc->reconnect);
        }

        rc->backoff = NGX_LLM_CACHE_REDIS_BACKOFF_MIN;

        if (rc->resolving) {
            ngx_resolve_name_done(rc->resolving);
            rc->resolving = NULL;
        }

        if (rc->link == NULL) {
            ngx_llm_cache_redis_connect(rc);
        }
    }
}


static void
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


/*
 * An error reply (OOM under maxmemory, READONLY from a replica, WRONGTYPE)
 * is not Redis failing: the lookups go on, only this command is lost.
 */

static void
ngx_llm_cache_redis_log_refusal(ngx_llm_cache_redis_server_t *s,
    ngx_log_t *log, const char *what, const char *detail)
{
    time_t  now;

    now = ngx_time();

    if (now - s->refusal_logged < NGX_LLM_CACHE_REDIS_LOG_INTERVAL) {
        s->refusals_suppressed++;
        return;
    }

    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "llm_cache: redis \"%V\" %s: error reply \"%s\", "
                  "Redis stays in use (%ui similar messages suppressed)",
                  &s->name, what, detail, s->refusals_suppressed);

    s->refusal_logged = now;
    s->refusals_suppressed = 0;
}


/*
 * EVAL script numkeys=0 with up to 4 arguments, for a purge step; the
 * script answers a string
 */

ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_eval(ngx_llm_cache_redis_server_t *s, ngx_str_t *script,
    ngx_uint_t nargs, ngx_str_t *args, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log)
{
    ngx_uint_t                   i;
    const char                  *argv[7];
    size_t                       argvlen[7];
    ngx_llm_cache_redis_conn_t  *rc;

    if (nargs > 4) {
        return NULL;
    }

    if (s->cluster && !s->node) {
        /* no key: the first master; the purge goes to each in turn */
        s = ngx_llm_cache_redis_cluster_master(s->cluster, 0);
        if (s == NULL) {
            return NULL;
        }
    }

    rc = ngx_llm_cache_redis_pick(s, log, "purge failed", 1);
    if (rc == NULL) {
        return NULL;
    }

    argv[0] = "EVAL";
    argvlen[0] = 4;
    argv[1] = (const char *) script->data;
    argvlen[1] = script->len;
    argv[2] = "0";
    argvlen[2] = 1;

    for (i = 0; i < nargs; i++) {
        argv[3 + i] = (const char *) args[i].data;
        argvlen[3 + i] = args[i].len;
    }

    return ngx_llm_cache_redis_send(rc, "purge failed", timeout, handler,
                                    data, log, 3 + nargs, argv, argvlen);
}


/*
 * Any command, its whole reply to the handler (the semantic index reads
 * arrays); without a handler, fire and forget, as the store's writes
 */

ngx_llm_cache_redis_op_t *
ngx_llm_cache_redis_command(ngx_llm_cache_redis_server_t *s,
    const char *what, int argc, const char **argv, const size_t *argvlen,
    ngx_msec_t timeout, ngx_llm_cache_redis_reply_pt handler, void *data,
    ngx_log_t *log)
{
    ngx_llm_cache_redis_op_t    *op;
    ngx_llm_cache_redis_conn_t  *rc;

    if (s->cluster && !s->node) {
        /* by its first key: the keys of one command share a hash tag */
        s = ngx_llm_cache_redis_cluster_route_argv(s->cluster, argc, argv,
                                                   argvlen);
        if (s == NULL) {
            return NULL;
        }
    }

    rc = ngx_llm_cache_redis_pick(s, log, what, handler && timeout);
    if (rc == NULL) {
        return NULL;
    }

    op = ngx_llm_cache_redis_send(rc, what, timeout, NULL, data, log, argc,
                                  argv, argvlen);
    if (op) {
        op->reply_handler = handler;
    }

    return op;
}


/*
 * Redis Cluster.  A cluster op keeps its command, in one allocation, so
 * that a MOVED or ASK reply can send it again.
 */

static ngx_int_t
ngx_llm_cache_redis_copy_argv(ngx_llm_cache_redis_op_t *op, int argc,
    const char **argv, const size_t *argvlen)
{
    int          i;
    u_char      *p;
    size_t       len, *lens;
    const char **args;

    len = argc * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < argc; i++) {
        len += argvlen[i];
    }

    p = ngx_alloc(len, ngx_cycle->log);
    if (p == NULL) {
        return NGX_ERROR;
    }

    op->argv = p;
    op->argc = argc;

    args = (const char **) p;
    lens = (size_t *) (p + argc * sizeof(char *));
    p += argc * (sizeof(char *) + sizeof(size_t));

    for (i = 0; i < argc; i++) {
        args[i] = (const char *) p;
        lens[i] = argvlen[i];
        p = ngx_cpymem(p, argv[i], argvlen[i]);
    }

    return NGX_OK;
}


static void
ngx_llm_cache_redis_free_op(ngx_llm_cache_redis_op_t *op)
{
    if (op->argv) {
        ngx_free(op->argv);
    }

    ngx_free(op);
}


/*
 * The op again, on a connection to the node named by MOVED or ASK (then
 * behind ASKING, on the same connection); the caller's pointer to the op
 * stays good.  NGX_ERROR: the node is not to be used, the error reply
 * stands.
 */

ngx_int_t
ngx_llm_cache_redis_resend(ngx_llm_cache_redis_op_t *op,
    ngx_llm_cache_redis_server_t *node, ngx_uint_t asking)
{
    const char                  **argv;
    const size_t                 *argvlen;
    ngx_llm_cache_redis_conn_t   *rc;

    rc = ngx_llm_cache_redis_pick(node, op->log, op->what, op->timeout != 0);
    if (rc == NULL) {
        return NGX_ERROR;
    }

    argv = op->argv;
    argvlen = (const size_t *) ((u_char *) op->argv
                                + op->argc * sizeof(char *));

    if (asking
        && ngx_llm_cache_redis_link_commandf(rc->link, NULL, NULL, "ASKING")
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ngx_llm_cache_redis_link_command(rc->link, ngx_llm_cache_redis_reply,
                                         op, op->argc, argv, argvlen)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    op->conn = rc;
    op->sent = ngx_current_msec;
    op->probe = node->tripped;
    op->redirects++;

    rc->pending++;

    if (op->probe) {
        node->probing = 1;
    }

    if (op->timeout) {
        ngx_add_timer(&op->timer, op->timeout);
    }

    return NGX_OK;
}


/*
 * A node server: the cluster= server's parameters (password=, user=,
 * pool=, max_fails=, ...) at the node's address, started at once.
 * A parameter added to llm_cache_redis that a node needs is copied here.
 */

ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_node(ngx_llm_cache_redis_server_t *server,
    ngx_llm_cache_redis_cluster_t *cl, u_char *host, size_t len, int port,
    ngx_cycle_t *cycle)
{
    ngx_llm_cache_redis_server_t  *s;

    s = ngx_pcalloc(cycle->pool, sizeof(ngx_llm_cache_redis_server_t));
    if (s == NULL) {
        return NULL;
    }

    s->host = ngx_pnalloc(cycle->pool, len + 1);
    s->name.data = ngx_pnalloc(cycle->pool, len + NGX_INT_T_LEN + 3);
    if (s->host == NULL || s->name.data == NULL) {
        return NULL;
    }

    ngx_cpystrn(s->host, host, len + 1);
    s->port = port;

    s->name.len = ngx_sprintf(s->name.data,
                              ngx_strlchr(host, host + len, ':') ? "[%s]:%d"
                                                                 : "%s:%d",
                              s->host, port)
                  - s->name.data;
    s->spec = s->name;

    s->db = -1;
    s->user = server->user;
    s->password = server->password;
    s->connect_timeout = server->connect_timeout;
    s->pool_size = server->pool_size;
    s->max_fails = server->max_fails;
    s->fail_timeout = server->fail_timeout;

    s->cluster = cl;
    s->node = 1;
    s->log = cycle->log;

    if (ngx_llm_cache_redis_start(s, cycle) != NGX_OK) {
        return NULL;
    }

    return s;
}


void
ngx_llm_cache_redis_node_exit(ngx_llm_cache_redis_server_t *node)
{
    ngx_llm_cache_redis_stop(node);
}


/* connected and not held off by its breaker */

ngx_uint_t
ngx_llm_cache_redis_node_usable(ngx_llm_cache_redis_server_t *node)
{
    ngx_uint_t  i;

    if (node->tripped || node->conns == NULL) {
        return 0;
    }

    for (i = 0; i < node->pool_size; i++) {
        if (node->conns[i].state == NGX_LLM_CACHE_REDIS_READY) {
            return 1;
        }
    }

    return 0;
}


ngx_int_t
ngx_llm_cache_redis_node_is(ngx_llm_cache_redis_server_t *node,
    u_char *host, size_t len, int port)
{
    return node->port == port
           && ngx_strlen(node->host) == len
           && ngx_strncmp(node->host, host, len) == 0;
}


ngx_str_t *
ngx_llm_cache_redis_node_host(ngx_llm_cache_redis_server_t *node, int *port)
{
    static ngx_str_t  host;

    host.data = node->host;
    host.len = ngx_strlen(node->host);
    *port = node->port;

    return &host;
}


ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_master(ngx_llm_cache_redis_server_t *s, ngx_uint_t n)
{
    if (s->cluster && !s->node) {
        return ngx_llm_cache_redis_cluster_master(s->cluster, n);
    }

    return n == 0 ? s : NULL;
}


ngx_uint_t
ngx_llm_cache_redis_is_cluster(ngx_llm_cache_redis_server_t *s)
{
    return s->cluster != NULL;
}


ngx_llm_cache_redis_server_t *
ngx_llm_cache_redis_owner(ngx_llm_cache_redis_server_t *s, ngx_str_t **name)
{
    if (s->node) {
        s = ngx_llm_cache_redis_cluster_server(s->cluster);
        *name = &s->name;
    }

    return s;
}


/*
 * A connection of its own to the server, outside the pool (the L1
 * invalidation channel): AUTH and SELECT are queued, their replies go to
 * handler.  NULL if the server has no address known here (a name
 * resolved at each connect, a Sentinel-managed master), or is a cluster
 * (tracking is per node: one connection would miss the others' writes).
 */

ngx_llm_cache_redis_link_t *
ngx_llm_cache_redis_open_link(ngx_llm_cache_redis_server_t *s,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, ngx_log_t *log)
{
    ngx_llm_cache_redis_link_t  *lk;

    if (s->sockaddr == NULL || s->sentinel || s->cluster) {
        return NULL;
    }

    lk = ngx_llm_cache_redis_link_open(s->sockaddr, s->socklen,
                                       &s->addr_name, s->tls,
                                       s->connect_timeout, log);

    if (lk == NULL || lk->failed) {
        return lk;
    }

    if (!s->unix_socket) {
        ngx_llm_cache_redis_keepalive(ngx_llm_cache_redis_link_fd(lk), log);
    }

    if (s->password.len) {
        if (s->user.len) {
            (void) ngx_llm_cache_redis_link_commandf(lk, handler, data,
                                                     "AUTH %b %b",
                                                     s->user.data,
                                                     s->user.len,
                                                     s->password.data,
                                                     s->password.len);

        } else {
            (void) ngx_llm_cache_redis_link_commandf(lk, handler, data,
                                                     "AUTH %b",
                                                     s->password.data,
                                                     s->password.len);
        }
    }

    if (s->db >= 0) {
        (void) ngx_llm_cache_redis_link_commandf(lk, handler, data,
                                                 "SELECT %d", (int) s->db);
    }

    return lk;
}


ngx_str_t *
ngx_llm_cache_redis_name(ngx_llm_cache_redis_server_t *s)
{
    return &s->name;
}
