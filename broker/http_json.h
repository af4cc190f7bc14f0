/*
 * http_json.h - the HTTP face's JSON: wire replies (msgpack) to JSON
 * objects and JSON request fields to msgpack, on jansson.
 *
 * One rule for bytes both ways, as the CLI's --json has it: a msgpack bin
 * (a payload, a step's value) is a JSON string under its own key when it is
 * valid UTF-8, else base64 under KEY_base64; a request field KEY_base64 is
 * decoded and sent as bin under KEY.
 */
#ifndef CUEQ_HTTP_JSON_H
#define CUEQ_HTTP_JSON_H

#include <jansson.h>
#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

/* The JSON of one msgpack value; NULL when out of memory. */
json_t *hj_value(const msgpack_object *o);
/* Sets key (klen bytes) of obj to v by the bytes rule.  -1 out of memory. */
int hj_set(json_t *obj, const char *key, size_t klen, const msgpack_object *v);
/* The JSON object of a reply map without its envelope (v, rid, ok, and
 * err and msg of an error reply).  NULL when out of memory. */
json_t *hj_reply(const msgpack_object *map);
/* Packs v; a field named KEY_base64 of an object goes as bin under KEY.
 * -1 with a sentence in err for base64 that is not. */
int hj_pack(msgpack_packer *pk, const json_t *v, char *err, size_t errlen);
/* Packs the key/value pairs of obj (json_object_size of them: the caller
 * counted them in its map header). */
int hj_pack_pairs(msgpack_packer *pk, const json_t *obj, char *err, size_t errlen);
/* A string of the JSON text of v with a newline (malloc'd), or NULL. */
char *hj_dump(const json_t *v, size_t *len);

#endif /* CUEQ_HTTP_JSON_H */
