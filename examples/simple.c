/* The smallest edgellm program in C: load a GGUF model, generate greedily after a prompt and
 * stream the text to stdout (what `edgellm run -m MODEL -p PROMPT -n N --temp 0` prints).
 *
 *   cc simple.c $(pkg-config --cflags --libs edgellm) -o simple
 *   ./simple stories260K.gguf "Once upon a time" 32
 */
#include <edgellm/edgellm.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool print_piece(edgellm_token token, const char* piece, size_t len, void* user_data) {
    (void)token;
    (void)user_data;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    return true;
}

static int die(const char* what, edgellm_status s) {
    fprintf(stderr, "simple: %s failed (%s): %s\n", what, edgellm_status_name(s), edgellm_last_error());
    return 1;
}

int main(int argc, char** argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL.gguf PROMPT [N_PREDICT]\n", argv[0]);
        return 2;
    }
    const int n_predict = argc > 3 ? atoi(argv[3]) : 32;
    if (edgellm_api_version() != EDGELLM_API_VERSION) {
        fprintf(stderr, "simple: built for API %d, library has %d\n", EDGELLM_API_VERSION, edgellm_api_version());
        return 1;
    }

    edgellm_model* model = NULL;
    edgellm_status s = edgellm_model_load(argv[1], NULL, &model);
    if (s != EDGELLM_OK) return die("loading the model", s);

    edgellm_context* ctx = NULL;
    edgellm_context_params cp = edgellm_context_default_params();
    s = edgellm_context_create(model, &cp, &ctx);
    if (s != EDGELLM_OK) {
        edgellm_model_free(model);
        return die("creating the context", s);
    }

    /* Ask for the token count first, then tokenize into a buffer of that size. */
    size_t n_prompt = 0;
    s = edgellm_tokenize(model, argv[2], strlen(argv[2]), true, false, NULL, 0, &n_prompt);
    edgellm_token* prompt = malloc(sizeof(edgellm_token) * (n_prompt ? n_prompt : 1));
    if (s == EDGELLM_ERR_BUFFER_TOO_SMALL || s == EDGELLM_OK)
        s = edgellm_tokenize(model, argv[2], strlen(argv[2]), true, false, prompt, n_prompt, &n_prompt);
    if (s == EDGELLM_OK) {
        edgellm_generate_params gp = edgellm_generate_default_params();
        gp.n_predict = n_predict;
        gp.sampling.temperature = 0.0f; /* greedy */
        gp.on_token = print_piece;
        edgellm_generate_result r;
        s = edgellm_generate(ctx, prompt, n_prompt, &gp, &r);
        if (s == EDGELLM_OK) {
            printf("\n");
            fprintf(stderr, "simple: %lld prompt tokens, %lld generated, %.1f tokens/s\n", (long long)r.n_prompt,
                    (long long)r.n_gen, r.decode_tokens_per_s);
        }
    }
    free(prompt);
    edgellm_context_free(ctx);
    edgellm_model_free(model);
    return s == EDGELLM_OK ? 0 : die("generating", s);
}
