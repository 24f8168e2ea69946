/*
 * microseis_frame.c - reference firmware-side encoder of the digitizer serial frame
 * protocol, version 1. See microseis_frame.h for the API and shared/spec/digitizer-frame.md
 * for the contract (shared/spec/vectors.json: bytes every implementation must reproduce).
 *
 * C99; no malloc; only <stdint.h> and <string.h> (memmove). Every multi-byte field is
 * written byte by byte in little-endian order, so the CPU's endianness and alignment
 * never matter. Compile with -DMSF_CRC_NIBBLE_TABLES for 16-entry CRC tables (96 bytes of
 * flash) instead of the default bitwise CRCs.
 */
#include "microseis_frame.h"

#include <stdint.h>
#include <string.h>

/* ---- little-endian writers ---------------------------------------------------------- */

static void put_u16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)(v >> 8);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)(v >> 24);
}

static void put_u64(uint8_t *p, uint64_t v)
{
    put_u32(p, (uint32_t)(v & 0xFFFFFFFFu));
    put_u32(p + 4, (uint32_t)(v >> 32));
}

/* ---- CRCs --------------------------------------------------------------------------- */

#ifdef MSF_CRC_NIBBLE_TABLES

/* CRC-16/CCITT-FALSE, four bits at a time (MSB first). */
static const uint16_t crc16_nibble[16] = {
    0x0000u, 0x1021u, 0x2042u, 0x3063u, 0x4084u, 0x50A5u, 0x60C6u, 0x70E7u,
    0x8108u, 0x9129u, 0xA14Au, 0xB16Bu, 0xC18Cu, 0xD1ADu, 0xE1CEu, 0xF1EFu,
};

static uint16_t crc16_update(uint16_t crc, const uint8_t *p, size_t len)
{
    while (len--) {
        unsigned b = *p++;
        crc = (uint16_t)(((unsigned)crc << 4) ^ crc16_nibble[((unsigned)crc >> 12) ^ (b >> 4)]);
        crc = (uint16_t)(((unsigned)crc << 4) ^ crc16_nibble[((unsigned)crc >> 12) ^ (b & 0x0Fu)]);
    }
    return crc;
}

/* CRC-32/ISO-HDLC (reflected), four bits at a time (LSB first). */
static const uint32_t crc32_nibble[16] = {
    0x00000000u, 0x1DB71064u, 0x3B6E20C8u, 0x26D930ACu,
    0x76DC4190u, 0x6B6B51F4u, 0x4DB26158u, 0x5005713Cu,
    0xEDB88320u, 0xF00F9344u, 0xD6D6A3E8u, 0xCB61B38Cu,
    0x9B64C2B0u, 0x86D3D2D4u, 0xA00AE278u, 0xBDBDF21Cu,
};

static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--) {
        uint32_t b = *p++;
        crc = (crc >> 4) ^ crc32_nibble[(crc ^ b) & 0x0Fu];
        crc = (crc >> 4) ^ crc32_nibble[(crc ^ (b >> 4)) & 0x0Fu];
    }
    return crc;
}

#else /* bitwise: no tables at all */

/* CRC-16/CCITT-FALSE: poly 0x1021, MSB first. */
static uint16_t crc16_update(uint16_t crc, const uint8_t *p, size_t len)
{
    while (len--) {
        int bit;
        crc = (uint16_t)(crc ^ ((unsigned)*p++ << 8));
        for (bit = 0; bit < 8; bit++) {
            if (crc & 0x8000u)
                crc = (uint16_t)(((unsigned)crc << 1) ^ 0x1021u);
            else
                crc = (uint16_t)((unsigned)crc << 1);
        }
    }
    return crc;
}

/* CRC-32/ISO-HDLC: reflected poly 0xEDB88320, LSB first. */
static uint32_t crc32_update(uint32_t crc, const uint8_t *p, size_t len)
{
    while (len--) {
        int bit;
        crc ^= *p++;
        for (bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return crc;
}

#endif /* MSF_CRC_NIBBLE_TABLES */

uint16_t msf_crc16_ccitt_false(const void *data, size_t len)
{
    if (data == NULL)
        len = 0;
    return crc16_update(0xFFFFu, (const uint8_t *)data, len);
}

uint32_t msf_crc32(const void *data, size_t len)
{
    if (data == NULL)
        len = 0;
    return crc32_update(0xFFFFFFFFu, (const uint8_t *)data, len) ^ 0xFFFFFFFFu;
}

/* ---- frames ------------------------------------------------------------------------- */

void msf_writer_init(msf_writer *w, uint32_t first_seq)
{
    if (w != NULL)
        w->seq = first_seq;
}

/* The payload (plen bytes, already checked <= MSF_MAX_PAYLOAD) is in place at
 * buf + MSF_HEADER_SIZE and the buffer is known to be big enough: write the header, both
 * CRCs, advance seq (uint32_t arithmetic wraps 2^32-1 -> 0) and return the frame length. */
static int finish_frame(msf_writer *w, uint8_t type, uint16_t plen, uint8_t *buf)
{
    uint32_t crc;

    buf[0] = 0xA5u;
    buf[1] = 0x5Au;
    buf[2] = (uint8_t)MSF_VERSION;
    buf[3] = type;
    put_u16(buf + 4, plen);
    put_u32(buf + 6, w->seq);
    put_u16(buf + 10, crc16_update(0xFFFFu, buf + 2, 8u));
    crc = crc32_update(0xFFFFFFFFu, buf + 2, (size_t)(MSF_HEADER_SIZE - 2u) + plen) ^ 0xFFFFFFFFu;
    put_u32(buf + MSF_HEADER_SIZE + plen, crc);
    w->seq++;
    return (int)(MSF_OVERHEAD + plen);
}

int msf_encode_frame(msf_writer *w, uint8_t type, const void *payload, size_t len,
                     uint8_t *buf, size_t cap)
{
    if (w == NULL || buf == NULL || (payload == NULL && len != 0))
        return MSF_ERR_NULL;
    if (type < MSF_TYPE_SAMPLES || type > MSF_TYPE_LOG)
        return MSF_ERR_TYPE;
    if (len > MSF_MAX_PAYLOAD)
        return MSF_ERR_TOO_LONG;
    if (cap < MSF_OVERHEAD + len)
        return MSF_ERR_BUFFER;
    /* memmove: the payload may already sit at (or overlap) MSF_PAYLOAD(buf) */
    if (len != 0 && (const uint8_t *)payload != buf + MSF_HEADER_SIZE)
        memmove(buf + MSF_HEADER_SIZE, payload, len);
    return finish_frame(w, type, (uint16_t)len, buf);
}

int msf_encode_status(msf_writer *w, const char *json, size_t len, uint8_t *buf, size_t cap)
{
    return msf_encode_frame(w, (uint8_t)MSF_TYPE_STATUS, json, len, buf, cap);
}

int msf_encode_log(msf_writer *w, const char *text, size_t len, uint8_t *buf, size_t cap)
{
    return msf_encode_frame(w, (uint8_t)MSF_TYPE_LOG, text, len, buf, cap);
}

int msf_encode_samples(msf_writer *w, const msf_samples_hdr *h, const int32_t *samples,
                       uint8_t *buf, size_t cap)
{
    uint32_t count, plen, i;
    unsigned bps;
    uint8_t *p;

    if (w == NULL || h == NULL || samples == NULL || buf == NULL)
        return MSF_ERR_NULL;
    if (h->nch < 1u || h->nch > MSF_MAX_CHANNELS)
        return MSF_ERR_NCH;
    bps = MSF_BYTES_PER_SAMPLE(h->enc);
    if (bps == 0u)
        return MSF_ERR_ENC;
    if (h->nsamp == 0u)
        return MSF_ERR_NSAMP;
    if (h->rate_mhz == 0u || h->time_quality > 100u || (h->time_flags & 0xF8u) != 0u ||
        (h->status_flags & 0xFCu) != 0u)
        return MSF_ERR_FIELD;
    /* 32-bit arithmetic: nch * nsamp * bps can exceed a 16-bit size_t/unsigned */
    count = (uint32_t)h->nch * (uint32_t)h->nsamp;
    plen = MSF_SAMPLES_HEADER_SIZE + count * bps;
    if (plen > MSF_MAX_PAYLOAD)
        return MSF_ERR_TOO_LONG;
    if (cap < (size_t)(MSF_OVERHEAD + plen))
        return MSF_ERR_BUFFER;

    /* payload header (spec: "Payload of type 1: samples") */
    p = buf + MSF_HEADER_SIZE;
    put_u64(p + 0, h->sample_index);
    put_u64(p + 8, (uint64_t)h->t0_ns); /* two's complement, well defined */
    put_u32(p + 16, h->rate_mhz);
    p[20] = h->nch;
    p[21] = h->enc;
    put_u16(p + 22, h->nsamp);
    p[24] = h->time_flags;
    p[25] = h->time_quality;
    p[26] = h->status_flags;
    p[27] = 0u; /* reserved */
    p += MSF_SAMPLES_HEADER_SIZE;

    /* samples, interleaved by sample exactly as given; range-checked while written */
    switch (h->enc) {
    case MSF_ENC_INT24:
        for (i = 0; i < count; i++, p += 3) {
            int32_t v = samples[i];
            uint32_t u = (uint32_t)v;
            if (v < -INT32_C(8388608) || v > INT32_C(8388607))
                return MSF_ERR_RANGE;
            p[0] = (uint8_t)(u & 0xFFu);
            p[1] = (uint8_t)((u >> 8) & 0xFFu);
            p[2] = (uint8_t)((u >> 16) & 0xFFu);
        }
        break;
    case MSF_ENC_INT16:
        for (i = 0; i < count; i++, p += 2) {
            int32_t v = samples[i];
            if (v < -INT32_C(32768) || v > INT32_C(32767))
                return MSF_ERR_RANGE;
            put_u16(p, (uint16_t)((uint32_t)v & 0xFFFFu));
        }
        break;
    default: /* MSF_ENC_INT32: every int32_t fits */
        for (i = 0; i < count; i++, p += 4)
            put_u32(p, (uint32_t)samples[i]);
        break;
    }
    return finish_frame(w, (uint8_t)MSF_TYPE_SAMPLES, (uint16_t)plen, buf);
}
