import Foundation
import VidrdRuntime

/// Which frames of each clip a stream emits.
public enum EmissionMode: String, Sendable, CaseIterable {
    /// All N frames of every clip (the authors' code): clip i+1's M prompt frames echo clip i's
    /// last M frames in reverse.
    case all
    /// Clip 0 whole, then only frames M..<N of every later clip.
    case new
}

/// What a session asks for.
public struct StreamConfiguration: Sendable {
    public var prompt: String
    public var negativePrompt = ""
    public var seed: UInt64 = 0
    public var steps = GenerationDefaults.standardSteps
    /// Callers with a pipeline should start from `pipeline.defaultGuidanceScale` (the model's).
    public var guidanceScale: Float = GenerationDefaults.standardGuidanceScale
    /// N, frames per clip.
    public var frames = GenerationDefaults.standardFrames
    public var height: Int? = nil
    public var width: Int? = nil
    /// The chain, in order. `init(prompt:)` gives the built-in default, the paper's fnr, pns, dsg;
    /// `init(prompt:registry:)` takes the registry's (the committed plugins.conf says fifo).
    public var strategies: [StrategySpec]
    public var emission: EmissionMode
    /// M, prompt frames shared by the strategies (0 ≤ M ≤ N).
    public var promptFrames: Int = StrategyRegistry.builtInDefaultPromptFrames
    /// Replay this noise tape instead of the seeded generator.
    public var tapePath: String? = nil
    /// Decode with the temporal-aware decoder's Temp-Conv layers when the VAE has them.
    public var temporalDecoding = true
    /// The generator that turns `seed` into noise (ignored with a tape or a custom source).
    public var noiseGenerator: NoiseGenerator = .vidrd
    /// The scheduler every clip samples with; nil: the model's own.
    public var scheduler: SchedulerKind? = nil

    public init(prompt: String) {
        self.prompt = prompt
        strategies = StrategyRegistry.builtInDefaultChain
        emission = StrategyRegistry.builtInDefaultEmission
    }

    /// Defaults from a registry (plugins.conf's chain, emission mode and prompt frames).
    public init(prompt: String, registry: StrategyRegistry) {
        self.prompt = prompt
        strategies = registry.defaultChain
        emission = registry.defaultEmission
        promptFrames = registry.defaultPromptFrames
    }

    /// Upper bounds a daemon can rely on.
    public static let maxSteps = 1000
    public static let maxFrames = 256
}

/// One clip of a stream as it is emitted.
public struct EmittedClip: Sendable {
    /// 0 for the first clip.
    public let index: Int
    /// Emitted frames `[n, H, W, 3]`, RGB in [0, 1].
    public let frames: Tensor
    /// Stream-wide number of `frames[0]` (frames emitted before this clip).
    public let firstFrameNumber: Int64
    /// The clip's final latents `[1, C, N, h, w]` (all N frames).
    public let latents: Tensor
    /// Indices (within the clip's N frames) of the emitted frames.
    public let emittedFrameIndices: [Int]
    /// The initial noise the clip was denoised from, `[1, C, N, h, w]`.
    public let initialNoise: Tensor
    /// The clip's one standard-normal draw from the noise source (its noise-tape entry).
    public let noiseDraw: Tensor
    /// Further draws a generating strategy took after `noiseDraw` (FIFO's first clip fills its
    /// queue with them); they follow it on a noise tape.
    public let extraNoiseDraws: [Tensor]

    public init(index: Int, frames: Tensor, firstFrameNumber: Int64, latents: Tensor,
                emittedFrameIndices: [Int], initialNoise: Tensor, noiseDraw: Tensor, extraNoiseDraws: [Tensor] = []) {
        self.noiseDraw = noiseDraw
        self.extraNoiseDraws = extraNoiseDraws
        self.index = index
        self.frames = frames
        self.firstFrameNumber = firstFrameNumber
        self.latents = latents
        self.emittedFrameIndices = emittedFrameIndices
        self.initialNoise = initialNoise
    }
}

/// The noise source of a stream: the seeded generator, a tape, or any other `RandomSource`.
public enum StreamNoiseSource: Sendable {
    case seeded(SeededRandomSource)
    case tape(TapeRandomSource)
    case custom(any RandomSource & Sendable)

    mutating func draw(shape: [Int]) throws -> Tensor {
        switch self {
        case .seeded(var r): let t = try r.standardNormal(shape: shape); self = .seeded(r); return t
        case .tape(var r): let t = try r.standardNormal(shape: shape); self = .tape(r); return t
        case .custom(var r): let t = try r.standardNormal(shape: shape); self = .custom(r); return t
        }
    }
}

/// An endless stream of clips for one session: each clip continues the previous one through the
/// strategy chain. A value type; one worker uses it at a time. `nextClip` is transactional: when
/// it throws (cancelled, bad plugin), the stream is as before and the next call retries the same
/// clip with the same noise (strategies implemented as value types roll back; external C plugins
/// keep their own state).
public struct VideoStream: Sendable {
    struct Slot: Sendable {
        let name: String
        var strategy: any NoiseStrategy
        let capabilities: StrategyCapabilities
    }

    var backend: any VideoBackend
    public let configuration: StreamConfiguration
    /// The scheduler every clip samples with (the configuration's, or the model's own).
    public let scheduler: DiffusionScheduler
    public let shape: ClipShape
    let geometry: TextToVideoPipeline.Geometry
    var slots: [Slot]
    var noise: StreamNoiseSource
    var previous: ClipRecord?
    var pendingFresh: Tensor?
    /// Extra draws of a cancelled attempt at the current clip (replayed by the retry).
    var pendingExtra: [Tensor] = []
    /// The slot of the chain's generating strategy, if any.
    let generator: Int?
    public internal(set) var clipIndex = 0
    public internal(set) var framesEmitted: Int64 = 0

    /// Validates the configuration, strategy names and parameters, and the chain's composition.
    public init(pipeline: TextToVideoPipeline, configuration c: StreamConfiguration, registry: StrategyRegistry) throws {
        try self.init(backend: PipelineBackend(pipeline), configuration: c, registry: registry, random: nil)
    }

    /// The same over any backend (a toy denoiser in tests), optionally with a custom noise source
    /// (which replaces `seed` and `tapePath`).
    public init(backend: some VideoBackend, configuration c: StreamConfiguration, registry: StrategyRegistry,
                random: (any RandomSource & Sendable)? = nil) throws {
        guard (1...StreamConfiguration.maxSteps).contains(c.steps) else {
            throw PluginError.invalidConfiguration("steps must be in 1...\(StreamConfiguration.maxSteps), got \(c.steps)")
        }
        guard (1...StreamConfiguration.maxFrames).contains(c.frames) else {
            throw PluginError.invalidConfiguration("frames must be in 1...\(StreamConfiguration.maxFrames), got \(c.frames)")
        }
        guard (0...c.frames).contains(c.promptFrames) else {
            throw PluginError.invalidConfiguration("prompt frames M must be in 0...\(c.frames) (N), got \(c.promptFrames)")
        }
        guard c.guidanceScale.isFinite else { throw PluginError.invalidConfiguration("guidance scale must be finite") }
        let g: TextToVideoPipeline.Geometry
        do { g = try backend.geometry(frames: c.frames, height: c.height, width: c.width) } catch {
            throw PluginError.invalidConfiguration("\(error)")
        }
        let sampling: DiffusionScheduler
        do { sampling = try backend.scheduler(c.scheduler) } catch {
            throw PluginError.invalidConfiguration("scheduler \(c.scheduler?.rawValue ?? "of the model"): \(error)")
        }
        _ = try sampling.timesteps(steps: c.steps)
        self.backend = backend
        scheduler = sampling
        geometry = g
        shape = ClipShape(frames: g.frames, channels: g.latentChannels, height: g.latentHeight, width: g.latentWidth,
                          promptFrames: c.promptFrames, steps: c.steps)
        var slots: [Slot] = []
        for spec in c.strategies {
            let s = try registry.make(spec)
            slots.append(Slot(name: spec.name, strategy: s, capabilities: s.capabilities))
        }
        try Self.checkComposition(slots.map { ($0.name, $0.capabilities) }, shape: shape)
        try Self.checkScheduler(slots.map { ($0.name, $0.capabilities) }, scheduler: sampling.kind)
        let clipShape = shape
        for slot in slots { try Self.run(slot.name) { try slot.strategy.check(shape: clipShape, scheduler: sampling) } }
        self.slots = slots
        generator = slots.indices.first { slots[$0].capabilities.generates }
        var effective = c
        // A generating strategy emits every frame it makes: there are no echoed prompt frames to drop.
        if generator != nil { effective.emission = .all }
        configuration = effective
        if let random {
            noise = .custom(random)
        } else if let tape = c.tapePath {
            noise = .tape(try TapeRandomSource(path: tape))
        } else if c.noiseGenerator == .vidrd {
            noise = .seeded(SeededRandomSource(seed: c.seed))
        } else {
            noise = .custom(c.noiseGenerator.source(seed: c.seed))
        }
    }

    /// The composition rules (docs/PLUGINS.md, "Composition"): names appear once; an exclusive
    /// strategy is alone; noise claims of one layer do not overlap; latent overrides do not
    /// overlap; at most one timestep provider and one emission decider.
    public static func checkComposition(_ chain: [(name: String, capabilities: StrategyCapabilities)], shape: ClipShape) throws {
        var seen = Set<String>()
        for (name, _) in chain where !seen.insert(name).inserted {
            throw PluginError.conflict("\"\(name)\" appears twice in the chain")
        }
        if chain.count > 1, let ex = chain.first(where: { $0.capabilities.exclusive }) {
            throw PluginError.conflict("\"\(ex.name)\" must be the only strategy of its chain, got \(chain.map(\.name).joined(separator: ","))")
        }
        func overlap(_ a: FrameSelection, _ b: FrameSelection) -> Bool {
            a.range(frames: shape.frames, promptFrames: shape.promptFrames)
                .overlaps(b.range(frames: shape.frames, promptFrames: shape.promptFrames))
        }
        for i in chain.indices {
            for j in chain.indices where j > i {
                let (a, b) = (chain[i], chain[j])
                for ca in a.capabilities.noise {
                    for cb in b.capabilities.noise where ca.layer == cb.layer && ca.clips.overlaps(cb.clips) && overlap(ca.frames, cb.frames) {
                        throw PluginError.conflict(noiseConflictMessage(a.name, ca, b.name, cb))
                    }
                }
                if let fa = a.capabilities.latentOverrides, let fb = b.capabilities.latentOverrides, overlap(fa, fb) {
                    throw PluginError.conflict("\"\(a.name)\" and \"\(b.name)\" both override latents of \(fb.rawValue) frames")
                }
                if a.capabilities.timesteps && b.capabilities.timesteps {
                    throw PluginError.conflict("\"\(a.name)\" and \"\(b.name)\" both supply per-frame timesteps")
                }
                if a.capabilities.emission && b.capabilities.emission {
                    throw PluginError.conflict("\"\(a.name)\" and \"\(b.name)\" both decide which frames are emitted")
                }
                if a.capabilities.generates || b.capabilities.generates {
                    let (g, o) = a.capabilities.generates ? (a, b) : (b, a)
                    if o.capabilities.generates {
                        throw PluginError.conflict("\"\(a.name)\" and \"\(b.name)\" both run the clip's denoising")
                    }
                    let oc = o.capabilities
                    if oc.latentOverrides != nil || oc.timesteps || oc.emission {
                        throw PluginError.conflict("\"\(g.name)\" runs the clip's denoising itself; \"\(o.name)\" needs the per-step hooks of the standard sampler (latent overrides, timesteps or emission)")
                    }
                }
            }
        }
    }

    /// Per-frame timesteps (a `timesteps` provider, or a `generates` strategy's diagonal steps)
    /// need a scheduler that can move each frame between timesteps of its own: DDIM.
    public static func checkScheduler(_ chain: [(name: String, capabilities: StrategyCapabilities)], scheduler: SchedulerKind) throws {
        guard !scheduler.supportsFrameTimesteps else { return }
        for (name, caps) in chain where caps.timesteps || caps.generates {
            let what = caps.generates ? "runs its own per-frame-timestep denoising" : "supplies per-frame timesteps"
            throw PluginError.invalidConfiguration("\"\(name)\" \(what), which needs the ddim scheduler; this stream samples with \(scheduler.rawValue)")
        }
    }

    /// The names of the chain, in order.
    public var chain: [String] { slots.map(\.name) }

    /// Routes the stream's model calls through `executor` (nil: compute on the calling thread).
    /// Streams over other backends (toy models in tests) keep computing directly.
    public mutating func setModelExecutor(_ executor: (any ModelExecutor)?) {
        guard var b = backend as? PipelineBackend else { return }
        b.executor = executor
        backend = b
    }

    /// Generates, decodes and emits the next clip. `progress` is called after every denoising
    /// step; returning false cancels with `ModelError.cancelled` and leaves the stream unchanged.
    public mutating func nextClip(progress: (TextToVideoPipeline.StepProgress) -> Bool = { _ in true }) throws -> EmittedClip {
        let c = configuration
        try backend.prepare(prompt: c.prompt, negativePrompt: c.negativePrompt, guidanceScale: c.guidanceScale)
        var source = noise
        let fresh: Tensor
        if let pendingFresh { fresh = pendingFresh } else {
            fresh = try source.draw(shape: shape.latentShape)
            noise = source
            pendingFresh = fresh
        }
        let clip = ClipContext(index: clipIndex, shape: shape, fresh: fresh, previous: previous)
        var work = slots

        // Initial noise: base claims in chain order, then refine claims in chain order.
        var draft = NoiseDraft(fresh: fresh)
        for layer in [NoiseLayer.base, .refine] {
            for i in work.indices {
                let claims = work[i].capabilities.noise.filter { $0.layer == layer && $0.clips.contains(clip: clip.index) }
                guard !claims.isEmpty else { continue }
                var allowed = Set<Int>()
                for cl in claims { allowed.formUnion(cl.frames.range(frames: shape.frames, promptFrames: shape.promptFrames)) }
                draft.current = (work[i].name, layer, allowed)
                try Self.run(work[i].name) { try work[i].strategy.initialNoise(clip, layer: layer, draft: &draft) }
                draft.current = nil
            }
        }
        let initialNoise = draft.noise

        let latents: Tensor
        var extraDraws: [Tensor] = []
        if let g = generator {
            // The strategy runs the denoising; the sampler hands it steps and extra noise. Its
            // noise-source position and extra draws are kept even when the clip fails, so that the
            // retry replays the same draws instead of advancing the source.
            let name = work[g].name
            let planned = c.steps
            let pending = pendingExtra
            let startSource = noise
            let backend = self.backend
            var sampled: (Tensor, StreamNoiseSource, [Tensor])?
            var failure: Error?
            withoutActuallyEscaping(progress) { report in
                var sampler = ClipSampler(backend: backend, scheduler: scheduler, guidanceScale: c.guidanceScale, source: startSource,
                                          pending: pending, plannedSteps: planned, progress: report)
                do {
                    let out = try Self.run(name) { try work[g].strategy.generateClip(clip, initialNoise: initialNoise, sampler: &sampler) }
                    sampled = (out, sampler.source, sampler.extraDraws)
                } catch {
                    failure = error
                    if sampler.extraDraws.count > pending.count { pendingExtra = sampler.extraDraws }
                    noise = sampler.source
                }
            }
            if let failure { throw failure }
            guard let (out, source, extra) = sampled else { throw ModelError.cancelled }
            guard out.shape == shape.latentShape else {
                throw PluginError.strategyFailed(strategy: name, reason: "generated latents of shape \(out.shape), expected \(shape.latentShape)")
            }
            latents = out
            noise = source
            extraDraws = extra
        } else {
            // Denoise with the chain's hooks.
            var hooks = ChainHooks(slots: work, clip: clip)
            latents = try backend.denoise(initialNoise: initialNoise, scheduler: scheduler, steps: c.steps,
                                          guidanceScale: c.guidanceScale, hooks: &hooks, progress: progress)
            work = hooks.slots
        }

        // Emission.
        var emitted: [Int]? = nil
        for i in work.indices where work[i].capabilities.emission {
            emitted = try Self.run(work[i].name) { try work[i].strategy.emittedFrames(clip, latents: latents) }
            if let e = emitted {
                guard zip(e, e.dropFirst()).allSatisfy({ $0 < $1 }), e.allSatisfy({ (0..<shape.frames).contains($0) }) else {
                    throw PluginError.strategyFailed(strategy: work[i].name, reason: "emitted frames \(e) are not strictly increasing indices in 0..<\(shape.frames)")
                }
            }
        }
        let indices = emitted ?? Self.emittedFrames(mode: c.emission, clip: clip.index, frames: shape.frames, promptFrames: shape.promptFrames)

        let rgb = try backend.decode(latents: latents, temporal: c.temporalDecoding)
        let (h, w) = (rgb.shape[1], rgb.shape[2])
        let per = h * w * 3
        var out = [Float]()
        out.reserveCapacity(indices.count * per)
        for f in indices { out.append(contentsOf: rgb.scalars[(f * per)..<((f + 1) * per)]) }

        let record = ClipRecord(index: clip.index, initialNoise: initialNoise, latents: latents, emitted: indices)
        for i in work.indices {
            try Self.run(work[i].name) { try work[i].strategy.clipFinished(clip, record: record) }
        }

        // Commit.
        let result = EmittedClip(index: clip.index, frames: Tensor(shape: [indices.count, h, w, 3], scalars: out),
                                 firstFrameNumber: framesEmitted, latents: latents, emittedFrameIndices: indices,
                                 initialNoise: initialNoise, noiseDraw: fresh, extraNoiseDraws: extraDraws)
        slots = work
        previous = record
        pendingFresh = nil
        pendingExtra = []
        clipIndex += 1
        framesEmitted += Int64(indices.count)
        return result
    }

    /// The frames a mode emits: all N, or (after clip 0) only M..<N.
    public static func emittedFrames(mode: EmissionMode, clip: Int, frames n: Int, promptFrames m: Int) -> [Int] {
        switch mode {
        case .all: return Array(0..<n)
        case .new: return clip == 0 ? Array(0..<n) : Array(m..<n)
        }
    }

    /// Runs a strategy hook, naming the strategy in any error that does not already.
    static func run<T>(_ name: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as PluginError {
            throw e
        } catch let e as ModelError {
            throw e
        } catch {
            throw PluginError.strategyFailed(strategy: name, reason: "\(error)")
        }
    }
}

/// Adapts a chain to the sampler's hooks.
struct ChainHooks: DenoiseHooks {
    var slots: [VideoStream.Slot]
    let clip: ClipContext
    let overriding: [Int]
    let observing: [Int]
    let timestepProvider: Int?

    init(slots: [VideoStream.Slot], clip: ClipContext) {
        self.slots = slots
        self.clip = clip
        overriding = slots.indices.filter { slots[$0].capabilities.latentOverrides != nil }
        observing = Array(slots.indices)
        timestepProvider = slots.indices.first { slots[$0].capabilities.timesteps }
    }

    mutating func frameTimesteps(_ step: DenoiseStep, frames: Int) throws -> [FrameTimestep]? {
        guard let i = timestepProvider else { return nil }
        let clip = clip
        return try VideoStream.run(slots[i].name) { try slots[i].strategy.frameTimesteps(clip, step: step) }
    }

    mutating func beforeStep(_ step: DenoiseStep, latents: inout Tensor) throws {
        guard !overriding.isEmpty else { return }
        var frames = LatentFrames(latents)
        let clip = clip
        for i in overriding {
            let sel = slots[i].capabilities.latentOverrides!
            frames.current = (slots[i].name, Set(sel.range(frames: clip.shape.frames, promptFrames: clip.shape.promptFrames)))
            try VideoStream.run(slots[i].name) { try slots[i].strategy.overrideLatents(clip, step: step, latents: &frames) }
            frames.current = nil
        }
        if !frames.writers.isEmpty { latents = frames.latents }
    }

    mutating func afterStep(_ record: DenoiseStepRecord) throws {
        let clip = clip
        for i in observing {
            try VideoStream.run(slots[i].name) { try slots[i].strategy.observe(clip, record: record) }
        }
    }
}
