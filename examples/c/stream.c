/*
 * Streams a completion through the edgegemma C library, as `edgegemma run` does on the
 * command line: the text goes to stdout as it is generated, one timing line to stderr.
 *
 *   stream -m MODEL -p PROMPT [-n N_PREDICT] [-t THREADS] [-c CTX] [--temp T] [--seed S]
 *          [--cache-type f16|q8_0|f32]
 *
 * Build (see examples/c/README.md):
 *   gcc -O2 -Iinclude examples/c/stream.c target/release/libedgegemma_c.a -lpthread -ldl -lm
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgegemma.h"

static bool on_token(void *user_data, uint32_t token, const char *piece, size_t piece_len) {
    (void)token;
    FILE *out = user_data;
    return fwrite(piece, 1, piece_len, out) == piece_len && fflush(out) == 0;
}

static int usage(const char *argv0) {
    fprintf(stderr,
            "usage: %s -m MODEL -p PROMPT [-n N_PREDICT] [-t THREADS] [-c CTX] [--temp T]\n"
            "          [--seed S] [--cache-type f16|q8_0|f32]\n",
            argv0);
    return 2;
}

int main(int argc, char **argv) {
    const char *model_path = NULL, *prompt = NULL;
    int n_predict = -1;
    eg_model_params params = eg_model_default_params();
    eg_sampling_params sampling = eg_sampling_default_params();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (v == NULL) return usage(argv[0]);
        if (!strcmp(a, "-m")) model_path = v;
        else if (!strcmp(a, "-p")) prompt = v;
        else if (!strcmp(a, "-n")) n_predict = atoi(v);
        else if (!strcmp(a, "-t")) params.n_threads = (uint32_t)atoi(v);
        else if (!strcmp(a, "-c")) params.n_ctx = (uint32_t)atoi(v);
        else if (!strcmp(a, "--temp")) sampling.temp = strtof(v, NULL);
        else if (!strcmp(a, "--seed")) sampling.seed = strtoull(v, NULL, 0);
        else if (!strcmp(a, "--cache-type")) {
            if (!strcmp(v, "f16")) params.cache_type = EG_CACHE_F16;
            else if (!strcmp(v, "q8_0")) params.cache_type = EG_CACHE_Q8_0;
            else if (!strcmp(v, "f32")) params.cache_type = EG_CACHE_F32;
            else return usage(argv[0]);
        } else return usage(argv[0]);
        i++;
    }
    if (model_path == NULL || prompt == NULL) return usage(argv[0]);

    eg_model *model = NULL;
    if (eg_model_load(model_path, &params, &model) != EG_OK) {
        fprintf(stderr, "stream: %s\n", eg_last_error());
        return 1;
    }
    eg_generate_result res;
    eg_status st = eg_generate(model, prompt, &sampling, n_predict, on_token, stdout, &res);
    if (st != EG_OK) {
        fprintf(stderr, "stream: %s\n", eg_last_error());
        eg_model_free(model);
        return 1;
    }
    putchar('\n');
    fprintf(stderr,
            "prompt %llu tok, %.1f ms | gen %llu tok, %.1f ms | stop %d | edgegemma %s, %s kernels\n",
            (unsigned long long)res.n_prompt_tokens, res.prompt_ms,
            (unsigned long long)res.n_generated, res.gen_ms, (int)res.stop, eg_version(),
            eg_kernel_path());
    eg_model_free(model);
    return 0;
}
