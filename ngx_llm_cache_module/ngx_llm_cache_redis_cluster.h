
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Redis Cluster, between ngx_llm_cache_redis.c (connections, pools,
 * breakers: one ordinary server per node) and the cluster's slot map.
 * Not for the rest of the module: it sees one llm_cache_redis server.
 */


#ifndef _NGX_LLM_CACHE_REDIS_CLUSTER_H_INCLUDED_
#define _NGX_LLM_CACHE_REDIS_CLUSTER_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>

#include "ngx_llm_cache_redis.h"


typedef struct ngx_llm_cache_redis_cluster_s  ngx_llm_cache_redis_cluster_t;


/* ngx_llm_cache_redis_cluster.c */

ngx_llm_cache_redis_cluster_t *ngx_llm_cache_redis_cluster_parse(
    ngx_conf_t *cf, ngx_llm_cache_redis_server_t *server, ngx_str_t *seeds);
ngx_int_t ngx_llm_cache_redis_cluster_init_worker(
    ngx_llm_cache_redis_cluster_t *cl, ngx_cycle_t *cycle);
void ngx_llm_cache_redis_cluster_exit_worker(
    ngx_llm_cache_redis_cluster_t *cl);
ngx_uint_t ngx_llm_cache_redis_cluster_slot(u_char *key, size_t len);
ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_cluster_route(
    ngx_llm_cache_redis_cluster_t *cl, u_char *key, size_t len);
ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_cluster_route_argv(
    ngx_llm_cache_redis_cluster_t *cl, int argc, const char **argv,
    const size_t *argvlen);
ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_cluster_master(
    ngx_llm_cache_redis_cluster_t *cl, ngx_uint_t n);
ngx_int_t ngx_llm_cache_redis_cluster_redirect(
    ngx_llm_cache_redis_cluster_t *cl, ngx_llm_cache_redis_server_t *from,
    ngx_llm_cache_redis_op_t *op, const char *error, size_t len);
void ngx_llm_cache_redis_cluster_node_failed(
    ngx_llm_cache_redis_cluster_t *cl);
ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_cluster_server(
    ngx_llm_cache_redis_cluster_t *cl);


/* ngx_llm_cache_redis.c, for the cluster */

ngx_llm_cache_redis_server_t *ngx_llm_cache_redis_node(
    ngx_llm_cache_redis_server_t *server, ngx_llm_cache_redis_cluster_t *cl,
    u_char *host, size_t len, int port, ngx_cycle_t *cycle);
void ngx_llm_cache_redis_node_exit(ngx_llm_cache_redis_server_t *node);
ngx_uint_t ngx_llm_cache_redis_node_usable(
    ngx_llm_cache_redis_server_t *node);
ngx_int_t ngx_llm_cache_redis_node_is(ngx_llm_cache_redis_server_t *node,
    u_char *host, size_t len, int port);
ngx_str_t *ngx_llm_cache_redis_node_host(ngx_llm_cache_redis_server_t *node,
    int *port);
ngx_int_t ngx_llm_cache_redis_resend(ngx_llm_cache_redis_op_t *op,
    ngx_llm_cache_redis_server_t *node, ngx_uint_t asking);


#endif /* _NGX_LLM_CACHE_REDIS_CLUSTER_H_INCLUDED_ */
