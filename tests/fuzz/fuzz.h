/*
 * fuzz.h - the fuzz targets of tests/fuzz and what they share.
 *
 * Each target is one function over one input.  Built with libFuzzer
 * (CUEQ_LIBFUZZER, the CUEQ_FUZZ build) the function is the
 * LLVMFuzzerTestOneInput of its program; in the suite (test_fuzz) both are
 * linked into one program under their own names and replay the corpus.
 */
#ifndef CUEQ_FUZZ_H
#define CUEQ_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#ifdef CUEQ_LIBFUZZER
#define FUZZ_FRAME LLVMFuzzerTestOneInput
#define FUZZ_REQUEST LLVMFuzzerTestOneInput
#else
#define FUZZ_FRAME fuzz_frame
#define FUZZ_REQUEST fuzz_request
#endif

/* fuzz_frame.c: one frame through the decoder, the envelope and every
 * getter. */
int FUZZ_FRAME(const uint8_t *data, size_t size);

/* fuzz_request.c: a session of requests, split at FUZZ_SEP, against the
 * in-process core (fuzz_core.c).  fuzz_request_done closes the core (the
 * suite calls it at the end, so that leak checks see a clean exit). */
int FUZZ_REQUEST(const uint8_t *data, size_t size);
void fuzz_request_done(void);

/* Separates the frames of a session: 0xc1 is no msgpack byte, so it can
 * only be inside a str or bin of a frame. */
#define FUZZ_SEP "\xc1\xc1"
#define FUZZ_SEP_LEN 2

/* An ID placeholder: a 16-byte str "@" KIND DIGIT... in a request stands
 * for an ID an earlier reply of the same session gave: KIND 'e' an
 * execution ID, 't' a lease token, 'c' a cue ID; DIGIT counts back from
 * the newest (mod how many there are). */
#define FUZZ_PLACEHOLDER '@'

/* Aborts with a line on stderr: a target found a broken promise. */
void fuzz_fail(const char *what, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Touches every byte o points to (ASan sees a dangling str); aborts on a
 * str that is not valid UTF-8 when utf8 is set.  Returns a checksum. */
uint64_t fuzz_walk(const msgpack_object *o, unsigned depth, int utf8);

#endif /* CUEQ_FUZZ_H */
