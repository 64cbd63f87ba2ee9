/*
 * Exercises every function of the edgegemma C API on one model and checks what it promises:
 * errors with messages for bad arguments (NULL pointers, small buffers, bad paths), tokenize ->
 * detokenize round trip, the chat prompt, streaming == token-level generation, logits after a
 * restore bit-identical to the original conversation's (buffer and file), cancel from another
 * thread, a callback stop, calls from inside the callback refused instead of deadlocking.
 *
 *   api_check MODEL.gguf STATE_FILE_PATH
 *
 * Prints one line per check; exits 1 at the first failure. Run by tools/aarch64-e2e.sh on
 * x86_64 and under qemu-aarch64.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgegemma.h"

static int checks = 0;

#define CHECK(cond, ...)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                    \
            fprintf(stderr, " (last error: %s)\n", eg_last_error());        \
            exit(1);                                                         \
        }                                                                    \
        checks++;                                                            \
    } while (0)

/* Collects generated tokens and text. */
typedef struct {
    uint32_t tokens[256];
    size_t n;
    char text[4096];
    size_t text_len;
    eg_model *model;
    /* For the cancel check. */
    size_t cancel_after;
    atomic_int reached;
    atomic_int cancelled;
    /* For the callback-stop and re-entrancy checks. */
    size_t stop_after;
    eg_status reentrant_status;
} collector;

static bool collect(void *user_data, uint32_t token, const char *piece, size_t piece_len) {
    collector *c = user_data;
    if (piece[piece_len] != '\0') return false; /* the piece must be NUL-terminated */
    if (c->text_len + piece_len < sizeof c->text) {
        memcpy(c->text + c->text_len, piece, piece_len);
        c->text_len += piece_len;
        c->text[c->text_len] = '\0';
    }
    if (token == EG_TOKEN_NONE) return true;
    if (c->n < 256) c->tokens[c->n++] = token;
    if (c->model != NULL && c->n == 1) {
        eg_model_info info;
        c->reentrant_status = eg_model_get_info(c->model, &info);
    }
    if (c->cancel_after && c->n == c->cancel_after) {
        atomic_store(&c->reached, 1);
        while (!atomic_load(&c->cancelled)) {
        }
    }
    return !(c->stop_after && c->n == c->stop_after);
}

static void *canceller(void *arg) {
    collector *c = arg;
    while (!atomic_load(&c->reached)) {
    }
    eg_cancel(c->model);
    atomic_store(&c->cancelled, 1);
    return NULL;
}

static eg_sampling_params greedy(void) {
    eg_sampling_params s = eg_sampling_default_params();
    s.temp = 0.0f;
    return s;
}

/* Copies the current next-token logits into a fresh buffer. */
static float *logits_copy(eg_model *m, size_t *n) {
    const float *l = NULL;
    CHECK(eg_get_logits(m, &l, n) == EG_OK && l != NULL && *n > 0, "eg_get_logits");
    float *out = malloc(*n * sizeof *out);
    memcpy(out, l, *n * sizeof *out);
    return out;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s MODEL.gguf STATE_FILE_PATH\n", argv[0]);
        return 2;
    }
    const char *path = argv[1], *state_path = argv[2];
    printf("edgegemma %s, kernels %s\n", eg_version(), eg_kernel_path());
    CHECK(strlen(eg_version()) > 0, "version");
    CHECK(eg_kernel_path() != NULL, "kernel path");

    /* Loading: errors come back with a message, *out is NULL. */
    eg_model *m = (eg_model *)1;
    CHECK(eg_model_load("/nonexistent/model.gguf", NULL, &m) == EG_ERR_MODEL && m == NULL,
          "a missing file is EG_ERR_MODEL");
    CHECK(strstr(eg_last_error(), "/nonexistent/model.gguf") != NULL, "message names the file");
    CHECK(eg_model_load(NULL, NULL, &m) == EG_ERR_NULL_ARGUMENT, "NULL path");
    CHECK(eg_model_load(path, NULL, NULL) == EG_ERR_NULL_ARGUMENT, "NULL out");
    eg_model_params params = eg_model_default_params();
    CHECK(params.n_ctx == 4096 && params.cache_type == EG_CACHE_F16, "default params");
    params.cache_type = 7;
    CHECK(eg_model_load(path, &params, &m) == EG_ERR_INVALID_ARGUMENT, "bad cache type");
    params.cache_type = EG_CACHE_F32;
    params.n_ctx = 128;
    params.n_threads = 2;
    CHECK(eg_model_load(path, &params, &m) == EG_OK && m != NULL, "load");
    eg_model_info info;
    CHECK(eg_model_get_info(m, &info) == EG_OK, "info");
    /* RecurrentGemma's context is unbounded (a fixed-size state). */
    bool bounded = info.n_ctx != UINT64_MAX;
    CHECK((info.n_ctx == 128 || !bounded) && info.n_past == 0 && info.n_threads == 2 && info.n_vocab > 0,
          "info: ctx %llu past %llu threads %u", (unsigned long long)info.n_ctx,
          (unsigned long long)info.n_past, info.n_threads);
    printf("model: %s, %llu logits, %llu tokens\n", info.arch, (unsigned long long)info.n_vocab,
           (unsigned long long)info.n_tokens_vocab);
    CHECK(eg_model_get_info(NULL, &info) == EG_ERR_NULL_ARGUMENT, "NULL model");
    CHECK(eg_model_get_info(m, NULL) == EG_ERR_NULL_ARGUMENT, "NULL info");

    /* Tokenize / detokenize, with the size query. */
    const char *text = "Hello world, once upon a time";
    size_t n_tok = 0;
    CHECK(eg_tokenize(m, text, true, true, NULL, 0, &n_tok) == EG_ERR_BUFFER_TOO_SMALL &&
              n_tok > 1,
          "size query");
    uint32_t toks[64];
    size_t n2 = 0;
    CHECK(eg_tokenize(m, text, true, true, toks, 64, &n2) == EG_OK && n2 == n_tok, "tokenize");
    CHECK(toks[0] == info.bos_token, "BOS first");
    char buf[512];
    size_t len = 0;
    CHECK(eg_detokenize(m, toks + 1, n2 - 1, false, buf, 4, &len) == EG_ERR_BUFFER_TOO_SMALL &&
              len > 4,
          "small text buffer");
    CHECK(eg_detokenize(m, toks + 1, n2 - 1, false, buf, sizeof buf, &len) == EG_OK, "detok");
    /* SentencePiece adds a space in front. */
    CHECK(strcmp(buf, text) == 0 || (buf[0] == ' ' && strcmp(buf + 1, text) == 0),
          "round trip gave \"%s\"", buf);
    CHECK(eg_tokenize(m, NULL, true, true, toks, 64, &n2) == EG_ERR_NULL_ARGUMENT, "NULL text");
    uint32_t bad = 0xffffff;
    CHECK(eg_detokenize(m, &bad, 1, false, buf, sizeof buf, &len) == EG_ERR_INVALID_ARGUMENT,
          "token id out of range");

    /* Chat prompt. */
    eg_chat_message msgs[2] = {{"system", "Be brief."}, {"user", "Hi"}};
    CHECK(eg_chat_apply_template(m, msgs, 2, true, buf, sizeof buf, &len) == EG_OK, "chat");
    CHECK(strstr(buf, "<start_of_turn>user\n") != NULL &&
              strstr(buf, "Hi<end_of_turn>\n<start_of_turn>model\n") != NULL,
          "chat prompt: %s", buf);
    eg_chat_message bad_msg = {"user", NULL};
    CHECK(eg_chat_apply_template(m, &bad_msg, 1, true, buf, sizeof buf, &len) ==
              EG_ERR_NULL_ARGUMENT,
          "NULL content");

    /* No logits before anything was fed. */
    const float *lp;
    size_t nv;
    CHECK(eg_get_logits(m, &lp, &nv) == EG_ERR_STATE, "no logits yet");

    /* Streaming from text == generation from the same tokens. */
    eg_sampling_params s = greedy();
    collector a = {0};
    eg_generate_result r;
    a.model = m;
    CHECK(eg_generate(m, "Once upon a time", &s, 8, collect, &a, &r) == EG_OK, "generate");
    CHECK(r.stop == EG_STOP_BUDGET && r.n_generated == 8 && a.n == 8, "budget stop");
    CHECK(a.reentrant_status == EG_ERR_STATE, "a call from inside the callback is refused");
    CHECK(eg_model_get_info(m, &info) == EG_OK && info.n_past == r.n_prompt_tokens + 8,
          "the context holds prompt + generated (%llu)", (unsigned long long)info.n_past);
    CHECK(eg_reset(m) == EG_OK, "reset");
    CHECK(eg_tokenize(m, "Once upon a time", true, true, toks, 64, &n2) == EG_OK, "tokenize");
    collector b = {0};
    CHECK(eg_generate_tokens(m, toks, n2, &s, 8, collect, &b, &r) == EG_OK, "generate tokens");
    CHECK(b.n == 8 && memcmp(a.tokens, b.tokens, sizeof a.tokens[0] * 8) == 0 &&
              strcmp(a.text, b.text) == 0,
          "same tokens and text");
    CHECK(eg_generate(m, NULL, &s, 8, collect, &b, &r) == EG_ERR_NULL_ARGUMENT, "NULL prompt");
    s.top_p = 2.0f;
    CHECK(eg_generate(m, "x", &s, 8, collect, &b, &r) == EG_ERR_INVALID_ARGUMENT, "bad top_p");
    s = greedy();

    /* Save, continue, restore, continue again: identical logits and tokens. */
    size_t need = 0;
    CHECK(eg_state_save(m, NULL, 0, &need) == EG_ERR_BUFFER_TOO_SMALL && need > 0, "size");
    unsigned char *state = malloc(need);
    size_t got = 0;
    CHECK(eg_state_save(m, state, need, &got) == EG_OK && got == need, "save");
    CHECK(eg_state_save_file(m, state_path) == EG_OK, "save to file");
    size_t n_first = 0;
    float *first = logits_copy(m, &n_first);
    collector c1 = {0};
    CHECK(eg_generate(m, " and then", &s, 6, collect, &c1, &r) == EG_OK, "continue");
    CHECK(eg_state_load(m, state, need) == EG_OK, "restore");
    CHECK(eg_get_logits(m, &lp, &nv) == EG_ERR_STATE, "no logits right after a restore");
    collector c2 = {0};
    CHECK(eg_generate(m, " and then", &s, 6, collect, &c2, &r) == EG_OK, "continue again");
    CHECK(c1.n == c2.n && memcmp(c1.tokens, c2.tokens, c1.n * sizeof c1.tokens[0]) == 0,
          "same continuation after a restore from a buffer");
    CHECK(eg_state_load_file(m, state_path) == EG_OK, "restore from file");
    /* Feed the same text after each restore: the logits must be equal to the bit. */
    CHECK(eg_generate(m, " and then", &s, 0, NULL, NULL, &r) == EG_OK && r.n_generated == 0,
          "n_predict 0 only feeds the prompt");
    size_t n_third = 0;
    float *third = logits_copy(m, &n_third);
    CHECK(eg_state_load(m, state, need) == EG_OK, "restore again");
    CHECK(eg_generate(m, " and then", &s, 0, NULL, NULL, &r) == EG_OK, "feed again");
    size_t n_fourth = 0;
    float *fourth = logits_copy(m, &n_fourth);
    CHECK(n_third == n_fourth && memcmp(third, fourth, n_third * sizeof *third) == 0,
          "bit-identical logits after restores from a file and a buffer");
    CHECK(n_first == n_third && memcmp(first, third, n_first * sizeof *first) != 0,
          "the logits moved on after feeding more text");
    state[0] ^= 0xff;
    CHECK(eg_state_load(m, state, need) == EG_ERR_BAD_STATE, "damaged state refused");
    CHECK(eg_state_load(m, state, 3) == EG_ERR_BAD_STATE, "truncated state refused");
    CHECK(eg_state_load_file(m, "/nonexistent/state") == EG_ERR_IO, "missing state file");

    /* Cancel from another thread: the token after the cancel is not delivered. */
    CHECK(eg_reset(m) == EG_OK, "reset");
    collector d = {0};
    d.cancel_after = 5;
    d.model = m;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, canceller, &d) == 0, "thread");
    CHECK(eg_generate(m, "Once upon a time", &s, 50, collect, &d, &r) == EG_OK, "generate");
    pthread_join(th, NULL);
    CHECK(r.stop == EG_STOP_CANCELLED && r.n_generated == 5 && d.n == 5,
          "cancelled after 5 (stop %d, %llu)", (int)r.stop, (unsigned long long)r.n_generated);
    CHECK(eg_cancel(NULL) == EG_ERR_NULL_ARGUMENT, "NULL cancel");

    /* The callback stops, and a later generation continues after its last token. */
    CHECK(eg_reset(m) == EG_OK, "reset");
    collector e = {0};
    e.stop_after = 3;
    CHECK(eg_generate(m, "Once upon a time", &s, 50, collect, &e, &r) == EG_OK, "generate");
    CHECK(r.stop == EG_STOP_CALLBACK && e.n == 3, "callback stop");
    collector f = {0};
    CHECK(eg_generate(m, "", &s, 5, collect, &f, &r) == EG_OK && f.n == 5, "continue");
    CHECK(memcmp(f.tokens, a.tokens + 3, 5 * sizeof f.tokens[0]) == 0,
          "continuing gives the same tokens as one generation");

    /* A prompt longer than the context is refused, the conversation kept. */
    CHECK(eg_reset(m) == EG_OK, "reset");
    if (bounded) {
    uint32_t many[200];
    for (int i = 0; i < 200; i++) many[i] = toks[1];
    CHECK(eg_eval(m, many, 200) == EG_ERR_CONTEXT_FULL, "too long for the context");
    CHECK(eg_eval(m, many, 120) == EG_OK, "eval");
    collector g = {0};
    CHECK(eg_generate_tokens(m, NULL, 0, &s, -1, collect, &g, &r) == EG_OK, "to the end");
    CHECK(r.stop == EG_STOP_CONTEXT_FULL || r.stop == EG_STOP_END_OF_GENERATION,
          "stops at the context's end (%d)", (int)r.stop);
    }

    eg_model_free(m);
    eg_model_free(NULL);
    free(state);
    free(first);
    free(third);
    free(fourth);
    printf("api_check: %d checks passed\n", checks);
    return 0;
}
