/*
 * Bounds-checked reading of protobuf wire format, shared by the C walkers
 * (_wirescan.c for the detectors, _flatrows.c for the store). Every read checks the
 * end of its buffer; anything unexpected (groups, truncation, overlong varints)
 * returns -1, and the caller falls back to the pure-Python path.
 */
#ifndef AGENTWATCH_WIRE_H
#define AGENTWATCH_WIRE_H

#include <stdint.h>

typedef struct {
    const uint8_t *p;
    const uint8_t *end;
} cursor;

static inline int read_varint(cursor *c, uint64_t *out) {
    uint64_t value = 0;
    int shift = 0;
    while (c->p < c->end) {
        uint8_t byte = *c->p++;
        value |= (uint64_t)(byte & 0x7F) << shift;
        if (!(byte & 0x80)) {
            *out = value;
            return 0;
        }
        shift += 7;
        if (shift > 63) return -1;
    }
    return -1;
}

/* A field's header and value: the payload of a length-delimited field in *sub, the
 * value of a varint or fixed field in *value. */
typedef struct {
    uint32_t number;
    int wire_type;
    cursor sub;
    uint64_t value;
} field;

static inline uint64_t fixed64_at(const uint8_t *p) {
    uint64_t value = 0;
    for (int i = 7; i >= 0; i--) value = (value << 8) | p[i];
    return value;
}

static inline int read_field(cursor *c, field *f) {
    uint64_t tag, length;
    if (read_varint(c, &tag) < 0) return -1;
    f->number = (uint32_t)(tag >> 3);
    f->wire_type = (int)(tag & 7);
    switch (f->wire_type) {
    case 0:
        return read_varint(c, &f->value);
    case 1:
        if (c->end - c->p < 8) return -1;
        f->value = fixed64_at(c->p);
        c->p += 8;
        return 0;
    case 2:
        if (read_varint(c, &length) < 0) return -1;
        if ((uint64_t)(c->end - c->p) < length) return -1;
        f->sub.p = c->p;
        f->sub.end = c->p + length;
        c->p += length;
        return 0;
    case 5:
        if (c->end - c->p < 4) return -1;
        f->value = (uint64_t)c->p[0] | (uint64_t)c->p[1] << 8 | (uint64_t)c->p[2] << 16 |
                   (uint64_t)c->p[3] << 24;
        c->p += 4;
        return 0;
    default:
        return -1; /* groups (3, 4) and reserved types */
    }
}

/* Read one field header; for length-delimited fields, return its payload in *sub. */
static inline int next_field(cursor *c, uint32_t *number, int *wire_type, cursor *sub) {
    field f;
    if (read_field(c, &f) < 0) return -1;
    *number = f.number;
    *wire_type = f.wire_type;
    if (f.wire_type == 2) *sub = f.sub;
    return 0;
}

#endif
