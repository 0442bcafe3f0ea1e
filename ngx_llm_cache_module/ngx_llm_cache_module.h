
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_MODULE_H_INCLUDED_
#define _NGX_LLM_CACHE_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_redis.h"
#include "ngx_llm_cache_json.h"
#include "ngx_llm_cache_sse.h"
#include "ngx_llm_cache_semantic.h"
#include "ngx_llm_cache_l1.h"


/* the version of the key derivation and of the stored entry format */
#define NGX_LLM_CACHE_FORMAT_VERSION  "v2"

#define NGX_LLM_CACHE_KEY_HEX_LEN     64

/* the namespace and model parts of a key (v2) */
#define NGX_LLM_CACHE_ID_LEN          16
#define NGX_LLM_CACHE_RAW_DIGEST_LEN  32


typedef enum {
    NGX_LLM_CACHE_STATUS_NONE = 0,
    NGX_LLM_CACHE_STATUS_MISS,
    NGX_LLM_CACHE_STATUS_HIT,
    NGX_LLM_CACHE_STATUS_BYPASS,
    NGX_LLM_CACHE_STATUS_ERROR,
    NGX_LLM_CACHE_STATUS_HIT_WAITED,
    NGX_LLM_CACHE_STATUS_MISS_WAITED,
    NGX_LLM_CACHE_STATUS_STALE,
    NGX_LLM_CACHE_STATUS_PURGE,
    NGX_LLM_CACHE_STATUS_HIT_SEMANTIC
} ngx_llm_cache_status_e;


/* llm_cache_semantic */
#define NGX_LLM_CACHE_SEMANTIC_OFF      0
#define NGX_LLM_CACHE_SEMANTIC_ON       1
#define NGX_LLM_CACHE_SEMANTIC_SHADOW   2


/* $llm_cache_semantic_status */
typedef enum {
    NGX_LLM_CACHE_SEM_NONE = 0,     /* off, or an exact hit */
    NGX_LLM_CACHE_SEM_BYPASS,       /* not a request it takes */
    NGX_LLM_CACHE_SEM_MISS,
    NGX_LLM_CACHE_SEM_HIT,
    NGX_LLM_CACHE_SEM_GUARD,        /* the nearest was refused by a guard */
    NGX_LLM_CACHE_SEM_ERROR,        /* embedder or Redis failed: exact only */
    NGX_LLM_CACHE_SEM_SHADOW_HIT    /* would have been a hit */
} ngx_llm_cache_sem_status_e;


/* llm_cache_invalid_json */
#define NGX_LLM_CACHE_INVALID_JSON_PASS    0
#define NGX_LLM_CACHE_INVALID_JSON_REJECT  1


/* how often a request waiting on another's miss looks for the entry */
#define NGX_LLM_CACHE_WAIT_MIN        10
#define NGX_LLM_CACHE_WAIT_MAX        100


/* why a provider's answer was not stored, for the metrics */
#define NGX_LLM_CACHE_STORE_NONE        0
#define NGX_LLM_CACHE_STORED            1
#define NGX_LLM_CACHE_NOT_STORED_STATUS    2
#define NGX_LLM_CACHE_NOT_STORED_TYPE      3
#define NGX_LLM_CACHE_NOT_STORED_TOO_BIG   4
#define NGX_LLM_CACHE_NOT_STORED_CUT       5
#define NGX_LLM_CACHE_NOT_STORED_NO_STORE  6
#define NGX_LLM_CACHE_NOT_STORED_INVALID   7
#define NGX_LLM_CACHE_NOT_STORED_REDIS     8
#define NGX_LLM_CACHE_STORE_RESULTS        9


/* Redis events, for the metrics */
#define NGX_LLM_CACHE_METRICS_REDIS_CONNECT       0
#define NGX_LLM_CACHE_METRICS_REDIS_FAILURE       1
#define NGX_LLM_CACHE_METRICS_REDIS_BREAKER_OPEN  2
#define NGX_LLM_CACHE_METRICS_REDIS_BREAKER_CLOSE 3


/* llm_cache_metrics_models at most */
#define NGX_LLM_CACHE_METRICS_MAX_MODELS  256


typedef struct {
    ngx_uint_t                     mode;          /* llm_cache_semantic */
    ngx_str_t                      embed;         /* the location's URI */
    ngx_str_t                      model;
    ngx_uint_t                     dimensions;    /* 0: the embedder's */
    ngx_uint_t                     threshold;     /* similarity x 10000 */
    ngx_uint_t                     guards;        /* bitmask */
    ngx_uint_t                     max_entries;   /* per partition */
    time_t                         ttl;           /* 0: the exact TTL */
    size_t                         max_input;
    ngx_msec_t                     timeout;
    ngx_str_t                      identity;      /* in the partition */
} ngx_llm_cache_semantic_conf_t;


typedef struct ngx_llm_cache_sem_ctx_s  ngx_llm_cache_sem_ctx_t;


/* llm_cache_price */
typedef struct {
    ngx_str_t                      model;
    ngx_uint_t                     prefix;        /* "gpt-4o*" */
#if (NGX_PCRE)
    ngx_regex_t                   *regex;         /* "~^gpt-4o" */
#endif
    ngx_uint_t                     input;         /* $ per 1M tokens, */
    ngx_uint_t                     output;        /* in millionths */
} ngx_llm_cache_price_t;


typedef struct {
    /* of ngx_llm_cache_redis_server_t *, one per distinct llm_cache_redis */
    ngx_array_t                   *servers;

    size_t                         metrics_size;
    ngx_uint_t                     metrics_models;
    ngx_array_t                   *prices;        /* llm_cache_price */
    ngx_array_t                   *l1_zones;      /* llm_cache_l1_zone */
} ngx_llm_cache_main_conf_t;


typedef struct {
    ngx_str_t                      pass;
    ngx_flag_t                     enable;

    ngx_llm_cache_redis_server_t  *redis;
    ngx_msec_t                     redis_timeout;
    ngx_llm_cache_redis_ssl_conf_t redis_ssl;

    ngx_flag_t                     lock;
    ngx_msec_t                     lock_timeout;

    ngx_http_complex_value_t      *ttl;
    ngx_http_complex_value_t      *namespace;
    ngx_array_t                   *bypass;
    ngx_array_t                   *no_store;
    ngx_array_t                   *purge;
    ngx_flag_t                     client_control;

    ngx_str_t                      key_prefix;
    ngx_llm_cache_json_conf_t      json;

    size_t                         max_body_size;
    size_t                         max_size;

    ngx_str_t                      status_header;

    ngx_uint_t                     invalid_json;

    ngx_flag_t                     compress;      /* llm_cache_compress */

    ngx_uint_t                     use_stale;     /* NGX_HTTP_UPSTREAM_FT_* */
    time_t                         stale_ttl;

    ngx_llm_cache_semantic_conf_t  semantic;

    /* llm_cache_l1: a zone, or its shm zone until merged (l1_ref) */
    void                          *l1;
    ngx_str_t                      l1_name;
    ngx_uint_t                     l1_ref;
} ngx_llm_cache_loc_conf_t;


/* what an answer saved, kept in its entry (ngx_llm_cache_entry.c) */

typedef struct {
    ngx_uint_t                     prompt;        /* tokens */
    ngx_uint_t                     completion;
    ngx_msec_t                     duration;      /* the provider's time */
} ngx_llm_cache_usage_t;


/* an entry as decoded, once per hit (ngx_llm_cache_entry.c) */

#define NGX_LLM_CACHE_ENCODING_IDENTITY  0
#define NGX_LLM_CACHE_ENCODING_GZIP      1

typedef struct {
    ngx_uint_t                     status;
    ngx_str_t                      content_type;
    time_t                         created;
    time_t                         ttl;
    ngx_llm_cache_usage_t          usage;
    ngx_str_t                      body;          /* as stored */
    ngx_uint_t                     encoding;
    size_t                         length;        /* the body decoded */
} ngx_llm_cache_entry_t;


/* one per main request, shared with its provider subrequest */

typedef struct {
    ngx_http_request_t            *request;
    ngx_http_request_t            *sr;

    ngx_llm_cache_status_e         status;

    ngx_str_t                      key;
    ngx_str_t                      model;
    time_t                         age;

    ngx_llm_cache_redis_op_t      *op;

    /* miss coalescing */
    ngx_str_t                      lock_key;
    ngx_str_t                      lock_token;
    ngx_event_t                    wait_timer;
    ngx_msec_t                     wait_start;
    ngx_msec_t                     wait_delay;
    ngx_msec_t                     wait_time;     /* when it stopped */

    /*
     * what passed the body filter of the provider subrequest, written
     * once into the entry being built (ngx_llm_cache_store.c): room for
     * the entry's header in front, the body (deflated with
     * llm_cache_compress) behind
     */
    u_char                        *captured;
    u_char                        *captured_pos;
    u_char                        *captured_end;
    size_t                         captured_header;  /* room in front */
    size_t                         captured_size;    /* as the client had */
    void                          *deflate;          /* z_stream */
    u_char                        *usage_carry;      /* a "usage" split */
    size_t                         usage_carry_len;  /* over buffers */
    ngx_llm_cache_sse_t           *sse;           /* judges an SSE answer */

    ngx_uint_t                     provider_status;
    ngx_uint_t                     provider_error;  /* main answers it */
    ngx_str_t                      provider_content_type;

    ngx_llm_cache_usage_t          usage;         /* of a hit, or stored */
    ngx_uint_t                     store_result;  /* NGX_LLM_CACHE_STORED */
    time_t                         stored_ttl;

    /* the semantic layer, for a request it takes (ngx_llm_cache_semantic.c) */
    ngx_llm_cache_sem_ctx_t       *sem;

    /* an expired entry, answered if the provider fails (use_stale) */
    ngx_str_t                      stale;
    ngx_uint_t                     stale_failure; /* NGX_HTTP_UPSTREAM_FT_* */

    unsigned                       capture:1;
    unsigned                       provider_sse:1;
    unsigned                       provider_done:1;
    unsigned                       provider_complete:1;
    unsigned                       stored:1;
    unsigned                       has_age:1;
    unsigned                       lock_held:1;
    unsigned                       waited:1;
    unsigned                       wait_over:1;
    unsigned                       redirected:1;
    unsigned                       lock_given_up:1;

    /* request controls, see ngx_llm_cache_control.c */
    time_t                         max_age;
    unsigned                       has_max_age:1;
    unsigned                       refresh:1;
    unsigned                       no_store:1;

    /* L1 (ngx_llm_cache_l1.c) */
    ngx_uint_t                     l1_seq;
    unsigned                       l1_fill:1;
    unsigned                       tier:2;    /* NGX_LLM_CACHE_TIER_* */
} ngx_llm_cache_ctx_t;


extern ngx_module_t  ngx_llm_cache_module;


/* ngx_llm_cache_handler.c */
ngx_int_t ngx_llm_cache_handler(ngx_http_request_t *r);
ngx_llm_cache_ctx_t *ngx_llm_cache_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_llm_cache_rewrite_handler(ngx_http_request_t *r);
void ngx_llm_cache_lookup_done(void *data, ngx_int_t rc, ngx_str_t *value);

ngx_int_t ngx_llm_cache_send_entry(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_str_t *value,
    ngx_llm_cache_status_e cache_status);
ngx_int_t ngx_llm_cache_send_decoded(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_llm_cache_entry_t *e,
    ngx_llm_cache_status_e cache_status);

/* ngx_llm_cache_semantic.c */
ngx_int_t ngx_llm_cache_semantic_prepare(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_llm_cache_json_t *root);
ngx_int_t ngx_llm_cache_semantic_search(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_semantic_passed(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_semantic_stored(ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_semantic_cleanup(ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_semantic_header_filter(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_semantic_body_filter(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_chain_t *in);
ngx_uint_t ngx_llm_cache_semantic_is_embed(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
ngx_str_t *ngx_llm_cache_semantic_status_name(ngx_llm_cache_ctx_t *ctx);
ngx_uint_t ngx_llm_cache_semantic_outcome(ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_semantic_similarity(ngx_llm_cache_ctx_t *ctx,
    u_char *buf);
char *ngx_llm_cache_semantic_threshold_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_llm_cache_semantic_merge(ngx_conf_t *cf,
    ngx_llm_cache_loc_conf_t *prev, ngx_llm_cache_loc_conf_t *conf);

/* ngx_llm_cache_control.c */
ngx_int_t ngx_llm_cache_controls(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);

/* ngx_llm_cache_lock.c */
ngx_int_t ngx_llm_cache_lock_take(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_lock_release(ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_lock_cleanup(ngx_llm_cache_ctx_t *ctx);

/* ngx_llm_cache_key.c */
ngx_int_t ngx_llm_cache_namespace_id(ngx_http_request_t *r, ngx_str_t *id,
    ngx_str_t *error);
u_char *ngx_llm_cache_model_id(u_char *p, ngx_str_t *model);
ngx_int_t ngx_llm_cache_key_memo_find(ngx_http_request_t *r, u_char *digest,
    ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_key_memo_save(ngx_http_request_t *r, u_char *digest,
    ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_purge(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_build_key(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_str_t *error);
ngx_int_t ngx_llm_cache_partition_digest(ngx_http_request_t *r,
    ngx_llm_cache_json_t *root, ngx_str_t *identity, u_char *digest,
    ngx_str_t *error);

/* ngx_llm_cache_filter.c */
ngx_int_t ngx_llm_cache_filter_init(ngx_conf_t *cf);
ngx_int_t ngx_llm_cache_set_status_header(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx);
ngx_str_t *ngx_llm_cache_status_name(ngx_llm_cache_ctx_t *ctx);

/* ngx_llm_cache_store.c */
ngx_uint_t ngx_llm_cache_storable(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_capture(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx, ngx_buf_t *buf);
void ngx_llm_cache_store(ngx_http_request_t *sr, ngx_llm_cache_ctx_t *ctx);

/* ngx_llm_cache_header.c */
ngx_uint_t ngx_llm_cache_header_is(ngx_str_t *s, char *name);
ngx_uint_t ngx_llm_cache_header_has(ngx_str_t *s, char *token);
void ngx_llm_cache_media_type(ngx_str_t *type, ngx_str_t *media);

/* ngx_llm_cache_variables.c */
ngx_int_t ngx_llm_cache_add_variables(ngx_conf_t *cf);

/* ngx_llm_cache_invalid.c */
ngx_int_t ngx_llm_cache_send_invalid(ngx_http_request_t *r,
    ngx_llm_cache_ctx_t *ctx, ngx_str_t *reason);

/* ngx_llm_cache_entry.c */
ngx_int_t ngx_llm_cache_entry_encode(ngx_pool_t *pool, ngx_uint_t status,
    ngx_str_t *content_type, time_t created, time_t ttl,
    ngx_llm_cache_usage_t *usage, ngx_chain_t *body, size_t body_size,
    ngx_str_t *entry);
size_t ngx_llm_cache_entry_header_size(ngx_str_t *content_type);
ngx_int_t ngx_llm_cache_entry_header(ngx_log_t *log, ngx_uint_t status,
    ngx_str_t *content_type, time_t created, time_t ttl,
    ngx_llm_cache_usage_t *usage, ngx_uint_t encoding, size_t length,
    ngx_str_t *body, u_char *room, size_t room_size, ngx_str_t *entry);
ngx_int_t ngx_llm_cache_entry_decode(u_char *data, size_t len,
    ngx_uint_t *status, ngx_str_t *content_type, time_t *created,
    time_t *ttl, ngx_llm_cache_usage_t *usage, ngx_str_t *body);
ngx_int_t ngx_llm_cache_entry_parse(u_char *data, size_t len,
    ngx_llm_cache_entry_t *e);

/* ngx_llm_cache_metrics.c */
ngx_int_t ngx_llm_cache_metrics_init(ngx_conf_t *cf,
    ngx_llm_cache_main_conf_t *lmcf);
void ngx_llm_cache_metrics_request(ngx_llm_cache_ctx_t *ctx);
void ngx_llm_cache_metrics_usage(ngx_http_request_t *sr,
    ngx_llm_cache_ctx_t *ctx);
ngx_int_t ngx_llm_cache_metrics_feed(ngx_pool_t *pool,
    ngx_llm_cache_ctx_t *ctx, u_char *p, size_t len);
void ngx_llm_cache_metrics_redis_reply(void *server, ngx_str_t *name,
    ngx_msec_t sent, ngx_uint_t ok);
void ngx_llm_cache_metrics_redis_event(void *server, ngx_str_t *name,
    ngx_uint_t event);
char *ngx_llm_cache_metrics_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_llm_cache_price_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


#endif /* _NGX_LLM_CACHE_MODULE_H_INCLUDED_ */
