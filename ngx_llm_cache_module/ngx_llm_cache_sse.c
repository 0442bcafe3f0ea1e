
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * An event stream judged as it passes: is it one whole answer that can be
 * replayed?  The bytes are parsed by the WHATWG event-stream rules (lines
 * end in LF, CRLF or CR; "event" and "data" fields; a blank line
 * dispatches the event if it had a data field; ":" starts a comment; a
 * leading BOM is skipped), split anywhere.  Only the current event is
 * kept: its name (the first NAME_LEN bytes), the first bytes and length
 * of its data and, when the data is JSON, an incremental yajl parse that
 * looks at a few top-level members.  The bytes themselves are only read.
 *
 * The API is told by the events, whatever the path:
 *
 *   error     event name "error", "response.failed", "response.incomplete"
 *             (Anthropic, OpenAI Responses), the same in a top-level
 *             "type" or "event" member of the JSON data (Dify), a
 *             non-null top-level "error" member (OpenAI chat), a Gemini
 *             candidate whose finishReason is not STOP or MAX_TOKENS;
 *   terminal  data "[DONE]" (OpenAI chat), "message_stop" (Anthropic),
 *             "response.completed" (OpenAI Responses), "message_end"
 *             (Dify) as event name or member, a JSON data whose
 *             "candidates" all finished with STOP or MAX_TOKENS (Gemini);
 *   ping      "ping" as event name or member: ignored anywhere.
 *
 * Complete: no error event, the last event other than a ping is a
 * terminal one (any event after it but a ping or another terminal one
 * fails the stream), and the stream ends on an event boundary.  A data that starts as JSON but does
 * not parse (or nests deeper than NGX_LLM_CACHE_JSON_MAX_DEPTH) cannot be
 * judged and fails the stream too.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <yajl/yajl_parse.h>

#include "ngx_llm_cache_json.h"
#include "ngx_llm_cache_sse.h"


#define NGX_LLM_CACHE_SSE_NAME_LEN    32
#define NGX_LLM_CACHE_SSE_PREFIX_LEN  8


typedef enum {
    sse_line = 0,
    sse_field,
    sse_value_start,
    sse_value,
    sse_skip
} ngx_llm_cache_sse_state_e;


/* ordered: an event's kind is the highest of what its parts say */

typedef enum {
    NGX_LLM_CACHE_SSE_OTHER = 0,
    NGX_LLM_CACHE_SSE_PING,
    NGX_LLM_CACHE_SSE_END,
    NGX_LLM_CACHE_SSE_ERROR
} ngx_llm_cache_sse_kind_e;


typedef enum {
    NGX_LLM_CACHE_SSE_FIELD_OTHER = 0,
    NGX_LLM_CACHE_SSE_FIELD_EVENT,
    NGX_LLM_CACHE_SSE_FIELD_DATA
} ngx_llm_cache_sse_field_e;


typedef enum {
    NGX_LLM_CACHE_SSE_DATA_NONE = 0,     /* empty or blank so far */
    NGX_LLM_CACHE_SSE_DATA_TEXT,
    NGX_LLM_CACHE_SSE_DATA_JSON
} ngx_llm_cache_sse_data_e;


typedef enum {
    NGX_LLM_CACHE_SSE_KEY_OTHER = 0,
    NGX_LLM_CACHE_SSE_KEY_ERROR,
    NGX_LLM_CACHE_SSE_KEY_NAME,          /* "type" or "event" */
    NGX_LLM_CACHE_SSE_KEY_CANDIDATES
} ngx_llm_cache_sse_key_e;


struct ngx_llm_cache_sse_s {
    ngx_int_t                   rc;        /* NGX_OK until it fails */
    char                       *reason;

    ngx_llm_cache_sse_state_e   state;
    ngx_llm_cache_sse_field_e   field;
    ngx_uint_t                  bom;       /* BOM bytes matched */
    u_char                      field_name[5];
    size_t                      field_len;

    /* the current event */
    u_char                      name[NGX_LLM_CACHE_SSE_NAME_LEN];
    size_t                      name_len;  /* NAME_LEN + 1: too long */
    u_char                      prefix[NGX_LLM_CACHE_SSE_PREFIX_LEN];
    size_t                      data_len;
    ngx_llm_cache_sse_data_e    data;

    /* its JSON data */
    yajl_handle                 json;
    ngx_uint_t                  depth;
    ngx_llm_cache_sse_key_e     key;
    ngx_llm_cache_sse_kind_e    json_kind;
    ngx_uint_t                  candidates;
    ngx_uint_t                  finished;

    unsigned                    cr:1;           /* an LF after it is eaten */
    unsigned                    pending:1;      /* undispatched field lines */
    unsigned                    has_data:1;
    unsigned                    json_bad:1;
    unsigned                    json_error:1;
    unsigned                    in_candidates:1;
    unsigned                    finish_key:1;
    unsigned                    candidate_finished:1;
    unsigned                    bad_finish:1;

    unsigned                    ended:1;        /* the terminal event passed */
};


static void ngx_llm_cache_sse_cleanup(void *data);
static void ngx_llm_cache_sse_field_begin(ngx_llm_cache_sse_t *sse);
static void ngx_llm_cache_sse_value(ngx_llm_cache_sse_t *sse, u_char *p,
    size_t len);
static void ngx_llm_cache_sse_data(ngx_llm_cache_sse_t *sse, u_char *p,
    size_t len);
static void ngx_llm_cache_sse_dispatch(ngx_llm_cache_sse_t *sse);
static void ngx_llm_cache_sse_fail(ngx_llm_cache_sse_t *sse, ngx_int_t rc,
    char *reason);
static void ngx_llm_cache_sse_reset(ngx_llm_cache_sse_t *sse);
static ngx_llm_cache_sse_kind_e ngx_llm_cache_sse_kind(u_char *name,
    size_t len);

static int ngx_llm_cache_sse_json_null(void *ctx);
static int ngx_llm_cache_sse_json_boolean(void *ctx, int value);
static int ngx_llm_cache_sse_json_number(void *ctx, const char *s,
    size_t len);
static int ngx_llm_cache_sse_json_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_llm_cache_sse_json_start_map(void *ctx);
static int ngx_llm_cache_sse_json_map_key(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_llm_cache_sse_json_end_map(void *ctx);
static int ngx_llm_cache_sse_json_start_array(void *ctx);
static int ngx_llm_cache_sse_json_end_array(void *ctx);


static yajl_callbacks  ngx_llm_cache_sse_json_callbacks = {
    ngx_llm_cache_sse_json_null,
    ngx_llm_cache_sse_json_boolean,
    NULL,
    NULL,
    ngx_llm_cache_sse_json_number,
    ngx_llm_cache_sse_json_string,
    ngx_llm_cache_sse_json_start_map,
    ngx_llm_cache_sse_json_map_key,
    ngx_llm_cache_sse_json_end_map,
    ngx_llm_cache_sse_json_start_array,
    ngx_llm_cache_sse_json_end_array
};


static u_char  ngx_llm_cache_sse_bom[] = { 0xef, 0xbb, 0xbf };


ngx_llm_cache_sse_t *
ngx_llm_cache_sse_create(ngx_pool_t *pool)
{
    ngx_pool_cleanup_t   *cln;
    ngx_llm_cache_sse_t  *sse;

    sse = ngx_pcalloc(pool, sizeof(ngx_llm_cache_sse_t));
    if (sse == NULL) {
        return NULL;
    }

    cln = ngx_pool_cleanup_add(pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = ngx_llm_cache_sse_cleanup;
    cln->data = sse;

    sse->rc = NGX_OK;

    return sse;
}


static void
ngx_llm_cache_sse_cleanup(void *data)
{
    ngx_llm_cache_sse_t  *sse = data;

    if (sse->json) {
        yajl_free(sse->json);
        sse->json = NULL;
    }
}


/* NGX_OK while the stream may still be stored, else as it failed */

ngx_int_t
ngx_llm_cache_sse_parse(ngx_llm_cache_sse_t *sse, u_char *p, size_t len)
{
    u_char  *last, *end, ch;

    last = p + len;

    while (p < last && sse->rc == NGX_OK) {

        ch = *p;

        if (sse->cr) {
            sse->cr = 0;

            if (ch == LF) {
                p++;
                continue;
            }
        }

        if (sse->bom < sizeof(ngx_llm_cache_sse_bom)) {

            if (ch == ngx_llm_cache_sse_bom[sse->bom]) {
                sse->bom++;
                p++;
                continue;
            }

            if (sse->bom > 0) {
                /* a field name started with the bytes: no known one */
                sse->state = sse_field;
                sse->field_len = sizeof(sse->field_name) + 1;
                sse->pending = 1;
            }

            sse->bom = sizeof(ngx_llm_cache_sse_bom);
        }

        switch (sse->state) {

        case sse_line:

            if (ch == CR || ch == LF) {
                sse->cr = (ch == CR);
                p++;
                ngx_llm_cache_sse_dispatch(sse);
                break;
            }

            if (ch == ':') {
                sse->state = sse_skip;
                p++;
                break;
            }

            sse->state = sse_field;
            sse->field_len = 0;
            sse->pending = 1;
            break;

        case sse_field:

            if (ch == ':' || ch == CR || ch == LF) {
                ngx_llm_cache_sse_field_begin(sse);

                if (ch == ':') {
                    sse->state = sse_value_start;
                    p++;

                } else {
                    /* no colon: the line is the name, the value empty */
                    sse->state = sse_value;
                }

                break;
            }

            if (sse->field_len < sizeof(sse->field_name)) {
                sse->field_name[sse->field_len] = ch;
            }

            if (sse->field_len <= sizeof(sse->field_name)) {
                sse->field_len++;
            }

            p++;
            break;

        case sse_value_start:

            sse->state = sse_value;

            if (ch == ' ') {
                p++;
            }

            break;

        case sse_value:
        case sse_skip:

            for (end = p; end < last && *end != CR && *end != LF; end++) {
                /* void */
            }

            if (sse->state == sse_value && end > p) {
                ngx_llm_cache_sse_value(sse, p, end - p);
            }

            p = end;

            if (p < last) {
                sse->cr = (*p == CR);
                sse->state = sse_line;
                p++;
            }

            break;
        }
    }

    return sse->rc;
}


/* at the end of the stream: NGX_OK if it is complete */

ngx_int_t
ngx_llm_cache_sse_end(ngx_llm_cache_sse_t *sse)
{
    if (sse->rc != NGX_OK) {
        return sse->rc;
    }

    if (sse->pending || sse->state != sse_line) {
        ngx_llm_cache_sse_fail(sse, NGX_DECLINED,
                               "it ends inside an event");

    } else if (!sse->ended) {
        ngx_llm_cache_sse_fail(sse, NGX_DECLINED, "no terminal event");
    }

    return sse->rc;
}


char *
ngx_llm_cache_sse_reason(ngx_llm_cache_sse_t *sse)
{
    return sse->reason ? sse->reason : "complete";
}


static void
ngx_llm_cache_sse_field_begin(ngx_llm_cache_sse_t *sse)
{
    if (sse->field_len == 4
        && ngx_memcmp(sse->field_name, "data", 4) == 0)
    {
        sse->field = NGX_LLM_CACHE_SSE_FIELD_DATA;

        /* data lines are joined with LF */

        if (sse->has_data) {
            ngx_llm_cache_sse_data(sse, (u_char *) "\n", 1);
        }

        sse->has_data = 1;

    } else if (sse->field_len == 5
               && ngx_memcmp(sse->field_name, "event", 5) == 0)
    {
        sse->field = NGX_LLM_CACHE_SSE_FIELD_EVENT;
        sse->name_len = 0;

    } else {
        /* "id", "retry" and unknown fields change nothing judged here */
        sse->field = NGX_LLM_CACHE_SSE_FIELD_OTHER;
    }
}


static void
ngx_llm_cache_sse_value(ngx_llm_cache_sse_t *sse, u_char *p, size_t len)
{
    switch (sse->field) {

    case NGX_LLM_CACHE_SSE_FIELD_DATA:
        ngx_llm_cache_sse_data(sse, p, len);
        break;

    case NGX_LLM_CACHE_SSE_FIELD_EVENT:

        if (sse->name_len > NGX_LLM_CACHE_SSE_NAME_LEN) {
            break;
        }

        if (sse->name_len + len > NGX_LLM_CACHE_SSE_NAME_LEN) {
            /* longer than any name judged */
            sse->name_len = NGX_LLM_CACHE_SSE_NAME_LEN + 1;
            break;
        }

        ngx_memcpy(sse->name + sse->name_len, p, len);
        sse->name_len += len;
        break;

    default:
        break;
    }
}


static void
ngx_llm_cache_sse_data(ngx_llm_cache_sse_t *sse, u_char *p, size_t len)
{
    u_char  *last;
    size_t   n;

    if (sse->data_len < NGX_LLM_CACHE_SSE_PREFIX_LEN) {
        n = ngx_min(len, NGX_LLM_CACHE_SSE_PREFIX_LEN - sse->data_len);
        ngx_memcpy(sse->prefix + sse->data_len, p, n);
    }

    sse->data_len += len;

    last = p + len;

    if (sse->data == NGX_LLM_CACHE_SSE_DATA_NONE) {

        while (p < last
               && (*p == ' ' || *p == '\t' || *p == LF || *p == CR))
        {
            p++;
        }

        if (p == last) {
            return;
        }

        if (*p != '{') {
            sse->data = NGX_LLM_CACHE_SSE_DATA_TEXT;
            return;
        }

        sse->data = NGX_LLM_CACHE_SSE_DATA_JSON;

        sse->json = yajl_alloc(&ngx_llm_cache_sse_json_callbacks, NULL, sse);
        if (sse->json == NULL) {
            ngx_llm_cache_sse_fail(sse, NGX_ERROR, "no memory");
            return;
        }
    }

    if (sse->data != NGX_LLM_CACHE_SSE_DATA_JSON || sse->json_bad) {
        return;
    }

    if (yajl_parse(sse->json, p, last - p) != yajl_status_ok) {
        sse->json_bad = 1;
    }
}


/* a blank line: judge the event, if it had data */

static void
ngx_llm_cache_sse_dispatch(ngx_llm_cache_sse_t *sse)
{
    ngx_llm_cache_sse_kind_e  kind;

    sse->pending = 0;

    if (!sse->has_data) {
        /* not an event: an "event: ping" alone, say */
        ngx_llm_cache_sse_reset(sse);
        return;
    }

    kind = NGX_LLM_CACHE_SSE_OTHER;

    if (sse->name_len <= NGX_LLM_CACHE_SSE_NAME_LEN) {
        kind = ngx_llm_cache_sse_kind(sse->name, sse->name_len);
    }

    if (sse->data == NGX_LLM_CACHE_SSE_DATA_JSON) {

        if (!sse->json_bad
            && yajl_complete_parse(sse->json) != yajl_status_ok)
        {
            sse->json_bad = 1;
        }

        if (sse->json_bad) {
            if (kind == NGX_LLM_CACHE_SSE_ERROR) {
                ngx_llm_cache_sse_fail(sse, NGX_DECLINED, "an error event");

            } else {
                ngx_llm_cache_sse_fail(sse, NGX_DECLINED,
                                       "an event's data is not valid JSON");
            }

            return;
        }

        kind = ngx_max(kind, sse->json_kind);

        if (sse->json_error || sse->bad_finish) {
            kind = NGX_LLM_CACHE_SSE_ERROR;

        } else if (sse->candidates > 0 && sse->finished == sse->candidates) {
            kind = ngx_max(kind, NGX_LLM_CACHE_SSE_END);
        }

    } else if (sse->data_len == sizeof("[DONE]") - 1
               && ngx_memcmp(sse->prefix, "[DONE]", sizeof("[DONE]") - 1)
                  == 0)
    {
        kind = ngx_max(kind, NGX_LLM_CACHE_SSE_END);
    }

    switch (kind) {

    case NGX_LLM_CACHE_SSE_ERROR:
        ngx_llm_cache_sse_fail(sse, NGX_DECLINED, "an error event");
        return;

    case NGX_LLM_CACHE_SSE_PING:
        break;

    case NGX_LLM_CACHE_SSE_END:
        /* a gateway may add its own "[DONE]" after the API's end */
        sse->ended = 1;
        break;

    default:

        if (sse->ended) {
            ngx_llm_cache_sse_fail(sse, NGX_DECLINED,
                                   "an event after the terminal one");
            return;
        }
    }

    ngx_llm_cache_sse_reset(sse);
}


static void
ngx_llm_cache_sse_fail(ngx_llm_cache_sse_t *sse, ngx_int_t rc, char *reason)
{
    sse->rc = rc;
    sse->reason = reason;

    /* nothing more is parsed: the JSON state goes now */

    ngx_llm_cache_sse_cleanup(sse);
}


static void
ngx_llm_cache_sse_reset(ngx_llm_cache_sse_t *sse)
{
    ngx_llm_cache_sse_cleanup(sse);

    sse->name_len = 0;
    sse->data_len = 0;
    sse->data = NGX_LLM_CACHE_SSE_DATA_NONE;
    sse->depth = 0;
    sse->key = NGX_LLM_CACHE_SSE_KEY_OTHER;
    sse->json_kind = NGX_LLM_CACHE_SSE_OTHER;
    sse->candidates = 0;
    sse->finished = 0;
    sse->has_data = 0;
    sse->json_bad = 0;
    sse->json_error = 0;
    sse->in_candidates = 0;
    sse->finish_key = 0;
    sse->candidate_finished = 0;
    sse->bad_finish = 0;
}


static ngx_llm_cache_sse_kind_e
ngx_llm_cache_sse_kind(u_char *name, size_t len)
{
    ngx_uint_t  i;

    static struct {
        ngx_str_t                 name;
        ngx_llm_cache_sse_kind_e  kind;
    } names[] = {
        { ngx_string("error"), NGX_LLM_CACHE_SSE_ERROR },
        { ngx_string("response.failed"), NGX_LLM_CACHE_SSE_ERROR },
        { ngx_string("response.incomplete"), NGX_LLM_CACHE_SSE_ERROR },
        { ngx_string("message_stop"), NGX_LLM_CACHE_SSE_END },
        { ngx_string("response.completed"), NGX_LLM_CACHE_SSE_END },
        { ngx_string("message_end"), NGX_LLM_CACHE_SSE_END },
        { ngx_string("ping"), NGX_LLM_CACHE_SSE_PING }
    };

    for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (len == names[i].name.len
            && ngx_memcmp(name, names[i].name.data, len) == 0)
        {
            return names[i].kind;
        }
    }

    return NGX_LLM_CACHE_SSE_OTHER;
}


/*
 * The JSON data: only the top-level "error", "type", "event" and
 * "candidates" members, and finishReason in each candidate, matter.
 * Depth 1 is the top-level object, candidates are objects at depth 3.
 */

static void
ngx_llm_cache_sse_json_scalar(ngx_llm_cache_sse_t *sse, ngx_uint_t empty,
    const unsigned char *s, size_t len)
{
    if (sse->depth == 1) {

        if (sse->key == NGX_LLM_CACHE_SSE_KEY_ERROR && !empty) {
            sse->json_error = 1;

        } else if (sse->key == NGX_LLM_CACHE_SSE_KEY_NAME && s != NULL) {
            sse->json_kind = ngx_max(sse->json_kind,
                                     ngx_llm_cache_sse_kind((u_char *) s,
                                                            len));
        }

    } else if (sse->depth == 3 && sse->in_candidates && sse->finish_key) {

        if (s != NULL
            && ((len == 4 && ngx_memcmp(s, "STOP", 4) == 0)
                || (len == 10 && ngx_memcmp(s, "MAX_TOKENS", 10) == 0)))
        {
            sse->candidate_finished = 1;

        } else if (!empty) {
            sse->bad_finish = 1;
        }
    }

    sse->finish_key = 0;
}


static int
ngx_llm_cache_sse_json_null(void *ctx)
{
    ngx_llm_cache_sse_json_scalar(ctx, 1, NULL, 0);
    return 1;
}


static int
ngx_llm_cache_sse_json_boolean(void *ctx, int value)
{
    /* "error": false is no error */
    ngx_llm_cache_sse_json_scalar(ctx, !value, NULL, 0);
    return 1;
}


static int
ngx_llm_cache_sse_json_number(void *ctx, const char *s, size_t len)
{
    ngx_llm_cache_sse_json_scalar(ctx, 0, NULL, 0);
    return 1;
}


static int
ngx_llm_cache_sse_json_string(void *ctx, const unsigned char *s, size_t len)
{
    ngx_llm_cache_sse_json_scalar(ctx, 0, s, len);
    return 1;
}


static int
ngx_llm_cache_sse_json_open(ngx_llm_cache_sse_t *sse)
{
    if (sse->depth == 1 && sse->key == NGX_LLM_CACHE_SSE_KEY_ERROR) {
        sse->json_error = 1;
    }

    if (sse->depth >= NGX_LLM_CACHE_JSON_MAX_DEPTH) {
        return 0;
    }

    sse->depth++;
    sse->finish_key = 0;

    return 1;
}


static int
ngx_llm_cache_sse_json_start_map(void *ctx)
{
    ngx_llm_cache_sse_t  *sse = ctx;

    if (!ngx_llm_cache_sse_json_open(sse)) {
        return 0;
    }

    if (sse->depth == 3 && sse->in_candidates) {
        sse->candidate_finished = 0;
    }

    return 1;
}


static int
ngx_llm_cache_sse_json_map_key(void *ctx, const unsigned char *s, size_t len)
{
    ngx_llm_cache_sse_t  *sse = ctx;

    if (sse->depth == 1) {

        if (len == 5 && ngx_memcmp(s, "error", 5) == 0) {
            sse->key = NGX_LLM_CACHE_SSE_KEY_ERROR;

        } else if ((len == 4 && ngx_memcmp(s, "type", 4) == 0)
                   || (len == 5 && ngx_memcmp(s, "event", 5) == 0))
        {
            sse->key = NGX_LLM_CACHE_SSE_KEY_NAME;

        } else if (len == 10 && ngx_memcmp(s, "candidates", 10) == 0) {
            sse->key = NGX_LLM_CACHE_SSE_KEY_CANDIDATES;

        } else {
            sse->key = NGX_LLM_CACHE_SSE_KEY_OTHER;
        }

    } else if (sse->depth == 3 && sse->in_candidates) {
        sse->finish_key = (len == 12
                           && ngx_memcmp(s, "finishReason", 12) == 0);
    }

    return 1;
}


static int
ngx_llm_cache_sse_json_end_map(void *ctx)
{
    ngx_llm_cache_sse_t  *sse = ctx;

    if (sse->depth == 3 && sse->in_candidates) {
        sse->candidates++;

        if (sse->candidate_finished) {
            sse->finished++;
        }
    }

    sse->depth--;
    sse->finish_key = 0;

    return 1;
}


static int
ngx_llm_cache_sse_json_start_array(void *ctx)
{
    ngx_llm_cache_sse_t  *sse = ctx;

    if (!ngx_llm_cache_sse_json_open(sse)) {
        return 0;
    }

    if (sse->depth == 2 && sse->key == NGX_LLM_CACHE_SSE_KEY_CANDIDATES) {
        sse->in_candidates = 1;
    }

    return 1;
}


static int
ngx_llm_cache_sse_json_end_array(void *ctx)
{
    ngx_llm_cache_sse_t  *sse = ctx;

    if (sse->depth == 2) {
        sse->in_candidates = 0;
    }

    sse->depth--;
    sse->finish_key = 0;

    return 1;
}
