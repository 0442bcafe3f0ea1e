
/*
 * Copyright (C) ngx_llm_cache authors
 * BSD-2-Clause, see LICENSE.
 */


/*
 * The semantic layer's pure parts (see ngx_llm_cache_semantic.h): no
 * request, no Redis, so that a C program can test them on their own.
 *
 * Embedding replies are parsed by a yajl stream (no tree), into at most
 * NGX_LLM_CACHE_SEM_MAX_DIMS floats.  Signatures are 256 random
 * hyperplanes with +1/-1 coefficients, packed 8 to a byte, from a fixed
 * PRNG, so that every worker and every nginx computes the same bits.  The
 * prefilter keeps a pair at exactly the threshold with probability 0.999;
 * the exact cosine decides, so the prefilter costs misses, never false
 * hits.
 */


#include <ngx_config.h>
#include <ngx_core.h>

#include <math.h>
#include <float.h>
#include <yajl/yajl_parse.h>

#include "ngx_llm_cache_semantic.h"


/* the embedding reply parser */

#define NGX_LLM_CACHE_SEM_JSON_DEPTH     32
#define NGX_LLM_CACHE_SEM_NUMBER_LEN     64

#define NGX_LLM_CACHE_SEM_KEY_OTHER      0
#define NGX_LLM_CACHE_SEM_KEY_DATA       1
#define NGX_LLM_CACHE_SEM_KEY_ERROR      2
#define NGX_LLM_CACHE_SEM_KEY_EMBEDDING  3

#define NGX_LLM_CACHE_SEM_T_NULL         0
#define NGX_LLM_CACHE_SEM_T_BOOLEAN      1
#define NGX_LLM_CACHE_SEM_T_NUMBER       2
#define NGX_LLM_CACHE_SEM_T_STRING       3
#define NGX_LLM_CACHE_SEM_T_MAP          4
#define NGX_LLM_CACHE_SEM_T_ARRAY        5


typedef struct {
    ngx_pool_t                    *pool;
    ngx_uint_t                     dims;        /* expected, 0: any */
    ngx_uint_t                     depth;
    ngx_uint_t                     key1;        /* member of the reply */
    ngx_uint_t                     key3;        /* member of data[0] */
    ngx_uint_t                     ndata;       /* data[] elements seen */
    float                         *v;
    ngx_uint_t                     n;
    ngx_uint_t                     size;
    char                          *invalid;

    unsigned                       in_data:1;
    unsigned                       in_first:1;
    unsigned                       in_embedding:1;
    unsigned                       seen_data:1;
    unsigned                       seen_embedding:1;
    unsigned                       nomem:1;
} ngx_llm_cache_sem_parse_t;


/* the signature planes of one dimension, kept for the worker's life */

#define NGX_LLM_CACHE_SEM_PLANE_SETS     4

/* max_out of ngx_llm_cache_sem_candidates(), at most */
#define NGX_LLM_CACHE_SEM_MAX_CANDIDATES 64

typedef struct {
    ngx_uint_t                     dims;
    u_char                        *bits;       /* [dims / 8][256] */
} ngx_llm_cache_sem_planes_t;


/* guards */

#define NGX_LLM_CACHE_SEM_G_NUMBERS      0
#define NGX_LLM_CACHE_SEM_G_NEGATION     1
#define NGX_LLM_CACHE_SEM_G_ENTITIES     2
#define NGX_LLM_CACHE_SEM_G_STRICT       3

#define NGX_LLM_CACHE_SEM_MAX_TOKENS     2048
#define NGX_LLM_CACHE_SEM_TOKEN_BUF      4096
#define NGX_LLM_CACHE_SEM_WORD_LEN       32
#define NGX_LLM_CACHE_SEM_QUOTE_LEN      512

typedef struct {
    u_char                        *data;       /* case-folded when used */
    uint32_t                       len;
    uint32_t                       kind;
} ngx_llm_cache_sem_token_t;


typedef struct {
    u_char                        *text;
    u_char                        *end;
    ngx_llm_cache_sem_token_t     *tokens;
    ngx_uint_t                     ntokens;
    u_char                        *buf;        /* made-up tokens */
    size_t                         used;
    ngx_uint_t                     overflow;   /* a bit per guard */

    /* a run of number words: "twenty one", "three hundred thousand" */
    uint64_t                       total;
    uint64_t                       cur;
    ngx_uint_t                     last;
    ngx_uint_t                     run;

    u_char                         prev[NGX_LLM_CACHE_SEM_WORD_LEN];
    size_t                         prev_len;
    ngx_uint_t                     sentence;   /* next word starts one */
} ngx_llm_cache_sem_guard_t;


#define NGX_LLM_CACHE_SEM_NUM_UNIT       1     /* zero .. nineteen */
#define NGX_LLM_CACHE_SEM_NUM_TEN        2     /* twenty .. ninety */
#define NGX_LLM_CACHE_SEM_NUM_HUNDRED    3
#define NGX_LLM_CACHE_SEM_NUM_SCALE      4     /* thousand, million ... */
#define NGX_LLM_CACHE_SEM_NUM_ALONE      5     /* half, twice, third ... */

typedef struct {
    char                          *word;
    uint64_t                       value;
    ngx_uint_t                     type;
    char                          *text;       /* NUM_ALONE */
} ngx_llm_cache_sem_number_word_t;


/* a polarity word: its canonical form; stem: inflections count too */

#define NGX_LLM_CACHE_SEM_POL_PLAIN      0
#define NGX_LLM_CACHE_SEM_POL_STEM       1
#define NGX_LLM_CACHE_SEM_POL_ON         2     /* "on": context decides */
#define NGX_LLM_CACHE_SEM_POL_UPDOWN     3     /* "up", "down": context */

typedef struct {
    char                          *word;
    char                          *canonical;
    ngx_uint_t                     flags;
} ngx_llm_cache_sem_polarity_t;


static int ngx_llm_cache_sem_json_null(void *ctx);
static int ngx_llm_cache_sem_json_boolean(void *ctx, int value);
static int ngx_llm_cache_sem_json_number(void *ctx, const char *s,
    size_t len);
static int ngx_llm_cache_sem_json_string(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_llm_cache_sem_json_start_map(void *ctx);
static int ngx_llm_cache_sem_json_map_key(void *ctx, const unsigned char *s,
    size_t len);
static int ngx_llm_cache_sem_json_start_array(void *ctx);
static int ngx_llm_cache_sem_json_end(void *ctx);
static int ngx_llm_cache_sem_json_value(ngx_llm_cache_sem_parse_t *ps,
    ngx_uint_t type, const u_char *s, size_t len);
static int ngx_llm_cache_sem_json_append(ngx_llm_cache_sem_parse_t *ps,
    const u_char *s, size_t len);
static int ngx_llm_cache_sem_json_base64(ngx_llm_cache_sem_parse_t *ps,
    const u_char *s, size_t len);

static u_char *ngx_llm_cache_sem_planes(ngx_uint_t dims);
static void ngx_llm_cache_sem_planes_free(void *data);
static uint64_t ngx_llm_cache_sem_splitmix64(uint64_t *state);
static uint64_t ngx_llm_cache_sem_le64(u_char *p);
static ngx_uint_t ngx_llm_cache_sem_popcount(uint64_t x);
static float ngx_llm_cache_sem_float_le(u_char *p);
static void ngx_llm_cache_sem_float_to_le(float f, u_char *p);

static void ngx_llm_cache_sem_add(ngx_llm_cache_sem_guard_t *g,
    ngx_uint_t kind, u_char *data, size_t len);
static void ngx_llm_cache_sem_add_copy(ngx_llm_cache_sem_guard_t *g,
    ngx_uint_t kind, u_char *data, size_t len);
static void ngx_llm_cache_sem_quotes(ngx_llm_cache_sem_guard_t *g);
static void ngx_llm_cache_sem_digits(ngx_llm_cache_sem_guard_t *g);
static void ngx_llm_cache_sem_words(ngx_llm_cache_sem_guard_t *g);
static void ngx_llm_cache_sem_raw_token(ngx_llm_cache_sem_guard_t *g,
    u_char *s, u_char *e, ngx_uint_t clause_end);
static void ngx_llm_cache_sem_word(ngx_llm_cache_sem_guard_t *g,
    u_char *w, size_t len, ngx_uint_t first, ngx_uint_t clause_end);
static void ngx_llm_cache_sem_number_add(ngx_llm_cache_sem_guard_t *g,
    ngx_llm_cache_sem_number_word_t *nw);
static void ngx_llm_cache_sem_number_flush(ngx_llm_cache_sem_guard_t *g);
static ngx_llm_cache_sem_polarity_t *ngx_llm_cache_sem_polarity(u_char *w,
    size_t len);
static ngx_uint_t ngx_llm_cache_sem_in_list(char **list, u_char *w,
    size_t len, ngx_uint_t stem);
static ngx_uint_t ngx_llm_cache_sem_stems(u_char *w, size_t len,
    u_char stems[][NGX_LLM_CACHE_SEM_WORD_LEN], size_t *lens);
static size_t ngx_llm_cache_sem_punct(u_char *p, u_char *end);
static size_t ngx_llm_cache_sem_url(u_char *p, u_char *end);
static ngx_uint_t ngx_llm_cache_sem_eq(u_char *w, size_t len, char *s);
static int ngx_libc_cdecl ngx_llm_cache_sem_token_cmp(const void *one,
    const void *two);
static uint32_t ngx_llm_cache_sem_guard_hash(ngx_llm_cache_sem_guard_t *g,
    ngx_uint_t kind);


static yajl_callbacks  ngx_llm_cache_sem_json_callbacks = {
    ngx_llm_cache_sem_json_null,
    ngx_llm_cache_sem_json_boolean,
    NULL,
    NULL,
    ngx_llm_cache_sem_json_number,
    ngx_llm_cache_sem_json_string,
    ngx_llm_cache_sem_json_start_map,
    ngx_llm_cache_sem_json_map_key,
    ngx_llm_cache_sem_json_end,
    ngx_llm_cache_sem_json_start_array,
    ngx_llm_cache_sem_json_end
};


static ngx_llm_cache_sem_planes_t
    ngx_llm_cache_sem_plane_sets[NGX_LLM_CACHE_SEM_PLANE_SETS];
static ngx_uint_t  ngx_llm_cache_sem_plane_next;
static void       *ngx_llm_cache_sem_plane_cycle;


/* the guards' scratch space: one text at a time, in one process */
static ngx_llm_cache_sem_token_t
    ngx_llm_cache_sem_tokens[NGX_LLM_CACHE_SEM_MAX_TOKENS];
static u_char  ngx_llm_cache_sem_token_buf[NGX_LLM_CACHE_SEM_TOKEN_BUF];


static ngx_llm_cache_sem_number_word_t  ngx_llm_cache_sem_number_words[] = {
    { "zero", 0, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "one", 1, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "two", 2, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "three", 3, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "four", 4, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "five", 5, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "six", 6, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "seven", 7, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "eight", 8, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "nine", 9, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "ten", 10, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "eleven", 11, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "twelve", 12, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "thirteen", 13, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "fourteen", 14, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "fifteen", 15, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "sixteen", 16, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "seventeen", 17, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "eighteen", 18, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "nineteen", 19, NGX_LLM_CACHE_SEM_NUM_UNIT, NULL },
    { "twenty", 20, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "thirty", 30, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "forty", 40, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "fifty", 50, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "sixty", 60, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "seventy", 70, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "eighty", 80, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "ninety", 90, NGX_LLM_CACHE_SEM_NUM_TEN, NULL },
    { "hundred", 100, NGX_LLM_CACHE_SEM_NUM_HUNDRED, NULL },
    { "thousand", 1000, NGX_LLM_CACHE_SEM_NUM_SCALE, NULL },
    { "million", 1000000, NGX_LLM_CACHE_SEM_NUM_SCALE, NULL },
    { "billion", 1000000000, NGX_LLM_CACHE_SEM_NUM_SCALE, NULL },
    { "half", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "0.5" },
    { "twice", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "2" },
    { "double", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "2" },
    { "dozen", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "12" },
    { "first", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "1" },
    { "second", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "2" },
    { "third", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "3" },
    { "fourth", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "4" },
    { "fifth", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "5" },
    { "sixth", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "6" },
    { "seventh", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "7" },
    { "eighth", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "8" },
    { "ninth", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "9" },
    { "tenth", 0, NGX_LLM_CACHE_SEM_NUM_ALONE, "10" },
    { NULL, 0, 0, NULL }
};


static char  *ngx_llm_cache_sem_negators[] = {
    "not", "no", "never", "none", "nothing", "nobody", "neither", "nor",
    "without", "cannot", "non", "nowhere", "unable", "nope",
    "dont", "doesnt", "didnt", "isnt", "arent", "wasnt", "werent", "cant",
    "couldnt", "wouldnt", "shouldnt", "wont", "hasnt", "havent", "hadnt",
    "aint", "mustnt", "neednt",
    NULL
};


#define S  NGX_LLM_CACHE_SEM_POL_STEM
#define P  NGX_LLM_CACHE_SEM_POL_PLAIN

static ngx_llm_cache_sem_polarity_t  ngx_llm_cache_sem_polarities[] = {
    { "on", "on", NGX_LLM_CACHE_SEM_POL_ON },
    { "off", "off", P },
    { "enable", "on", S },
    { "disable", "off", S },
    { "activate", "on", S },
    { "deactivate", "off", S },
    { "open", "open", S },
    { "close", "close", S },
    { "increase", "increase", S },
    { "increment", "increase", S },
    { "decrease", "decrease", S },
    { "decrement", "decrease", S },
    { "reduce", "decrease", S },
    { "allow", "allow", S },
    { "permit", "allow", S },
    { "deny", "deny", S },
    { "forbid", "deny", S },
    { "forbidden", "deny", P },
    { "before", "before", P },
    { "after", "after", P },
    { "min", "min", P },
    { "minimum", "min", P },
    { "minimal", "min", P },
    { "minimize", "min", S },
    { "max", "max", P },
    { "maximum", "max", P },
    { "maximal", "max", P },
    { "maximize", "max", S },
    { "true", "true", P },
    { "false", "false", P },
    { "yes", "yes", P },
    { "up", "up", NGX_LLM_CACHE_SEM_POL_UPDOWN },
    { "down", "down", NGX_LLM_CACHE_SEM_POL_UPDOWN },
    { "start", "start", S },
    { "begin", "start", S },
    { "stop", "stop", S },
    { "add", "add", S },
    { "remove", "remove", S },
    { "delete", "remove", S },
    { "include", "include", S },
    { "exclude", "exclude", S },
    { "accept", "accept", S },
    { "reject", "reject", S },
    { "above", "above", P },
    { "below", "below", P },
    { "more", "more", P },
    { "greater", "more", P },
    { "larger", "more", P },
    { "bigger", "more", P },
    { "less", "less", P },
    { "fewer", "less", P },
    { "smaller", "less", P },
    { "high", "high", P },
    { "higher", "high", P },
    { "highest", "high", P },
    { "low", "low", P },
    { "lower", "low", P },
    { "lowest", "low", P },
    { "always", "always", P },
    { "valid", "valid", P },
    { "invalid", "invalid", P },
    { "correct", "correct", P },
    { "incorrect", "incorrect", P },
    { "possible", "possible", P },
    { "impossible", "impossible", P },
    { "safe", "safe", P },
    { "unsafe", "unsafe", P },
    { "secure", "secure", P },
    { "insecure", "insecure", P },
    { "legal", "legal", P },
    { "illegal", "illegal", P },
    { "succeed", "success", S },
    { "success", "success", P },
    { "successful", "success", P },
    { "fail", "fail", S },
    { "failure", "fail", P },
    { "encrypt", "encrypt", S },
    { "decrypt", "decrypt", S },
    { "encode", "encode", S },
    { "decode", "decode", S },
    { "compress", "compress", S },
    { "decompress", "decompress", S },
    { "connect", "connect", S },
    { "disconnect", "disconnect", S },
    { "lock", "lock", S },
    { "unlock", "unlock", S },
    { "install", "install", S },
    { "uninstall", "uninstall", S },
    { "upgrade", "upgrade", S },
    { "downgrade", "downgrade", S },
    { "import", "import", S },
    { "export", "export", S },
    { "upload", "upload", S },
    { "download", "download", S },
    { "inbound", "inbound", P },
    { "outbound", "outbound", P },
    { "input", "input", P },
    { "output", "output", P },
    { "public", "public", P },
    { "private", "private", P },
    { "sync", "sync", P },
    { "synchronous", "sync", P },
    { "async", "async", P },
    { "asynchronous", "async", P },
    { "ascending", "ascending", P },
    { "descending", "descending", P },
    { NULL, NULL, 0 }
};

#undef S
#undef P


/* after these verbs "on" is a state: "turn it on", "switch on" */
static char  *ngx_llm_cache_sem_on_verbs[] = {
    "turn", "switch", "toggle", "flip", NULL
};

/* after these "up" and "down" are no direction: "set up", "look up" */
static char  *ngx_llm_cache_sem_updown_verbs[] = {
    "set", "setup", "look", "sign", "pick", "follow", "back", "clean",
    "end", "bring", "come", "give", "show", "make", "break", "write",
    "speed", "warm", "cool", "calm", "narrow", "track", "wind", "sum",
    "break", "hold", "mix", "line", "build", "fill", "wrap", "open",
    NULL
};


static char  *ngx_llm_cache_sem_stopwords[] = {
    "a", "about", "also", "am", "an", "and", "any", "are", "as", "at", "be",
    "been", "being", "but", "by", "can", "could", "did", "do", "does",
    "doing", "for", "from", "had", "has", "have", "he", "her", "here",
    "him", "his", "how", "i", "if", "in", "into", "is", "it", "its", "just",
    "may", "me", "might", "must", "my", "of", "or", "our", "please",
    "shall", "she", "should", "so", "some", "such", "than", "that", "the",
    "their", "them", "then", "there", "these", "they", "this", "those",
    "to", "too", "us", "very", "was", "we", "were", "what", "when", "where",
    "which", "who", "whom", "whose", "why", "will", "with", "would", "you",
    "your",
    NULL
};


#define ngx_llm_cache_sem_alpha(c)                                            \
    (((c) >= 'a' && (c) <= 'z') || ((c) >= 'A' && (c) <= 'Z'))

#define ngx_llm_cache_sem_digit(c)  ((c) >= '0' && (c) <= '9')

#define ngx_llm_cache_sem_upper(c)  ((c) >= 'A' && (c) <= 'Z')

#define ngx_llm_cache_sem_space(c)                                            \
    ((c) == ' ' || (c) == '\t' || (c) == '\r' || (c) == '\n'                 \
     || (c) == '\f' || (c) == '\v')

/* a byte of a word: ASCII letters, digits, '_', and non-ASCII bytes */
#define ngx_llm_cache_sem_wordc(c)                                            \
    (ngx_llm_cache_sem_alpha(c) || ngx_llm_cache_sem_digit(c)                \
     || (c) == '_' || (c) >= 0x80)


/* embedding replies */

ngx_int_t
ngx_llm_cache_sem_parse_embedding(ngx_pool_t *pool, u_char *p, size_t len,
    ngx_uint_t dims, ngx_llm_cache_sem_vector_t *vec, ngx_str_t *error)
{
    double                      sum, norm;
    u_char                     *msg;
    ngx_uint_t                  i;
    yajl_handle                 h;
    yajl_status                 status;
    ngx_llm_cache_sem_parse_t   ps;

    if (dims > NGX_LLM_CACHE_SEM_MAX_DIMS) {
        ngx_str_set(error, "dimensions out of range");
        return NGX_DECLINED;
    }

    ngx_memzero(&ps, sizeof(ngx_llm_cache_sem_parse_t));
    ps.pool = pool;
    ps.dims = dims;

    h = yajl_alloc(&ngx_llm_cache_sem_json_callbacks, NULL, &ps);
    if (h == NULL) {
        return NGX_ERROR;
    }

    status = yajl_parse(h, p, len);

    if (status == yajl_status_ok) {
        status = yajl_complete_parse(h);
    }

    yajl_free(h);

    if (ps.nomem) {
        return NGX_ERROR;
    }

    if (status != yajl_status_ok) {
        if (ps.invalid == NULL) {
            ps.invalid = "malformed JSON";
        }

        goto declined;
    }

    if (!ps.seen_data || ps.ndata == 0) {
        ps.invalid = "no data";
        goto declined;
    }

    if (!ps.seen_embedding) {
        ps.invalid = "no embedding in data[0]";
        goto declined;
    }

    if (ps.n == 0) {
        ps.invalid = "an empty embedding";
        goto declined;
    }

    if (dims && ps.n != dims) {
        msg = ngx_pnalloc(pool, sizeof("embedding of  values, not ") - 1
                                + 2 * NGX_INT_T_LEN);
        if (msg == NULL) {
            return NGX_ERROR;
        }

        error->data = msg;
        error->len = ngx_sprintf(msg, "embedding of %ui values, not %ui",
                                 ps.n, dims)
                     - msg;
        return NGX_DECLINED;
    }

    sum = 0;

    for (i = 0; i < ps.n; i++) {
        sum += (double) ps.v[i] * ps.v[i];
    }

    if (sum == 0) {
        ps.invalid = "an all-zero embedding";
        goto declined;
    }

    norm = sqrt(sum);

    for (i = 0; i < ps.n; i++) {
        ps.v[i] = (float) (ps.v[i] / norm);
    }

    vec->dims = ps.n;
    vec->v = ps.v;

    return NGX_OK;

declined:

    error->data = (u_char *) ps.invalid;
    error->len = ngx_strlen(ps.invalid);

    return NGX_DECLINED;
}


static int
ngx_llm_cache_sem_json_null(void *ctx)
{
    return ngx_llm_cache_sem_json_value(ctx, NGX_LLM_CACHE_SEM_T_NULL,
                                        NULL, 0);
}


static int
ngx_llm_cache_sem_json_boolean(void *ctx, int value)
{
    return ngx_llm_cache_sem_json_value(ctx, NGX_LLM_CACHE_SEM_T_BOOLEAN,
                                        NULL, 0);
}


static int
ngx_llm_cache_sem_json_number(void *ctx, const char *s, size_t len)
{
    return ngx_llm_cache_sem_json_value(ctx, NGX_LLM_CACHE_SEM_T_NUMBER,
                                        (const u_char *) s, len);
}


static int
ngx_llm_cache_sem_json_string(void *ctx, const unsigned char *s,
    size_t len)
{
    return ngx_llm_cache_sem_json_value(ctx, NGX_LLM_CACHE_SEM_T_STRING,
                                        s, len);
}


static int
ngx_llm_cache_sem_json_start_map(void *ctx)
{
    return ngx_llm_cache_sem_json_value(ctx, NGX_LLM_CACHE_SEM_T_MAP,
                                        NULL, 0);
}


static int
ngx_llm_cache_sem_json_start_array(void *ctx)
{
    return ngx_llm_cache_sem_json_value(ctx, NGX_LLM_CACHE_SEM_T_ARRAY,
                                        NULL, 0);
}


static int
ngx_llm_cache_sem_json_map_key(void *ctx, const unsigned char *s,
    size_t len)
{
    ngx_llm_cache_sem_parse_t  *ps = ctx;

    if (ps->depth == 1) {
        ps->key1 = NGX_LLM_CACHE_SEM_KEY_OTHER;

        if (len == 4 && ngx_strncmp(s, "data", 4) == 0) {
            ps->key1 = NGX_LLM_CACHE_SEM_KEY_DATA;

        } else if (len == 5 && ngx_strncmp(s, "error", 5) == 0) {
            ps->key1 = NGX_LLM_CACHE_SEM_KEY_ERROR;
        }

    } else if (ps->depth == 3 && ps->in_first) {
        ps->key3 = NGX_LLM_CACHE_SEM_KEY_OTHER;

        if (len == 9 && ngx_strncmp(s, "embedding", 9) == 0) {
            ps->key3 = NGX_LLM_CACHE_SEM_KEY_EMBEDDING;
        }
    }

    return 1;
}


/*
 * The containers that matter are the reply (depth 1), its "data" array
 * (2), data[0] (3) and its "embedding" array (4); a flag says that the
 * container at that depth is the one, and is cleared when it ends
 */

static int
ngx_llm_cache_sem_json_end(void *ctx)
{
    ngx_llm_cache_sem_parse_t  *ps = ctx;

    ps->depth--;

    switch (ps->depth) {

    case 1:
        ps->in_data = 0;
        break;

    case 2:
        ps->in_first = 0;
        break;

    case 3:
        ps->in_embedding = 0;
        break;
    }

    return 1;
}


static int
ngx_llm_cache_sem_json_value(ngx_llm_cache_sem_parse_t *ps, ngx_uint_t type,
    const u_char *s, size_t len)
{
    switch (ps->depth) {

    case 0:
        if (type != NGX_LLM_CACHE_SEM_T_MAP) {
            ps->invalid = "not a JSON object";
            return 0;
        }

        break;

    case 1:
        if (ps->key1 == NGX_LLM_CACHE_SEM_KEY_DATA) {

            if (ps->seen_data) {
                ps->invalid = "two \"data\" members";
                return 0;
            }

            if (type != NGX_LLM_CACHE_SEM_T_ARRAY) {
                ps->invalid = "\"data\" is not an array";
                return 0;
            }

            ps->seen_data = 1;
            ps->in_data = 1;

        } else if (ps->key1 == NGX_LLM_CACHE_SEM_KEY_ERROR
                   && type != NGX_LLM_CACHE_SEM_T_NULL)
        {
            ps->invalid = "an error reply";
            return 0;
        }

        break;

    case 2:
        if (ps->in_data && ps->ndata++ == 0) {

            if (type != NGX_LLM_CACHE_SEM_T_MAP) {
                ps->invalid = "data[0] is not an object";
                return 0;
            }

            ps->in_first = 1;
        }

        break;

    case 3:
        if (ps->in_first && ps->key3 == NGX_LLM_CACHE_SEM_KEY_EMBEDDING) {

            if (ps->seen_embedding) {
                ps->invalid = "two \"embedding\" members";
                return 0;
            }

            ps->seen_embedding = 1;

            if (type == NGX_LLM_CACHE_SEM_T_STRING) {
                return ngx_llm_cache_sem_json_base64(ps, s, len);
            }

            if (type != NGX_LLM_CACHE_SEM_T_ARRAY) {
                ps->invalid = "\"embedding\" is not an array or a string";
                return 0;
            }

            ps->in_embedding = 1;
        }

        break;

    case 4:
        if (ps->in_embedding) {

            if (type != NGX_LLM_CACHE_SEM_T_NUMBER) {
                ps->invalid = "a non-numeric embedding value";
                return 0;
            }

            return ngx_llm_cache_sem_json_append(ps, s, len);
        }

        break;
    }

    if (type == NGX_LLM_CACHE_SEM_T_MAP || type == NGX_LLM_CACHE_SEM_T_ARRAY) {

        if (++ps->depth > NGX_LLM_CACHE_SEM_JSON_DEPTH) {
            ps->invalid = "JSON nested too deeply";
            return 0;
        }
    }

    return 1;
}


static int
ngx_llm_cache_sem_json_append(ngx_llm_cache_sem_parse_t *ps,
    const u_char *s, size_t len)
{
    char         buf[NGX_LLM_CACHE_SEM_NUMBER_LEN], *end;
    float       *v;
    double       d;
    ngx_uint_t   size;

    if (len >= NGX_LLM_CACHE_SEM_NUMBER_LEN) {
        ps->invalid = "an embedding value too long";
        return 0;
    }

    ngx_memcpy(buf, s, len);
    buf[len] = '\0';

    d = strtod(buf, &end);

    if (end != buf + len || !isfinite(d) || fabs(d) > FLT_MAX) {
        ps->invalid = "a non-finite embedding value";
        return 0;
    }

    if (ps->n == ps->size) {

        if (ps->dims && ps->size == ps->dims) {
            ps->invalid = "an embedding of more values than expected";
            return 0;
        }

        if (ps->size == NGX_LLM_CACHE_SEM_MAX_DIMS) {
            ps->invalid = "an embedding of too many values";
            return 0;
        }

        if (ps->dims) {
            size = ps->dims;

        } else {
            size = ps->size ? ngx_min(2 * ps->size,
                                      NGX_LLM_CACHE_SEM_MAX_DIMS)
                            : 256;
        }

        v = ngx_palloc(ps->pool, size * sizeof(float));
        if (v == NULL) {
            ps->nomem = 1;
            return 0;
        }

        if (ps->n) {
            ngx_memcpy(v, ps->v, ps->n * sizeof(float));
        }

        ps->v = v;
        ps->size = size;
    }

    ps->v[ps->n++] = (float) d;

    return 1;
}


/* "encoding_format": "base64": little-endian float32s */

static int
ngx_llm_cache_sem_json_base64(ngx_llm_cache_sem_parse_t *ps,
    const u_char *s, size_t len)
{
    float       *v;
    ngx_str_t    src, dst;
    ngx_uint_t   i, n;

    if (len > ngx_base64_encoded_length(NGX_LLM_CACHE_SEM_MAX_DIMS * 4)) {
        ps->invalid = "an embedding of too many values";
        return 0;
    }

    dst.data = ngx_pnalloc(ps->pool, ngx_base64_decoded_length(len) + 1);
    if (dst.data == NULL) {
        ps->nomem = 1;
        return 0;
    }

    src.data = (u_char *) s;
    src.len = len;

    if (ngx_decode_base64(&dst, &src) != NGX_OK || dst.len % 4) {
        ps->invalid = "an embedding string that is not base64 float32s";
        return 0;
    }

    n = dst.len / 4;

    if (n > NGX_LLM_CACHE_SEM_MAX_DIMS) {
        ps->invalid = "an embedding of too many values";
        return 0;
    }

    if (n == 0) {
        return 1;
    }

    v = ngx_palloc(ps->pool, n * sizeof(float));
    if (v == NULL) {
        ps->nomem = 1;
        return 0;
    }

    for (i = 0; i < n; i++) {
        v[i] = ngx_llm_cache_sem_float_le(dst.data + 4 * i);

        if (!isfinite(v[i])) {
            ps->invalid = "a non-finite embedding value";
            return 0;
        }
    }

    ps->v = v;
    ps->n = n;
    ps->size = n;

    return 1;
}


/* signatures */

ngx_int_t
ngx_llm_cache_sem_signature(ngx_llm_cache_sem_vector_t *vec, u_char *sig)
{
    return ngx_llm_cache_sem_signature_weights(vec, sig, NULL);
}


ngx_int_t
ngx_llm_cache_sem_signature_weights(ngx_llm_cache_sem_vector_t *vec,
    u_char *sig, float *weights)
{
    float        x[8], t[256];
    double       dot[NGX_LLM_CACHE_SEM_SIG_BITS];
    u_char      *row;
    ngx_uint_t   g, groups, i, j, k, m, step;

    if (vec->dims == 0 || vec->dims > NGX_LLM_CACHE_SEM_MAX_DIMS) {
        return NGX_ERROR;
    }

    row = ngx_llm_cache_sem_planes(vec->dims);
    if (row == NULL) {
        return NGX_ERROR;
    }

    ngx_memzero(dot, sizeof(dot));

    groups = (vec->dims + 7) / 8;

    /*
     * 8 dimensions at a time: t[m] is the dot product of those 8 values
     * with the +1/-1 coefficients whose sign bits are m (bit k set: -1),
     * so that each plane adds one looked-up value per 8 dimensions
     */

    for (g = 0; g < groups; g++) {

        t[0] = 0;

        for (k = 0; k < 8; k++) {
            j = 8 * g + k;
            x[k] = (j < vec->dims) ? vec->v[j] : 0;
            t[0] += x[k];
        }

        for (k = 0; k < 8; k++) {
            step = (ngx_uint_t) 1 << k;

            for (m = 0; m < step; m++) {
                t[step + m] = t[m] - 2 * x[k];
            }
        }

        for (i = 0; i < NGX_LLM_CACHE_SEM_SIG_BITS; i++) {
            dot[i] += t[row[i]];
        }

        row += NGX_LLM_CACHE_SEM_SIG_BITS;
    }

    ngx_memzero(sig, NGX_LLM_CACHE_SEM_SIG_BYTES);

    for (i = 0; i < NGX_LLM_CACHE_SEM_SIG_BITS; i++) {
        if (dot[i] >= 0) {
            sig[i / 8] |= (u_char) (1 << (i % 8));
        }

        if (weights) {
            weights[i] = (float) fabs(dot[i]);
        }
    }

    return NGX_OK;
}


/*
 * The planes of one dimension: byte [g][i] holds the sign bits of plane i
 * for dimensions 8g .. 8g+7, the bytes of splitmix64 outputs (low byte
 * first) from a seed made of the dimension.  Changing this changes every
 * signature: bump NGX_LLM_CACHE_SEM_VERSION with it.
 */

static u_char *
ngx_llm_cache_sem_planes(ngx_uint_t dims)
{
    size_t                       size, i, k;
    u_char                      *bits;
    uint64_t                     state, r;
    ngx_uint_t                   n;
    ngx_pool_cleanup_t          *cln;
    ngx_llm_cache_sem_planes_t  *set;

    /*
     * Freed with the cycle (a worker's, at its exit): the module may be
     * unloaded then, and valgrind would see the planes lost.  A new cycle
     * (a reload in a single process) starts afresh; the old cycle's
     * cleanup then finds the planes no longer its own.
     */

    if (ngx_llm_cache_sem_plane_cycle != (void *) ngx_cycle) {
        ngx_llm_cache_sem_planes_free(ngx_llm_cache_sem_plane_cycle);

        cln = ngx_pool_cleanup_add(ngx_cycle->pool, 0);
        if (cln == NULL) {
            return NULL;
        }

        cln->handler = ngx_llm_cache_sem_planes_free;
        cln->data = (void *) ngx_cycle;

        ngx_llm_cache_sem_plane_cycle = (void *) ngx_cycle;
    }

    for (n = 0; n < NGX_LLM_CACHE_SEM_PLANE_SETS; n++) {
        if (ngx_llm_cache_sem_plane_sets[n].dims == dims) {
            return ngx_llm_cache_sem_plane_sets[n].bits;
        }
    }

    size = (dims + 7) / 8 * NGX_LLM_CACHE_SEM_SIG_BITS;

    bits = ngx_alloc(size, ngx_cycle->log);
    if (bits == NULL) {
        return NULL;
    }

    /* "llm sem1" */
    state = 0x6c6c6d2073656d31ULL ^ ((uint64_t) dims * 0x9e3779b97f4a7c15ULL);

    for (i = 0; i < size; i += 8) {
        r = ngx_llm_cache_sem_splitmix64(&state);

        for (k = 0; k < 8; k++) {
            bits[i + k] = (u_char) (r >> (8 * k));
        }
    }

    /* a handful of dimensions at most: one replaces the oldest after that */

    set = &ngx_llm_cache_sem_plane_sets[ngx_llm_cache_sem_plane_next];
    ngx_llm_cache_sem_plane_next = (ngx_llm_cache_sem_plane_next + 1)
                                   % NGX_LLM_CACHE_SEM_PLANE_SETS;

    if (set->bits) {
        ngx_free(set->bits);
    }

    set->dims = dims;
    set->bits = bits;

    return bits;
}


static void
ngx_llm_cache_sem_planes_free(void *data)
{
    ngx_uint_t  n;

    if (data == NULL || data != ngx_llm_cache_sem_plane_cycle) {
        return;
    }

    for (n = 0; n < NGX_LLM_CACHE_SEM_PLANE_SETS; n++) {
        if (ngx_llm_cache_sem_plane_sets[n].bits) {
            ngx_free(ngx_llm_cache_sem_plane_sets[n].bits);
        }

        ngx_llm_cache_sem_plane_sets[n].dims = 0;
        ngx_llm_cache_sem_plane_sets[n].bits = NULL;
    }

    ngx_llm_cache_sem_plane_next = 0;
    ngx_llm_cache_sem_plane_cycle = NULL;
}


static uint64_t
ngx_llm_cache_sem_splitmix64(uint64_t *state)
{
    uint64_t  z;

    z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;

    return z ^ (z >> 31);
}


ngx_uint_t
ngx_llm_cache_sem_hamming(u_char *a, u_char *b)
{
    uint64_t    x, y;
    ngx_uint_t  i, n;

    n = 0;

    for (i = 0; i < NGX_LLM_CACHE_SEM_SIG_BYTES; i += 8) {
        ngx_memcpy(&x, a + i, 8);
        ngx_memcpy(&y, b + i, 8);
        n += ngx_llm_cache_sem_popcount(x ^ y);
    }

    return n;
}


/* signature bit 64 w + b is bit b of word w */

static uint64_t
ngx_llm_cache_sem_le64(u_char *p)
{
    ngx_uint_t  i;
    uint64_t    x;

    x = 0;

    for (i = 8; i > 0; i--) {
        x = (x << 8) | p[i - 1];
    }

    return x;
}


static ngx_uint_t
ngx_llm_cache_sem_popcount(uint64_t x)
{
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0f0f0f0f0f0f0f0fULL;

    return (ngx_uint_t) ((x * 0x0101010101010101ULL) >> 56);
}


/*
 * For two vectors at angle acos(t) each bit differs with probability
 * p = acos(t) / pi (Charikar), so the mismatches are Binomial(256, p):
 * the smallest h with P(X <= h) >= 0.999
 */

ngx_uint_t
ngx_llm_cache_sem_max_hamming(double threshold)
{
    double      p, pmf, cdf;
    ngx_uint_t  h, n;

    n = NGX_LLM_CACHE_SEM_SIG_BITS;

    if (!(threshold > 0)) {
        return n;
    }

    if (threshold >= 1) {
        return 0;
    }

    p = acos(threshold) / M_PI;

    pmf = pow(1 - p, (double) n);
    cdf = pmf;

    for (h = 0; h < n; h++) {
        if (cdf >= 0.999) {
            return h;
        }

        pmf *= (double) (n - h) / (double) (h + 1) * p / (1 - p);
        cdf += pmf;
    }

    return n;
}


double
ngx_llm_cache_sem_cosine(float *a, float *b, ngx_uint_t dims)
{
    double      dot, na, nb;
    ngx_uint_t  i;

    dot = 0;
    na = 0;
    nb = 0;

    for (i = 0; i < dims; i++) {
        dot += (double) a[i] * b[i];
        na += (double) a[i] * a[i];
        nb += (double) b[i] * b[i];
    }

    if (na == 0 || nb == 0) {
        return 0;
    }

    return dot / sqrt(na * nb);
}


/* members and candidates */

void
ngx_llm_cache_sem_member_encode(ngx_llm_cache_sem_member_t *m, u_char *out)
{
    out = ngx_cpymem(out, m->id, NGX_LLM_CACHE_SEM_ID_BYTES);
    out = ngx_cpymem(out, m->sig, NGX_LLM_CACHE_SEM_SIG_BYTES);
    ngx_memcpy(out, m->guard, NGX_LLM_CACHE_SEM_GUARD_BYTES);
}


ngx_int_t
ngx_llm_cache_sem_member_decode(u_char *p, size_t len,
    ngx_llm_cache_sem_member_t *m)
{
    if (len != NGX_LLM_CACHE_SEM_MEMBER_LEN) {
        return NGX_DECLINED;
    }

    ngx_memcpy(m->id, p, NGX_LLM_CACHE_SEM_ID_BYTES);
    p += NGX_LLM_CACHE_SEM_ID_BYTES;
    ngx_memcpy(m->sig, p, NGX_LLM_CACHE_SEM_SIG_BYTES);
    p += NGX_LLM_CACHE_SEM_SIG_BYTES;
    ngx_memcpy(m->guard, p, NGX_LLM_CACHE_SEM_GUARD_BYTES);

    return NGX_OK;
}


ngx_uint_t
ngx_llm_cache_sem_candidates(u_char *sig, ngx_str_t *members, ngx_uint_t n,
    ngx_uint_t max_hamming, ngx_uint_t *out, ngx_uint_t max_out)
{
    return ngx_llm_cache_sem_candidates_weighted(sig, NULL, members, n,
                                                 max_hamming, out, max_out);
}


/*
 * With the query's weights, the members within max_hamming are ranked by
 * the sum of the weights of the bits that differ: a bit of a plane the
 * query is close to differs easily and says little (an asymmetric
 * distance); without, by Hamming distance
 */

ngx_uint_t
ngx_llm_cache_sem_candidates_weighted(u_char *sig, float *weights,
    ngx_str_t *members, ngx_uint_t n, ngx_uint_t max_hamming,
    ngx_uint_t *out, ngx_uint_t max_out)
{
    u_char      *p;
    double       d, dist[NGX_LLM_CACHE_SEM_MAX_CANDIDATES];
    uint64_t     x;
    ngx_uint_t   i, j, h, k, w, b;

    if (max_out > NGX_LLM_CACHE_SEM_MAX_CANDIDATES) {
        max_out = NGX_LLM_CACHE_SEM_MAX_CANDIDATES;
    }

    k = 0;

    for (i = 0; i < n; i++) {

        if (members[i].len != NGX_LLM_CACHE_SEM_MEMBER_LEN) {
            continue;
        }

        p = members[i].data + NGX_LLM_CACHE_SEM_ID_BYTES;

        h = ngx_llm_cache_sem_hamming(sig, p);

        if (h > max_hamming) {
            continue;
        }

        if (weights == NULL) {
            d = (double) h;

        } else {
            d = 0;

            for (w = 0; w < NGX_LLM_CACHE_SEM_SIG_BYTES / 8; w++) {
                x = ngx_llm_cache_sem_le64(sig + 8 * w)
                    ^ ngx_llm_cache_sem_le64(p + 8 * w);

                for (b = 64 * w; x; b++, x >>= 1) {
                    if (x & 1) {
                        d += weights[b];
                    }
                }
            }
        }

        if (k == max_out && (k == 0 || d >= dist[k - 1])) {
            continue;
        }

        /* insertion into the sorted few; ties keep the earlier member */

        j = (k < max_out) ? k++ : k - 1;

        while (j > 0 && dist[j - 1] > d) {
            dist[j] = dist[j - 1];
            out[j] = out[j - 1];
            j--;
        }

        dist[j] = d;
        out[j] = i;
    }

    return k;
}


/* vector entries: "LLMS1 <dims> <key length>\n" <key> <float32 LE ...> */

ngx_int_t
ngx_llm_cache_sem_entry_encode(ngx_pool_t *pool,
    ngx_llm_cache_sem_vector_t *vec, ngx_str_t *key, ngx_str_t *out)
{
    u_char      *p;
    size_t       len;
    ngx_uint_t   i;

    if (vec->dims == 0 || vec->dims > NGX_LLM_CACHE_SEM_MAX_DIMS
        || key->len == 0)
    {
        return NGX_ERROR;
    }

    len = sizeof("LLMS1  \n") - 1 + NGX_INT_T_LEN + NGX_SIZE_T_LEN
          + key->len + 4 * vec->dims;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    out->data = p;

    p = ngx_sprintf(p, "LLMS1 %ui %uz\n", vec->dims, key->len);
    p = ngx_cpymem(p, key->data, key->len);

    for (i = 0; i < vec->dims; i++) {
        ngx_llm_cache_sem_float_to_le(vec->v[i], p);
        p += 4;
    }

    out->len = p - out->data;

    return NGX_OK;
}


/*
 * Strict: the version, numbers without leading zeros, single spaces,
 * exactly dims values and nothing after them, every value finite
 */

ngx_int_t
ngx_llm_cache_sem_entry_decode(ngx_pool_t *pool, u_char *p, size_t len,
    ngx_uint_t dims, ngx_str_t *key, ngx_llm_cache_sem_vector_t *vec)
{
    float       *v;
    u_char      *last;
    size_t       n, klen, digits;
    ngx_uint_t   i;

    last = p + len;

    if (len < sizeof("LLMS1 ") - 1
        || ngx_strncmp(p, "LLMS1 ", sizeof("LLMS1 ") - 1) != 0)
    {
        return NGX_DECLINED;
    }

    p += sizeof("LLMS1 ") - 1;

    /* the dimension: 1 .. NGX_LLM_CACHE_SEM_MAX_DIMS */

    n = 0;

    for (digits = 0; p < last && ngx_llm_cache_sem_digit(*p); digits++) {
        if (digits == 0 && *p == '0') {
            return NGX_DECLINED;
        }

        n = n * 10 + (*p++ - '0');

        if (n > NGX_LLM_CACHE_SEM_MAX_DIMS) {
            return NGX_DECLINED;
        }
    }

    if (digits == 0 || p == last || *p++ != ' ') {
        return NGX_DECLINED;
    }

    if (dims && n != dims) {
        return NGX_DECLINED;
    }

    /* the key length: 1 .. the bytes left */

    klen = 0;

    for (digits = 0; p < last && ngx_llm_cache_sem_digit(*p); digits++) {
        if (digits == 0 && *p == '0') {
            return NGX_DECLINED;
        }

        klen = klen * 10 + (*p++ - '0');

        if (klen > len) {
            return NGX_DECLINED;
        }
    }

    if (digits == 0 || p == last || *p++ != '\n') {
        return NGX_DECLINED;
    }

    if ((size_t) (last - p) < klen
        || (size_t) (last - p) - klen != 4 * n)
    {
        return NGX_DECLINED;
    }

    key->data = p;
    key->len = klen;
    p += klen;

    v = ngx_palloc(pool, n * sizeof(float));
    if (v == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        v[i] = ngx_llm_cache_sem_float_le(p);
        p += 4;

        if (!isfinite(v[i])) {
            return NGX_DECLINED;
        }
    }

    vec->dims = n;
    vec->v = v;

    return NGX_OK;
}


static float
ngx_llm_cache_sem_float_le(u_char *p)
{
    float     f;
    uint32_t  u;

    u = (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16)
        | ((uint32_t) p[3] << 24);

    ngx_memcpy(&f, &u, 4);

    return f;
}


static void
ngx_llm_cache_sem_float_to_le(float f, u_char *p)
{
    uint32_t  u;

    ngx_memcpy(&u, &f, 4);

    p[0] = (u_char) u;
    p[1] = (u_char) (u >> 8);
    p[2] = (u_char) (u >> 16);
    p[3] = (u_char) (u >> 24);
}


/*
 * Guards.  English only, and a heuristic: they catch the usual false
 * hits of a semantic cache (another number, a negation, the opposite
 * word, another name) by comparing what the two texts say literally.
 * They only fail safe: a difference is a miss, never a hit, so a word
 * they miss costs nothing that the threshold did not already risk, and
 * a word they count wrongly costs a miss.
 *
 * A text is made into tokens of four kinds, each kind sorted (ASCII
 * case-folded) and hashed into 4 bytes:
 *
 *   numbers   every digit run, wherever it is (a decimal point and
 *             thousands commas kept, "-" before it when it is a sign),
 *             and number words: "three" is 3, "twenty one" 21, "five
 *             hundred thousand" 500000, "half" 0.5, "third" 3;
 *   negation  "not" for not, no, never, without, n't ...; polarity words
 *             reduced to a canonical form: enabled and enable are "on",
 *             disable "off", closed "close" ...;
 *   entities  capitalized words not at the start of a sentence, all-caps
 *             words, identifiers (with _ . / : @ or letters and digits),
 *             URLs, paths, quoted strings;
 *   strict    every word or identifier but a few stopwords, as a set.
 *
 * A kind with more tokens than fit here hashes the whole text instead:
 * only the same text matches it.
 */

void
ngx_llm_cache_sem_guard_digest(u_char *text, size_t len, u_char *digest)
{
    uint32_t                   h;
    ngx_uint_t                 kind;
    ngx_llm_cache_sem_guard_t  g;

    ngx_memzero(&g, sizeof(ngx_llm_cache_sem_guard_t));

    g.text = text;
    g.end = text + len;
    g.tokens = ngx_llm_cache_sem_tokens;
    g.buf = ngx_llm_cache_sem_token_buf;
    g.sentence = 1;

    ngx_llm_cache_sem_quotes(&g);
    ngx_llm_cache_sem_digits(&g);
    ngx_llm_cache_sem_words(&g);

    if (g.ntokens > 1) {
        ngx_qsort(g.tokens, g.ntokens, sizeof(ngx_llm_cache_sem_token_t),
                  ngx_llm_cache_sem_token_cmp);
    }

    for (kind = 0; kind < 4; kind++) {
        h = ngx_llm_cache_sem_guard_hash(&g, kind);

        digest[4 * kind] = (u_char) h;
        digest[4 * kind + 1] = (u_char) (h >> 8);
        digest[4 * kind + 2] = (u_char) (h >> 16);
        digest[4 * kind + 3] = (u_char) (h >> 24);
    }
}


ngx_uint_t
ngx_llm_cache_sem_guard_differ(u_char *a, u_char *b, ngx_uint_t guards)
{
    ngx_uint_t  differ;

    if (guards & NGX_LLM_CACHE_SEM_GUARD_OFF) {
        return 0;
    }

    differ = 0;

    if ((guards & NGX_LLM_CACHE_SEM_GUARD_NUMBERS)
        && ngx_memcmp(a, b, 4) != 0)
    {
        differ |= NGX_LLM_CACHE_SEM_GUARD_NUMBERS;
    }

    if ((guards & NGX_LLM_CACHE_SEM_GUARD_NEGATION)
        && ngx_memcmp(a + 4, b + 4, 4) != 0)
    {
        differ |= NGX_LLM_CACHE_SEM_GUARD_NEGATION;
    }

    if ((guards & NGX_LLM_CACHE_SEM_GUARD_ENTITIES)
        && ngx_memcmp(a + 8, b + 8, 4) != 0)
    {
        differ |= NGX_LLM_CACHE_SEM_GUARD_ENTITIES;
    }

    if ((guards & NGX_LLM_CACHE_SEM_GUARD_STRICT)
        && ngx_memcmp(a + 12, b + 12, 4) != 0)
    {
        differ |= NGX_LLM_CACHE_SEM_GUARD_STRICT;
    }

    return differ;
}


static void
ngx_llm_cache_sem_add(ngx_llm_cache_sem_guard_t *g, ngx_uint_t kind,
    u_char *data, size_t len)
{
    ngx_llm_cache_sem_token_t  *t;

    if (g->ntokens == NGX_LLM_CACHE_SEM_MAX_TOKENS || len > 0xffffffff) {
        g->overflow |= (ngx_uint_t) 1 << kind;
        return;
    }

    t = &g->tokens[g->ntokens++];
    t->data = data;
    t->len = (uint32_t) len;
    t->kind = (uint32_t) kind;
}


static void
ngx_llm_cache_sem_add_copy(ngx_llm_cache_sem_guard_t *g, ngx_uint_t kind,
    u_char *data, size_t len)
{
    u_char  *p;

    if (NGX_LLM_CACHE_SEM_TOKEN_BUF - g->used < len) {
        g->overflow |= (ngx_uint_t) 1 << kind;
        return;
    }

    p = g->buf + g->used;
    ngx_memcpy(p, data, len);
    g->used += len;

    ngx_llm_cache_sem_add(g, kind, p, len);
}


/* "...", `...`, “...” anywhere; '...' when the quotes are no apostrophes */

static void
ngx_llm_cache_sem_quotes(ngx_llm_cache_sem_guard_t *g)
{
    u_char  *p, *q, *s, *end;
    size_t   open, close;

    end = g->end;

    for (p = g->text; p < end; p++) {

        open = 0;
        close = 0;

        if (*p == '"' || *p == '`') {
            open = 1;

        } else if (*p == '\'') {
            if ((p == g->text || !ngx_llm_cache_sem_wordc(p[-1]))
                && p + 1 < end && !ngx_llm_cache_sem_space(p[1]))
            {
                open = 1;
            }

        } else if (end - p >= 3 && p[0] == 0xe2 && p[1] == 0x80
                   && p[2] == 0x9c)
        {
            open = 3;
        }

        if (open == 0) {
            continue;
        }

        s = p + open;

        for (q = s; q < end && q - s <= NGX_LLM_CACHE_SEM_QUOTE_LEN; q++) {

            if (open == 3) {
                if (end - q >= 3 && q[0] == 0xe2 && q[1] == 0x80
                    && q[2] == 0x9d)
                {
                    close = 3;
                    break;
                }

                continue;
            }

            if (*q != *p) {
                continue;
            }

            if (*p == '\''
                && ((q + 1 < end && ngx_llm_cache_sem_wordc(q[1]))
                    || ngx_llm_cache_sem_space(q[-1])))
            {
                continue;
            }

            close = 1;
            break;
        }

        if (close == 0) {
            continue;
        }

        if (q > s) {
            ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_ENTITIES, s, q - s);
        }

        p = q + close - 1;
    }
}


/* every digit run, with its decimals, thousands commas dropped */

static void
ngx_llm_cache_sem_digits(ngx_llm_cache_sem_guard_t *g)
{
    u_char  *p, *end, buf[64];
    size_t   n;

    end = g->end;
    p = g->text;

    while (p < end) {

        if (!ngx_llm_cache_sem_digit(*p)) {
            p++;
            continue;
        }

        n = 0;

        /* a sign: "-5", not "2024-01" */
        if (p > g->text && p[-1] == '-'
            && (p - 1 == g->text || !ngx_llm_cache_sem_wordc(p[-2])))
        {
            buf[n++] = '-';
        }

        for ( ;; ) {
            while (p < end && ngx_llm_cache_sem_digit(*p)) {
                if (n < sizeof(buf)) {
                    buf[n] = *p;
                }

                n++;
                p++;
            }

            if (end - p >= 2 && *p == '.' && ngx_llm_cache_sem_digit(p[1])) {
                if (n < sizeof(buf)) {
                    buf[n] = '.';
                }

                n++;
                p++;
                continue;
            }

            if (end - p >= 4 && *p == ','
                && ngx_llm_cache_sem_digit(p[1])
                && ngx_llm_cache_sem_digit(p[2])
                && ngx_llm_cache_sem_digit(p[3])
                && (end - p == 4 || !ngx_llm_cache_sem_digit(p[4])))
            {
                p++;
                continue;
            }

            break;
        }

        if (n > sizeof(buf)) {
            /* too long to copy: only the same text matches */
            g->overflow |= (ngx_uint_t) 1 << NGX_LLM_CACHE_SEM_G_NUMBERS;
            continue;
        }

        ngx_llm_cache_sem_add_copy(g, NGX_LLM_CACHE_SEM_G_NUMBERS, buf, n);
    }
}


static void
ngx_llm_cache_sem_words(ngx_llm_cache_sem_guard_t *g)
{
    u_char      *p, *s, *q, *end, c;
    size_t       n;
    ngx_uint_t   clause_end;

    end = g->end;
    p = g->text;

    while (p < end) {

        c = *p;

        /* a URL */

        if (ngx_llm_cache_sem_alpha(c)
            && (p == g->text || !ngx_llm_cache_sem_wordc(p[-1])))
        {
            n = ngx_llm_cache_sem_url(p, end);

            if (n) {
                ngx_llm_cache_sem_number_flush(g);
                ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_ENTITIES, p, n);
                ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, p, n);
                g->sentence = 0;
                g->prev_len = 0;
                p += n;
                continue;
            }
        }

        /* a path: /etc/nginx/nginx.conf, ~/.ssh */

        if ((c == '/' || (c == '~' && end - p >= 2 && p[1] == '/'))
            && (p == g->text || ngx_llm_cache_sem_space(p[-1])
                || p[-1] == '(')
            && end - p >= 2
            && (ngx_llm_cache_sem_wordc(p[1]) || p[1] == '/'
                || p[1] == '.'))
        {
            for (q = p; q < end; q++) {
                if (ngx_llm_cache_sem_space(*q) || *q == '"' || *q == '\''
                    || *q == '`' || *q == '(' || *q == ')' || *q == ','
                    || *q == ';' || *q == '<' || *q == '>')
                {
                    break;
                }
            }

            while (q > p + 1 && (q[-1] == '.' || q[-1] == ':'
                                 || q[-1] == '!' || q[-1] == '?'))
            {
                q--;
            }

            ngx_llm_cache_sem_number_flush(g);
            ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_ENTITIES, p, q - p);
            ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, p, q - p);
            g->sentence = 0;
            g->prev_len = 0;
            p = q;
            continue;
        }

        /* a word or an identifier */

        if (ngx_llm_cache_sem_wordc(c) && ngx_llm_cache_sem_punct(p, end) == 0)
        {
            s = p;

            while (p < end) {

                if (ngx_llm_cache_sem_wordc(*p)
                    && ngx_llm_cache_sem_punct(p, end) == 0)
                {
                    p++;
                    continue;
                }

                /* an apostrophe inside a word: ’ */
                if (end - p >= 4 && p[0] == 0xe2 && p[1] == 0x80
                    && p[2] == 0x99 && ngx_llm_cache_sem_alpha(p[3]))
                {
                    p += 3;
                    continue;
                }

                if (end - p >= 2
                    && (*p == '.' || *p == '/' || *p == ':' || *p == '-'
                        || *p == '\'' || *p == '@')
                    && ngx_llm_cache_sem_wordc(p[1])
                    && ngx_llm_cache_sem_punct(p + 1, end) == 0)
                {
                    p++;
                    continue;
                }

                break;
            }

            for (q = p; q < end && (*q == ' ' || *q == '\t'); q++) {
                /* void */
            }

            clause_end = (q == end || *q == '.' || *q == ',' || *q == ';'
                          || *q == ':' || *q == '!' || *q == '?'
                          || *q == ')' || *q == '\r' || *q == '\n');

            ngx_llm_cache_sem_raw_token(g, s, p, clause_end);
            continue;
        }

        /* anything else */

        n = ngx_llm_cache_sem_punct(p, end);

        if (c == '.' || c == '!' || c == '?' || c == '\n'
            || (n == 3 && p[2] == 0xa6))
        {
            g->sentence = 1;
        }

        if (c != ' ' && c != '\t' && c != '-') {
            ngx_llm_cache_sem_number_flush(g);
            g->prev_len = 0;
        }

        p += n ? n : 1;
    }

    ngx_llm_cache_sem_number_flush(g);
}


static void
ngx_llm_cache_sem_raw_token(ngx_llm_cache_sem_guard_t *g, u_char *s,
    u_char *e, ngx_uint_t clause_end)
{
    u_char      *p, *w;
    ngx_uint_t   alpha, digit, ident, first;

    alpha = 0;
    digit = 0;
    ident = 0;

    for (p = s; p < e; p++) {
        if (ngx_llm_cache_sem_alpha(*p) || *p >= 0x80) {
            alpha = 1;

        } else if (ngx_llm_cache_sem_digit(*p)) {
            digit = 1;

        } else if (*p == '_' || *p == '.' || *p == '/' || *p == ':'
                   || *p == '@')
        {
            ident = 1;
        }
    }

    if (!alpha) {
        /* a number: the digits pass has it */
        ngx_llm_cache_sem_number_flush(g);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, s, e - s);
        g->sentence = 0;
        g->prev_len = 0;
        return;
    }

    if (digit || ident) {
        ngx_llm_cache_sem_number_flush(g);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, s, e - s);

        /* not "1st", "3rd", "e.g", "i.e" */

        p = s;
        while (p < e && ngx_llm_cache_sem_digit(*p)) {
            p++;
        }

        if (!(p > s && e - p == 2
              && (ngx_llm_cache_sem_eq(p, 2, "st")
                  || ngx_llm_cache_sem_eq(p, 2, "nd")
                  || ngx_llm_cache_sem_eq(p, 2, "rd")
                  || ngx_llm_cache_sem_eq(p, 2, "th")))
            && !ngx_llm_cache_sem_eq(s, e - s, "e.g")
            && !ngx_llm_cache_sem_eq(s, e - s, "i.e"))
        {
            ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_ENTITIES, s, e - s);
        }

        g->sentence = 0;
        g->prev_len = 0;
        return;
    }

    /* words, hyphenated ones one by one: "non-blocking" */

    first = g->sentence;
    w = s;

    for (p = s; p <= e; p++) {
        if (p < e && *p != '-') {
            continue;
        }

        if (p > w) {
            ngx_llm_cache_sem_word(g, w, p - w, first,
                                   p == e ? clause_end : 0);
            first = 0;
        }

        w = p + 1;
    }

    g->sentence = 0;
}


static void
ngx_llm_cache_sem_word(ngx_llm_cache_sem_guard_t *g, u_char *w, size_t len,
    ngx_uint_t first, ngx_uint_t clause_end)
{
    u_char                            lw[NGX_LLM_CACHE_SEM_WORD_LEN];
    size_t                            n, i;
    ngx_uint_t                        upper, stop;
    ngx_llm_cache_sem_polarity_t     *pol;
    ngx_llm_cache_sem_number_word_t  *nw;

    /* n't, n’t */

    if ((len >= 4 && (w[len - 1] | 0x20) == 't' && w[len - 2] == '\''
         && (w[len - 3] | 0x20) == 'n')
        || (len >= 6 && (w[len - 1] | 0x20) == 't' && w[len - 2] == 0x99
            && w[len - 3] == 0x80 && w[len - 4] == 0xe2
            && (w[len - 5] | 0x20) == 'n'))
    {
        ngx_llm_cache_sem_number_flush(g);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_NEGATION,
                              (u_char *) "not", 3);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT,
                              (u_char *) "not", 3);
        ngx_memcpy(g->prev, "not", 3);
        g->prev_len = 3;
        return;
    }

    /* the word without 's 'm 're 've 'd 'll, folded */

    n = len;

    for (i = 1; i < len && i <= 5; i++) {
        if (w[len - i] == '\''
            || (i >= 4 && w[len - i] == 0xe2 && w[len - i + 1] == 0x80
                && w[len - i + 2] == 0x99))
        {
            n = len - i;
            break;
        }
    }

    if (n == 0) {
        return;
    }

    upper = ngx_llm_cache_sem_upper(w[0]);

    if (n >= NGX_LLM_CACHE_SEM_WORD_LEN) {
        /* no word of the tables is that long */
        ngx_llm_cache_sem_number_flush(g);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, w, n);

        if (upper && !first) {
            ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_ENTITIES, w, n);
        }

        g->prev_len = 0;
        return;
    }

    for (i = 0; i < n; i++) {
        lw[i] = ngx_tolower(w[i]);
    }

    /* numbers */

    for (nw = ngx_llm_cache_sem_number_words; nw->word; nw++) {
        if (ngx_llm_cache_sem_eq(lw, n, nw->word)) {
            break;
        }
    }

    if (nw->word) {
        ngx_llm_cache_sem_number_add(g, nw);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, w, n);
        ngx_memcpy(g->prev, lw, n);
        g->prev_len = n;
        return;
    }

    ngx_llm_cache_sem_number_flush(g);

    /* negation and polarity */

    if (ngx_llm_cache_sem_in_list(ngx_llm_cache_sem_negators, lw, n, 0)) {
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_NEGATION,
                              (u_char *) "not", 3);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT,
                              (u_char *) "not", 3);
        ngx_memcpy(g->prev, lw, n);
        g->prev_len = n;
        return;
    }

    pol = ngx_llm_cache_sem_polarity(lw, n);

    if (pol) {
        if (pol->flags == NGX_LLM_CACHE_SEM_POL_ON
            && !clause_end
            && !ngx_llm_cache_sem_in_list(ngx_llm_cache_sem_on_verbs,
                                          g->prev, g->prev_len, 1))
        {
            pol = NULL;

        } else if (pol->flags == NGX_LLM_CACHE_SEM_POL_UPDOWN
                   && ngx_llm_cache_sem_in_list(
                          ngx_llm_cache_sem_updown_verbs,
                          g->prev, g->prev_len, 1))
        {
            pol = NULL;
        }
    }

    if (pol) {
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_NEGATION,
                              (u_char *) pol->canonical,
                              ngx_strlen(pol->canonical));
    }

    /* entities and content words */

    stop = ngx_llm_cache_sem_in_list(ngx_llm_cache_sem_stopwords, lw, n, 0);

    if (!stop) {
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_STRICT, w, n);

        if (upper) {
            for (i = 1; i < n && ngx_llm_cache_sem_upper(w[i]); i++) {
                /* void */
            }

            if (!first || (n >= 2 && i == n)) {
                ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_ENTITIES, w, n);
            }
        }
    }

    ngx_memcpy(g->prev, lw, n);
    g->prev_len = n;
}


static void
ngx_llm_cache_sem_number_add(ngx_llm_cache_sem_guard_t *g,
    ngx_llm_cache_sem_number_word_t *nw)
{
    switch (nw->type) {

    case NGX_LLM_CACHE_SEM_NUM_ALONE:
        ngx_llm_cache_sem_number_flush(g);
        ngx_llm_cache_sem_add(g, NGX_LLM_CACHE_SEM_G_NUMBERS,
                              (u_char *) nw->text, ngx_strlen(nw->text));
        return;

    case NGX_LLM_CACHE_SEM_NUM_UNIT:
        /* "twenty one" is 21, "one two" 1 and 2 */
        if (g->run
            && !(g->last == NGX_LLM_CACHE_SEM_NUM_HUNDRED
                 || g->last == NGX_LLM_CACHE_SEM_NUM_SCALE
                 || (g->last == NGX_LLM_CACHE_SEM_NUM_TEN && nw->value < 10
                     && nw->value > 0)))
        {
            ngx_llm_cache_sem_number_flush(g);
        }

        g->cur += nw->value;
        break;

    case NGX_LLM_CACHE_SEM_NUM_TEN:
        if (g->run
            && g->last != NGX_LLM_CACHE_SEM_NUM_HUNDRED
            && g->last != NGX_LLM_CACHE_SEM_NUM_SCALE)
        {
            ngx_llm_cache_sem_number_flush(g);
        }

        g->cur += nw->value;
        break;

    case NGX_LLM_CACHE_SEM_NUM_HUNDRED:
        if (g->cur >= 100) {
            ngx_llm_cache_sem_number_flush(g);
        }

        g->cur = (g->cur ? g->cur : 1) * 100;
        break;

    default: /* NGX_LLM_CACHE_SEM_NUM_SCALE */
        if (g->run && (g->total >= 1000000000000ULL
                       || (g->cur == 0 && g->total)))
        {
            ngx_llm_cache_sem_number_flush(g);
        }

        g->total += (g->cur ? g->cur : 1) * nw->value;
        g->cur = 0;
        break;
    }

    g->run = 1;
    g->last = nw->type;
}


static void
ngx_llm_cache_sem_number_flush(ngx_llm_cache_sem_guard_t *g)
{
    u_char  buf[NGX_INT64_LEN], *p;

    if (!g->run) {
        return;
    }

    p = ngx_sprintf(buf, "%uL", g->total + g->cur);
    ngx_llm_cache_sem_add_copy(g, NGX_LLM_CACHE_SEM_G_NUMBERS, buf, p - buf);

    g->run = 0;
    g->total = 0;
    g->cur = 0;
    g->last = 0;
}


static ngx_llm_cache_sem_polarity_t *
ngx_llm_cache_sem_polarity(u_char *w, size_t len)
{
    size_t                         lens[8];
    u_char                         stems[8][NGX_LLM_CACHE_SEM_WORD_LEN];
    ngx_uint_t                     i, n;
    ngx_llm_cache_sem_polarity_t  *pol;

    for (pol = ngx_llm_cache_sem_polarities; pol->word; pol++) {
        if (ngx_llm_cache_sem_eq(w, len, pol->word)) {
            return pol;
        }
    }

    n = ngx_llm_cache_sem_stems(w, len, stems, lens);

    for (i = 0; i < n; i++) {
        for (pol = ngx_llm_cache_sem_polarities; pol->word; pol++) {
            if (pol->flags == NGX_LLM_CACHE_SEM_POL_STEM
                && ngx_llm_cache_sem_eq(stems[i], lens[i], pol->word))
            {
                return pol;
            }
        }
    }

    return NULL;
}


static ngx_uint_t
ngx_llm_cache_sem_in_list(char **list, u_char *w, size_t len,
    ngx_uint_t stem)
{
    size_t      lens[8];
    u_char      stems[8][NGX_LLM_CACHE_SEM_WORD_LEN];
    ngx_uint_t  i, n;
    char      **s;

    if (len == 0) {
        return 0;
    }

    for (s = list; *s; s++) {
        if (ngx_llm_cache_sem_eq(w, len, *s)) {
            return 1;
        }
    }

    if (!stem) {
        return 0;
    }

    n = ngx_llm_cache_sem_stems(w, len, stems, lens);

    for (i = 0; i < n; i++) {
        for (s = list; *s; s++) {
            if (ngx_llm_cache_sem_eq(stems[i], lens[i], *s)) {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * The bases an inflected verb may have: "enabled" enable, "stopped"
 * stop, "denied" deny, "closing" close; candidates only, a table decides
 */

static ngx_uint_t
ngx_llm_cache_sem_stems(u_char *w, size_t len,
    u_char stems[][NGX_LLM_CACHE_SEM_WORD_LEN], size_t *lens)
{
    size_t      b;
    ngx_uint_t  n;

    n = 0;

    if (len < 4 || len >= NGX_LLM_CACHE_SEM_WORD_LEN) {
        return 0;
    }

#define ngx_llm_cache_sem_stem(l, suffix)                                     \
    do {                                                                      \
        ngx_memcpy(stems[n], w, l);                                           \
        lens[n] = l;                                                          \
        if (sizeof(suffix) > 1) {                                             \
            ngx_memcpy(stems[n] + l, suffix, sizeof(suffix) - 1);             \
            lens[n] += sizeof(suffix) - 1;                                    \
        }                                                                     \
        n++;                                                                  \
    } while (0)

    if (ngx_llm_cache_sem_eq(w + len - 3, 3, "ies")
        || ngx_llm_cache_sem_eq(w + len - 3, 3, "ied"))
    {
        ngx_llm_cache_sem_stem(len - 3, "y");
        return n;
    }

    if (ngx_llm_cache_sem_eq(w + len - 3, 3, "ing")
        || ngx_llm_cache_sem_eq(w + len - 2, 2, "ed"))
    {
        b = len - (w[len - 1] == 'g' ? 3 : 2);

        if (b < 2) {
            return 0;
        }

        ngx_llm_cache_sem_stem(b, "");
        ngx_llm_cache_sem_stem(b, "e");

        /* stopped, stopping */
        if (b >= 3 && w[b - 1] == w[b - 2]) {
            ngx_llm_cache_sem_stem(b - 1, "");
        }

        return n;
    }

    if (w[len - 1] == 's') {
        ngx_llm_cache_sem_stem(len - 1, "");

        if (w[len - 2] == 'e') {
            ngx_llm_cache_sem_stem(len - 2, "");
        }
    }

#undef ngx_llm_cache_sem_stem

    return n;
}


/*
 * The length of a non-ASCII punctuation mark at p: curly quotes, dashes,
 * an ellipsis, a no-break space, guillemets
 */

static size_t
ngx_llm_cache_sem_punct(u_char *p, u_char *end)
{
    if (end - p >= 3 && p[0] == 0xe2 && p[1] == 0x80
        && ((p[2] >= 0x93 && p[2] <= 0x9d) || p[2] == 0xa6))
    {
        return 3;
    }

    if (end - p >= 2 && p[0] == 0xc2 && (p[1] == 0xa0 || p[1] == 0xab
                                         || p[1] == 0xbb))
    {
        return 2;
    }

    return 0;
}


/* scheme://...: up to a space, a quote or a bracket, no trailing dot */

static size_t
ngx_llm_cache_sem_url(u_char *p, u_char *end)
{
    u_char  *q;

    for (q = p; q < end && (ngx_llm_cache_sem_alpha(*q)
                            || ngx_llm_cache_sem_digit(*q)
                            || *q == '+' || *q == '-' || *q == '.');
         q++)
    {
        if (q - p > 16) {
            return 0;
        }
    }

    if (end - q < 4 || q[0] != ':' || q[1] != '/' || q[2] != '/'
        || ngx_llm_cache_sem_space(q[3]))
    {
        return 0;
    }

    for ( /* void */ ; q < end; q++) {
        if (ngx_llm_cache_sem_space(*q) || *q == '"' || *q == '\''
            || *q == '`' || *q == '<' || *q == '>' || *q == '('
            || *q == ')' || *q == '[' || *q == ']' || *q == '{'
            || *q == '}' || ngx_llm_cache_sem_punct(q, end))
        {
            break;
        }
    }

    while (q > p && (q[-1] == '.' || q[-1] == ',' || q[-1] == ';'
                     || q[-1] == ':' || q[-1] == '!' || q[-1] == '?'))
    {
        q--;
    }

    return q - p;
}


static ngx_uint_t
ngx_llm_cache_sem_eq(u_char *w, size_t len, char *s)
{
    size_t  n;

    n = ngx_strlen(s);

    return n == len && ngx_strncasecmp(w, (u_char *) s, n) == 0;
}


static int ngx_libc_cdecl
ngx_llm_cache_sem_token_cmp(const void *one, const void *two)
{
    u_char                     a, b;
    uint32_t                   i, n;
    ngx_llm_cache_sem_token_t  *x, *y;

    x = (ngx_llm_cache_sem_token_t *) one;
    y = (ngx_llm_cache_sem_token_t *) two;

    if (x->kind != y->kind) {
        return x->kind < y->kind ? -1 : 1;
    }

    n = ngx_min(x->len, y->len);

    for (i = 0; i < n; i++) {
        a = ngx_tolower(x->data[i]);
        b = ngx_tolower(y->data[i]);

        if (a != b) {
            return a < b ? -1 : 1;
        }
    }

    if (x->len != y->len) {
        return x->len < y->len ? -1 : 1;
    }

    return 0;
}


/* FNV-1a over (length, folded bytes) of each token, then a final mix */

static uint32_t
ngx_llm_cache_sem_guard_hash(ngx_llm_cache_sem_guard_t *g, ngx_uint_t kind)
{
    u_char                     *p, *end;
    uint64_t                    h, prime;
    uint32_t                    i, k;
    ngx_uint_t                  t;
    ngx_llm_cache_sem_token_t  *tok, *prev;

    h = 0xcbf29ce484222325ULL ^ kind;
    prime = 0x100000001b3ULL;

    if (g->overflow & ((ngx_uint_t) 1 << kind)) {
        /* too many tokens: the whole text, folded */
        h ^= 0xff;
        h *= prime;

        for (p = g->text, end = g->end; p < end; p++) {
            h ^= ngx_tolower(*p);
            h *= prime;
        }

        goto done;
    }

    prev = NULL;

    for (t = 0; t < g->ntokens; t++) {
        tok = &g->tokens[t];

        if (tok->kind != kind) {
            continue;
        }

        /* strict: a set */
        if (kind == NGX_LLM_CACHE_SEM_G_STRICT && prev
            && ngx_llm_cache_sem_token_cmp(prev, tok) == 0)
        {
            continue;
        }

        prev = tok;

        for (k = 0; k < 4; k++) {
            h ^= (tok->len >> (8 * k)) & 0xff;
            h *= prime;
        }

        for (i = 0; i < tok->len; i++) {
            h ^= ngx_tolower(tok->data[i]);
            h *= prime;
        }
    }

done:

    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;

    return (uint32_t) (h ^ (h >> 32));
}
