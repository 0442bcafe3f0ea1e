
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The module's own Redis transport, the way nginx's upstream modules talk
 * to their peers: ngx_event_connect_peer() on an ngx_peer_connection_t,
 * the connect timeout on nginx's timers, optionally TLS through nginx's
 * SSL layer (ngx_ssl_create_connection(), ngx_ssl_handshake(); c->recv and
 * c->send are then nginx's SSL ones), commands formatted by hiredis's
 * redisFormatCommandArgv() into one output buffer written with c->send,
 * replies parsed by hiredis's redisReader and matched in order with a
 * FIFO of callbacks.  When the link closes, every callback still queued
 * gets a NULL reply, as hiredis's async API did.
 *
 * Commands given in one event loop turn are written with one send at the
 * end of the turn (a posted write event), so pipelined requests share
 * system calls; the socket is registered once, edge-triggered.
 *
 * What nginx would log on the link's connection (connect() refused, an
 * SSL error) is kept as the link's errstr instead: the owner logs one
 * line, rate limited, with it.  nginx logs some SSL errors at "crit" (a
 * TLS 1.3 alert "certificate required" among them), which is no crash.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>

#include <hiredis/hiredis.h>

#include "ngx_llm_cache_redis_conn.h"


/* reads per read event before the others get a turn */
#define NGX_LLM_CACHE_REDIS_LINK_READS     64

#define NGX_LLM_CACHE_REDIS_LINK_OUT       4096

/* an output buffer grown past this (a large entry stored) is not kept */
#define NGX_LLM_CACHE_REDIS_LINK_OUT_KEEP  65536
/* the size from which an argument is sent from where it is */
#define NGX_LLM_CACHE_REDIS_LINK_IN_PLACE  16384

#define NGX_LLM_CACHE_REDIS_VERIFY_DEPTH   9


struct ngx_llm_cache_redis_cb_s {
    ngx_llm_cache_redis_cb_t           *next;
    ngx_llm_cache_redis_link_reply_pt   handler;
    void                               *data;
};


static void ngx_llm_cache_redis_link_log(ngx_log_t *log, ngx_uint_t level,
    u_char *buf, size_t len);
static void ngx_llm_cache_redis_link_write_handler(ngx_event_t *wev);
static void ngx_llm_cache_redis_link_read_handler(ngx_event_t *rev);
static void ngx_llm_cache_redis_link_connected(ngx_llm_cache_redis_link_t *lk);
#if (NGX_SSL)
static void ngx_llm_cache_redis_link_ssl_handshake_handler(
    ngx_connection_t *c);
static void ngx_llm_cache_redis_link_ssl_handshaked(
    ngx_llm_cache_redis_link_t *lk);
static ngx_int_t ngx_llm_cache_redis_link_check_name(ngx_connection_t *c,
    ngx_str_t *name);
static int ngx_llm_cache_redis_link_cert_asked(ngx_ssl_conn_t *ssl_conn,
    X509 **x509, EVP_PKEY **pkey);
#endif
static void ngx_llm_cache_redis_link_up(ngx_llm_cache_redis_link_t *lk);
static ngx_int_t ngx_llm_cache_redis_link_send(
    ngx_llm_cache_redis_link_t *lk);
static ngx_int_t ngx_llm_cache_redis_link_dispatch(
    ngx_llm_cache_redis_link_t *lk);
static ngx_int_t ngx_llm_cache_redis_link_append(
    ngx_llm_cache_redis_link_t *lk, ngx_llm_cache_redis_link_reply_pt handler,
    void *data, char *cmd, size_t len);
static u_char *ngx_llm_cache_redis_link_reserve(ngx_llm_cache_redis_link_t *lk,
    size_t len);
static ngx_int_t ngx_llm_cache_redis_link_queue(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, u_char *last);
static ngx_int_t ngx_llm_cache_redis_link_spare_cb(
    ngx_llm_cache_redis_link_t *lk);
static size_t ngx_llm_cache_redis_resp_size(int argc, int from, int to,
    const char **argv, const size_t *argvlen);
static size_t ngx_llm_cache_redis_digits(size_t n);
static u_char *ngx_llm_cache_redis_resp_arg(u_char *p, const char *arg,
    size_t len);
static void ngx_llm_cache_redis_link_fail(ngx_llm_cache_redis_link_t *lk,
    const char *msg);
static void ngx_llm_cache_redis_link_close(ngx_llm_cache_redis_link_t *lk);
static ngx_uint_t ngx_llm_cache_redis_link_is_message(redisReply *rr,
    ngx_llm_cache_redis_cb_t *cb);


/* the read buffer: the reader copies what it is fed */
static u_char  ngx_llm_cache_redis_link_buf[65536];


ngx_conf_bitmask_t  ngx_llm_cache_redis_ssl_protocols[] = {
#if (NGX_SSL)
    { ngx_string("SSLv2"), NGX_SSL_SSLv2 },
    { ngx_string("SSLv3"), NGX_SSL_SSLv3 },
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
#endif
    { ngx_null_string, 0 }
};


/*
 * A link that could not even start (no socket, connect() refused at
 * once) comes back with lk->failed and lk->errstr set: the owner frees it.
 */

ngx_llm_cache_redis_link_t *
ngx_llm_cache_redis_link_open(struct sockaddr *sockaddr, socklen_t socklen,
    ngx_str_t *name, ngx_llm_cache_redis_tls_t *tls,
    ngx_msec_t connect_timeout, ngx_log_t *log)
{
    ngx_int_t                    rc;
    ngx_connection_t            *c;
    ngx_llm_cache_redis_link_t  *lk;

    lk = ngx_calloc(sizeof(ngx_llm_cache_redis_link_t), log);
    if (lk == NULL) {
        return NULL;
    }

    lk->reader = redisReaderCreate();
    if (lk->reader == NULL) {
        ngx_free(lk);
        return NULL;
    }

    lk->owner_log = log;
    lk->tls = tls;

    lk->log = *log;
    lk->log.log_level = NGX_LOG_INFO | (log->log_level & NGX_LOG_DEBUG_ALL);
    lk->log.writer = ngx_llm_cache_redis_link_log;
    lk->log.wdata = lk;
    lk->log.handler = NULL;
    lk->log.next = NULL;

    lk->peer.sockaddr = sockaddr;
    lk->peer.socklen = socklen;
    lk->peer.name = name;
    lk->peer.get = ngx_event_get_peer;
    lk->peer.log = &lk->log;
    lk->peer.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&lk->peer);

    if (rc != NGX_OK && rc != NGX_AGAIN) {
        lk->failed = 1;

        if (lk->errstr[0] == '\0') {
            ngx_cpystrn(lk->errstr, (u_char *) "connect() failed",
                        sizeof(lk->errstr));
        }

        return lk;
    }

    c = lk->peer.connection;

    c->data = lk;

    if (sockaddr->sa_family != AF_UNIX) {
        /* pipelined commands go out at once, as hiredis had it */
        (void) ngx_tcp_nodelay(c);
    }

    c->read->handler = ngx_llm_cache_redis_link_read_handler;
    c->write->handler = ngx_llm_cache_redis_link_write_handler;

    /*
     * Not idle: a graceful shutdown keeps it, so requests still in flight
     * can store their answers; only the connect timer is cancelable, so
     * a connect under way does not hold the exiting worker up.
     */
    c->write->cancelable = 1;

    ngx_add_timer(c->write, connect_timeout);

    if (rc == NGX_OK) {
        /* connected at once (a unix socket): go on in this loop turn */
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return lk;
}


/* the owner's set-up is answered: the connect timeout no longer runs */

void
ngx_llm_cache_redis_link_ready(ngx_llm_cache_redis_link_t *lk)
{
    ngx_connection_t  *c;

    lk->ready = 1;

    /* asked for a certificate, it took us without: optional */
    lk->cert_asked = 0;

    c = lk->peer.connection;

    if (c && c->write->timer_set) {
        ngx_del_timer(c->write);
    }
}


ngx_socket_t
ngx_llm_cache_redis_link_fd(ngx_llm_cache_redis_link_t *lk)
{
    return lk->peer.connection ? lk->peer.connection->fd
                               : (ngx_socket_t) -1;
}


/* nginx's own lines about this connection: kept, the owner logs them */

static void
ngx_llm_cache_redis_link_log(ngx_log_t *log, ngx_uint_t level, u_char *buf,
    size_t len)
{
    ngx_llm_cache_redis_link_t *lk = log->wdata;

    u_char     *p, *last;
    ngx_log_t  *owner;

    if (level == NGX_LOG_DEBUG || level <= NGX_LOG_ALERT) {
        owner = lk->owner_log;

        if (owner->log_level >= level && owner->file
            && owner->file->fd != NGX_INVALID_FILE)
        {
            (void) ngx_write_fd(owner->file->fd, buf, len);
        }

        if (level == NGX_LOG_DEBUG) {
            return;
        }
    }

    /* "time [level] pid#tid: *n message\n": the message */

    last = buf + len;

    while (last > buf && (last[-1] == LF || last[-1] == CR)) {
        last--;
    }

    p = ngx_strlchr(buf, last, '#');
    if (p) {
        p = ngx_strlchr(p, last, ':');
    }

    if (p == NULL || last - p < 2) {
        p = buf;

    } else {
        p += 2;

        if (p < last && *p == '*') {
            p = ngx_strlchr(p, last, ' ');
            p = (p == NULL) ? last : p + 1;
        }
    }

    len = ngx_min((size_t) (last - p), sizeof(lk->errstr) - 1);
    ngx_memcpy(lk->errstr, p, len);
    lk->errstr[len] = '\0';
}


static void
ngx_llm_cache_redis_link_write_handler(ngx_event_t *wev)
{
    int                          err;
    socklen_t                    len;
    ngx_connection_t            *c;
    ngx_llm_cache_redis_link_t  *lk;

    c = wev->data;
    lk = c->data;

    if (wev->timedout) {
        wev->timedout = 0;
        lk->timedout = 1;
        ngx_llm_cache_redis_link_fail(lk, "no answer within connect_timeout");
        return;
    }

    if (lk->connected) {
        (void) ngx_llm_cache_redis_link_send(lk);
        return;
    }

    if (lk->peer.connection == NULL || c->ssl) {
        /* the handshake has the events meanwhile */
        return;
    }

    err = 0;
    len = sizeof(int);

    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, (void *) &err, &len) == -1) {
        err = ngx_socket_errno;
    }

    if (err) {
        ngx_log_error(NGX_LOG_ERR, c->log, err, "connect() to %V failed",
                      lk->peer.name);
        ngx_llm_cache_redis_link_fail(lk, NULL);
        return;
    }

    ngx_llm_cache_redis_link_connected(lk);
}


/* TCP is up: the TLS handshake, if any */

static void
ngx_llm_cache_redis_link_connected(ngx_llm_cache_redis_link_t *lk)
{
#if (NGX_SSL)
    ngx_int_t                   rc;
    ngx_connection_t           *c;
    ngx_llm_cache_redis_tls_t  *tls;

    tls = lk->tls;

    if (tls == NULL || tls->ssl == NULL) {
        ngx_llm_cache_redis_link_up(lk);
        return;
    }

    c = lk->peer.connection;

    c->pool = ngx_create_pool(1024, c->log);
    if (c->pool == NULL) {
        ngx_llm_cache_redis_link_fail(lk, "out of memory");
        return;
    }

    if (ngx_ssl_create_connection(tls->ssl, c, NGX_SSL_CLIENT) != NGX_OK) {
        ngx_llm_cache_redis_link_fail(lk, NULL);
        return;
    }

    /* the output buffer moves when it grows */
    SSL_set_mode(c->ssl->connection, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

#ifdef SSL_CTRL_SET_TLSEXT_HOSTNAME

    /* as per RFC 6066, literal IPv4 and IPv6 addresses are not sent */

    if (tls->server_name && tls->name.len
        && ngx_inet_addr(tls->name.data, tls->name.len) == INADDR_NONE
        && ngx_strlchr(tls->name.data, tls->name.data + tls->name.len, ':')
           == NULL)
    {
        if (SSL_set_tlsext_host_name(c->ssl->connection,
                                     (char *) tls->name.data)
            == 0)
        {
            ngx_ssl_error(NGX_LOG_ERR, c->log, 0,
                          "SSL_set_tlsext_host_name(\"%s\") failed",
                          tls->name.data);
            ngx_llm_cache_redis_link_fail(lk, NULL);
            return;
        }
    }

#endif

    rc = ngx_ssl_handshake(c);

    if (rc == NGX_AGAIN) {
        c->ssl->handler = ngx_llm_cache_redis_link_ssl_handshake_handler;
        return;
    }

    ngx_llm_cache_redis_link_ssl_handshaked(lk);

#else

    ngx_llm_cache_redis_link_up(lk);

#endif
}


#if (NGX_SSL)

static void
ngx_llm_cache_redis_link_ssl_handshake_handler(ngx_connection_t *c)
{
    ngx_llm_cache_redis_link_ssl_handshaked(c->data);
}


/*
 * As ngx_http_upstream_ssl_handshake(): the chain and then the name are
 * checked after the handshake, so the log says which failed and why.
 * A failure is a failed connection, never a reason to talk clear text.
 */

static void
ngx_llm_cache_redis_link_ssl_handshaked(ngx_llm_cache_redis_link_t *lk)
{
    long               rc;
    u_char            *p;
    ngx_connection_t  *c;

    c = lk->peer.connection;

    if (!c->ssl->handshaked) {

        if (c->write->timedout || c->read->timedout) {
            lk->timedout = 1;
            ngx_llm_cache_redis_link_fail(lk,
                                          "no answer within connect_timeout");
            return;
        }

        if (lk->errstr[0] == '\0') {
            ngx_cpystrn(lk->errstr, (u_char *) "SSL handshake failed",
                        sizeof(lk->errstr));
        }

        ngx_llm_cache_redis_link_fail(lk, NULL);
        return;
    }

    if (lk->tls->verify) {
        rc = SSL_get_verify_result(c->ssl->connection);

        if (rc != X509_V_OK) {
            p = ngx_snprintf(lk->errstr, sizeof(lk->errstr) - 1,
                             "SSL certificate verify error: (%l:%s) "
                             "for \"%V\"", rc,
                             X509_verify_cert_error_string(rc),
                             &lk->tls->name);
            *p = '\0';
            ngx_llm_cache_redis_link_fail(lk, NULL);
            return;
        }

        if (ngx_llm_cache_redis_link_check_name(c, &lk->tls->name)
            != NGX_OK)
        {
            p = ngx_snprintf(lk->errstr, sizeof(lk->errstr) - 1,
                             "SSL certificate does not match \"%V\"",
                             &lk->tls->name);
            *p = '\0';
            ngx_llm_cache_redis_link_fail(lk, NULL);
            return;
        }
    }

    c->read->handler = ngx_llm_cache_redis_link_read_handler;
    c->write->handler = ngx_llm_cache_redis_link_write_handler;

    ngx_llm_cache_redis_link_up(lk);
}


/*
 * Redis wants a client certificate and none is configured: with TLS 1.3
 * the refusal comes only after the handshake, as a reset or an alert on
 * the first read or write; the log says what it means.
 */

static int
ngx_llm_cache_redis_link_cert_asked(ngx_ssl_conn_t *ssl_conn, X509 **x509,
    EVP_PKEY **pkey)
{
    ngx_connection_t            *c;
    ngx_llm_cache_redis_link_t  *lk;

    c = ngx_ssl_get_connection(ssl_conn);

    if (c && c->data) {
        lk = c->data;
        lk->cert_asked = 1;
    }

    return 0;
}


/* ngx_ssl_check_host() checks DNS names only: an IP address, its SANs */

static ngx_int_t
ngx_llm_cache_redis_link_check_name(ngx_connection_t *c, ngx_str_t *name)
{
    int    rc;
    X509  *cert;

    if (name->len == 0) {
        return NGX_ERROR;
    }

    if (ngx_inet_addr(name->data, name->len) == INADDR_NONE
        && ngx_strlchr(name->data, name->data + name->len, ':') == NULL)
    {
        return ngx_ssl_check_host(c, name);
    }

    cert = SSL_get_peer_certificate(c->ssl->connection);
    if (cert == NULL) {
        return NGX_ERROR;
    }

    /* name is null-terminated (ngx_llm_cache_redis_tls_create()) */
    rc = X509_check_ip_asc(cert, (char *) name->data, 0);

    X509_free(cert);

    return rc == 1 ? NGX_OK : NGX_ERROR;
}

#endif


/* TCP (and TLS) is up: what was queued goes out */

static void
ngx_llm_cache_redis_link_up(ngx_llm_cache_redis_link_t *lk)
{
    ngx_connection_t  *c;

    c = lk->peer.connection;

    lk->connected = 1;
    lk->errstr[0] = '\0';

    if (ngx_llm_cache_redis_link_send(lk) != NGX_OK) {
        /* closed: lk is gone */
        return;
    }

    if (c->read->ready && !c->read->posted) {
        ngx_post_event(c->read, &ngx_posted_events);
    }
}


/* NGX_ERROR: the link failed and is freed */

static ngx_int_t
ngx_llm_cache_redis_link_send(ngx_llm_cache_redis_link_t *lk)
{
    ssize_t            n;
    ngx_connection_t  *c;

    c = lk->peer.connection;

    while (lk->out_pos < lk->out_last) {

        n = c->send(c, lk->out_pos, lk->out_last - lk->out_pos);

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == NGX_ERROR || n == 0) {
            c->error = 1;
            ngx_llm_cache_redis_link_fail(lk, NULL);
            return NGX_ERROR;
        }

        lk->out_pos += n;
    }

    if (lk->out_pos == lk->out_last) {
        if (lk->out_end - lk->out > NGX_LLM_CACHE_REDIS_LINK_OUT_KEEP) {
            ngx_free(lk->out);
            lk->out = NULL;
            lk->out_end = NULL;
        }

        lk->out_pos = lk->out;
        lk->out_last = lk->out;
    }

    if (ngx_handle_write_event(c->write, 0) != NGX_OK) {
        ngx_llm_cache_redis_link_fail(lk, "ngx_handle_write_event() failed");
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* what the last requests stored: out now if the socket takes it */

void
ngx_llm_cache_redis_link_flush(ngx_llm_cache_redis_link_t *lk)
{
    if (lk->connected && !lk->closing && lk->out_pos < lk->out_last) {
        (void) ngx_llm_cache_redis_link_send(lk);
    }
}


static void
ngx_llm_cache_redis_link_read_handler(ngx_event_t *rev)
{
    ssize_t                      n;
    ngx_uint_t                   i;
    redisReader                 *reader;
    ngx_connection_t            *c;
    ngx_llm_cache_redis_link_t  *lk;

    c = rev->data;
    lk = c->data;

    if (!lk->connected || lk->closing) {
        /* a failed connect shows on the write event too */
        return;
    }

    reader = lk->reader;

    for (i = 0; i < NGX_LLM_CACHE_REDIS_LINK_READS; i++) {

        n = c->recv(c, ngx_llm_cache_redis_link_buf,
                    sizeof(ngx_llm_cache_redis_link_buf));

        if (n == NGX_AGAIN) {
            break;
        }

        if (n == 0) {
            ngx_llm_cache_redis_link_fail(lk, "Server closed the connection");
            return;
        }

        if (n == NGX_ERROR) {
            c->error = 1;
            ngx_llm_cache_redis_link_fail(lk, lk->errstr[0] ? NULL
                                              : "recv() failed");
            return;
        }

        if (redisReaderFeed(reader, (const char *) ngx_llm_cache_redis_link_buf,
                            n)
            != REDIS_OK)
        {
            ngx_llm_cache_redis_link_fail(lk, reader->errstr);
            return;
        }

        if (ngx_llm_cache_redis_link_dispatch(lk) != NGX_OK) {
            /* closed */
            return;
        }

        if (!rev->ready) {
            break;
        }
    }

    if (rev->ready) {
        /* more to read: after the other events of this turn */
        ngx_post_event(rev, &ngx_posted_events);
        return;
    }

    if (ngx_handle_read_event(rev, 0) != NGX_OK) {
        ngx_llm_cache_redis_link_fail(lk, "ngx_handle_read_event() failed");
    }
}


/* the complete replies to their callbacks; NGX_ERROR if the link closed */

static ngx_int_t
ngx_llm_cache_redis_link_dispatch(ngx_llm_cache_redis_link_t *lk)
{
    void                      *reply;
    size_t                     len;
    redisReply                *rr;
    redisReader               *reader;
    ngx_llm_cache_redis_cb_t  *cb;

    reader = lk->reader;

    for ( ;; ) {
        reply = NULL;

        if (redisReaderGetReply(reader, &reply) != REDIS_OK) {
            ngx_llm_cache_redis_link_fail(lk, reader->errstr);
            return NGX_ERROR;
        }

        if (reply == NULL) {
            return NGX_OK;
        }

        cb = lk->head;

        if (lk->push && ngx_llm_cache_redis_link_is_message(reply, cb)) {
            lk->nesting++;
            lk->push(lk, reply, lk->data);
            lk->nesting--;

            freeReplyObject(reply);

            if (lk->free_pending) {
                ngx_llm_cache_redis_link_close(lk);
                return NGX_ERROR;
            }

            continue;
        }

        if (cb == NULL) {
            rr = reply;

            /* nothing asked: an error Redis sends before it closes */

            if (rr->type == REDIS_REPLY_ERROR) {
                len = ngx_min(rr->len, sizeof(lk->errstr) - 1);
                ngx_memcpy(lk->errstr, rr->str, len);
                lk->errstr[len] = '\0';

                freeReplyObject(reply);
                ngx_llm_cache_redis_link_fail(lk, NULL);
                return NGX_ERROR;
            }

            freeReplyObject(reply);
            continue;
        }

        lk->head = cb->next;
        if (lk->head == NULL) {
            lk->tail = NULL;
        }

        if (cb->handler) {
            lk->nesting++;
            cb->handler(lk, reply, cb->data);
            lk->nesting--;
        }

        freeReplyObject(reply);

        cb->next = lk->free;
        lk->free = cb;

        if (lk->free_pending) {
            ngx_llm_cache_redis_link_close(lk);
            return NGX_ERROR;
        }
    }
}


/*
 * On a subscribed link a published message may come while a command
 * (a PING) waits: ["message", channel, data] is the subscriber's, never a
 * command's reply; with nothing waiting, any reply is.
 */

static ngx_uint_t
ngx_llm_cache_redis_link_is_message(redisReply *rr,
    ngx_llm_cache_redis_cb_t *cb)
{
    if (cb == NULL) {
        return 1;
    }

    return rr->type == REDIS_REPLY_ARRAY
           && rr->elements == 3
           && rr->element[0]->type == REDIS_REPLY_STRING
           && rr->element[0]->len == 7
           && ngx_strncmp(rr->element[0]->str, "message", 7) == 0;
}


/*
 * The command in RESP, written straight into the output buffer: no
 * formatting into a copy first, which for the SET of a large entry was a
 * second copy of it
 */

ngx_int_t
ngx_llm_cache_redis_link_command(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen)
{
    int      i;
    size_t   len;
    u_char  *p;

    if (lk->closing || argc <= 0) {
        return NGX_ERROR;
    }

    len = ngx_llm_cache_redis_resp_size(argc, 0, argc, argv, argvlen);

    p = ngx_llm_cache_redis_link_reserve(lk, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(p, "*%d\r\n", argc);

    for (i = 0; i < argc; i++) {
        p = ngx_llm_cache_redis_resp_arg(p, argv[i], argvlen[i]);
    }

    return ngx_llm_cache_redis_link_queue(lk, handler, data, p);
}


/*
 * The same for a command one of whose arguments lies in a block of
 * ngx_alloc()ed memory [start, end) with room around it (a stored entry,
 * which may be large): the command is written around that argument, which
 * is not copied, and the block becomes the output buffer, freed by the
 * link once sent.  NGX_DECLINED, the block still the caller's: no room
 * around the argument, or output already waiting (it would have to be
 * copied in front); the caller sends the command as usual.
 */

ngx_int_t
ngx_llm_cache_redis_link_command_in_place(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen, u_char *start, u_char *end)
{
    int      i, a;
    u_char  *p, *value;
    size_t   head, tail;

    if (lk->closing) {
        return NGX_ERROR;
    }

    if (lk->out_pos != lk->out_last) {
        return NGX_DECLINED;
    }

    for (a = 0; a < argc; a++) {
        if ((u_char *) argv[a] >= start
            && (u_char *) argv[a] + argvlen[a] <= end)
        {
            break;
        }
    }

    /* a small one is copied: cheaper than giving up the link's buffer */

    if (a == argc || argvlen[a] < NGX_LLM_CACHE_REDIS_LINK_IN_PLACE) {
        return NGX_DECLINED;
    }

    head = ngx_llm_cache_redis_resp_size(argc, 0, a, argv, argvlen)
           + 1 + ngx_llm_cache_redis_digits(argvlen[a]) + 2;
    tail = 2 + ngx_llm_cache_redis_resp_size(0, a + 1, argc, argv, argvlen);

    value = (u_char *) argv[a];

    if ((size_t) (value - start) < head
        || (size_t) (end - value) < argvlen[a] + tail)
    {
        return NGX_DECLINED;
    }

    /* the callback first: once the block is the buffer, nothing may fail */

    if (ngx_llm_cache_redis_link_spare_cb(lk) != NGX_OK) {
        return NGX_ERROR;
    }

    p = ngx_sprintf(value - head, "*%d\r\n", argc);

    for (i = 0; i < a; i++) {
        p = ngx_llm_cache_redis_resp_arg(p, argv[i], argvlen[i]);
    }

    p = ngx_sprintf(p, "$%uz\r\n", argvlen[a]);
    p += argvlen[a];
    *p++ = CR;
    *p++ = LF;

    for (i = a + 1; i < argc; i++) {
        p = ngx_llm_cache_redis_resp_arg(p, argv[i], argvlen[i]);
    }

    ngx_log_debug1(NGX_LOG_DEBUG_EVENT, lk->owner_log, 0,
                   "llm_cache redis: %uz bytes sent from where they are",
                   argvlen[a]);

    if (lk->out) {
        ngx_free(lk->out);
    }

    lk->out = start;
    lk->out_end = end;
    lk->out_pos = value - head;
    lk->out_last = lk->out_pos;

    return ngx_llm_cache_redis_link_queue(lk, handler, data, p);
}


/* the bytes of "*<argc>\r\n" (none when argc is 0) and of args [from, to) */

static size_t
ngx_llm_cache_redis_resp_size(int argc, int from, int to, const char **argv,
    const size_t *argvlen)
{
    int     i;
    size_t  len;

    len = argc ? 1 + ngx_llm_cache_redis_digits(argc) + 2 : 0;

    for (i = from; i < to; i++) {
        len += 1 + ngx_llm_cache_redis_digits(argvlen[i]) + 2 + argvlen[i] + 2;
    }

    return len;
}


static size_t
ngx_llm_cache_redis_digits(size_t n)
{
    size_t  len;

    for (len = 1; n >= 10; n /= 10) {
        len++;
    }

    return len;
}


static u_char *
ngx_llm_cache_redis_resp_arg(u_char *p, const char *arg, size_t len)
{
    p = ngx_sprintf(p, "$%uz\r\n", len);
    p = ngx_cpymem(p, arg, len);
    *p++ = CR;
    *p++ = LF;

    return p;
}


ngx_int_t
ngx_llm_cache_redis_link_commandf(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data,
    const char *fmt, ...)
{
    int        len;
    char      *cmd;
    va_list    args;
    ngx_int_t  rc;

    if (lk->closing) {
        return NGX_ERROR;
    }

    va_start(args, fmt);
    len = redisvFormatCommand(&cmd, fmt, args);
    va_end(args);

    if (len < 0) {
        return NGX_ERROR;
    }

    rc = ngx_llm_cache_redis_link_append(lk, handler, data, cmd, len);

    redisFreeCommand(cmd);

    return rc;
}


static ngx_int_t
ngx_llm_cache_redis_link_append(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, char *cmd,
    size_t len)
{
    u_char  *p;

    p = ngx_llm_cache_redis_link_reserve(lk, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    p = ngx_cpymem(p, cmd, len);

    return ngx_llm_cache_redis_link_queue(lk, handler, data, p);
}


/* room for len more bytes at the end of the output buffer */

static u_char *
ngx_llm_cache_redis_link_reserve(ngx_llm_cache_redis_link_t *lk, size_t len)
{
    u_char  *p;
    size_t   size, pending;

    if ((size_t) (lk->out_end - lk->out_last) < len) {
        pending = lk->out_last - lk->out_pos;

        if (lk->out && (size_t) (lk->out_end - lk->out) >= pending + len) {
            ngx_memmove(lk->out, lk->out_pos, pending);

        } else {
            /* twice what is needed, but a large SET gets 64K of room, not
             * a second copy's worth */

            size = pending + len;
            size += ngx_min(size, NGX_LLM_CACHE_REDIS_LINK_OUT_KEEP);
            size = ngx_max(size, NGX_LLM_CACHE_REDIS_LINK_OUT);

            p = ngx_alloc(size, lk->owner_log);
            if (p == NULL) {
                return NULL;
            }

            if (pending) {
                ngx_memcpy(p, lk->out_pos, pending);
            }

            if (lk->out) {
                ngx_free(lk->out);
            }

            lk->out = p;
            lk->out_end = p + size;
        }

        lk->out_pos = lk->out;
        lk->out_last = lk->out + pending;
    }

    return lk->out_last;
}


/* a callback on the free list, for the next command */

static ngx_int_t
ngx_llm_cache_redis_link_spare_cb(ngx_llm_cache_redis_link_t *lk)
{
    ngx_llm_cache_redis_cb_t  *cb;

    if (lk->free) {
        return NGX_OK;
    }

    cb = ngx_alloc(sizeof(ngx_llm_cache_redis_cb_t), lk->owner_log);
    if (cb == NULL) {
        return NGX_ERROR;
    }

    cb->next = NULL;
    lk->free = cb;

    return NGX_OK;
}


/*
 * The command just written up to last is sent at the end of this loop
 * turn, with what else comes; its reply goes to the handler
 */

static ngx_int_t
ngx_llm_cache_redis_link_queue(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, u_char *last)
{
    ngx_connection_t          *c;
    ngx_llm_cache_redis_cb_t  *cb;

    if (ngx_llm_cache_redis_link_spare_cb(lk) != NGX_OK) {
        /* the command is dropped: nothing waits for its reply */
        return NGX_ERROR;
    }

    cb = lk->free;
    lk->free = cb->next;

    lk->out_last = last;

    cb->handler = handler;
    cb->data = data;
    cb->next = NULL;

    if (lk->tail) {
        lk->tail->next = cb;

    } else {
        lk->head = cb;
    }

    lk->tail = cb;

    c = lk->peer.connection;

    if (lk->connected && c->write->ready && !c->write->posted) {
        ngx_post_event(c->write, &ngx_posted_events);
    }

    return NGX_OK;
}


static void
ngx_llm_cache_redis_link_fail(ngx_llm_cache_redis_link_t *lk,
    const char *msg)
{
    u_char  *p;

    if (msg) {
        ngx_cpystrn(lk->errstr, (u_char *) msg, sizeof(lk->errstr));

    } else if (lk->errstr[0] == '\0') {
        ngx_cpystrn(lk->errstr, (u_char *) "connection failed",
                    sizeof(lk->errstr));
    }

    if (lk->cert_asked && !lk->timedout) {
        lk->cert_asked = 0;

        p = lk->errstr + ngx_strlen(lk->errstr);
        p = ngx_snprintf(p, lk->errstr + sizeof(lk->errstr) - 1 - p,
                         " (Redis asked for a client certificate and "
                         "llm_cache_redis_ssl_certificate gives none)");
        *p = '\0';
    }

    lk->failed = 1;

    if (lk->peer.connection) {
        lk->peer.connection->error = 1;
    }

    if (lk->nesting) {
        /* closed when the callback returns */
        lk->closing = 1;
        lk->free_pending = 1;
        return;
    }

    ngx_llm_cache_redis_link_close(lk);
}


void
ngx_llm_cache_redis_link_free(ngx_llm_cache_redis_link_t *lk)
{
    if (lk->nesting) {
        lk->closing = 1;
        lk->free_pending = 1;
        return;
    }

    ngx_llm_cache_redis_link_close(lk);
}


static void
ngx_llm_cache_redis_link_close(ngx_llm_cache_redis_link_t *lk)
{
    ngx_pool_t                *pool;
    ngx_connection_t          *c;
    ngx_llm_cache_redis_cb_t  *cb;

    lk->closing = 1;
    lk->nesting++;

    c = lk->peer.connection;

    if (c) {
        lk->peer.connection = NULL;

#if (NGX_SSL)
        if (c->ssl) {
            c->ssl->no_wait_shutdown = 1;
            (void) ngx_ssl_shutdown(c);
        }
#endif

        pool = c->pool;

        ngx_close_connection(c);

        if (pool) {
            ngx_destroy_pool(pool);
        }
    }

    /* the commands still queued fail, as with hiredis */

    while (lk->head) {
        cb = lk->head;
        lk->head = cb->next;

        if (lk->head == NULL) {
            lk->tail = NULL;
        }

        if (cb->handler) {
            cb->handler(lk, NULL, cb->data);
        }

        ngx_free(cb);
    }

    if (lk->on_close) {
        lk->on_close(lk, lk->failed ? NGX_ERROR : NGX_OK);
    }

    while (lk->free) {
        cb = lk->free;
        lk->free = cb->next;
        ngx_free(cb);
    }

    if (lk->out) {
        ngx_free(lk->out);
    }

    redisReaderFree(lk->reader);
    ngx_free(lk);
}


/* llm_cache_redis_ssl_*: as proxy_ssl_* */

void
ngx_llm_cache_redis_ssl_create_conf(ngx_llm_cache_redis_ssl_conf_t *conf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->ciphers = { 0, NULL };
     *     conf->name = { 0, NULL };
     *     conf->trusted_certificate = { 0, NULL };
     *     conf->certificate = { 0, NULL };
     *     conf->certificate_key = { 0, NULL };
     */

    conf->verify = NGX_CONF_UNSET;
    conf->server_name = NGX_CONF_UNSET;
    conf->verify_depth = NGX_CONF_UNSET_UINT;
}


/* any llm_cache_redis_ssl_* in this block (before it is merged) */

ngx_uint_t
ngx_llm_cache_redis_ssl_conf_set(ngx_llm_cache_redis_ssl_conf_t *conf)
{
    return !conf->merged
           && (conf->verify != NGX_CONF_UNSET
               || conf->server_name != NGX_CONF_UNSET
               || conf->protocols
               || conf->ciphers.data
               || conf->name.data
               || conf->trusted_certificate.data
               || conf->certificate.data
               || conf->certificate_key.data);
}


char *
ngx_llm_cache_redis_ssl_merge_conf(ngx_conf_t *cf,
    ngx_llm_cache_redis_ssl_conf_t *prev, ngx_llm_cache_redis_ssl_conf_t *conf)
{
    ngx_conf_merge_value(conf->verify, prev->verify, 1);
    ngx_conf_merge_value(conf->server_name, prev->server_name, 1);
#if (NGX_SSL)
    ngx_conf_merge_bitmask_value(conf->protocols, prev->protocols,
                                 (NGX_CONF_BITMASK_SET|NGX_SSL_TLSv1_2
                                  |NGX_SSL_TLSv1_3));
#endif
    ngx_conf_merge_uint_value(conf->verify_depth, prev->verify_depth,
                              NGX_LLM_CACHE_REDIS_VERIFY_DEPTH);
    ngx_conf_merge_str_value(conf->ciphers, prev->ciphers, "DEFAULT");
    ngx_conf_merge_str_value(conf->name, prev->name, "");
    ngx_conf_merge_str_value(conf->trusted_certificate,
                             prev->trusted_certificate, "");
    ngx_conf_merge_str_value(conf->certificate, prev->certificate, "");
    ngx_conf_merge_str_value(conf->certificate_key, prev->certificate_key,
                             "");

    conf->merged = 1;

    if (conf->certificate.len && conf->certificate_key.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"llm_cache_redis_ssl_certificate_key\" for "
                           "\"llm_cache_redis_ssl_certificate\" \"%V\"",
                           &conf->certificate);
        return NGX_CONF_ERROR;
    }

    if (conf->certificate_key.len && conf->certificate.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "no \"llm_cache_redis_ssl_certificate\" for "
                           "\"llm_cache_redis_ssl_certificate_key\" \"%V\"",
                           &conf->certificate_key);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


ngx_uint_t
ngx_llm_cache_redis_ssl_conf_equal(ngx_llm_cache_redis_ssl_conf_t *a,
    ngx_llm_cache_redis_ssl_conf_t *b)
{
#define ngx_llm_cache_str_eq(s1, s2)                                          \
    ((s1).len == (s2).len && ngx_memcmp((s1).data, (s2).data, (s1).len) == 0)

    return a->verify == b->verify
           && a->server_name == b->server_name
           && a->protocols == b->protocols
           && a->verify_depth == b->verify_depth
           && ngx_llm_cache_str_eq(a->ciphers, b->ciphers)
           && ngx_llm_cache_str_eq(a->name, b->name)
           && ngx_llm_cache_str_eq(a->trusted_certificate,
                                   b->trusted_certificate)
           && ngx_llm_cache_str_eq(a->certificate, b->certificate)
           && ngx_llm_cache_str_eq(a->certificate_key, b->certificate_key);

#undef ngx_llm_cache_str_eq
}


/*
 * The SSL context of a rediss:// server, at configuration time, as
 * ngx_http_proxy_set_ssl() makes proxy's.  Verification is on unless
 * turned off; without a CA file the system's default trust store is used
 * (the public CAs of managed Redis services).
 */

ngx_llm_cache_redis_tls_t *
ngx_llm_cache_redis_tls_create(ngx_conf_t *cf,
    ngx_llm_cache_redis_ssl_conf_t *conf, ngx_str_t *host)
{
#if (NGX_SSL)
    ngx_str_t                   name, cert, key, trusted;
    ngx_pool_cleanup_t         *cln;
    ngx_llm_cache_redis_tls_t  *tls;

    tls = ngx_pcalloc(cf->pool, sizeof(ngx_llm_cache_redis_tls_t));
    if (tls == NULL) {
        return NULL;
    }

    tls->conf = conf;
    tls->verify = conf->verify;
    tls->server_name = conf->server_name;

    name = conf->name.len ? conf->name : *host;

    if (name.len && name.data[0] == '[') {
        /* an IPv6 literal: the address is checked, without brackets */
        name.data++;
        name.len -= (name.len > 1 && name.data[name.len - 2] == ']') ? 2 : 1;
    }

    tls->name.data = ngx_pnalloc(cf->pool, name.len + 1);
    if (tls->name.data == NULL) {
        return NULL;
    }

    ngx_cpystrn(tls->name.data, name.data, name.len + 1);
    tls->name.len = name.len;

    tls->ssl = ngx_pcalloc(cf->pool, sizeof(ngx_ssl_t));
    if (tls->ssl == NULL) {
        return NULL;
    }

    tls->ssl->log = cf->log;

    if (ngx_ssl_create(tls->ssl, conf->protocols, NULL) != NGX_OK) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(tls->ssl);
        return NULL;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = tls->ssl;

    if (ngx_ssl_ciphers(cf, tls->ssl, &conf->ciphers, 0) != NGX_OK) {
        return NULL;
    }

    /* copies: the calls below make the file names absolute in place */

    if (conf->certificate.len) {
        cert = conf->certificate;
        key = conf->certificate_key;

        if (ngx_ssl_certificate(cf, tls->ssl, &cert, &key, NULL) != NGX_OK) {
            return NULL;
        }

    } else {
        SSL_CTX_set_client_cert_cb(tls->ssl->ctx,
                                   ngx_llm_cache_redis_link_cert_asked);
    }

    if (conf->verify) {
        trusted = conf->trusted_certificate;

        if (trusted.len == 0
            && SSL_CTX_set_default_verify_paths(tls->ssl->ctx) != 1)
        {
            ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"llm_cache_redis_ssl_verify\" is on without "
                          "\"llm_cache_redis_ssl_trusted_certificate\" and "
                          "the system's trust store cannot be loaded");
            return NULL;
        }

        if (ngx_ssl_trusted_certificate(cf, tls->ssl, &trusted,
                                        conf->verify_depth)
            != NGX_OK)
        {
            return NULL;
        }
    }

    if (ngx_ssl_client_session_cache(cf, tls->ssl, 0) != NGX_OK) {
        return NULL;
    }

    return tls;

#else

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"rediss://\" needs nginx built with OpenSSL");
    return NULL;

#endif
}
