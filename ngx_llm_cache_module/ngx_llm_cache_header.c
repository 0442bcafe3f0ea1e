
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * Header value helpers, for the request's headers (the key) and the
 * provider's (whether an answer is storable).
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_llm_cache_module.h"


ngx_uint_t
ngx_llm_cache_header_is(ngx_str_t *s, char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    return s->len == len && ngx_strncasecmp(s->data, (u_char *) name, len)
                            == 0;
}


ngx_uint_t
ngx_llm_cache_header_has(ngx_str_t *s, char *token)
{
    return ngx_strlcasestrn(s->data, s->data + s->len, (u_char *) token,
                            ngx_strlen(token) - 1)
           != NULL;
}


/* the media type of a Content-Type value, without parameters (charset) */

void
ngx_llm_cache_media_type(ngx_str_t *type, ngx_str_t *media)
{
    u_char  *p, *end;

    p = type->data;
    end = p + type->len;

    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }

    media->data = p;

    while (p < end && *p != ';' && *p != ' ' && *p != '\t') {
        p++;
    }

    media->len = p - media->data;
}
