/*
 * vector_tool.c - test harness for microseis_frame.c (built by tests/test_c_encoder.py only;
 * not firmware code, so it may use stdio/stdlib).
 *
 * Reads line commands from stdin, answers one line per command on stdout:
 *
 *   S seq sample_index t0_ns rate_mhz nch enc nsamp time_flags time_quality status_flags v0 v1 ...
 *         type-1 frame; values interleaved by sample (s0c0 s0c1 ...), missing ones are 0
 *   T seq HEX         type-2 (status) frame, payload = bytes of HEX ("-" = empty)
 *   L seq HEX         type-3 (log) frame
 *   I seq HEX         type-3 frame whose text is placed at MSF_PAYLOAD(buf) first (zero copy)
 *   F type seq HEX    msf_encode_frame with any type byte
 *   C HEX             -> "crc16 crc32" of the bytes, lowercase hex (4 and 8 digits)
 *   B cap             buffer capacity passed to the following encodes (0..8192) -> "OK"
 *   Q                 -> the writer's current seq (decimal)
 *   N                 -> return codes of calls with NULL pointers (see run_null_checks)
 *
 * seq "-" keeps the writer's seq (to see it advance and wrap); any other value is set with
 * msf_writer_init before the frame. A frame command answers the frame as lowercase hex, or
 * "ERR <code>" (the encoder's negative return value). "BAD <why>" means an unparsable
 * command; "OVERFLOW" means the encoder wrote past the capacity it was given.
 * Blank lines and lines starting with '#' are ignored (no answer).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "microseis_frame.h"

#define BUF_SIZE 8192u
#define MAX_VALUES 16384u
#define CANARY 0xCCu

static uint8_t frame_buf[BUF_SIZE];
static uint8_t bytes_buf[BUF_SIZE + 16u];
static int32_t values[MAX_VALUES];
static size_t capacity = BUF_SIZE;
static msf_writer writer;

/* ---- parsing ---------------------------------------------------------------------------- */

static char *next_token(char **cursor)
{
    char *s = *cursor;
    char *start;
    while (*s == ' ' || *s == '\t' || *s == '\r')
        s++;
    if (*s == '\0')
        return NULL;
    start = s;
    while (*s != '\0' && *s != ' ' && *s != '\t' && *s != '\r')
        s++;
    if (*s != '\0')
        *s++ = '\0';
    *cursor = s;
    return start;
}

static int parse_u64(const char *tok, unsigned long long max, unsigned long long *out)
{
    char *end;
    if (tok == NULL || *tok == '-')
        return 0;
    errno = 0;
    *out = strtoull(tok, &end, 10);
    return errno == 0 && *end == '\0' && end != tok && *out <= max;
}

static int parse_i64(const char *tok, long long min, long long max, long long *out)
{
    char *end;
    if (tok == NULL)
        return 0;
    errno = 0;
    *out = strtoll(tok, &end, 10);
    return errno == 0 && *end == '\0' && end != tok && *out >= min && *out <= max;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* HEX ("-" = empty) -> bytes_buf; returns the length or -1. */
static long parse_hex(const char *tok)
{
    size_t n, i;
    if (tok == NULL)
        return -1;
    if (strcmp(tok, "-") == 0)
        return 0;
    n = strlen(tok);
    if (n % 2u != 0u || n / 2u > sizeof bytes_buf)
        return -1;
    for (i = 0; i < n / 2u; i++) {
        int hi = hexval(tok[2u * i]), lo = hexval(tok[2u * i + 1u]);
        if (hi < 0 || lo < 0)
            return -1;
        bytes_buf[i] = (uint8_t)(hi * 16 + lo);
    }
    return (long)(n / 2u);
}

/* seq token: "-" keeps the writer's seq, a number sets it. */
static int apply_seq(const char *tok)
{
    unsigned long long seq;
    if (tok != NULL && strcmp(tok, "-") == 0)
        return 1;
    if (!parse_u64(tok, 0xFFFFFFFFull, &seq))
        return 0;
    msf_writer_init(&writer, (uint32_t)seq);
    return 1;
}

/* ---- output ----------------------------------------------------------------------------- */

static void prepare_buffer(void)
{
    memset(frame_buf, CANARY, sizeof frame_buf);
}

static void report(int rc)
{
    size_t i;
    for (i = capacity; i < sizeof frame_buf; i++) {
        if (frame_buf[i] != CANARY) {
            printf("OVERFLOW\n");
            return;
        }
    }
    if (rc < 0) {
        printf("ERR %d\n", rc);
        return;
    }
    if (rc == 0 || (size_t)rc > capacity) {
        printf("BAD length %d\n", rc);
        return;
    }
    for (i = 0; i < (size_t)rc; i++)
        printf("%02x", frame_buf[i]);
    printf("\n");
}

/* ---- commands --------------------------------------------------------------------------- */

static void cmd_samples(char *cur)
{
    unsigned long long sample_index, u;
    long long t0, v;
    msf_samples_hdr h;
    size_t n = 0;
    char *tok;

    if (!apply_seq(next_token(&cur))) {
        printf("BAD seq\n");
        return;
    }
    if (!parse_u64(next_token(&cur), 0xFFFFFFFFFFFFFFFFull, &sample_index) ||
        !parse_i64(next_token(&cur), -9223372036854775807LL - 1, 9223372036854775807LL, &t0)) {
        printf("BAD header\n");
        return;
    }
    h.sample_index = (uint64_t)sample_index;
    h.t0_ns = (int64_t)t0;
    if (!parse_u64(next_token(&cur), 0xFFFFFFFFull, &u)) { printf("BAD rate\n"); return; }
    h.rate_mhz = (uint32_t)u;
    if (!parse_u64(next_token(&cur), 0xFFull, &u)) { printf("BAD nch\n"); return; }
    h.nch = (uint8_t)u;
    if (!parse_u64(next_token(&cur), 0xFFull, &u)) { printf("BAD enc\n"); return; }
    h.enc = (uint8_t)u;
    if (!parse_u64(next_token(&cur), 0xFFFFull, &u)) { printf("BAD nsamp\n"); return; }
    h.nsamp = (uint16_t)u;
    if (!parse_u64(next_token(&cur), 0xFFull, &u)) { printf("BAD time_flags\n"); return; }
    h.time_flags = (uint8_t)u;
    if (!parse_u64(next_token(&cur), 0xFFull, &u)) { printf("BAD time_quality\n"); return; }
    h.time_quality = (uint8_t)u;
    if (!parse_u64(next_token(&cur), 0xFFull, &u)) { printf("BAD status_flags\n"); return; }
    h.status_flags = (uint8_t)u;

    memset(values, 0, sizeof values);
    while ((tok = next_token(&cur)) != NULL) {
        if (n >= MAX_VALUES || !parse_i64(tok, -2147483647LL - 1, 2147483647LL, &v)) {
            printf("BAD value\n");
            return;
        }
        values[n++] = (int32_t)v;
    }
    prepare_buffer();
    report(msf_encode_samples(&writer, &h, values, frame_buf, capacity));
}

static void cmd_text(char kind, char *cur)
{
    unsigned long long type = 0;
    long len;
    int rc;

    if (kind == 'F' && !parse_u64(next_token(&cur), 0xFFull, &type)) {
        printf("BAD type\n");
        return;
    }
    if (!apply_seq(next_token(&cur))) {
        printf("BAD seq\n");
        return;
    }
    len = parse_hex(next_token(&cur));
    if (len < 0) {
        printf("BAD hex\n");
        return;
    }
    prepare_buffer();
    switch (kind) {
    case 'T':
        rc = msf_encode_status(&writer, (const char *)bytes_buf, (size_t)len, frame_buf, capacity);
        break;
    case 'L':
        rc = msf_encode_log(&writer, (const char *)bytes_buf, (size_t)len, frame_buf, capacity);
        break;
    case 'I':
        if ((size_t)len > sizeof frame_buf - MSF_HEADER_SIZE) {
            printf("BAD length\n");
            return;
        }
        memcpy(MSF_PAYLOAD(frame_buf), bytes_buf, (size_t)len);
        rc = msf_encode_log(&writer, (const char *)MSF_PAYLOAD(frame_buf), (size_t)len,
                            frame_buf, capacity);
        break;
    default:
        rc = msf_encode_frame(&writer, (uint8_t)type, bytes_buf, (size_t)len, frame_buf, capacity);
        break;
    }
    report(rc);
}

static void cmd_crc(char *cur)
{
    long len = parse_hex(next_token(&cur));
    if (len < 0) {
        printf("BAD hex\n");
        return;
    }
    printf("%04x %08lx\n", (unsigned)msf_crc16_ccitt_false(bytes_buf, (size_t)len),
           (unsigned long)msf_crc32(bytes_buf, (size_t)len));
}

/* NULL writer / header / samples / buffer / text with len > 0, then an empty log with a
 * NULL text (valid: a 16-byte frame) and the CRCs of NULL (the init values' results). */
static void run_null_checks(void)
{
    msf_samples_hdr h;
    int32_t one = 0;
    uint8_t small[64];

    memset(&h, 0, sizeof h);
    h.rate_mhz = 1000u;
    h.nch = 1u;
    h.enc = (uint8_t)MSF_ENC_INT32;
    h.nsamp = 1u;
    printf("%d %d %d %d %d %d %d %d %d %04x %08lx\n",
           msf_encode_samples(NULL, &h, &one, small, sizeof small),
           msf_encode_samples(&writer, NULL, &one, small, sizeof small),
           msf_encode_samples(&writer, &h, NULL, small, sizeof small),
           msf_encode_samples(&writer, &h, &one, NULL, sizeof small),
           msf_encode_status(&writer, NULL, 3u, small, sizeof small),
           msf_encode_log(NULL, "x", 1u, small, sizeof small),
           msf_encode_log(&writer, "x", 1u, NULL, sizeof small),
           msf_encode_frame(&writer, 1u, NULL, 5u, small, sizeof small),
           msf_encode_log(&writer, NULL, 0u, small, sizeof small),
           (unsigned)msf_crc16_ccitt_false(NULL, 5u), (unsigned long)msf_crc32(NULL, 5u));
}

static void run_line(char *line)
{
    char *cur = line;
    char *cmd = next_token(&cur);
    unsigned long long u;

    if (cmd == NULL || cmd[0] == '#')
        return;
    if (cmd[1] != '\0') {
        printf("BAD command\n");
        return;
    }
    switch (cmd[0]) {
    case 'S':
        cmd_samples(cur);
        break;
    case 'T':
    case 'L':
    case 'I':
    case 'F':
        cmd_text(cmd[0], cur);
        break;
    case 'C':
        cmd_crc(cur);
        break;
    case 'B':
        if (!parse_u64(next_token(&cur), BUF_SIZE, &u)) {
            printf("BAD capacity\n");
            return;
        }
        capacity = (size_t)u;
        printf("OK\n");
        break;
    case 'Q':
        printf("%lu\n", (unsigned long)writer.seq);
        break;
    case 'N':
        run_null_checks();
        break;
    default:
        printf("BAD command\n");
        break;
    }
}

int main(void)
{
    size_t cap = 1u << 16, len = 0;
    char *text = malloc(cap), *line, *nl;
    int c;

    if (text == NULL)
        return 2;
    while ((c = getchar()) != EOF) {
        if (len + 1u >= cap) {
            char *bigger = realloc(text, cap * 2u);
            if (bigger == NULL) {
                free(text);
                return 2;
            }
            text = bigger;
            cap *= 2u;
        }
        text[len++] = (char)c;
    }
    text[len] = '\0';

    msf_writer_init(&writer, 0u);
    for (line = text; line != NULL; line = nl) {
        nl = strchr(line, '\n');
        if (nl != NULL)
            *nl++ = '\0';
        run_line(line);
    }
    free(text);
    return fflush(stdout) == 0 ? 0 : 1;
}
