
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_REDIS_H_INCLUDED_
#define _NGX_LLM_CACHE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_event.h>

#include "ngx_llm_cache_redis_conn.h"


typedef struct ngx_llm_cache_redis_server_s  ngx_llm_cache_redis_server_t;
typedef struct ngx_llm_cache_redis_conn_s    ngx_llm_cache_redis_conn_t;


/*
 * rc is NGX_OK with a string or status reply, NGX_DECLINED for a nil
 * reply, NGX_ABORT for an error reply (OOM, READONLY, WRONGTYPE: Redis is
 * there and refused the command) and NGX_ERROR when Redis failed or did
 * not answer in time; the value lives only during the call
 */
typedef void (*ngx_llm_cache_redis_handler_pt)(void *data, ngx_int_t rc,
    ngx_str_t *value);

/* the same, with the whole reply (a hiredis redisReply *, NULL if none) */
typedef void (*ngx_llm_cache_redis_reply_pt)(void *data, ngx_int_t rc,
    void *reply);


/*
 * an outstanding command; it belongs to the Redis connection, never to
 * a request, so a request that goes away only clears the handler
 */
typedef struct {
    ngx_llm_cache_redis_handler_pt   handler;
    ngx_llm_cache_redis_reply_pt     reply_handler;
    void                            *data;
    ngx_llm_cache_redis_conn_t      *conn;
    ngx_log_t                       *log;
    ngx_event_t                      timer;
    const char                      *what;
    ngx_msec_t                       sent;
    unsigned                         timed_out:1;
    unsigned                         probe:1;

    /* Redis Cluster: the command, to send again after MOVED or ASK */
    unsigned                         redirects:4;
    int                              argc;
    void                            *argv;
    ngx_msec_t                       timeout;
} ngx_llm_cache_redis_op_t;


ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_add(ngx_conf_t *cf,
    ngx_array_t *servers, ngx_str_t *value, ngx_uint_t n);
char *ngx_llm_cache_redis_merge(ngx_conf_t *cf, ngx_array_t *servers,
    ngx_llm_cache_redis_server_t **redis, ngx_uint_t redis_here,
    ngx_llm_cache_redis_server_t *prev_redis,
    ngx_llm_cache_redis_ssl_conf_t *prev_ssl,
    ngx_llm_cache_redis_ssl_conf_t *ssl, ngx_resolver_t *resolver,
    ngx_msec_t resolver_timeout);
ngx_int_t ngx_llm_cache_redis_init_worker(ngx_cycle_t *cycle,
    ngx_array_t *servers);
void ngx_llm_cache_redis_exit_worker(ngx_array_t *servers);

ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_get(
    ngx_llm_cache_redis_server_t *server, ngx_str_t *key,
    ngx_msec_t timeout, ngx_llm_cache_redis_handler_pt handler, void *data,
    ngx_log_t *log);
ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_lock(
    ngx_llm_cache_redis_server_t *server, ngx_str_t *key, ngx_str_t *token,
    ngx_msec_t ttl, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log);
void ngx_llm_cache_redis_cancel(ngx_llm_cache_redis_op_t *op);
ngx_llm_cache_redis_link_t *ngx_llm_cache_redis_open_link(
    ngx_llm_cache_redis_server_t *s,
    ngx_llm_cache_redis_link_reply_pt handler, void *data, ngx_log_t *log);
ngx_str_t *ngx_llm_cache_redis_name(ngx_llm_cache_redis_server_t *s);
ngx_int_t ngx_llm_cache_redis_set(ngx_llm_cache_redis_server_t *server,
    ngx_str_t *key, ngx_str_t *value, time_t ttl, ngx_str_t *lock,
    ngx_str_t *token, u_char **block, u_char *end);
void ngx_llm_cache_redis_unlock(ngx_llm_cache_redis_server_t *server,
    ngx_str_t *lock, ngx_str_t *token);
ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_eval(
    ngx_llm_cache_redis_server_t *server, ngx_str_t *script,
    ngx_uint_t nargs, ngx_str_t *args, ngx_msec_t timeout,
    ngx_llm_cache_redis_handler_pt handler, void *data, ngx_log_t *log);

ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_command(
    ngx_llm_cache_redis_server_t *server, const char *what, int argc,
    const char **argv, const size_t *argvlen, ngx_msec_t timeout,
    ngx_llm_cache_redis_reply_pt handler, void *data, ngx_log_t *log);

/* Redis Cluster: the n-th master (a plain server: itself, n = 0), or NULL */
ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_master(
    ngx_llm_cache_redis_server_t *server, ngx_uint_t n);
ngx_uint_t ngx_llm_cache_redis_is_cluster(
    ngx_llm_cache_redis_server_t *server);

/* the configured server a server counts under in the metrics */
ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_owner(
    ngx_llm_cache_redis_server_t *server, ngx_str_t **name);


#endif /* _NGX_LLM_CACHE_REDIS_H_INCLUDED_ */
