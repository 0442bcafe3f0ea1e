
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_REDIS_CONN_H_INCLUDED_
#define _NGX_LLM_CACHE_REDIS_CONN_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>
#include <ngx_event_connect.h>


/* one connection to Redis, on nginx's own sockets (and SSL layer) */
typedef struct ngx_llm_cache_redis_link_s  ngx_llm_cache_redis_link_t;
typedef struct ngx_llm_cache_redis_cb_s    ngx_llm_cache_redis_cb_t;

/*
 * a reply (a hiredis redisReply *, valid during the call) or NULL; a
 * command may have no handler (its reply is dropped)
 */
typedef void (*ngx_llm_cache_redis_link_reply_pt)(
    ngx_llm_cache_redis_link_t *lk, void *reply, void *data);

/*
 * The link closes: NGX_OK when its owner freed it, NGX_ERROR when it
 * failed (lk->errstr says why).  Called once, after the callbacks of the
 * commands still queued got a NULL reply, just before the link is freed.
 */
typedef void (*ngx_llm_cache_redis_link_close_pt)(
    ngx_llm_cache_redis_link_t *lk, ngx_int_t status);


/* llm_cache_redis_ssl_* */
typedef struct {
    ngx_flag_t                          verify;
    ngx_flag_t                          server_name;
    ngx_uint_t                          protocols;
    ngx_uint_t                          verify_depth;
    ngx_str_t                           ciphers;
    ngx_str_t                           name;
    ngx_str_t                           trusted_certificate;
    ngx_str_t                           certificate;
    ngx_str_t                           certificate_key;
    ngx_uint_t                          merged;
} ngx_llm_cache_redis_ssl_conf_t;


/* how a server is reached over TLS, made at configuration time */
typedef struct {
#if (NGX_SSL)
    ngx_ssl_t                          *ssl;
#endif
    ngx_str_t                           name;       /* SNI, checked */
    ngx_llm_cache_redis_ssl_conf_t     *conf;
    unsigned                            verify:1;
    unsigned                            server_name:1;
} ngx_llm_cache_redis_tls_t;


struct ngx_llm_cache_redis_link_s {
    ngx_peer_connection_t               peer;
    ngx_llm_cache_redis_tls_t          *tls;
    void                               *reader;     /* redisReader */

    /* commands not yet written */
    u_char                             *out;
    u_char                             *out_pos;
    u_char                             *out_last;
    u_char                             *out_end;

    /* the callbacks of the commands sent, in order */
    ngx_llm_cache_redis_cb_t           *head;
    ngx_llm_cache_redis_cb_t           *tail;
    ngx_llm_cache_redis_cb_t           *free;

    void                               *data;
    ngx_llm_cache_redis_link_close_pt   on_close;

    /* a subscriber's messages, whatever command waits (RESP2 pub/sub) */
    ngx_llm_cache_redis_link_reply_pt   push;

    ngx_log_t                          *owner_log;
    ngx_log_t                           log;        /* errors -> errstr */

    ngx_uint_t                          nesting;    /* in a callback */

    unsigned                            connected:1;   /* TCP and TLS */
    unsigned                            ready:1;       /* set up */
    unsigned                            timedout:1;
    unsigned                            closing:1;
    unsigned                            free_pending:1;
    unsigned                            failed:1;
    unsigned                            cert_asked:1;  /* none to give */

    u_char                              errstr[256];
};


ngx_llm_cache_redis_link_t *ngx_llm_cache_redis_link_open(
    struct sockaddr *sockaddr, socklen_t socklen, ngx_str_t *name,
    ngx_llm_cache_redis_tls_t *tls, ngx_msec_t connect_timeout,
    ngx_log_t *log);
void ngx_llm_cache_redis_link_ready(ngx_llm_cache_redis_link_t *lk);
ngx_int_t ngx_llm_cache_redis_link_command(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, int argc,
    const char **argv, const size_t *argvlen);
ngx_int_t ngx_llm_cache_redis_link_command_in_place(
    ngx_llm_cache_redis_link_t *lk, ngx_llm_cache_redis_link_reply_pt handler,
    void *data, int argc, const char **argv, const size_t *argvlen,
    u_char *start, u_char *end);
ngx_int_t ngx_llm_cache_redis_link_commandf(ngx_llm_cache_redis_link_t *lk,
    ngx_llm_cache_redis_link_reply_pt handler, void *data,
    const char *fmt, ...);
void ngx_llm_cache_redis_link_flush(ngx_llm_cache_redis_link_t *lk);
void ngx_llm_cache_redis_link_free(ngx_llm_cache_redis_link_t *lk);
ngx_socket_t ngx_llm_cache_redis_link_fd(ngx_llm_cache_redis_link_t *lk);

#define ngx_llm_cache_redis_link_closing(lk)  ((lk)->closing)

void ngx_llm_cache_redis_ssl_create_conf(ngx_llm_cache_redis_ssl_conf_t *conf);
ngx_uint_t ngx_llm_cache_redis_ssl_conf_set(
    ngx_llm_cache_redis_ssl_conf_t *conf);
char *ngx_llm_cache_redis_ssl_merge_conf(ngx_conf_t *cf,
    ngx_llm_cache_redis_ssl_conf_t *prev,
    ngx_llm_cache_redis_ssl_conf_t *conf);
ngx_llm_cache_redis_tls_t *ngx_llm_cache_redis_tls_create(ngx_conf_t *cf,
    ngx_llm_cache_redis_ssl_conf_t *conf, ngx_str_t *host);
ngx_uint_t ngx_llm_cache_redis_ssl_conf_equal(
    ngx_llm_cache_redis_ssl_conf_t *a, ngx_llm_cache_redis_ssl_conf_t *b);

extern ngx_conf_bitmask_t  ngx_llm_cache_redis_ssl_protocols[];


#endif /* _NGX_LLM_CACHE_REDIS_CONN_H_INCLUDED_ */
