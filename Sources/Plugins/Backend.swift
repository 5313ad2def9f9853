import VidrdRuntime

/// What a `VideoStream` needs from a model: geometry, a hooked denoising loop, and decoding.
/// `TextToVideoPipeline` is the real one; tests plug in toy denoisers through `ToyBackend`-style
/// conformances that run the same sampler (`TextToVideoPipeline.sample`) over a cheap model.
public protocol VideoBackend: Sendable {
    func geometry(frames: Int, height: Int?, width: Int?) throws -> TextToVideoPipeline.Geometry
    /// The scheduler of `kind` for this backend's model (nil: the model's own).
    func scheduler(_ kind: SchedulerKind?) throws -> DiffusionScheduler
    /// Prepares (and may cache) the text conditioning; called before each clip.
    mutating func prepare(prompt: String, negativePrompt: String, guidanceScale: Float) throws
    func denoise<H: DenoiseHooks>(initialNoise: Tensor, scheduler: DiffusionScheduler, steps: Int, guidanceScale: Float,
                                  hooks: inout H, progress: (TextToVideoPipeline.StepProgress) -> Bool) throws -> Tensor
    /// Latents `[1, C, N, h, w]` → RGB `[N, H, W, 3]` in [0, 1].
    func decode(latents: Tensor, temporal: Bool) throws -> Tensor
}

/// Where a stream's U-Net evaluations and VAE decodes run. Without one, a stream computes on the
/// calling thread; the daemon's step executor takes each call as a step of its own, to interleave
/// the steps of many sessions fairly and batch compatible ones into one U-Net call. An executor
/// must return exactly what the direct call would: batching may not change a frame.
public protocol ModelExecutor: Sendable {
    /// The U-Net's noise prediction for `input` (`[B, C, F, h, w]`, B = 2 under guidance).
    func predictNoise(_ input: Tensor, timesteps: [Float], conditioning: UNet3DConditionModel.TextConditioning,
                      pipeline: TextToVideoPipeline) throws -> Tensor
    /// `TextToVideoPipeline.decode(latents:temporal:)`.
    func decode(latents: Tensor, temporal: Bool, pipeline: TextToVideoPipeline) throws -> Tensor
}

/// `TextToVideoPipeline` as a stream backend (the prompt is encoded once per stream).
public struct PipelineBackend: VideoBackend {
    public let pipeline: TextToVideoPipeline
    var embedding: TextToVideoPipeline.PromptEmbedding?
    var embeddedFor: (String, String, Float)?
    /// Where the model calls run; nil: here, on the calling thread.
    public var executor: (any ModelExecutor)?

    public init(_ pipeline: TextToVideoPipeline) { self.pipeline = pipeline }

    public func scheduler(_ kind: SchedulerKind?) throws -> DiffusionScheduler { try pipeline.scheduler(kind) }

    public func geometry(frames: Int, height: Int?, width: Int?) throws -> TextToVideoPipeline.Geometry {
        var c = TextToVideoPipeline.Configuration(prompt: "")
        c.frames = frames
        c.height = height
        c.width = width
        return try pipeline.geometry(for: c)
    }

    public mutating func prepare(prompt: String, negativePrompt: String, guidanceScale: Float) throws {
        if let e = embeddedFor, e == (prompt, negativePrompt, guidanceScale), embedding != nil { return }
        embedding = try pipeline.encodePrompt(prompt, negativePrompt: negativePrompt, guidanceScale: guidanceScale)
        embeddedFor = (prompt, negativePrompt, guidanceScale)
    }

    public func denoise<H: DenoiseHooks>(initialNoise: Tensor, scheduler: DiffusionScheduler, steps: Int, guidanceScale: Float,
                                         hooks: inout H, progress: (TextToVideoPipeline.StepProgress) -> Bool) throws -> Tensor {
        guard let embedding else { throw ModelError.invalidInput("prepare(prompt:) was not called") }
        if let executor {
            let pipeline = self.pipeline
            return try TextToVideoPipeline.sample(
                initialNoise: initialNoise, scheduler: scheduler, steps: steps, guided: embedding.guided,
                guidanceScale: guidanceScale, hooks: &hooks, progress: progress) { input, timesteps in
                try executor.predictNoise(input, timesteps: timesteps, conditioning: embedding.conditioning, pipeline: pipeline)
            }
        }
        var ws = Workspace()
        return try pipeline.denoise(initialNoise: initialNoise, prompt: embedding, steps: steps, guidanceScale: guidanceScale,
                                    scheduler: scheduler, hooks: &hooks, workspace: &ws, progress: progress)
    }

    public func decode(latents: Tensor, temporal: Bool) throws -> Tensor {
        if let executor { return try executor.decode(latents: latents, temporal: temporal, pipeline: pipeline) }
        var ws = Workspace()
        return try pipeline.decode(latents: latents, temporal: temporal, workspace: &ws)
    }
}
