
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_REDIS_H_INCLUDED_
#define _NGX_LLM_CACHE_REDIS_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_llm_cache_redis_server_s  ngx_llm_cache_redis_server_t;


/*
 * rc is NGX_OK with the value, NGX_DECLINED for a nil reply and NGX_ERROR
 * when Redis failed; the value lives only during the call
 */
typedef void (*ngx_llm_cache_redis_handler_pt)(void *data, ngx_int_t rc,
    ngx_str_t *value);


/*
 * an outstanding command; it belongs to the Redis connection, never to
 * a request, so a request that goes away only clears the handler
 */
typedef struct {
    ngx_llm_cache_redis_handler_pt   handler;
    void                            *data;
    ngx_llm_cache_redis_server_t    *server;
} ngx_llm_cache_redis_op_t;


ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_add(ngx_conf_t *cf,
    ngx_array_t *servers, ngx_str_t *value, ngx_uint_t n);
ngx_int_t ngx_llm_cache_redis_init_worker(ngx_cycle_t *cycle,
    ngx_array_t *servers);
void ngx_llm_cache_redis_exit_worker(ngx_array_t *servers);

ngx_llm_cache_redis_op_t *ngx_llm_cache_redis_get(
    ngx_llm_cache_redis_server_t *server, ngx_str_t *key,
    ngx_llm_cache_redis_handler_pt handler, void *data);
void ngx_llm_cache_redis_cancel(ngx_llm_cache_redis_op_t *op);
ngx_int_t ngx_llm_cache_redis_set(ngx_llm_cache_redis_server_t *server,
    ngx_str_t *key, ngx_str_t *value, time_t ttl);
void ngx_llm_cache_redis_log_failure(ngx_llm_cache_redis_server_t *server,
    ngx_log_t *log, const char *what, const char *detail);


#endif /* _NGX_LLM_CACHE_REDIS_H_INCLUDED_ */
