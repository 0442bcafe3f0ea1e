
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_JSON_H_INCLUDED_
#define _NGX_LLM_CACHE_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


#define NGX_LLM_CACHE_NORMALIZE_TRIM       0x01
#define NGX_LLM_CACHE_NORMALIZE_COLLAPSE   0x02
#define NGX_LLM_CACHE_NORMALIZE_LOWERCASE  0x04

#define NGX_LLM_CACHE_JSON_MAX_DEPTH       128
#define NGX_LLM_CACHE_JSON_MAX_KEY_LEN     1024
#define NGX_LLM_CACHE_JSON_MAX_VALUES      100000

/* ngx_llm_cache_json_parse() return code: the body is not valid JSON */
#define NGX_LLM_CACHE_JSON_INVALID         -100


typedef struct {
    ngx_array_t   *exclude;        /* ngx_array_t of ngx_str_t segments */
    ngx_uint_t     normalize;
} ngx_llm_cache_json_conf_t;


typedef struct ngx_llm_cache_json_s  ngx_llm_cache_json_t;

typedef struct ngx_llm_cache_json_parser_s  ngx_llm_cache_json_parser_t;

typedef void (*ngx_llm_cache_json_write_pt)(void *data, u_char *p,
    size_t len);


ngx_llm_cache_json_parser_t *ngx_llm_cache_json_parser_create(
    ngx_pool_t *pool);
ngx_int_t ngx_llm_cache_json_parse(ngx_llm_cache_json_parser_t *parser,
    u_char *p, size_t len);
ngx_int_t ngx_llm_cache_json_parse_end(ngx_llm_cache_json_parser_t *parser,
    ngx_llm_cache_json_t **root, ngx_str_t *error);
ngx_int_t ngx_llm_cache_json_parse_error(ngx_llm_cache_json_parser_t *parser,
    ngx_str_t *error);

ngx_int_t ngx_llm_cache_json_canonicalize(ngx_pool_t *pool,
    ngx_llm_cache_json_t *root, ngx_llm_cache_json_conf_t *conf,
    ngx_llm_cache_json_write_pt write, void *data, ngx_str_t *error);

ngx_int_t ngx_llm_cache_json_is_object(ngx_llm_cache_json_t *root);
ngx_int_t ngx_llm_cache_json_get_string(ngx_llm_cache_json_t *object,
    char *name, ngx_str_t *value);

ngx_llm_cache_json_t *ngx_llm_cache_json_member(
    ngx_llm_cache_json_t *object, char *name);
ngx_llm_cache_json_t *ngx_llm_cache_json_first(ngx_llm_cache_json_t *array);
ngx_llm_cache_json_t *ngx_llm_cache_json_last(ngx_llm_cache_json_t *array);
ngx_llm_cache_json_t *ngx_llm_cache_json_next(ngx_llm_cache_json_t *node);
ngx_int_t ngx_llm_cache_json_value(ngx_llm_cache_json_t *node,
    ngx_uint_t number, ngx_str_t *value);
void ngx_llm_cache_json_hide(ngx_llm_cache_json_t *node, ngx_uint_t hide);

ngx_int_t ngx_llm_cache_json_exclude_add(ngx_pool_t *pool,
    ngx_array_t *exclude, ngx_str_t *path);

ngx_uint_t ngx_llm_cache_json_valid(u_char *p, size_t len);

/* the same judgement, fed buffer by buffer as the answer passes */
typedef struct ngx_llm_cache_json_stream_s  ngx_llm_cache_json_stream_t;

ngx_llm_cache_json_stream_t *ngx_llm_cache_json_stream_create(
    ngx_pool_t *pool);
ngx_uint_t ngx_llm_cache_json_stream_feed(ngx_llm_cache_json_stream_t *js,
    u_char *p, size_t len);
ngx_uint_t ngx_llm_cache_json_stream_end(ngx_llm_cache_json_stream_t *js);


#endif /* _NGX_LLM_CACHE_JSON_H_INCLUDED_ */
