
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Between ngx_llm_cache_redis.c and ngx_llm_cache_redis_sentinel.c only:
 * a Redis server given as a Sentinel-managed master ("llm_cache_redis
 * sentinel=name addr..."); the rest of the module sees a server as before.
 */


#ifndef _NGX_LLM_CACHE_REDIS_SENTINEL_H_INCLUDED_
#define _NGX_LLM_CACHE_REDIS_SENTINEL_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_llm_cache_redis.h"


typedef struct ngx_llm_cache_redis_sentinel_s  ngx_llm_cache_redis_sentinel_t;


/*
 * configuration: value[1] is "sentinel=name", the sentinels follow it;
 * takes the sentinel_*= parameters too, *next is the first parameter
 */
ngx_llm_cache_redis_sentinel_t *ngx_llm_cache_redis_sentinel_create(
    ngx_conf_t *cf, ngx_str_t *value, ngx_uint_t n, ngx_uint_t *next);

/* the worker */
ngx_int_t ngx_llm_cache_redis_sentinel_init_worker(
    ngx_llm_cache_redis_sentinel_t *st, ngx_llm_cache_redis_server_t *s,
    ngx_msec_t timeout, ngx_log_t *log);
void ngx_llm_cache_redis_sentinel_exit_worker(
    ngx_llm_cache_redis_sentinel_t *st);

/* where the master is now: NGX_OK, or NGX_DECLINED while none is known */
ngx_int_t ngx_llm_cache_redis_sentinel_address(
    ngx_llm_cache_redis_sentinel_t *st, u_char **host, int *port);

/* the master failed or refused a write (READONLY): ask the sentinels */
void ngx_llm_cache_redis_sentinel_failed(ngx_llm_cache_redis_sentinel_t *st,
    const char *what);

/* a new connection's ROLE reply (a redisReply *): NGX_OK for a master */
ngx_int_t ngx_llm_cache_redis_sentinel_role(
    ngx_llm_cache_redis_sentinel_t *st, void *reply);

/* in ngx_llm_cache_redis.c: the master moved, the pool follows it */
void ngx_llm_cache_redis_repoint(ngx_llm_cache_redis_server_t *s);


/* ngx_llm_cache_redis.c: TCP keepalive probes on a Redis connection */
void ngx_llm_cache_redis_keepalive(ngx_socket_t fd, ngx_log_t *log);


#endif /* _NGX_LLM_CACHE_REDIS_SENTINEL_H_INCLUDED_ */
