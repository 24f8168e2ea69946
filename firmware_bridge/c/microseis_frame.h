/*
 * microseis_frame.h - reference firmware-side encoder of the digitizer serial frame
 * protocol, version 1.
 *
 * The contract is shared/spec/digitizer-frame.md (test vectors: shared/spec/vectors.json);
 * the host-side twin is firmware_bridge/encoder.py + decoder.py. This encoder reproduces
 * every vector bit for bit (tests/test_c_encoder.py checks it).
 *
 * Frame layout (all integers little-endian, offsets from the first sync byte):
 *
 *     0  A5 5A   sync
 *     2  u8      version = 1
 *     3  u8      type: 1 samples, 2 status (JSON), 3 log text
 *     4  u16     payload length N, 0..4096
 *     6  u32     seq, +1 per frame of any type, wraps 2^32-1 -> 0
 *    10  u16     CRC-16/CCITT-FALSE of bytes 2..9
 *    12  N bytes payload
 *  12+N  u32     CRC-32/ISO-HDLC of bytes 2..12+N-1
 *
 * Portability: C99, no malloc, nothing from the C library except <stdint.h> and
 * <string.h> (memmove only). Bytes are written one by one, so the host CPU's endianness,
 * alignment and struct packing never matter. Works with a 16-bit int.
 *
 * CRCs are bitwise by default (no tables, a few dozen bytes of code). Define
 * MSF_CRC_NIBBLE_TABLES when compiling microseis_frame.c to use two 16-entry tables
 * instead (96 bytes of flash, roughly 3-4x faster). Both give identical results.
 *
 * Not thread/ISR safe per writer: use one msf_writer from one context (the main loop).
 */
#ifndef MICROSEIS_FRAME_H
#define MICROSEIS_FRAME_H

#include <stdint.h>
#include <string.h> /* size_t */

#ifdef __cplusplus
extern "C" {
#endif

/* ---- protocol constants ------------------------------------------------------------- */
#define MSF_VERSION 1u
#define MSF_TYPE_SAMPLES 1u
#define MSF_TYPE_STATUS 2u
#define MSF_TYPE_LOG 3u

#define MSF_HEADER_SIZE 12u         /* sync .. hcrc; the payload starts here */
#define MSF_CRC_SIZE 4u             /* trailing CRC-32 */
#define MSF_OVERHEAD 16u            /* header + trailing CRC-32 */
#define MSF_MAX_PAYLOAD 4096u
#define MSF_MAX_FRAME_SIZE 4112u    /* MSF_OVERHEAD + MSF_MAX_PAYLOAD */
#define MSF_SAMPLES_HEADER_SIZE 28u /* type-1 payload bytes before the samples */
#define MSF_MAX_CHANNELS 8u

/* sample encodings (type-1 `enc`) */
#define MSF_ENC_INT24 1u /* 3 bytes, two's complement, -8388608..8388607 */
#define MSF_ENC_INT32 2u /* 4 bytes */
#define MSF_ENC_INT16 3u /* 2 bytes, -32768..32767 */

/* time_flags bits (bits 3-7 must be zero) */
#define MSF_TIME_GNSS_FIX 0x01u   /* the GNSS receiver has a fix */
#define MSF_TIME_PPS_LOCKED 0x02u /* the sample clock is disciplined by the PPS */
#define MSF_TIME_FROM_HOST 0x04u  /* no GNSS: time was set by the host */
/* status_flags bits (bits 2-7 must be zero) */
#define MSF_STATUS_CLIPPED 0x01u /* an ADC channel clipped in this frame */
#define MSF_STATUS_OVERRUN 0x02u /* samples were dropped before this frame */

/* ---- buffer sizing ------------------------------------------------------------------ */
/* Bytes per sample of an encoding (0 for an unknown one); a constant expression. */
#define MSF_BYTES_PER_SAMPLE(enc) \
    ((enc) == MSF_ENC_INT24 ? 3u : (enc) == MSF_ENC_INT32 ? 4u : (enc) == MSF_ENC_INT16 ? 2u : 0u)

/* Whole type-1 frame size in bytes, e.g. static uint8_t tx[MSF_FRAME_SIZE(3, 3, 25)];
 * (bps = bytes per sample: 3 int24, 4 int32, 2 int16). A constant expression. */
#define MSF_FRAME_SIZE(nch, bps, nsamp) \
    ((size_t)MSF_OVERHEAD + (size_t)MSF_SAMPLES_HEADER_SIZE + \
     (size_t)(nch) * (size_t)(bps) * (size_t)(nsamp))

/* Largest nsamp whose type-1 payload fits in MSF_MAX_PAYLOAD. */
#define MSF_MAX_NSAMP(nch, bps) \
    ((MSF_MAX_PAYLOAD - MSF_SAMPLES_HEADER_SIZE) / ((unsigned)(nch) * (unsigned)(bps)))

/* Frame size of a status/log frame carrying len bytes of text. */
#define MSF_TEXT_FRAME_SIZE(len) ((size_t)MSF_OVERHEAD + (size_t)(len))

/* Where a payload starts in the frame buffer: a status/log text may be formatted there
 * directly (zero copy) and passed to msf_encode_status/msf_encode_log. */
#define MSF_PAYLOAD(buf) ((buf) + MSF_HEADER_SIZE)

/* ---- results ------------------------------------------------------------------------ */
/* Encoders return the frame length in bytes (> 0; at least 16) or one of these (< 0).
 * On an error the writer's seq is unchanged and the buffer contents are unspecified. */
#define MSF_ERR_NULL (-1)      /* a required pointer is NULL */
#define MSF_ERR_BUFFER (-2)    /* the caller's buffer is smaller than the frame */
#define MSF_ERR_TOO_LONG (-3)  /* the payload would exceed MSF_MAX_PAYLOAD bytes */
#define MSF_ERR_NCH (-4)       /* nch not 1..8 */
#define MSF_ERR_ENC (-5)       /* enc not 1, 2 or 3 */
#define MSF_ERR_NSAMP (-6)     /* nsamp is 0 */
#define MSF_ERR_RANGE (-7)     /* a sample value does not fit the encoding */
#define MSF_ERR_FIELD (-8)     /* rate_mhz 0, time_quality > 100, or a reserved flag bit set */
#define MSF_ERR_TYPE (-9)      /* frame type not 1, 2 or 3 (msf_encode_frame) */

/* ---- API ---------------------------------------------------------------------------- */

/* Per-stream writer state: the seq of the next frame. */
typedef struct msf_writer {
    uint32_t seq;
} msf_writer;

/* Header fields of a type-1 (samples) frame. Fill the constant ones (rate, nch, enc)
 * once; update sample_index, t0_ns, nsamp and the flags for every frame. */
typedef struct msf_samples_hdr {
    uint64_t sample_index; /* index of the first sample since power-up */
    int64_t t0_ns;         /* UTC time of the first sample, ns since 1970 (may be < 0) */
    uint32_t rate_mhz;     /* nominal rate in millihertz (250 Hz = 250000), not 0 */
    uint8_t nch;           /* channels, 1..8 */
    uint8_t enc;           /* MSF_ENC_INT24 / MSF_ENC_INT32 / MSF_ENC_INT16 */
    uint16_t nsamp;        /* samples per channel, >= 1 */
    uint8_t time_flags;    /* MSF_TIME_* bits */
    uint8_t time_quality;  /* 0..100 */
    uint8_t status_flags;  /* MSF_STATUS_* bits */
} msf_samples_hdr;

/* Start a writer; the first frame gets seq first_seq (0 after power-up). */
void msf_writer_init(msf_writer *w, uint32_t first_seq);

/* Type-1 frame. samples holds nch * nsamp values interleaved by sample
 * (s0c0 s0c1 .. s0c(nch-1) s1c0 ..), in ADC counts; each must fit the encoding
 * (no clipping is done: clip in the firmware and set MSF_STATUS_CLIPPED). */
int msf_encode_samples(msf_writer *w, const msf_samples_hdr *h, const int32_t *samples,
                       uint8_t *buf, size_t cap);

/* Type-2 frame: json is a UTF-8 JSON object of len bytes (no NUL needed; not validated). */
int msf_encode_status(msf_writer *w, const char *json, size_t len, uint8_t *buf, size_t cap);

/* Type-3 frame: one UTF-8 log message of len bytes (len may be 0; text may then be NULL). */
int msf_encode_log(msf_writer *w, const char *text, size_t len, uint8_t *buf, size_t cap);

/* Any frame type around a ready payload (not checked beyond its length). payload may
 * point into buf (e.g. MSF_PAYLOAD(buf)); it may be NULL when len is 0. */
int msf_encode_frame(msf_writer *w, uint8_t type, const void *payload, size_t len,
                     uint8_t *buf, size_t cap);

/* CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, xorout 0);
 * "123456789" -> 0x29B1. */
uint16_t msf_crc16_ccitt_false(const void *data, size_t len);

/* CRC-32/ISO-HDLC (zlib's crc32: reflected 0xEDB88320, init and xorout 0xFFFFFFFF);
 * "123456789" -> 0xCBF43926. */
uint32_t msf_crc32(const void *data, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* MICROSEIS_FRAME_H */
