
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


#ifndef _NGX_LLM_CACHE_SSE_H_INCLUDED_
#define _NGX_LLM_CACHE_SSE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


typedef struct ngx_llm_cache_sse_s  ngx_llm_cache_sse_t;


ngx_llm_cache_sse_t *ngx_llm_cache_sse_create(ngx_pool_t *pool);
ngx_int_t ngx_llm_cache_sse_parse(ngx_llm_cache_sse_t *sse, u_char *p,
    size_t len);
ngx_int_t ngx_llm_cache_sse_end(ngx_llm_cache_sse_t *sse);
char *ngx_llm_cache_sse_reason(ngx_llm_cache_sse_t *sse);


#endif /* _NGX_LLM_CACHE_SSE_H_INCLUDED_ */
