/*
 * An example vidrd plugin in C: the strategy "example_shift".
 *
 * For clips >= 1 the initial noise of frame j is the previous clip's initial noise of frame
 * j + shift when that exists, else this clip's fresh draw of frame j (a FIFO-like queue of noise,
 * the opposite of FNR's reversal). It also counts the denoising steps it observes and fails the
 * clip if the count is not S, to show per-stream state and error reporting.
 *
 * Built by SwiftPM as the dynamic library product VidrdExamplePlugin; load it with
 *     library .build/release/libVidrdExamplePlugin.so
 * in plugins.conf.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vidrd_plugin.h"

typedef struct shift_state {
    int64_t shift;
    int64_t steps_seen;
    int64_t clips_finished;
} shift_state;

static void *shift_create(const vidrd_param_value *values, char *err, size_t err_size) {
    if (values[0].kind != VIDRD_PARAM_INT || values[0].int_value < 0) {
        snprintf(err, err_size, "shift must be a non-negative int");
        return NULL;
    }
    shift_state *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    s->shift = values[0].int_value;
    return s;
}

static void shift_destroy(void *state) { free(state); }

static int shift_initial_noise(void *state, const vidrd_clip_info *clip, int32_t layer, float *noise,
                               uint8_t *written, char *err, size_t err_size) {
    shift_state *s = state;
    (void)layer;
    if (clip->previous_noise == NULL) {
        snprintf(err, err_size, "called for clip %lld without a previous clip", (long long)clip->index);
        return 1;
    }
    const int64_t n = clip->frames, plane = (int64_t)clip->height * clip->width;
    for (int64_t j = 0; j < n; j++) {
        const float *src = j + s->shift < n ? clip->previous_noise : clip->fresh;
        const int64_t from = j + s->shift < n ? j + s->shift : j;
        for (int64_t c = 0; c < clip->channels; c++)
            memcpy(noise + (c * n + j) * plane, src + (c * n + from) * plane, (size_t)plane * sizeof(float));
        written[j] = 1;
    }
    s->steps_seen = 0;
    return 0;
}

static int shift_observe(void *state, const vidrd_clip_info *clip, const vidrd_step_info *step, const float *input,
                         const float *noise_prediction, const float *output, char *err, size_t err_size) {
    shift_state *s = state;
    (void)clip; (void)input; (void)noise_prediction; (void)output; (void)err; (void)err_size;
    if (step->index == 0) s->steps_seen = 0;
    s->steps_seen++;
    return 0;
}

static int shift_clip_finished(void *state, const vidrd_clip_info *clip, const float *initial_noise,
                               const float *latents, char *err, size_t err_size) {
    shift_state *s = state;
    (void)initial_noise; (void)latents;
    if (s->steps_seen != clip->steps) {
        snprintf(err, err_size, "observed %lld steps, expected %d", (long long)s->steps_seen, clip->steps);
        return 1;
    }
    s->clips_finished++;
    return 0;
}

static const vidrd_param_desc shift_params[] = {
    {.name = "shift", .kind = VIDRD_PARAM_INT, .default_value = {.kind = VIDRD_PARAM_INT, .int_value = 1},
     .help = "frames the previous clip's noise moves forward", .has_minimum = 1, .minimum = 0},
};

static const vidrd_noise_claim shift_claims[] = {
    {.layer = VIDRD_LAYER_BASE, .clips = VIDRD_CLIPS_CONTINUING, .frames = VIDRD_FRAMES_ALL},
};

/*
 * "example_probe": exercises the other callbacks. Per-frame timesteps t_f = max(t - 20 f, 0)
 * (previous: max(prev - 20 f, -1)); at step 0 of clips >= 1 the prompt frames j < M are replaced by
 * the previous clip's *final* latents of frame N-1-j; emits only the last frame of each clip.
 */
static void *probe_create(const vidrd_param_value *values, char *err, size_t err_size) {
    (void)values; (void)err; (void)err_size;
    static int dummy;
    return &dummy;  /* stateless: any non-NULL pointer */
}

static int probe_timesteps(void *state, const vidrd_clip_info *clip, const vidrd_step_info *step, int32_t *timesteps,
                           int32_t *previous, int32_t *used, char *err, size_t err_size) {
    (void)state; (void)err; (void)err_size;
    for (int32_t f = 0; f < clip->frames; f++) {
        int32_t t = step->timestep - 20 * f, p = step->previous_timestep - 20 * f;
        timesteps[f] = t < 0 ? 0 : t;
        previous[f] = p < -1 ? -1 : p;
    }
    *used = 1;
    return 0;
}

static int probe_override(void *state, const vidrd_clip_info *clip, const vidrd_step_info *step, float *latents,
                          uint8_t *written, char *err, size_t err_size) {
    (void)state; (void)err; (void)err_size;
    if (step->index != 0 || clip->previous_latents == NULL) return 0;
    const int64_t n = clip->frames, plane = (int64_t)clip->height * clip->width;
    for (int64_t j = 0; j < clip->prompt_frames; j++) {
        for (int64_t c = 0; c < clip->channels; c++)
            memcpy(latents + (c * n + j) * plane, clip->previous_latents + (c * n + (n - 1 - j)) * plane,
                   (size_t)plane * sizeof(float));
        written[j] = 1;
    }
    return 0;
}

static int probe_emitted(void *state, const vidrd_clip_info *clip, const float *latents, int32_t *frames, int32_t *count,
                         int32_t *used, char *err, size_t err_size) {
    (void)state; (void)latents; (void)err; (void)err_size;
    frames[0] = clip->frames - 1;
    *count = 1;
    *used = 1;
    return 0;
}

static const vidrd_strategy_desc strategies[] = {
    {
        .name = "example_shift",
        .summary = "example C plugin: clip i's noise of frame j = clip i-1's noise of frame j+shift (fresh past the end)",
        .params = shift_params,
        .param_count = 1,
        .noise_claims = shift_claims,
        .noise_claim_count = 1,
        .latent_override_frames = VIDRD_FRAMES_NONE,
        .create = shift_create,
        .destroy = shift_destroy,
        .initial_noise = shift_initial_noise,
        .observe = shift_observe,
        .clip_finished = shift_clip_finished,
    },
    {
        .name = "example_probe",
        .summary = "example C plugin: per-frame timesteps, prompt-frame latent echo at step 0, emits the last frame",
        .latent_override_frames = VIDRD_FRAMES_PROMPT,
        .provides_timesteps = 1,
        .decides_emission = 1,
        .create = probe_create,
        .frame_timesteps = probe_timesteps,
        .override_latents = probe_override,
        .emitted_frames = probe_emitted,
    },
};

static const vidrd_plugin plugin = {
    .abi_version = VIDRD_PLUGIN_ABI_VERSION,
    .strategy_count = sizeof strategies / sizeof strategies[0],
    .strategies = strategies,
};

const vidrd_plugin *vidrd_plugin_entry(void) { return &plugin; }
