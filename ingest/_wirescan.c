/*
 * The receive-side context pass over a serialized ExportTraceServiceRequest, in C.
 *
 * scan(body, keys, decode=False) -> [(trace_id, span_id, parent_span_id, [kv, ...]), ...]
 *
 * With decode, the hits are a dict {key: text} when every one decoded (see
 * add_decoded_hit).
 *
 * One entry per span, in wire order. Each kv is the serialized KeyValue of an attribute
 * whose key is one of `keys` (a tuple of bytes); every other attribute is skipped
 * without creating a Python object, which is the point: Python would materialize
 * every attribute. Every read is bounds-checked; input the walker does not understand
 * (groups, truncation, overlong varints) raises ValueError, and the caller falls back
 * to the pure-Python pass. The body has already been validated by a full protobuf
 * parse before it gets here.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "_wire.h"

#define MAX_KEYS 64
#define BUCKETED_LENGTHS 128 /* keys shorter than this are found by their length */

typedef struct {
    const char *data[MAX_KEYS];
    Py_ssize_t size[MAX_KEYS];
    /* The keys' indices grouped by length: those of length L are
     * by_length[length_start[L]] .. by_length[length_start[L + 1] - 1]. An attribute's
     * key is then compared with the few wanted keys of its length, not with all ~45
     * (every attribute of every span goes through this). */
    unsigned char by_length[MAX_KEYS];
    unsigned char length_start[BUCKETED_LENGTHS + 1];
    /* Each key as a str, made once per call: a hit's key is this object rather than a
     * new string decoded (and later hashed) per span. NULL: decode per hit. */
    PyObject *names[MAX_KEYS];
    int count;
    int decode; /* hits as (key, text) tuples where possible */
    struct text_cache *texts; /* NULL: every value decoded anew */
} keyset;

/*
 * Short attribute values repeat from span to span (operations, tools, models, the
 * run id of every step of a run): one str per distinct value within a call, looked up
 * by its bytes, rather than a new object (to allocate, and later to hash) per span.
 * Direct-mapped and bounded: a collision just replaces the slot.
 */
#define TEXT_CACHE_SLOTS 512
#define TEXT_CACHE_MAX_BYTES 64

typedef struct text_cache {
    PyObject *text[TEXT_CACHE_SLOTS];
} text_cache;

/* The str of UTF-8 bytes (strictly decoded: NULL with an exception when invalid). */
static PyObject *cached_text(text_cache *cache, const uint8_t *p, Py_ssize_t size) {
    if (cache == NULL || size > TEXT_CACHE_MAX_BYTES)
        return PyUnicode_DecodeUTF8((const char *)p, size, NULL);
    uint32_t hash = 2166136261u; /* FNV-1a */
    for (Py_ssize_t i = 0; i < size; i++) hash = (hash ^ p[i]) * 16777619u;
    PyObject **slot = &cache->text[hash % TEXT_CACHE_SLOTS];
    if (*slot != NULL) {
        Py_ssize_t cached_size;
        const char *cached = PyUnicode_AsUTF8AndSize(*slot, &cached_size);
        if (cached == NULL) PyErr_Clear(); /* out of memory: decode anew below */
        else if (cached_size == size && memcmp(cached, p, (size_t)size) == 0) {
            Py_INCREF(*slot);
            return *slot;
        }
    }
    PyObject *text = PyUnicode_DecodeUTF8((const char *)p, size, NULL);
    if (text != NULL) {
        Py_INCREF(text);
        Py_XSETREF(*slot, text);
    }
    return text;
}

static void text_cache_clear(text_cache *cache) {
    for (int i = 0; i < TEXT_CACHE_SLOTS; i++) Py_CLEAR(cache->text[i]);
}

/* Group the keys by length (a counting sort of the short ones): see `by_length`. */
static void keyset_group_by_length(keyset *keys) {
    memset(keys->length_start, 0, sizeof keys->length_start);
    for (int i = 0; i < keys->count; i++)
        if (keys->size[i] < BUCKETED_LENGTHS) keys->length_start[keys->size[i] + 1]++;
    for (int length = 0; length < BUCKETED_LENGTHS; length++)
        keys->length_start[length + 1] += keys->length_start[length];
    unsigned char filled[BUCKETED_LENGTHS];
    memcpy(filled, keys->length_start, sizeof filled);
    for (int i = 0; i < keys->count; i++)
        if (keys->size[i] < BUCKETED_LENGTHS)
            keys->by_length[filled[keys->size[i]]++] = (unsigned char)i;
}

/* Fill `keys` from a tuple of bytes (and, when decoding, their str names); on failure
 * set an exception and return -1. Release with keyset_release either way. */
static int keyset_init(keyset *keys, PyObject *key_tuple, int decode) {
    keys->decode = decode;
    keys->count = 0;
    keys->texts = NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(key_tuple);
    if (count > MAX_KEYS) {
        PyErr_SetString(PyExc_ValueError, "too many keys");
        return -1;
    }
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyTuple_GET_ITEM(key_tuple, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            return -1;
        }
        keys->data[i] = PyBytes_AS_STRING(key);
        keys->size[i] = PyBytes_GET_SIZE(key);
        keys->names[i] = NULL;
        keys->count = (int)i + 1;
        if (decode) {
            keys->names[i] = PyUnicode_DecodeUTF8(keys->data[i], keys->size[i], NULL);
            if (keys->names[i] == NULL) PyErr_Clear(); /* not UTF-8: decoded per hit */
        }
    }
    keyset_group_by_length(keys);
    return 0;
}

static void keyset_release(keyset *keys) {
    for (int i = 0; i < keys->count; i++) Py_CLEAR(keys->names[i]);
    if (keys->texts != NULL) text_cache_clear(keys->texts);
}

/* 1 + the index of kv's key in `keys`, 0 when it is not one of them, -1 malformed. */
static int key_matches(cursor kv, const keyset *keys) {
    uint32_t number;
    int wire_type;
    cursor sub;
    while (kv.p < kv.end) {
        if (next_field(&kv, &number, &wire_type, &sub) < 0) return -1;
        if (number == 1 && wire_type == 2) {
            Py_ssize_t size = sub.end - sub.p;
            if (size < BUCKETED_LENGTHS) {
                for (int j = keys->length_start[size]; j < keys->length_start[size + 1]; j++) {
                    int i = keys->by_length[j];
                    if (memcmp(keys->data[i], sub.p, (size_t)size) == 0) return i + 1;
                }
                return 0;
            }
            for (int i = 0; i < keys->count; i++) {
                if (keys->size[i] == size && memcmp(keys->data[i], sub.p, (size_t)size) == 0)
                    return i + 1;
            }
            return 0;
        }
    }
    return 0;
}

static PyObject *bytes_of(cursor c) {
    return PyBytes_FromStringAndSize((const char *)c.p, c.end - c.p);
}

/*
 * With decoding on, a matched attribute whose value is a string, an int or a bool
 * becomes a (key, text) tuple of str — the text as any_value_to_str writes it — and
 * anything else (doubles, arrays, maps, bytes, odd encodings) stays the serialized
 * KeyValue for the Python side. Invalid UTF-8 also stays bytes (Python replaces it).
 */
static PyObject *decoded_or_bytes(cursor kv, PyObject *known_name, text_cache *texts) {
    cursor c = kv, key = {NULL, NULL}, value = {NULL, NULL}, sub;
    uint32_t number;
    int wire_type, have_key = 0, have_value = 0;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) return bytes_of(kv);
        if (wire_type != 2) continue;
        if (number == 1) { key = sub; have_key = 1; }
        else if (number == 2) { value = sub; have_value = 1; }
    }
    if (!have_key || !have_value) return bytes_of(kv);
    /* AnyValue: exactly one field, string (1), bool (2) or int (3). */
    cursor v = value;
    if (next_field(&v, &number, &wire_type, &sub) < 0 || v.p != v.end) return bytes_of(kv);
    PyObject *text = NULL;
    if (number == 1 && wire_type == 2) {
        text = cached_text(texts, sub.p, sub.end - sub.p);
    } else if ((number == 2 || number == 3) && wire_type == 0) {
        cursor again = value;
        uint64_t tag, raw;
        if (read_varint(&again, &tag) < 0 || read_varint(&again, &raw) < 0) return bytes_of(kv);
        if (number == 2) text = PyUnicode_FromString(raw ? "true" : "false");
        else text = PyUnicode_FromFormat("%lld", (long long)(int64_t)raw);
    } else {
        return bytes_of(kv);
    }
    if (text == NULL) {
        PyErr_Clear();
        return bytes_of(kv);
    }
    PyObject *name = known_name;
    if (name != NULL) Py_INCREF(name);
    else name = PyUnicode_DecodeUTF8((const char *)key.p, key.end - key.p, NULL);
    if (name == NULL) {
        PyErr_Clear();
        Py_DECREF(text);
        return bytes_of(kv);
    }
    return Py_BuildValue("(NN)", name, text);
}

/*
 * Add one matched attribute to a span's hits. With decoding, hits start as a dict
 * {key: text}, which is what Python wants, built here instead of by a Python loop
 * over tuples. The first attribute that stays bytes turns them into a list: its
 * (key, text) pairs so far, then every later hit in order, so that dict(list) on the
 * Python side gives what the dict would have (the last value of a key wins).
 */
static int add_decoded_hit(PyObject **hits, cursor kv, PyObject *name, text_cache *texts) {
    PyObject *decoded = decoded_or_bytes(kv, name, texts);
    if (decoded == NULL) return -1;
    int failed;
    if (PyDict_CheckExact(*hits) && PyTuple_CheckExact(decoded)) {
        failed = PyDict_SetItem(*hits, PyTuple_GET_ITEM(decoded, 0), PyTuple_GET_ITEM(decoded, 1));
        Py_DECREF(decoded);
        return failed;
    }
    if (PyDict_CheckExact(*hits)) {
        PyObject *pairs = PyDict_Items(*hits);
        if (pairs == NULL) {
            Py_DECREF(decoded);
            return -1;
        }
        Py_SETREF(*hits, pairs);
    }
    failed = PyList_Append(*hits, decoded);
    Py_DECREF(decoded);
    return failed;
}

static int scan_span(cursor span, const keyset *keys, PyObject *out) {
    static const uint8_t nothing[1] = {0};
    cursor trace = {nothing, nothing}, id = {nothing, nothing}, parent = {nothing, nothing}, sub;
    uint32_t number;
    int wire_type;
    PyObject *hits = keys->decode ? PyDict_New() : PyList_New(0);
    if (hits == NULL) return -1;
    while (span.p < span.end) {
        if (next_field(&span, &number, &wire_type, &sub) < 0) goto malformed;
        if (wire_type != 2) continue;
        if (number == 1) trace = sub;
        else if (number == 2) id = sub;
        else if (number == 4) parent = sub;
        else if (number == 9) {
            int match = key_matches(sub, keys);
            if (match < 0) goto malformed;
            if (match && keys->decode) {
                if (add_decoded_hit(&hits, sub, keys->names[match - 1], keys->texts) < 0) goto error;
            } else if (match) {
                PyObject *kv = bytes_of(sub);
                if (kv == NULL || PyList_Append(hits, kv) < 0) {
                    Py_XDECREF(kv);
                    goto error;
                }
                Py_DECREF(kv);
            }
        }
    }
    PyObject *entry = Py_BuildValue(
        "(y#y#y#N)",
        (const char *)trace.p, trace.end - trace.p,
        (const char *)id.p, id.end - id.p,
        (const char *)parent.p, parent.end - parent.p,
        hits);
    if (entry == NULL) return -1; /* "N" consumed hits even on failure */
    int failed = PyList_Append(out, entry);
    Py_DECREF(entry);
    return failed;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed span");
error:
    Py_DECREF(hits);
    return -1;
}

/* Walk `c` and call `inner` on every length-delimited field numbered `wanted`. */
static int each_field(cursor c, uint32_t wanted, int (*inner)(cursor, const keyset *, PyObject *),
                      const keyset *keys, PyObject *out) {
    uint32_t number;
    int wire_type;
    cursor sub;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) {
            PyErr_SetString(PyExc_ValueError, "malformed message");
            return -1;
        }
        if (number == wanted && wire_type == 2 && inner(sub, keys, out) < 0) return -1;
    }
    return 0;
}

static int scan_scope_spans(cursor c, const keyset *keys, PyObject *out) {
    return each_field(c, 2, scan_span, keys, out);
}

static int scan_resource_spans(cursor c, const keyset *keys, PyObject *out) {
    return each_field(c, 2, scan_scope_spans, keys, out);
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *key_tuple;
    int decode = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*O!|p", &body, &PyTuple_Type, &key_tuple, &decode)) return NULL;
    keyset keys;
    text_cache texts = {{NULL}};
    PyObject *out = NULL;
    if (keyset_init(&keys, key_tuple, decode) < 0 || (out = PyList_New(0)) == NULL) {
        keyset_release(&keys);
        PyBuffer_Release(&body);
        return NULL;
    }
    keys.texts = &texts;
    cursor c = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len};
    int failed = each_field(c, 1, scan_resource_spans, &keys, out);
    keyset_release(&keys);
    PyBuffer_Release(&body);
    if (failed) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

/* ---- scan_record: the detectors' per-span fields of one log record, in one pass ---- */

static PyObject *text_of(cursor c) {
    return PyUnicode_DecodeUTF8((const char *)c.p, c.end - c.p, "replace");
}

static PyObject *hex_of(cursor c) {
    static const char digits[] = "0123456789abcdef";
    char buffer[64];
    Py_ssize_t size = c.end - c.p;
    if (size > 32) {
        PyErr_SetString(PyExc_ValueError, "id too long");
        return NULL;
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        buffer[2 * i] = digits[c.p[i] >> 4];
        buffer[2 * i + 1] = digits[c.p[i] & 15];
    }
    return PyUnicode_FromStringAndSize(buffer, 2 * size);
}

typedef struct {
    const keyset *keys;
    PyObject *service;  /* borrowed per resource */
    PyObject *instance;
    PyObject *out;
    cursor last_trace;  /* the previous span's trace id: a run's steps come together */
    PyObject *last_trace_hex;
} record_state;

/* The string value of a resource attribute named `name`, else NULL (no error). */
static int resource_text(cursor kv, const char *name, PyObject **target) {
    PyObject *decoded = decoded_or_bytes(kv, NULL, NULL);
    if (decoded == NULL) return -1;
    if (PyTuple_Check(decoded)) {
        PyObject *key = PyTuple_GET_ITEM(decoded, 0);
        if (PyUnicode_CompareWithASCIIString(key, name) == 0) {
            PyObject *value = PyTuple_GET_ITEM(decoded, 1);
            Py_INCREF(value);
            Py_XSETREF(*target, value);
        }
        Py_DECREF(decoded);
        return 0;
    }
    Py_DECREF(decoded);
    /* Not a plain value: if it is the attribute wanted, let Python render it. */
    keyset one = {.data = {name}, .size = {(Py_ssize_t)strlen(name)}, .count = 1};
    keyset_group_by_length(&one);
    int match = key_matches(kv, &one);
    if (match != 0) {
        PyErr_SetString(PyExc_ValueError, "resource attribute needs the Python pass");
        return -1;
    }
    return 0;
}

/*
 * An evaluation event (`gen_ai.evaluation.result`): append (time, [attributes...]) to
 * *events (created on first use). Other events are skipped without a Python object.
 */
static const char EVALUATION_EVENT[] = "gen_ai.evaluation.result";

static int record_event(cursor event, PyObject **events) {
    cursor c = event, sub, name = {NULL, NULL};
    uint32_t number;
    int wire_type;
    uint64_t time = 0;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) return -1;
        if (number == 1 && wire_type == 1) time = fixed64_at(c.p - 8);
        else if (number == 2 && wire_type == 2) name = sub;
    }
    Py_ssize_t size = sizeof(EVALUATION_EVENT) - 1;
    if (name.p == NULL || name.end - name.p != size || memcmp(name.p, EVALUATION_EVENT, size) != 0)
        return 0;
    PyObject *attributes = PyList_New(0);
    if (attributes == NULL) return -2;
    c = event;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) goto fail;
        if (number != 3 || wire_type != 2) continue;
        PyObject *kv = decoded_or_bytes(sub, NULL, NULL);
        if (kv == NULL || PyList_Append(attributes, kv) < 0) {
            Py_XDECREF(kv);
            goto fail;
        }
        Py_DECREF(kv);
    }
    if (*events == NULL && (*events = PyList_New(0)) == NULL) goto fail;
    PyObject *entry = Py_BuildValue("(KN)", (unsigned long long)time, attributes);
    if (entry == NULL) return -2;
    int failed = PyList_Append(*events, entry);
    Py_DECREF(entry);
    return failed < 0 ? -2 : 0;
fail:
    Py_DECREF(attributes);
    return PyErr_Occurred() ? -2 : -1;
}

/* The trace id as hex: the previous span's object when it is the same trace. */
static PyObject *trace_hex(record_state *state, cursor trace) {
    Py_ssize_t size = trace.end - trace.p;
    if (state->last_trace_hex == NULL || state->last_trace.end - state->last_trace.p != size ||
        memcmp(state->last_trace.p, trace.p, (size_t)size) != 0) {
        PyObject *hex = hex_of(trace);
        if (hex == NULL) return NULL;
        Py_XSETREF(state->last_trace_hex, hex);
        state->last_trace = trace;
    }
    Py_INCREF(state->last_trace_hex);
    return state->last_trace_hex;
}

static int record_span(cursor span, record_state *state) {
    static const uint8_t nothing[1] = {0};
    cursor trace = {nothing, nothing}, id = {nothing, nothing}, parent = {nothing, nothing};
    cursor name = {nothing, nothing}, sub;
    uint64_t start = 0, end = 0, status = 0;
    uint32_t number;
    int wire_type;
    PyObject *hits = PyDict_New(), *events = NULL;
    if (hits == NULL) return -1;
    while (span.p < span.end) {
        if (next_field(&span, &number, &wire_type, &sub) < 0) goto malformed;
        if (wire_type == 2 && number == 11) {
            int outcome = record_event(sub, &events);
            if (outcome == -1) goto malformed;
            if (outcome < 0) goto error;
            continue;
        }
        if (wire_type == 1 && (number == 7 || number == 8)) {
            uint64_t value = fixed64_at(span.p - 8);
            if (number == 7) start = value; else end = value;
            continue;
        }
        if (wire_type != 2) continue;
        if (number == 1) trace = sub;
        else if (number == 2) id = sub;
        else if (number == 4) parent = sub;
        else if (number == 5) name = sub;
        else if (number == 15) {
            cursor st = sub, inner;
            uint32_t st_number;
            int st_wire;
            while (st.p < st.end) {
                const uint8_t *before = st.p;
                if (next_field(&st, &st_number, &st_wire, &inner) < 0) goto malformed;
                if (st_number == 3 && st_wire == 0) {
                    cursor again = {before, st.end};
                    uint64_t tag;
                    if (read_varint(&again, &tag) < 0 || read_varint(&again, &status) < 0)
                        goto malformed;
                }
            }
        } else if (number == 9) {
            int match = key_matches(sub, state->keys);
            if (match < 0) goto malformed;
            if (match && add_decoded_hit(&hits, sub, state->keys->names[match - 1],
                                     state->keys->texts) < 0)
                goto error;
        }
    }
    if (events == NULL && (events = PyTuple_New(0)) == NULL) goto error;
    PyObject *entry = Py_BuildValue(
        "(NNNNy#KKKOONN)",
        trace_hex(state, trace), hex_of(id), hex_of(parent), text_of(name),
        (const char *)id.p, id.end - id.p,
        (unsigned long long)start, (unsigned long long)end, (unsigned long long)status,
        state->service, state->instance, hits, events);
    if (entry == NULL) return -1;
    int failed = PyList_Append(state->out, entry);
    Py_DECREF(entry);
    return failed;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed span");
error:
    Py_DECREF(hits);
    Py_XDECREF(events);
    return -1;
}

static int record_scope_spans(cursor c, record_state *state) {
    uint32_t number;
    int wire_type;
    cursor sub;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) goto malformed;
        if (number == 2 && wire_type == 2 && record_span(sub, state) < 0) return -1;
    }
    return 0;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed scope spans");
    return -1;
}

static int record_resource_spans(cursor c, record_state *state) {
    uint32_t number;
    int wire_type;
    cursor sub;
    PyObject *service = PyUnicode_FromString(""), *instance = PyUnicode_FromString("");
    if (service == NULL || instance == NULL) goto error;
    /* The resource (field 1) may follow its scope spans on the wire: read it first. */
    cursor first = c;
    while (first.p < first.end) {
        if (next_field(&first, &number, &wire_type, &sub) < 0) goto malformed;
        if (number != 1 || wire_type != 2) continue;
        cursor resource = sub, kv;
        uint32_t r_number;
        int r_wire;
        while (resource.p < resource.end) {
            if (next_field(&resource, &r_number, &r_wire, &kv) < 0) goto malformed;
            if (r_number != 1 || r_wire != 2) continue;
            if (resource_text(kv, "service.name", &service) < 0) goto error;
            if (resource_text(kv, "service.instance.id", &instance) < 0) goto error;
        }
    }
    state->service = service;
    state->instance = instance;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) goto malformed;
        if (number == 2 && wire_type == 2 && record_scope_spans(sub, state) < 0) goto error;
    }
    Py_DECREF(service);
    Py_DECREF(instance);
    return 0;
malformed:
    PyErr_SetString(PyExc_ValueError, "malformed resource spans");
error:
    Py_XDECREF(service);
    Py_XDECREF(instance);
    return -1;
}

/* Text as text_of writes it, shared through the cache when it is valid UTF-8. */
static PyObject *shared_text(text_cache *texts, cursor c) {
    PyObject *text = cached_text(texts, c.p, c.end - c.p);
    if (text == NULL) {
        PyErr_Clear();
        text = text_of(c);
    }
    return text;
}

/* One resolved entry of the envelope: span id -> (agent, run, arguments hash). */

static int record_resolved(cursor c, PyObject *resolved, text_cache *texts) {
    static const uint8_t nothing[1] = {0};
    cursor parts[5] = {{nothing, nothing}, {nothing, nothing}, {nothing, nothing},
                       {nothing, nothing}, {nothing, nothing}};
    uint32_t number;
    int wire_type;
    cursor sub;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) {
            PyErr_SetString(PyExc_ValueError, "malformed envelope");
            return -1;
        }
        if (wire_type == 2 && number >= 1 && number <= 4) parts[number] = sub;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)parts[1].p, parts[1].end - parts[1].p);
    PyObject *value = Py_BuildValue("(NNN)", shared_text(texts, parts[2]),
                                    shared_text(texts, parts[3]), shared_text(texts, parts[4]));
    int failed = (key == NULL || value == NULL) ? -1 : PyDict_SetItem(resolved, key, value);
    Py_XDECREF(key);
    Py_XDECREF(value);
    return failed;
}

static PyObject *scan_record(PyObject *self, PyObject *args) {
    Py_buffer body;
    PyObject *key_tuple;
    (void)self;
    if (!PyArg_ParseTuple(args, "y*O!", &body, &PyTuple_Type, &key_tuple)) return NULL;
    keyset keys;
    PyObject *spans = NULL, *resolved = NULL, *tenant = NULL;
    text_cache texts = {{NULL}};
    record_state state = {&keys, NULL, NULL, NULL, {NULL, NULL}, NULL};
    if (keyset_init(&keys, key_tuple, 1) < 0) goto fail;
    keys.texts = &texts;
    state.out = spans = PyList_New(0);
    resolved = PyDict_New();
    tenant = PyUnicode_FromString("");
    if (spans == NULL || resolved == NULL || tenant == NULL) goto fail;
    cursor c = {(const uint8_t *)body.buf, (const uint8_t *)body.buf + body.len}, sub;
    uint32_t number;
    int wire_type;
    while (c.p < c.end) {
        if (next_field(&c, &number, &wire_type, &sub) < 0) {
            PyErr_SetString(PyExc_ValueError, "malformed record");
            goto fail;
        }
        if (wire_type != 2) continue;
        if (number == 1) {
            if (record_resource_spans(sub, &state) < 0) goto fail;
        } else if (number == 1000) {
            Py_XSETREF(tenant, text_of(sub));
            if (tenant == NULL) goto fail;
        } else if (number == 1001) {
            if (record_resolved(sub, resolved, &texts) < 0) goto fail;
        }
    }
    Py_XDECREF(state.last_trace_hex);
    keyset_release(&keys);
    PyBuffer_Release(&body);
    return Py_BuildValue("(NNN)", tenant, resolved, spans);
fail:
    Py_XDECREF(state.last_trace_hex);
    keyset_release(&keys);
    PyBuffer_Release(&body);
    Py_XDECREF(spans);
    Py_XDECREF(resolved);
    Py_XDECREF(tenant);
    return NULL;
}

static PyMethodDef methods[] = {
    {"scan_record", scan_record, METH_VARARGS,
     "scan_record(record, keys) -> (tenant, {span_id: (agent, run, args_hash)}, "
     "[(trace_hex, span_hex, parent_hex, name, span_id, start, end, status_code, "
     "service_name, instance_id, hits, evaluation_events), ...])"},
    {"scan", scan, METH_VARARGS,
     "scan(body, keys, decode=False) -> [(trace_id, span_id, parent_span_id, [kv, ...]), ...]"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_wirescan", "The context pass's wire walker.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__wirescan(void) { return PyModule_Create(&module); }
