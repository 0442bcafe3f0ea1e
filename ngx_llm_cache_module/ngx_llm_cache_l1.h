
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_L1_H_INCLUDED_
#define _NGX_LLM_CACHE_L1_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_redis.h"


/* invalidations bump one of these; a fill started before one is dropped */
#define NGX_LLM_CACHE_L1_BUCKETS  64

/* $llm_cache_tier */
#define NGX_LLM_CACHE_TIER_NONE   0
#define NGX_LLM_CACHE_TIER_L1     1
#define NGX_LLM_CACHE_TIER_REDIS  2


typedef struct {
    ngx_rbtree_node_t               node;      /* key: hash of the key */
    ngx_queue_t                     queue;     /* LRU, most recent first */
    time_t                          expire;
    size_t                          key_len;
    size_t                          value_len;
    u_char                          data[1];   /* key, then the entry */
} ngx_llm_cache_l1_node_t;


typedef struct {
    ngx_rbtree_t                    rbtree;
    ngx_rbtree_node_t               sentinel;
    ngx_queue_t                     lru;
    ngx_uint_t                      entries;
    ngx_uint_t                      up;        /* the channel subscribed */
    ngx_pid_t                       owner;     /* holds the channel */
    ngx_uint_t                      seq[NGX_LLM_CACHE_L1_BUCKETS];
} ngx_llm_cache_l1_sh_t;


typedef struct ngx_llm_cache_l1_zone_s  ngx_llm_cache_l1_zone_t;

struct ngx_llm_cache_l1_zone_s {
    ngx_shm_zone_t                 *shm_zone;
    ngx_llm_cache_l1_sh_t          *sh;
    ngx_slab_pool_t                *shpool;
    size_t                          max_entry;
    time_t                          ttl;

    /* the Redis the locations using it read, and their key prefixes */
    ngx_llm_cache_redis_server_t   *redis;
    ngx_array_t                     prefixes;  /* of ngx_str_t */

    /* the worker's side: the invalidation channel */
    ngx_event_t                     tick;
    ngx_llm_cache_redis_link_t     *link;
    ngx_log_t                      *log;
    long long                       client_id;
    ngx_msec_t                      retry_at;
    ngx_msec_t                      ping_sent;
    unsigned                        ping_pending:1;
    unsigned                        lost_logged:1;
};


/* ngx_llm_cache_l1.c */
ngx_int_t ngx_llm_cache_l1_lookup(ngx_http_request_t *r, void *ctx);
void ngx_llm_cache_l1_fill(ngx_http_request_t *r, void *ctx,
    ngx_str_t *value);
void ngx_llm_cache_l1_snapshot(ngx_http_request_t *r, void *ctx);
void ngx_llm_cache_l1_remove(ngx_llm_cache_l1_zone_t *z, u_char *key,
    size_t len);
void ngx_llm_cache_l1_flush(ngx_llm_cache_l1_zone_t *z, ngx_uint_t up);
char *ngx_llm_cache_l1_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_llm_cache_l1_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_llm_cache_l1_merge(ngx_conf_t *cf, void *prev, void *conf);
ngx_uint_t ngx_llm_cache_l1_entries(ngx_llm_cache_l1_zone_t *z);

/* ngx_llm_cache_l1_tracking.c */
ngx_int_t ngx_llm_cache_l1_init_worker(ngx_cycle_t *cycle,
    ngx_array_t *zones);
void ngx_llm_cache_l1_exit_worker(ngx_array_t *zones);


#endif /* _NGX_LLM_CACHE_L1_H_INCLUDED_ */
