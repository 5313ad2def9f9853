import Foundation

/// Prompt → latents → RGB frames for one clip, with diffusers `TextToVideoSDPipeline` semantics
/// (classifier-free guidance as one batch of two, negative prompt first; the folder's scheduler or
/// another one configured from it; VAE decode).
public struct TextToVideoPipeline: Sendable {
    public let tokenizer: CLIPTokenizer
    public let textEncoder: CLIPTextModel
    /// Either U-Net family (`VideoUNet`), chosen by the folder's `unet/config.json`.
    public let unet: VideoUNet
    public let vae: AutoencoderKL
    /// The folder's DDIM configuration (DDIM sessions, and the per-frame timesteps of FIFO-style
    /// strategies, use it).
    public let scheduler: DDIMScheduler
    /// The scheduler the folder names (`model_index.json`); a clip that names none samples with it.
    public let nativeScheduler: SchedulerKind
    /// The folder's `scheduler_config.json`, from which every other scheduler kind is configured.
    let schedulerConfig: ModelConfig
    public let modelDirectory: URL
    /// What the folder's optional `generation_config.json` recommends.
    public let recommended: GenerationDefaults

    /// How the U-Net and the VAE multiply: exact fp32, or the opt-in bf16 fast mode
    /// (docs/RUNTIME.md, "bf16 fast mode"). The text encoder always runs fp32.
    public let precision: ComputePrecision

    /// Loads a diffusers model folder (`model_index.json`, `unet/`, `vae/`, `text_encoder/`,
    /// `tokenizer/`, `scheduler/`, optionally `generation_config.json`). `precision` is the
    /// caller's choice (a CPU that cannot run it is an error naming why), never the folder's:
    /// the same folder gives the same bits on every node unless someone asked otherwise.
    /// `storage` only trades memory against speed (`WeightStorage`); the bits are the same.
    public init(modelDirectory dir: URL, precision: ComputePrecision = .fp32, storage: WeightStorage = .checkpoint) throws {
        let index = dir.appendingPathComponent("model_index.json")
        guard FileManager.default.fileExists(atPath: index.path) else {
            throw WeightError.cannotOpen(file: index.path, reason: "not a diffusers model folder (no model_index.json)")
        }
        let components = try ModelConfig(path: index.path)
        for (key, expected) in [("unet", "UNet3DConditionModel"), ("vae", "AutoencoderKL"), ("text_encoder", "CLIPTextModel"),
                                ("tokenizer", "CLIPTokenizer")] {
            let entry = try components.strings(key, default: [])
            if entry.count == 2, entry[1] != expected, !(key == "tokenizer" && entry[1] == "CLIPTokenizerFast") {
                throw ModelError.unsupported("\(index.path): \(key) is \(entry[1]); vidrd runs \(expected)")
            }
        }
        let schedulerEntry = try components.strings("scheduler", default: [])
        if schedulerEntry.count == 2 {
            guard let kind = SchedulerKind.allCases.first(where: { $0.className == schedulerEntry[1] }) else {
                throw ModelError.unsupported("\(index.path): scheduler is \(schedulerEntry[1]); vidrd runs \(SchedulerKind.allCases.map(\.className).joined(separator: ", "))")
            }
            nativeScheduler = kind
        } else {
            nativeScheduler = .ddim
        }
        let recommended = try GenerationDefaults(directory: dir)
        self.precision = precision
        tokenizer = try CLIPTokenizer(directory: dir.appendingPathComponent("tokenizer"))
        textEncoder = try CLIPTextModel(directory: dir.appendingPathComponent("text_encoder"), storage: storage)
        unet = try VideoUNet(directory: dir.appendingPathComponent("unet"), precision: precision, storage: storage)
        vae = try AutoencoderKL(directory: dir.appendingPathComponent("vae"), precision: precision, storage: storage)
        let base = try ModelConfig(path: dir.appendingPathComponent("scheduler/scheduler_config.json").path)
        schedulerConfig = base
        self.recommended = recommended
        let config = { (kind: SchedulerKind) in Self.schedulerConfig(kind, base: base, recommended: recommended) }
        scheduler = DDIMScheduler(configuration: try DDIMScheduler.Configuration(config: config(.ddim)))
        // The native scheduler and every override must configure: a folder whose own scheduler,
        // or a recommendation it makes, this runtime cannot run is refused at load.
        _ = try DiffusionScheduler(kind: nativeScheduler, config: config(nativeScheduler))
        for kind in recommended.schedulerOverrides.keys { _ = try DiffusionScheduler(kind: kind, config: config(kind)) }
        modelDirectory = dir
        guard textEncoder.configuration.hiddenSize == unet.crossAttentionDim else {
            throw ModelError.invalidConfig("text encoder width \(textEncoder.configuration.hiddenSize) ≠ U-Net cross_attention_dim \(unet.crossAttentionDim)")
        }
        guard vae.configuration.latentChannels == unet.inChannels else {
            throw ModelError.invalidConfig("VAE latent channels \(vae.configuration.latentChannels) ≠ U-Net in_channels \(unet.inChannels)")
        }
    }

    /// The scheduler of `kind` (nil: the folder's own), configured from the folder's
    /// `scheduler_config.json` and the overrides its `generation_config.json` recommends for it.
    public func scheduler(_ kind: SchedulerKind?) throws -> DiffusionScheduler {
        let k = kind ?? nativeScheduler
        if k == .ddim { return .ddim(scheduler) }
        return try DiffusionScheduler(kind: k, config: Self.schedulerConfig(k, base: schedulerConfig, recommended: recommended))
    }

    /// `scheduler_config.json` as `kind` reads it: with the keys `generation_config.json`
    /// recommends for that kind, if any.
    static func schedulerConfig(_ kind: SchedulerKind, base: ModelConfig, recommended: GenerationDefaults) -> ModelConfig {
        recommended.schedulerOverrides[kind].map { base.overridden(by: $0) } ?? base
    }

    /// Guidance when a caller names none: the model's recommendation, else the standard
    /// (`GenerationDefaults`, the one policy).
    public var defaultGuidanceScale: Float { recommended.guidanceScale ?? GenerationDefaults.standardGuidanceScale }

    /// Pixels per latent.
    public var vaeScaleFactor: Int { vae.configuration.downsamplingFactor }
    /// The model's native frame size (diffusers: `unet.sample_size * vae_scale_factor`).
    public var defaultSize: Int { (unet.sampleSize ?? 32) * vaeScaleFactor }

    public struct Configuration: Sendable {
        public var prompt: String
        public var negativePrompt: String = ""
        public var steps: Int = GenerationDefaults.standardSteps
        /// Callers with a pipeline should start from `pipeline.defaultGuidanceScale`, which
        /// honours the model folder's recommendation.
        public var guidanceScale: Float = GenerationDefaults.standardGuidanceScale
        public var frames: Int = GenerationDefaults.standardFrames
        /// Pixel size; nil means the model's native size.
        public var height: Int? = nil
        public var width: Int? = nil
        /// Decode with the temporal-aware decoder's Temp-Conv layers when the VAE has them.
        public var temporalDecoding: Bool = true
        /// nil: the folder's own scheduler.
        public var scheduler: SchedulerKind? = nil

        public init(prompt: String) { self.prompt = prompt }

        /// diffusers' `TextToVideoSDPipeline` default; a model folder may recommend another
        /// (`TextToVideoPipeline.defaultGuidanceScale`).
        public static let standardGuidanceScale: Float = GenerationDefaults.standardGuidanceScale
    }

    /// What a clip's geometry resolves to for this model.
    public struct Geometry: Sendable, Equatable {
        public var frames: Int, height: Int, width: Int, latentHeight: Int, latentWidth: Int, latentChannels: Int
        public var latentShape: [Int] { [1, latentChannels, frames, latentHeight, latentWidth] }

        public init(frames: Int, height: Int, width: Int, latentHeight: Int, latentWidth: Int, latentChannels: Int) {
            self.frames = frames
            self.height = height
            self.width = width
            self.latentHeight = latentHeight
            self.latentWidth = latentWidth
            self.latentChannels = latentChannels
        }
    }

    public func geometry(for c: Configuration) throws -> Geometry {
        let h = c.height ?? defaultSize, w = c.width ?? defaultSize
        let f = vaeScaleFactor
        guard h > 0, w > 0, h % f == 0, w % f == 0 else {
            throw ModelError.invalidInput("height and width must be positive multiples of \(f), got \(h)×\(w)")
        }
        guard c.frames > 0 else { throw ModelError.invalidInput("frames must be positive, got \(c.frames)") }
        return Geometry(frames: c.frames, height: h, width: w, latentHeight: h / f, latentWidth: w / f,
                        latentChannels: unet.inChannels)
    }

    /// Text conditioning for the denoising loop: `[negative, prompt]` when guiding, else `[prompt]`.
    public struct PromptEmbedding: Sendable {
        public let hiddenStates: Tensor
        public let conditioning: UNet3DConditionModel.TextConditioning
        public let guided: Bool
    }

    public func encodePrompt(_ prompt: String, negativePrompt: String, guidanceScale: Float) throws -> PromptEmbedding {
        let guided = guidanceScale > 1
        let ids = guided ? [tokenizer.encode(negativePrompt), tokenizer.encode(prompt)] : [tokenizer.encode(prompt)]
        let states = try textEncoder(ids)
        return PromptEmbedding(hiddenStates: states, conditioning: try unet.conditioning(encoderHiddenStates: states), guided: guided)
    }

    public struct StepProgress: Sendable {
        public let step: Int
        public let totalSteps: Int
        public let timestep: Int
        /// Latents after this step, `[1, C, F, h, w]`.
        public let latents: Tensor

        public init(step: Int, totalSteps: Int, timestep: Int, latents: Tensor) {
            self.step = step
            self.totalSteps = totalSteps
            self.timestep = timestep
            self.latents = latents
        }
    }

    /// Runs the denoising loop from `initialNoise` (`[1, C, F, h, w]`, unit variance; the
    /// scheduler scales it by its `init_noise_sigma`) with `scheduler` (nil: the folder's own).
    /// `progress` is called after each step; returning false cancels with `ModelError.cancelled`.
    public func denoise(initialNoise: Tensor, prompt: PromptEmbedding, steps: Int, guidanceScale: Float,
                        scheduler: DiffusionScheduler? = nil,
                        workspace: inout Workspace, progress: (StepProgress) -> Bool = { _ in true }) throws -> Tensor {
        var hooks = NoDenoiseHooks()
        return try denoise(initialNoise: initialNoise, prompt: prompt, steps: steps, guidanceScale: guidanceScale,
                           scheduler: scheduler, hooks: &hooks, workspace: &workspace, progress: progress)
    }

    /// The loop with sampler hooks (see `DenoiseHooks` for the order within a step). With
    /// `NoDenoiseHooks` it is exactly `denoise(initialNoise:prompt:steps:guidanceScale:scheduler:workspace:progress:)`.
    public func denoise<H: DenoiseHooks>(initialNoise: Tensor, prompt: PromptEmbedding, steps: Int, guidanceScale: Float,
                                         scheduler: DiffusionScheduler? = nil,
                                         hooks: inout H, workspace: inout Workspace,
                                         progress: (StepProgress) -> Bool = { _ in true }) throws -> Tensor {
        let sampling = try scheduler ?? self.scheduler(nil)
        return try Self.sample(initialNoise: initialNoise, scheduler: sampling, steps: steps, guided: prompt.guided,
                        guidanceScale: guidanceScale, hooks: &hooks, progress: progress) { input, timesteps in
            try unet(input, timesteps: timesteps, conditioning: prompt.conditioning, workspace: &workspace)
        }
    }

    /// The sampler itself, over any noise predictor: `model(input, timesteps)` gets the latents
    /// (`[2, C, F, h, w]`, the same latents twice, when `guided`; else `[1, …]`) and one timestep per
    /// batch entry or one per (entry, frame), and returns the noise prediction of the same shape.
    /// Classifier-free guidance combines entry 0 (unconditional) and entry 1 as diffusers does.
    public static func sample<H: DenoiseHooks>(initialNoise: Tensor, scheduler: DDIMScheduler, steps: Int, guided: Bool,
                                               guidanceScale: Float, hooks: inout H,
                                               progress: (StepProgress) -> Bool = { _ in true },
                                               model: (Tensor, [Float]) throws -> Tensor) throws -> Tensor {
        try sample(initialNoise: initialNoise, scheduler: .ddim(scheduler), steps: steps, guided: guided,
                   guidanceScale: guidanceScale, hooks: &hooks, progress: progress, model: model)
    }

    /// The same sampler with any implemented scheduler. Per-frame timesteps from a hook need DDIM
    /// (`SchedulerKind.supportsFrameTimesteps`); under another scheduler they are an error.
    public static func sample<H: DenoiseHooks>(initialNoise: Tensor, scheduler: DiffusionScheduler, steps: Int, guided: Bool,
                                               guidanceScale: Float, hooks: inout H,
                                               progress: (StepProgress) -> Bool = { _ in true },
                                               model: (Tensor, [Float]) throws -> Tensor) throws -> Tensor {
        guard initialNoise.rank == 5, initialNoise.shape[0] == 1 else {
            throw ModelError.invalidInput("initial noise must be [1, C, F, h, w], got \(initialNoise.shape)")
        }
        var run = try scheduler.start(steps: steps)
        let timesteps = run.timesteps
        var latents = initialNoise
        let sigma = run.initNoiseSigma
        // diffusers' prepare_latents: noise * init_noise_sigma (1 for DDIM and DPM-Solver, where
        // the latents are left untouched).
        if sigma != 1 { latents.scalars = latents.scalars.map { $0 * sigma } }
        let shape = latents.shape
        let (channels, frames, plane) = (shape[1], shape[2], shape[3] * shape[4])
        let batch = guided ? 2 : 1
        for (i, modelTimestep) in timesteps.enumerated() {
            let (t, previous) = run.integerTimesteps(at: i)
            var step = DenoiseStep(index: i, totalSteps: timesteps.count, timestep: t, previousTimestep: previous,
                                   frameTimesteps: nil)
            let perFrame = try hooks.frameTimesteps(step, frames: frames)
            let frameScheduler = try perFrame.map { _ in try scheduler.frameTimestepScheduler() }
            if let perFrame {
                guard perFrame.count == frames else {
                    throw ModelError.invalidInput("per-frame timesteps: expected \(frames), got \(perFrame.count)")
                }
                step = DenoiseStep(index: i, totalSteps: timesteps.count, timestep: t, previousTimestep: previous,
                                   frameTimesteps: perFrame)
            }
            try hooks.beforeStep(step, latents: &latents)
            guard latents.shape == shape else {
                throw ModelError.invalidInput("a sampler hook changed the latents' shape from \(shape) to \(latents.shape)")
            }
            let scaled = try run.modelInput(latents)
            var input = scaled
            if batch == 2 {
                input = Tensor(shape: [2] + Array(scaled.shape.dropFirst()), scalars: scaled.scalars + scaled.scalars)
            }
            let modelTimesteps: [Float]
            if let perFrame {
                let one = perFrame.map { Float($0.timestep) }
                modelTimesteps = Array([[Float]](repeating: one, count: batch).joined())
            } else {
                modelTimesteps = [Float](repeating: modelTimestep, count: batch)
            }
            let out = try model(input, modelTimesteps)
            guard out.shape == input.shape else {
                throw ModelError.invalidInput("noise prediction has shape \(out.shape), expected \(input.shape)")
            }
            let noise: Tensor
            if batch == 2 {
                let n = latents.count
                var guidedNoise = [Float](repeating: 0, count: n)
                out.scalars.withUnsafeBufferPointer { o in
                    for j in 0..<n { guidedNoise[j] = o[j] + guidanceScale * (o[n + j] - o[j]) }
                }
                noise = Tensor(shape: latents.shape, scalars: guidedNoise)
            } else {
                noise = out
            }
            let stepInput = latents
            if let perFrame, let ddim = frameScheduler {
                noise.scalars.withUnsafeBufferPointer { m in
                    latents.scalars.withUnsafeMutableBufferPointer { s in
                        for c in 0..<channels {
                            for f in 0..<frames {
                                let o = (c * frames + f) * plane
                                ddim.step(modelOutput: m.baseAddress! + o, sample: s.baseAddress! + o, count: plane,
                                          timestep: perFrame[f].timestep, previous: perFrame[f].previous)
                            }
                        }
                    }
                }
            } else {
                try run.step(noisePrediction: noise, latents: &latents)
            }
            try hooks.afterStep(DenoiseStepRecord(step: step, input: stepInput, noisePrediction: noise, output: latents))
            if !progress(StepProgress(step: i + 1, totalSteps: timesteps.count, timestep: t, latents: latents)) {
                throw ModelError.cancelled
            }
        }
        return latents
    }

    /// Latents `[1, C, F, h, w]` → RGB frames `[F, H, W, 3]` in [0, 1].
    /// `preemption`: see `AutoencoderKL.decode`.
    public func decode(latents: Tensor, temporal: Bool = true, workspace: inout Workspace,
                       preemption: ((Double) -> Void)? = nil) throws -> Tensor {
        guard latents.rank == 5, latents.shape[0] == 1 else {
            throw ModelError.invalidInput("latents must be [1, C, F, h, w], got \(latents.shape)")
        }
        let inv = 1 / vae.configuration.scalingFactor
        var z = latents.permuted([0, 2, 1, 3, 4])
        z.reshape(Array(z.shape.dropFirst()))
        z.scalars = z.scalars.map { $0 * inv }
        let images = try vae.decode(z, temporal: temporal, workspace: &workspace, preemption: preemption)  // [F, 3, H, W]
        var rgb = images.permuted([0, 2, 3, 1])
        rgb.scalars = rgb.scalars.map { Swift.min(Swift.max($0 / 2 + 0.5, 0), 1) }
        return rgb
    }

    public struct Clip: Sendable {
        /// Final latents `[1, C, F, h, w]`.
        public let latents: Tensor
        /// RGB frames `[F, H, W, 3]` in [0, 1].
        public let frames: Tensor
    }

    /// One clip from a prompt. Noise comes from `initialNoise` when given (shape
    /// `geometry.latentShape`), otherwise from `random`.
    public func generate<R: RandomSource>(_ c: Configuration, initialNoise: Tensor? = nil, random: inout R,
                                          progress: (StepProgress) -> Bool = { _ in true }) throws -> Clip {
        let g = try geometry(for: c)
        let noise: Tensor
        if let initialNoise {
            guard initialNoise.shape == g.latentShape else {
                throw ModelError.invalidInput("initial noise must be \(g.latentShape), got \(initialNoise.shape)")
            }
            noise = initialNoise
        } else {
            noise = Tensor(shape: g.latentShape, scalars: random.standardNormal(count: g.latentShape.reduce(1, *)))
        }
        let prompt = try encodePrompt(c.prompt, negativePrompt: c.negativePrompt, guidanceScale: c.guidanceScale)
        var ws = Workspace()
        let latents = try denoise(initialNoise: noise, prompt: prompt, steps: c.steps, guidanceScale: c.guidanceScale,
                                  scheduler: try scheduler(c.scheduler), workspace: &ws, progress: progress)
        return Clip(latents: latents, frames: try decode(latents: latents, temporal: c.temporalDecoding, workspace: &ws))
    }

    public func generate(_ c: Configuration, seed: UInt64, progress: (StepProgress) -> Bool = { _ in true }) throws -> Clip {
        var random = SeededRandomSource(seed: seed)
        return try generate(c, random: &random, progress: progress)
    }
}
