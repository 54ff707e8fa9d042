/*
 * Write-ahead-log segment -> flat span rows in ClickHouse's RowBinary, in one pass.
 *
 * flat_rows(segment: bytes) -> bytes
 *
 * One row per span, columns as `FLAT_STRUCTURE` in ingest/_flat_rows.py, which also
 * holds the same conversion in Python (`flat_rows_python`): the reference this file
 * is tested against. Attribute values become text as `any_value_to_str` writes it
 * (the OpenTelemetry Collector's AsString: scalars as text, arrays and maps as compact
 * JSON). Ids become lower-case hex, kind and status their names.
 *
 * Input the walker does not take (truncation, groups, nesting deeper than
 * MAX_DEPTH, a oneof message sent twice) raises ValueError and the caller uses the
 * Python reference, which decides. Segments were validated by a protobuf parse when
 * received, so that is a fallback, not an error path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_wire.h"

#define MAX_DEPTH 32

/*
 * The walk runs without the GIL (a segment takes ~0.1 s, which the event loop must
 * not wait for), so it calls no Python API: a failure is noted here, per thread, and
 * raised once the GIL is back.
 */
static _Thread_local const char *failure;
static const char OUT_OF_MEMORY[] = "out of memory";

/* OTLP field numbers (opentelemetry/proto/trace/v1/trace.proto, common.proto). */
enum {
    RECORD_RESOURCE_SPANS = 1, RECORD_TENANT = 1000, RECORD_RESOLVED = 1001, RECORD_LOGS = 1003,
    RS_RESOURCE = 1, RS_SCOPE_SPANS = 2, RESOURCE_ATTRIBUTES = 1,
    SS_SCOPE = 1, SS_SPANS = 2, SCOPE_NAME = 1, SCOPE_VERSION = 2,
    SPAN_TRACE_ID = 1, SPAN_SPAN_ID = 2, SPAN_TRACE_STATE = 3, SPAN_PARENT_SPAN_ID = 4,
    SPAN_NAME = 5, SPAN_KIND = 6, SPAN_START = 7, SPAN_END = 8, SPAN_ATTRIBUTES = 9,
    SPAN_EVENTS = 11, SPAN_LINKS = 13, SPAN_STATUS = 15, STATUS_MESSAGE = 2, STATUS_CODE = 3,
    EVENT_TIME = 1, EVENT_NAME = 2, EVENT_ATTRIBUTES = 3,
    LINK_TRACE_ID = 1, LINK_SPAN_ID = 2, LINK_TRACE_STATE = 3, LINK_ATTRIBUTES = 4,
    KV_KEY = 1, KV_VALUE = 2, LIST_VALUES = 1,
    ANY_STRING = 1, ANY_BOOL = 2, ANY_INT = 3, ANY_DOUBLE = 4, ANY_ARRAY = 5, ANY_KVLIST = 6,
    ANY_BYTES = 7,
    RESOLVED_SPAN_ID = 1, RESOLVED_AGENT = 2, RESOLVED_RUN = 3, RESOLVED_HASH = 4,
};

static const char *const KIND_NAMES[] = {"Unspecified", "Internal", "Server",
                                         "Client",      "Producer", "Consumer"};
static const char *const STATUS_NAMES[] = {"Unset", "Ok", "Error"};

/* ---- a growable output buffer ---- */

typedef struct {
    uint8_t *data;
    size_t len, cap;
} buffer;

static int reserve(buffer *b, size_t extra) {
    if (b->len + extra <= b->cap) return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra) cap *= 2;
    uint8_t *data = realloc(b->data, cap);
    if (data == NULL) {
        failure = OUT_OF_MEMORY;
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

static int put(buffer *b, const void *data, size_t size) {
    if (reserve(b, size) < 0) return -1;
    memcpy(b->data + b->len, data, size);
    b->len += size;
    return 0;
}

static int put_text(buffer *b, const char *text) { return put(b, text, strlen(text)); }

static int put_varint(buffer *b, uint64_t value) {
    uint8_t bytes[10];
    size_t n = 0;
    while (value >= 0x80) {
        bytes[n++] = (uint8_t)(value | 0x80);
        value >>= 7;
    }
    bytes[n++] = (uint8_t)value;
    return put(b, bytes, n);
}

static int put_u64(buffer *b, uint64_t value) {
    uint8_t bytes[8];
    for (int i = 0; i < 8; i++) bytes[i] = (uint8_t)(value >> (8 * i));
    return put(b, bytes, 8);
}

/* A RowBinary String: length, then bytes. */
static int put_string(buffer *b, const void *data, size_t size) {
    if (put_varint(b, size) < 0) return -1;
    return put(b, data, size);
}

static int put_cursor(buffer *b, cursor c) { return put_string(b, c.p, (size_t)(c.end - c.p)); }

static int put_name(buffer *b, const char *name) { return put_string(b, name, strlen(name)); }

static int put_hex(buffer *b, cursor c) {
    static const char digits[] = "0123456789abcdef";
    size_t size = (size_t)(c.end - c.p);
    if (put_varint(b, 2 * size) < 0 || reserve(b, 2 * size) < 0) return -1;
    for (size_t i = 0; i < size; i++) {
        b->data[b->len++] = (uint8_t)digits[c.p[i] >> 4];
        b->data[b->len++] = (uint8_t)digits[c.p[i] & 15];
    }
    return 0;
}

/* A reusable list of cursors: a span's attributes, events or links, in wire order. */
typedef struct {
    cursor *items;
    size_t len, cap;
} cursor_list;

static int push(cursor_list *list, cursor c) {
    if (list->len == list->cap) {
        size_t cap = list->cap ? 2 * list->cap : 64;
        cursor *items = realloc(list->items, cap * sizeof(cursor));
        if (items == NULL) {
            failure = OUT_OF_MEMORY;
            return -1;
        }
        list->items = items;
        list->cap = cap;
    }
    list->items[list->len++] = c;
    return 0;
}

static int fail(const char *why) {
    failure = why;
    return -1;
}

static int cursor_equals(cursor c, const char *text) {
    size_t size = strlen(text);
    return (size_t)(c.end - c.p) == size && memcmp(c.p, text, size) == 0;
}

/* The number of `number` fields (length-delimited) in a message. */
static int count_fields(cursor message, uint32_t number, uint64_t *count) {
    field f;
    *count = 0;
    while (message.p < message.end) {
        if (read_field(&message, &f) < 0) return fail("malformed message");
        if (f.number == number && f.wire_type == 2) (*count)++;
    }
    return 0;
}

/* ---- AnyValue -> text (any_value_to_str) ---- */

typedef struct {
    uint32_t kind; /* the oneof field set last, 0 for none */
    field value;
} any_value;

static int read_any(cursor c, any_value *out) {
    field f;
    int messages = 0;
    out->kind = 0;
    while (c.p < c.end) {
        if (read_field(&c, &f) < 0) return fail("malformed AnyValue");
        int fits = (f.number == ANY_STRING || f.number == ANY_ARRAY || f.number == ANY_KVLIST ||
                    f.number == ANY_BYTES)
                       ? f.wire_type == 2
                   : (f.number == ANY_BOOL || f.number == ANY_INT) ? f.wire_type == 0
                   : f.number == ANY_DOUBLE                         ? f.wire_type == 1
                                                                    : 0;
        if (!fits) continue; /* unknown to protobuf: skipped */
        if (f.number == ANY_ARRAY || f.number == ANY_KVLIST) messages++;
        out->kind = f.number;
        out->value = f;
    }
    /* A message oneof sent twice merges in protobuf; left to the reference. */
    if (messages > 1) return fail("repeated AnyValue message");
    return 0;
}

static double as_double(uint64_t bits) {
    double number;
    memcpy(&number, &bits, sizeof number);
    return number;
}

/*
 * Python's repr of a double: the shortest digits that read back as the same double,
 * in fixed notation when the decimal point falls within 16 digits of them, else as
 * d.ddde+XX (float_repr_style 'short', mode 'r', with ".0" on whole numbers).
 *
 * The correctly rounded 15-digit form round-trips whenever any form of 15 digits or
 * fewer does (and with trailing zeros dropped it is that form); past 15, the correctly
 * rounded 16- or 17-digit form is the closest one that round-trips. So at most three
 * tries (subnormals, with fewer significant bits, try every length). Tested against Python's repr on random doubles (tests/test_flat_rows.py).
 */
static void python_repr(double number, char *out) {
    char scientific[40], digits[24];
    if (isnan(number)) {
        strcpy(out, "nan");
        return;
    }
    if (isinf(number)) {
        strcpy(out, number > 0 ? "inf" : "-inf");
        return;
    }
    /* Subnormals hold fewer digits: there, shorter forms can exist below 15. */
    for (int precision = fabs(number) < DBL_MIN ? 1 : 15; precision <= 17; precision++) {
        snprintf(scientific, sizeof scientific, "%.*e", precision - 1, number);
        if (strtod(scientific, NULL) == number) break;
    }
    /* scientific: [-]d.ddd…e±XX */
    const char *p = scientific;
    int negative = *p == '-', n = 0;
    if (negative) p++;
    for (; *p != 'e'; p++)
        if (*p != '.') digits[n++] = *p;
    int point = atoi(p + 1) + 1; /* value = 0.DIGITS x 10^point */
    while (n > 1 && digits[n - 1] == '0') n--;
    digits[n] = 0;
    char *o = out;
    if (negative) *o++ = '-';
    if (point > -4 && point <= 16) {
        if (point <= 0) {
            *o++ = '0';
            *o++ = '.';
            for (int i = 0; i < -point; i++) *o++ = '0';
            for (int i = 0; i < n; i++) *o++ = digits[i];
        } else if (point >= n) {
            for (int i = 0; i < n; i++) *o++ = digits[i];
            for (int i = n; i < point; i++) *o++ = '0';
            *o++ = '.';
            *o++ = '0';
        } else {
            for (int i = 0; i < n; i++) {
                if (i == point) *o++ = '.';
                *o++ = digits[i];
            }
        }
        *o = 0;
        return;
    }
    *o++ = digits[0];
    if (n > 1) {
        *o++ = '.';
        for (int i = 1; i < n; i++) *o++ = digits[i];
    }
    sprintf(o, "e%c%02d", point - 1 < 0 ? '-' : '+', abs(point - 1));
}

/* Integral doubles below 1e15 as integers, others as Python's repr (_float_text). */
static int put_double(buffer *b, double number, int json) {
    char small[32];
    if (isfinite(number) && floor(number) == number && fabs(number) < 1e15) {
        snprintf(small, sizeof small, "%lld", (long long)number);
        return put_text(b, small);
    }
    if (json && !isfinite(number)) /* json.dumps' spelling */
        return put_text(b, isnan(number) ? "NaN" : number > 0 ? "Infinity" : "-Infinity");
    char text[40];
    python_repr(number, text);
    return put_text(b, text);
}

static int put_base64(buffer *b, cursor c) {
    static const char table[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t size = (size_t)(c.end - c.p);
    if (reserve(b, (size + 2) / 3 * 4) < 0) return -1;
    uint8_t *out = b->data + b->len;
    size_t i = 0;
    for (; i + 2 < size; i += 3) {
        uint32_t n = (uint32_t)c.p[i] << 16 | (uint32_t)c.p[i + 1] << 8 | c.p[i + 2];
        *out++ = (uint8_t)table[n >> 18];
        *out++ = (uint8_t)table[(n >> 12) & 63];
        *out++ = (uint8_t)table[(n >> 6) & 63];
        *out++ = (uint8_t)table[n & 63];
    }
    if (i < size) {
        uint32_t n = (uint32_t)c.p[i] << 16 | (i + 1 < size ? (uint32_t)c.p[i + 1] << 8 : 0);
        *out++ = (uint8_t)table[n >> 18];
        *out++ = (uint8_t)table[(n >> 12) & 63];
        *out++ = i + 1 < size ? (uint8_t)table[(n >> 6) & 63] : '=';
        *out++ = '=';
    }
    b->len = (size_t)(out - b->data);
    return 0;
}

/* A JSON string as json.dumps(ensure_ascii=False) writes it. */
static int put_json_string(buffer *b, cursor c) {
    if (put(b, "\"", 1) < 0) return -1;
    for (const uint8_t *p = c.p; p < c.end; p++) {
        const char *escape = NULL;
        char code[8];
        switch (*p) {
        case '"': escape = "\\\""; break;
        case '\\': escape = "\\\\"; break;
        case '\n': escape = "\\n"; break;
        case '\r': escape = "\\r"; break;
        case '\t': escape = "\\t"; break;
        case '\b': escape = "\\b"; break;
        case '\f': escape = "\\f"; break;
        default:
            if (*p < 0x20) {
                snprintf(code, sizeof code, "\\u%04x", *p);
                escape = code;
            }
        }
        if (escape ? put_text(b, escape) < 0 : put(b, p, 1) < 0) return -1;
    }
    return put(b, "\"", 1);
}

static int put_json(buffer *b, cursor value, int depth);

static int put_json_array(buffer *b, cursor list, int depth) {
    field f;
    int first = 1;
    if (put(b, "[", 1) < 0) return -1;
    while (list.p < list.end) {
        if (read_field(&list, &f) < 0) return fail("malformed ArrayValue");
        if (f.number != LIST_VALUES || f.wire_type != 2) continue;
        if ((!first && put(b, ",", 1) < 0) || put_json(b, f.sub, depth + 1) < 0) return -1;
        first = 0;
    }
    return put(b, "]", 1);
}

static int read_key_value(cursor kv, cursor *key, cursor *value) {
    static const uint8_t nothing[1] = {0};
    field f;
    key->p = key->end = value->p = value->end = nothing;
    while (kv.p < kv.end) {
        if (read_field(&kv, &f) < 0) return fail("malformed KeyValue");
        if (f.wire_type != 2) continue;
        if (f.number == KV_KEY) *key = f.sub;
        else if (f.number == KV_VALUE) *value = f.sub;
    }
    return 0;
}

static int same_bytes(cursor a, cursor b) {
    return a.end - a.p == b.end - b.p && memcmp(a.p, b.p, (size_t)(a.end - a.p)) == 0;
}

/*
 * A JSON object as Python's dict writes it: a repeated key keeps its first position
 * and takes its last value. Lists are short; the quadratic look-around is cheap.
 */
static int put_json_object(buffer *b, cursor list, int depth) {
    field f, g;
    cursor key, value, other_key, other_value;
    int first = 1;
    if (put(b, "{", 1) < 0) return -1;
    for (cursor c = list; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return fail("malformed KeyValueList");
        if (f.number != LIST_VALUES || f.wire_type != 2) continue;
        if (read_key_value(f.sub, &key, &value) < 0) return -1;
        int seen_before = 0;
        for (cursor d = list; d.p < f.sub.p;) {
            if (read_field(&d, &g) < 0) return -1;
            if (g.number != LIST_VALUES || g.wire_type != 2 || g.sub.p >= f.sub.p) continue;
            if (read_key_value(g.sub, &other_key, &other_value) < 0) return -1;
            if (same_bytes(key, other_key)) seen_before = 1;
        }
        if (seen_before) continue;
        for (cursor d = c; d.p < d.end;) { /* the last value of this key */
            if (read_field(&d, &g) < 0) return -1;
            if (g.number != LIST_VALUES || g.wire_type != 2) continue;
            if (read_key_value(g.sub, &other_key, &other_value) < 0) return -1;
            if (same_bytes(key, other_key)) value = other_value;
        }
        if (!first && put(b, ",", 1) < 0) return -1;
        if (put_json_string(b, key) < 0 || put(b, ":", 1) < 0 || put_json(b, value, depth + 1) < 0)
            return -1;
        first = 0;
    }
    return put(b, "}", 1);
}

/* An AnyValue as JSON (json.dumps of any_value_to_python). */
static int put_json(buffer *b, cursor value, int depth) {
    any_value v;
    char small[32];
    if (depth > MAX_DEPTH) return fail("AnyValue nested too deep");
    if (read_any(value, &v) < 0) return -1;
    switch (v.kind) {
    case ANY_STRING: return put_json_string(b, v.value.sub);
    case ANY_BOOL: return put_text(b, v.value.value ? "true" : "false");
    case ANY_INT:
        snprintf(small, sizeof small, "%lld", (long long)(int64_t)v.value.value);
        return put_text(b, small);
    case ANY_DOUBLE: return put_double(b, as_double(v.value.value), 1);
    case ANY_ARRAY: return put_json_array(b, v.value.sub, depth);
    case ANY_KVLIST: return put_json_object(b, v.value.sub, depth);
    case ANY_BYTES:
        return put(b, "\"", 1) < 0 || put_base64(b, v.value.sub) < 0 ? -1 : put(b, "\"", 1);
    default: return put_text(b, "null");
    }
}

/* An AnyValue's text (any_value_to_str), appended to `b` without a length. */
static int put_value_text(buffer *b, cursor value) {
    any_value v;
    char small[32];
    if (read_any(value, &v) < 0) return -1;
    switch (v.kind) {
    case ANY_STRING: return put(b, v.value.sub.p, (size_t)(v.value.sub.end - v.value.sub.p));
    case ANY_BOOL: return put_text(b, v.value.value ? "true" : "false");
    case ANY_INT:
        snprintf(small, sizeof small, "%lld", (long long)(int64_t)v.value.value);
        return put_text(b, small);
    case ANY_DOUBLE: return put_double(b, as_double(v.value.value), 0);
    case ANY_ARRAY: return put_json_array(b, v.value.sub, 0);
    case ANY_KVLIST: return put_json_object(b, v.value.sub, 0);
    case ANY_BYTES: return put_base64(b, v.value.sub);
    default: return 0;
    }
}

/* An AnyValue's text as a RowBinary String; strings, the common case, go straight. */
static int put_value_string(buffer *b, buffer *scratch, cursor value) {
    any_value v;
    if (read_any(value, &v) < 0) return -1;
    if (v.kind == ANY_STRING) return put_cursor(b, v.value.sub);
    scratch->len = 0;
    if (put_value_text(scratch, value) < 0) return -1;
    return put_string(b, scratch->data, scratch->len);
}

static int put_key_value(buffer *b, buffer *scratch, cursor kv) {
    cursor key, value;
    if (read_key_value(kv, &key, &value) < 0 || put_cursor(b, key) < 0) return -1;
    return put_value_string(b, scratch, value);
}

/* KeyValues already listed, as a RowBinary Map(String, String). */
static int put_listed_map(buffer *b, buffer *scratch, const cursor_list *list) {
    if (put_varint(b, list->len) < 0) return -1;
    for (size_t i = 0; i < list->len; i++)
        if (put_key_value(b, scratch, list->items[i]) < 0) return -1;
    return 0;
}

/* Every `number` KeyValue of `message` as a RowBinary Map(String, String). */
static int put_attribute_map(buffer *b, buffer *scratch, cursor message, uint32_t number) {
    uint64_t count;
    field f;
    if (count_fields(message, number, &count) < 0 || put_varint(b, count) < 0) return -1;
    while (message.p < message.end) {
        if (read_field(&message, &f) < 0) return -1;
        if (f.number == number && f.wire_type == 2 && put_key_value(b, scratch, f.sub) < 0)
            return -1;
    }
    return 0;
}

/* ---- the envelope: tenant and resolved spans ---- */

typedef struct {
    cursor span_id, agent, run, hash;
    size_t order;
} resolved_span;

static int compare_resolved(const void *a, const void *b) {
    const resolved_span *x = a, *y = b;
    size_t nx = (size_t)(x->span_id.end - x->span_id.p), ny = (size_t)(y->span_id.end - y->span_id.p);
    int c = memcmp(x->span_id.p, y->span_id.p, nx < ny ? nx : ny);
    if (c != 0) return c;
    if (nx != ny) return nx < ny ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The last resolved entry for `span_id` (sorted by id, then record order), or NULL. */
static const resolved_span *find_resolved(const resolved_span *all, size_t count, cursor span_id) {
    size_t low = 0, high = count;
    resolved_span probe = {span_id, {0}, {0}, {0}, (size_t)-1};
    while (low < high) { /* the first entry after every (span_id, order) */
        size_t mid = (low + high) / 2;
        if (compare_resolved(&all[mid], &probe) <= 0) low = mid + 1;
        else high = mid;
    }
    if (low == 0 || !same_bytes(all[low - 1].span_id, span_id)) return NULL;
    return &all[low - 1];
}

typedef struct {
    buffer *out, *scratch;
    cursor tenant;
    resolved_span *resolved;
    size_t resolved_count;
    buffer resource; /* the current resource's attribute map, rendered once */
    buffer service;  /* its service.name */
    cursor scope_name, scope_version;
    cursor_list attributes, events, links; /* the current span's */
} record_state;

static int read_envelope(cursor record, record_state *state, int *is_logs) {
    static const uint8_t nothing[1] = {0};
    field f, g;
    size_t count = 0;
    state->tenant.p = state->tenant.end = nothing;
    *is_logs = 0;
    for (cursor c = record; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return fail("malformed record");
        if (f.number == RECORD_RESOLVED && f.wire_type == 2) count++;
        else if (f.number == RECORD_TENANT && f.wire_type == 2) state->tenant = f.sub;
        else if (f.number == RECORD_LOGS) *is_logs = 1;
    }
    state->resolved_count = 0;
    if (*is_logs || count == 0) return 0;
    state->resolved = malloc(count * sizeof(resolved_span));
    if (state->resolved == NULL) {
        failure = OUT_OF_MEMORY;
        return -1;
    }
    for (cursor c = record; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return -1;
        if (f.number != RECORD_RESOLVED || f.wire_type != 2) continue;
        resolved_span *r = &state->resolved[state->resolved_count];
        r->span_id.p = r->span_id.end = r->agent.p = r->agent.end = nothing;
        r->run.p = r->run.end = r->hash.p = r->hash.end = nothing;
        r->order = state->resolved_count++;
        for (cursor d = f.sub; d.p < d.end;) {
            if (read_field(&d, &g) < 0) return fail("malformed resolved span");
            if (g.wire_type != 2) continue;
            if (g.number == RESOLVED_SPAN_ID) r->span_id = g.sub;
            else if (g.number == RESOLVED_AGENT) r->agent = g.sub;
            else if (g.number == RESOLVED_RUN) r->run = g.sub;
            else if (g.number == RESOLVED_HASH) r->hash = g.sub;
        }
    }
    qsort(state->resolved, state->resolved_count, sizeof(resolved_span), compare_resolved);
    return 0;
}

/* ---- spans ---- */

/* `exception.type` (a string value) of the first `exception` event that has one. */
static cursor exception_type(const cursor_list *events) {
    static const uint8_t nothing[1] = {0};
    cursor none = {nothing, nothing}, key, value;
    field g;
    any_value v;
    for (size_t i = 0; i < events->len; i++) {
        cursor name = none;
        for (cursor e = events->items[i]; e.p < e.end;) {
            if (read_field(&e, &g) < 0) return none;
            if (g.number == EVENT_NAME && g.wire_type == 2) name = g.sub;
        }
        if (!cursor_equals(name, "exception")) continue;
        for (cursor e = events->items[i]; e.p < e.end;) {
            if (read_field(&e, &g) < 0) return none;
            if (g.number != EVENT_ATTRIBUTES || g.wire_type != 2) continue;
            if (read_key_value(g.sub, &key, &value) < 0) {
                failure = NULL;
                return none;
            }
            if (!cursor_equals(key, "exception.type")) continue;
            if (read_any(value, &v) < 0) {
                failure = NULL;
                return none;
            }
            return v.kind == ANY_STRING ? v.value.sub : none;
        }
    }
    return none;
}

/* One sub-field of each listed event or link, as a RowBinary Array. */
typedef enum { ITEM_TIME, ITEM_TEXT, ITEM_HEX, ITEM_ATTRIBUTES } item_type;

static int put_nested_column(record_state *state, const cursor_list *list, uint32_t sub,
                             item_type type) {
    static const uint8_t nothing[1] = {0};
    field g;
    buffer *out = state->out;
    if (put_varint(out, list->len) < 0) return -1;
    for (size_t i = 0; i < list->len; i++) {
        if (type == ITEM_ATTRIBUTES) {
            if (put_attribute_map(out, state->scratch, list->items[i], sub) < 0) return -1;
            continue;
        }
        cursor text = {nothing, nothing};
        uint64_t time = 0;
        for (cursor c = list->items[i]; c.p < c.end;) {
            if (read_field(&c, &g) < 0) return fail("malformed event or link");
            if (g.number != sub) continue;
            if (type == ITEM_TIME && g.wire_type == 1) time = g.value;
            else if (type != ITEM_TIME && g.wire_type == 2) text = g.sub;
        }
        int failed = type == ITEM_TIME ? put_u64(out, time)
                     : type == ITEM_HEX ? put_hex(out, text)
                                        : put_cursor(out, text);
        if (failed < 0) return -1;
    }
    return 0;
}

static int put_span(record_state *state, cursor span) {
    static const uint8_t nothing[1] = {0};
    cursor empty = {nothing, nothing};
    cursor trace_id = empty, span_id = empty, parent = empty, trace_state = empty, name = empty;
    cursor status_message = empty;
    uint64_t kind = 0, start = 0, end = 0, status_code = 0;
    buffer *out = state->out;
    field f, g;
    state->attributes.len = state->events.len = state->links.len = 0;
    for (cursor c = span; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return fail("malformed span");
        if (f.wire_type == 2) {
            switch (f.number) {
            case SPAN_ATTRIBUTES:
                if (push(&state->attributes, f.sub) < 0) return -1;
                break;
            case SPAN_EVENTS:
                if (push(&state->events, f.sub) < 0) return -1;
                break;
            case SPAN_LINKS:
                if (push(&state->links, f.sub) < 0) return -1;
                break;
            case SPAN_TRACE_ID: trace_id = f.sub; break;
            case SPAN_SPAN_ID: span_id = f.sub; break;
            case SPAN_TRACE_STATE: trace_state = f.sub; break;
            case SPAN_PARENT_SPAN_ID: parent = f.sub; break;
            case SPAN_NAME: name = f.sub; break;
            case SPAN_STATUS:
                for (cursor s = f.sub; s.p < s.end;) {
                    if (read_field(&s, &g) < 0) return fail("malformed status");
                    if (g.number == STATUS_MESSAGE && g.wire_type == 2) status_message = g.sub;
                    else if (g.number == STATUS_CODE && g.wire_type == 0) status_code = g.value;
                }
                break;
            }
        } else if (f.number == SPAN_KIND && f.wire_type == 0) kind = f.value;
        else if (f.number == SPAN_START && f.wire_type == 1) start = f.value;
        else if (f.number == SPAN_END && f.wire_type == 1) end = f.value;
    }
    const resolved_span *resolved =
        state->resolved_count ? find_resolved(state->resolved, state->resolved_count, span_id)
                              : NULL;
    int64_t kind_number = (int32_t)kind, code_number = (int32_t)status_code;
    if (put_u64(out, start) < 0 || put_hex(out, trace_id) < 0 || put_hex(out, span_id) < 0 ||
        put_hex(out, parent) < 0 || put_cursor(out, trace_state) < 0 || put_cursor(out, name) < 0 ||
        put_name(out, kind_number >= 0 && kind_number <= 5 ? KIND_NAMES[kind_number]
                                                           : KIND_NAMES[0]) < 0 ||
        put_string(out, state->service.data, state->service.len) < 0 ||
        put(out, state->resource.data, state->resource.len) < 0 ||
        put_cursor(out, state->scope_name) < 0 || put_cursor(out, state->scope_version) < 0 ||
        put_listed_map(out, state->scratch, &state->attributes) < 0 ||
        put_u64(out, end > start ? end - start : 0) < 0 ||
        put_name(out, code_number >= 0 && code_number <= 2 ? STATUS_NAMES[code_number]
                                                           : STATUS_NAMES[0]) < 0 ||
        put_cursor(out, status_message) < 0 ||
        put_nested_column(state, &state->events, EVENT_TIME, ITEM_TIME) < 0 ||
        put_nested_column(state, &state->events, EVENT_NAME, ITEM_TEXT) < 0 ||
        put_nested_column(state, &state->events, EVENT_ATTRIBUTES, ITEM_ATTRIBUTES) < 0 ||
        put_nested_column(state, &state->links, LINK_TRACE_ID, ITEM_HEX) < 0 ||
        put_nested_column(state, &state->links, LINK_SPAN_ID, ITEM_HEX) < 0 ||
        put_nested_column(state, &state->links, LINK_TRACE_STATE, ITEM_TEXT) < 0 ||
        put_nested_column(state, &state->links, LINK_ATTRIBUTES, ITEM_ATTRIBUTES) < 0 ||
        put_cursor(out, state->tenant) < 0 ||
        put_cursor(out, resolved ? resolved->agent : empty) < 0 ||
        put_cursor(out, resolved ? resolved->run : empty) < 0 ||
        put_cursor(out, resolved ? resolved->hash : empty) < 0 ||
        put_cursor(out, exception_type(&state->events)) < 0)
        return -1;
    return 0;
}

static int put_scope_spans(record_state *state, cursor scope_spans) {
    static const uint8_t nothing[1] = {0};
    field f, g;
    state->scope_name.p = state->scope_name.end = nothing;
    state->scope_version = state->scope_name;
    for (cursor c = scope_spans; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return fail("malformed scope spans");
        if (f.number != SS_SCOPE || f.wire_type != 2) continue;
        for (cursor s = f.sub; s.p < s.end;) {
            if (read_field(&s, &g) < 0) return fail("malformed scope");
            if (g.wire_type != 2) continue;
            if (g.number == SCOPE_NAME) state->scope_name = g.sub;
            else if (g.number == SCOPE_VERSION) state->scope_version = g.sub;
        }
    }
    for (cursor c = scope_spans; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return -1;
        if (f.number == SS_SPANS && f.wire_type == 2 && put_span(state, f.sub) < 0) return -1;
    }
    return 0;
}

/* The resource's attribute map (all `resource` fields, merged) and its service.name. */
static int render_resource(record_state *state, cursor resource_spans) {
    field f, g;
    cursor key, value;
    uint64_t count = 0, one;
    int have_service = 0;
    state->resource.len = state->service.len = 0;
    for (cursor c = resource_spans; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return fail("malformed resource spans");
        if (f.number != RS_RESOURCE || f.wire_type != 2) continue;
        if (count_fields(f.sub, RESOURCE_ATTRIBUTES, &one) < 0) return -1;
        count += one;
    }
    if (put_varint(&state->resource, count) < 0) return -1;
    for (cursor c = resource_spans; c.p < c.end;) {
        if (read_field(&c, &f) < 0) return -1;
        if (f.number != RS_RESOURCE || f.wire_type != 2) continue;
        for (cursor r = f.sub; r.p < r.end;) {
            if (read_field(&r, &g) < 0) return -1;
            if (g.number != RESOURCE_ATTRIBUTES || g.wire_type != 2) continue;
            if (read_key_value(g.sub, &key, &value) < 0 || put_cursor(&state->resource, key) < 0 ||
                put_value_string(&state->resource, state->scratch, value) < 0)
                return -1;
            if (!have_service && cursor_equals(key, "service.name")) {
                have_service = 1;
                if (put_value_text(&state->service, value) < 0) return -1;
            }
        }
    }
    return 0;
}

static int put_record(record_state *state, cursor record) {
    int is_logs;
    field f;
    state->resolved = NULL;
    int failed = read_envelope(record, state, &is_logs);
    for (cursor c = record; !failed && !is_logs && c.p < c.end;) {
        if (read_field(&c, &f) < 0) {
            failed = fail("malformed record");
            break;
        }
        if (f.number != RECORD_RESOURCE_SPANS || f.wire_type != 2) continue;
        if (render_resource(state, f.sub) < 0) {
            failed = -1;
            break;
        }
        for (cursor r = f.sub; r.p < r.end;) {
            field g;
            if (read_field(&r, &g) < 0 ||
                (g.number == RS_SCOPE_SPANS && g.wire_type == 2 && put_scope_spans(state, g.sub) < 0)) {
                failed = failure ? -1 : fail("malformed resource spans");
                break;
            }
        }
    }
    free(state->resolved);
    state->resolved = NULL;
    return failed;
}

static PyObject *flat_rows(PyObject *self, PyObject *args) {
    Py_buffer segment;
    if (!PyArg_ParseTuple(args, "y*", &segment)) return NULL;
    buffer out = {NULL, 0, 0}, scratch = {NULL, 0, 0};
    record_state state;
    memset(&state, 0, sizeof state);
    state.out = &out;
    state.scratch = &scratch;
    cursor c = {segment.buf, (const uint8_t *)segment.buf + segment.len};
    int failed;
    Py_BEGIN_ALLOW_THREADS /* the bytes object is immutable: safe to read without the GIL */
    failure = NULL;
    failed = reserve(&out, (size_t)segment.len + segment.len / 2);
    while (!failed && c.p < c.end) {
        uint64_t length;
        if (read_varint(&c, &length) < 0 || (uint64_t)(c.end - c.p) < length) {
            failed = fail("truncated segment");
            break;
        }
        cursor record = {c.p, c.p + length};
        c.p += length;
        failed = put_record(&state, record);
    }
    Py_END_ALLOW_THREADS
    PyObject *result = NULL;
    if (!failed)
        result = PyBytes_FromStringAndSize((const char *)out.data, (Py_ssize_t)out.len);
    else if (failure == OUT_OF_MEMORY)
        PyErr_NoMemory();
    else
        PyErr_SetString(PyExc_ValueError, failure ? failure : "unreadable segment");
    free(out.data);
    free(scratch.data);
    free(state.resource.data);
    free(state.service.data);
    free(state.attributes.items);
    free(state.events.items);
    free(state.links.items);
    PyBuffer_Release(&segment);
    return result;
}

static PyMethodDef methods[] = {
    {"flat_rows", flat_rows, METH_VARARGS, "A WAL segment's spans as RowBinary rows."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_flatrows", "WAL segments -> flat span rows (RowBinary).", -1, methods,
};

PyMODINIT_FUNC PyInit__flatrows(void) { return PyModule_Create(&module); }
