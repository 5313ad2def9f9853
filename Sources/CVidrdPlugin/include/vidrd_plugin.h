/*
 * vidrd_plugin.h — the C ABI of vidrd noise-strategy plugins.
 *
 * A plugin is a shared library exporting
 *
 *     const vidrd_plugin *vidrd_plugin_entry(void);
 *
 * returning a static description whose abi_version is VIDRD_PLUGIN_ABI_VERSION. vidrd dlopen()s the
 * libraries listed in plugins.conf (`library PATH`), refuses any other ABI version, and registers
 * every strategy by name. Names: 1-64 characters of a-z, 0-9, '_' and '-', starting with a letter,
 * unique across built-ins and plugins.
 *
 * Lifetime and threading: create() is called once per stream (session) with the resolved
 * parameters; every other callback gets that state; destroy() when the stream ends. One stream's
 * callbacks never run concurrently, but different streams may run on different threads at once,
 * so keep all mutable state in the per-stream state.
 *
 * Tensors are fp32, batch 1, laid out [C][N][h][w] (channels, frames, rows, columns), i.e. the
 * diffusers latent layout without the batch axis. Frame f of channel c starts at (c*N + f)*h*w.
 *
 * create() is required (a descriptor without it is rejected when the library is loaded); every
 * other callback is optional (NULL = does nothing). Callbacks that return int return 0 on success;
 * on failure they return nonzero and write a NUL-terminated message of at most err_size bytes to err. A strategy may
 * write only what its declared claims allow (noise_claims, latent_override_frames); vidrd checks
 * the `written` flags against them and fails the clip otherwise. See docs/PLUGINS.md.
 */
#ifndef VIDRD_PLUGIN_H
#define VIDRD_PLUGIN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VIDRD_PLUGIN_ABI_VERSION 1u
#define VIDRD_PLUGIN_ENTRY_SYMBOL "vidrd_plugin_entry"

typedef enum vidrd_param_kind {
    VIDRD_PARAM_DOUBLE = 0,
    VIDRD_PARAM_INT = 1,
    VIDRD_PARAM_BOOL = 2,
    VIDRD_PARAM_STRING = 3
} vidrd_param_kind;

/* A parameter value; only the field of `kind` is meaningful. */
typedef struct vidrd_param_value {
    int32_t kind;              /* vidrd_param_kind */
    int32_t bool_value;        /* 0 or 1 */
    int64_t int_value;
    double double_value;
    const char *string_value;  /* UTF-8, NUL-terminated; valid during the call only */
} vidrd_param_value;

typedef struct vidrd_param_desc {
    const char *name;
    int32_t kind;                     /* vidrd_param_kind */
    vidrd_param_value default_value;  /* its kind must equal `kind` */
    const char *help;
    int32_t has_minimum, has_maximum; /* numbers only: inclusive bounds */
    double minimum, maximum;
} vidrd_param_desc;

typedef enum vidrd_layer { VIDRD_LAYER_BASE = 0, VIDRD_LAYER_REFINE = 1 } vidrd_layer;
typedef enum vidrd_clips { VIDRD_CLIPS_FIRST = 1, VIDRD_CLIPS_CONTINUING = 2, VIDRD_CLIPS_ALL = 3 } vidrd_clips;
/* Frame sets: all N, the M prompt frames 0..M-1, or the new frames M..N-1. */
typedef enum vidrd_frames {
    VIDRD_FRAMES_NONE = 0,
    VIDRD_FRAMES_ALL = 1,
    VIDRD_FRAMES_PROMPT = 2,
    VIDRD_FRAMES_NEW = 3
} vidrd_frames;

/* "I write the initial noise of these frames of these clips in this layer." */
typedef struct vidrd_noise_claim {
    int32_t layer;   /* vidrd_layer */
    int32_t clips;   /* vidrd_clips */
    int32_t frames;  /* vidrd_frames */
} vidrd_noise_claim;

/* The clip being generated. Pointers are valid during the call only. */
typedef struct vidrd_clip_info {
    int64_t index;                   /* 0 = first clip of the stream */
    int32_t frames;                  /* N */
    int32_t channels;                /* C */
    int32_t height, width;           /* h, w (latent) */
    int32_t prompt_frames;           /* M */
    int32_t steps;                   /* S */
    const float *fresh;              /* this clip's standard-normal draw, [C][N][h][w] */
    const float *previous_noise;     /* previous clip's initial noise, NULL for clip 0 */
    const float *previous_latents;   /* previous clip's final latents, NULL for clip 0 */
} vidrd_clip_info;

typedef struct vidrd_step_info {
    int32_t index;              /* 0 = first, noisiest step */
    int32_t total;              /* S */
    int32_t timestep;           /* the scheduler's uniform timestep */
    int32_t previous_timestep;  /* the one DDIM steps to (negative: past the end) */
} vidrd_step_info;

typedef struct vidrd_strategy_desc {
    const char *name;
    const char *summary;
    const vidrd_param_desc *params;
    int32_t param_count;
    const vidrd_noise_claim *noise_claims;
    int32_t noise_claim_count;
    int32_t latent_override_frames;  /* vidrd_frames; NONE = never overrides latents */
    int32_t provides_timesteps;      /* nonzero: frame_timesteps is called */
    int32_t decides_emission;        /* nonzero: emitted_frames is called */

    /* Required. values[i] is the resolved value of params[i]. Returns the per-stream state (may
       be any non-NULL pointer), or NULL with err filled. */
    void *(*create)(const vidrd_param_value *values, char *err, size_t err_size);
    void (*destroy)(void *state);

    /* Initial noise, called once per layer the strategy claims for this clip. `noise` holds the
       draft so far ([C][N][h][w], in/out); set written[f] = 1 for every frame f you write. */
    int (*initial_noise)(void *state, const vidrd_clip_info *clip, int32_t layer,
                         float *noise, uint8_t *written, char *err, size_t err_size);
    /* Per-frame timesteps: fill timesteps[N] and previous[N] and set *used = 1, or leave *used = 0
       for the uniform schedule. */
    int (*frame_timesteps)(void *state, const vidrd_clip_info *clip, const vidrd_step_info *step,
                           int32_t *timesteps, int32_t *previous, int32_t *used, char *err, size_t err_size);
    /* Before the U-Net call of a step: latents in/out; set written[f] = 1 for frames you replace. */
    int (*override_latents)(void *state, const vidrd_clip_info *clip, const vidrd_step_info *step,
                            float *latents, uint8_t *written, char *err, size_t err_size);
    /* After a step: the U-Net's input, the guided noise prediction, the updated latents. */
    int (*observe)(void *state, const vidrd_clip_info *clip, const vidrd_step_info *step,
                   const float *input, const float *noise_prediction, const float *output,
                   char *err, size_t err_size);
    /* Emitted frames: write up to N strictly increasing indices to frames, their number to *count,
       and set *used = 1; leave *used = 0 for the stream's emission mode. */
    int (*emitted_frames)(void *state, const vidrd_clip_info *clip, const float *latents,
                          int32_t *frames, int32_t *count, int32_t *used, char *err, size_t err_size);
    /* After the clip is emitted. */
    int (*clip_finished)(void *state, const vidrd_clip_info *clip, const float *initial_noise,
                         const float *latents, char *err, size_t err_size);
} vidrd_strategy_desc;

typedef struct vidrd_plugin {
    uint32_t abi_version;  /* VIDRD_PLUGIN_ABI_VERSION */
    uint32_t strategy_count;
    const vidrd_strategy_desc *strategies;
} vidrd_plugin;

typedef const vidrd_plugin *(*vidrd_plugin_entry_fn)(void);

#ifdef __cplusplus
}
#endif

#endif /* VIDRD_PLUGIN_H */
