/* test_roundtrip.c - every event of the real CI runs (RTLOG_SHARED_DIR/data/real-runs) goes
 * through parse -> stored form -> render and comes back the same.
 *
 * Two checks per line:
 *  1. Values: the rendered line (with seq) and the input line are both read with jansson and
 *     compared field by field: same keys in the same order, strings byte for byte (embedded
 *     NUL, ESC, CR included), integers stay integers, reals stay reals with equal values,
 *     and "seq" is the one extra key, last.
 *  2. Bytes: log2events.py writes json.dumps(ensure_ascii=False, separators=(",", ":")),
 *     which is our canonical form (only `"`, `\` and controls escaped, \n \r \t \b \f short,
 *     others \u00XX lowercase hex; UTF-8 raw; reals in shortest round-trip form with ".0"
 *     for integral values). So render(mp, 0) must equal every input line byte for byte.
 *     A line that is not canonical would fail here; none of these files has one (checked
 *     when this test was written: every line of all six files compares equal).
 * Also checked on every record: rec.json == render(mp, 0, REDACT) and the seq invariant
 * storage relies on.
 */
#include "schema_test.h"

#include <dirent.h>
#include <jansson.h>

static void jv_equal(const json_t *a, const json_t *b, const char *where, size_t line)
{
    if (json_typeof(a) != json_typeof(b))
        fail_msg("line %zu %s: JSON type %d != %d", line, where, json_typeof(a), json_typeof(b));
    switch (json_typeof(a)) {
    case JSON_OBJECT: {
        assert_int_equal(json_object_size(a), json_object_size(b));
        void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
        while (ia) {
            assert_non_null(ib);
            size_t la = json_object_iter_key_len(ia), lb = json_object_iter_key_len(ib);
            if (la != lb || memcmp(json_object_iter_key(ia), json_object_iter_key(ib), la))
                fail_msg("line %zu %s: key order differs at \"%s\" vs \"%s\"", line, where,
                         json_object_iter_key(ia), json_object_iter_key(ib));
            jv_equal(json_object_iter_value(ia), json_object_iter_value(ib),
                     json_object_iter_key(ia), line);
            ia = json_object_iter_next((json_t *)a, ia);
            ib = json_object_iter_next((json_t *)b, ib);
        }
        assert_null(ib);
        break;
    }
    case JSON_ARRAY:
        assert_int_equal(json_array_size(a), json_array_size(b));
        for (size_t i = 0; i < json_array_size(a); i++)
            jv_equal(json_array_get(a, i), json_array_get(b, i), where, line);
        break;
    case JSON_STRING:
        if (json_string_length(a) != json_string_length(b) ||
            memcmp(json_string_value(a), json_string_value(b), json_string_length(a)))
            fail_msg("line %zu %s: string bytes differ", line, where);
        break;
    case JSON_INTEGER:
        assert_true(json_integer_value(a) == json_integer_value(b));
        break;
    case JSON_REAL:
        if (json_real_value(a) != json_real_value(b))
            fail_msg("line %zu %s: real %.17g != %.17g", line, where, json_real_value(a),
                     json_real_value(b));
        break;
    default:
        break;
    }
}

/* Input line vs rendered line with seq: the rendered object is the input plus "seq" last. */
static void compare_line(const char *in, size_t in_len, const char *out, size_t out_len,
                         uint64_t seq, size_t line)
{
    json_error_t je;
    int fl = JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL;
    json_t *a = json_loadb(in, in_len, fl, &je);
    if (!a)
        fail_msg("line %zu: input unreadable: %s", line, je.text);
    json_t *b = json_loadb(out, out_len, fl, &je);
    if (!b)
        fail_msg("line %zu: rendered line unreadable by jansson: %s", line, je.text);
    json_t *s = json_object_get(b, "seq");
    assert_non_null(s);
    assert_true(json_is_integer(s));
    assert_true((uint64_t)json_integer_value(s) == seq);
    /* "seq" must be the last key */
    void *it = json_object_iter(b), *last = NULL;
    for (; it; it = json_object_iter_next(b, it))
        last = it;
    assert_string_equal(json_object_iter_key(last), "seq");
    assert_int_equal(json_object_del(b, "seq"), 0);
    jv_equal(a, b, "(top)", line);
    json_decref(a);
    json_decref(b);
}

static void one_file(const char *path, size_t *events, size_t *bytes_identical)
{
    size_t len = 0;
    char *body = slurp(path, &len);
    if (!body)
        fail_msg("cannot read %s", path);

    rtlog_batch b = {0};
    parse_ok(RTLOG_FAM_RUN, 1, body, &b);

    const char *p = body, *end = body + len;
    size_t i = 0;
    rtlog_buf out = {0};
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le == p) {
            p = le + 1;
            continue;
        }
        if (i >= b.n)
            fail_msg("%s: more lines than records (%zu)", path, b.n);
        const rtlog_rec *r = &b.recs[i];
        size_t in_len = (size_t)(le - p);

        /* rec.json is render(mp, 0, REDACT) */
        rtlog_buf_clear(&out);
        assert_int_equal(rtlog_schema_render(r->mp, r->mp_len, 0, RTLOG_JSON_REDACT, &out), 0);
        assert_int_equal(out.len, r->json_len);
        assert_memory_equal(out.p, r->json, out.len);

        /* canonical input: byte identity */
        if (out.len == in_len && memcmp(out.p, p, in_len) == 0)
            (*bytes_identical)++;
        else
            fail_msg("%s line %zu: render(mp,0) differs from the input bytes\n in:  %.300s\n "
                     "out: %.300s",
                     path, i + 1, p, out.p);

        /* with seq: values equal, seq last, and the invariant storage relies on */
        uint64_t seq = i + 1;
        rtlog_buf_clear(&out);
        assert_int_equal(rtlog_schema_render(r->mp, r->mp_len, seq, RTLOG_JSON_REDACT, &out), 0);
        char tail[32];
        int tn = snprintf(tail, sizeof tail, ",\"seq\":%llu}", (unsigned long long)seq);
        assert_int_equal(out.len, r->json_len - 1 + (size_t)tn);
        assert_memory_equal(out.p, r->json, r->json_len - 1);
        assert_memory_equal(out.p + r->json_len - 1, tail, (size_t)tn);
        compare_line(p, in_len, out.p, out.len, seq, i + 1);

        /* the viewer's filter field reads straight from the stored form */
        const char *v;
        size_t vl;
        const char *want_node = strstr(r->type, "step_") == r->type ? "nodeId" : NULL;
        if (want_node)
            assert_int_equal(rtlog_schema_rec_field_str(r->mp, r->mp_len, "nodeId", &v, &vl),
                             RTLOG_OK);
        assert_int_equal(rtlog_schema_rec_type(r->mp, r->mp_len, &v, &vl), RTLOG_OK);
        assert_int_equal(vl, strlen(r->type));
        assert_memory_equal(v, r->type, vl);

        i++;
        p = le + 1;
    }
    assert_int_equal(i, b.n);
    /* the last event of every run seals it */
    assert_true(b.n > 0);
    assert_string_equal(b.recs[b.n - 1].type, "workflow_completed");
    assert_true(b.recs[b.n - 1].flags & RTLOG_REC_SEALS);
    assert_true(b.recs[b.n - 1].status[0] != '\0');
    *events += b.n;
    rtlog_buf_free(&out);
    rtlog_batch_free(&b);
    free(body);
}

static void real_runs(void **state)
{
    (void)state;
    const char *dir = RTLOG_SHARED_DIR "/data/real-runs";
    DIR *d = opendir(dir);
    if (!d)
        fail_msg("cannot open %s", dir);
    size_t files = 0, events = 0, same = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (n < 7 || strcmp(e->d_name + n - 7, ".ndjson") != 0)
            continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        one_file(path, &events, &same);
        files++;
    }
    closedir(d);
    printf("real runs: %zu files, %zu events, %zu byte-identical\n", files, events, same);
    assert_true(files >= 6);
    assert_int_equal(same, events);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(real_runs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
