import Foundation
import VidrdMedia
import VidrdPlugins
import VidrdProtocol
import VidrdRuntime

/// What the daemon generates with: a loaded model and the strategies sessions may use.
public struct GenerationEngine: Sendable {
    public let pipeline: TextToVideoPipeline
    public let registry: StrategyRegistry
    /// Announced in ServerInfo (≤ 256 bytes).
    public let modelName: String
    /// Tells this model folder from any other (continuations carry it; `ModelFingerprint`).
    let modelFingerprint: [UInt8]

    public init(pipeline: TextToVideoPipeline, registry: StrategyRegistry = .builtIn(), modelName: String? = nil) {
        self.pipeline = pipeline
        self.registry = registry
        let dir = pipeline.modelDirectory.standardizedFileURL
        // `…/tiny-lpb2/model` reads better as `tiny-lpb2`.
        let fallback = dir.lastPathComponent == "model" ? dir.deletingLastPathComponent().lastPathComponent : dir.lastPathComponent
        self.modelName = clippedUTF8(modelName ?? fallback, maxBytes: ProtocolLimits.maxModelNameBytes)
        modelFingerprint = ModelFingerprint.compute(dir, precision: pipeline.precision)
    }

    /// Loads a diffusers model folder, multiplying in `precision`.
    public init(modelDirectory: URL, precision: ComputePrecision = .fp32, registry: StrategyRegistry = .builtIn(),
                modelName: String? = nil) throws {
        self.init(pipeline: try TextToVideoPipeline(modelDirectory: modelDirectory, precision: precision),
                  registry: registry, modelName: modelName)
    }

    /// The registry as the protocol's StrategyList (STRATEGIES, HELLO_ACK).
    public var strategyList: StrategyList {
        let descriptors = registry.strategies.prefix(ProtocolLimits.maxStrategyDescriptors).map { info in
            StrategyDescriptor(
                name: info.name, summary: clippedUTF8(info.summary, maxBytes: ProtocolLimits.maxSummaryBytes),
                params: info.parameters.prefix(ProtocolLimits.maxParamsPerStrategy).map { p in
                    let numeric = p.kind == "double" || p.kind == "int"
                    return ParamDescriptor(
                        name: p.name, defaultValue: Self.wire(p.defaultValue),
                        summary: clippedUTF8(p.help, maxBytes: ProtocolLimits.maxSummaryBytes),
                        minimum: numeric ? p.minimum : nil, maximum: numeric ? p.maximum : nil)
                })
        }
        return StrategyList(strategies: Array(descriptors), defaultChain: registry.defaultChain.map(Self.wire))
    }

    static func wire(_ v: ParameterValue) -> ParamValue {
        switch v {
        case .double(let d): .double(d)
        case .int(let i): .int(Int64(i))
        case .bool(let b): .bool(b)
        case .string(let s): .string(s)
        }
    }

    static func plugin(_ v: ParamValue) -> ParameterValue? {
        switch v {
        case .double(let d): .double(d)
        case .int(let i): Int(exactly: i).map { .int($0) }
        case .bool(let b): .bool(b)
        case .string(let s): .string(s)
        }
    }

    static func wire(_ spec: VidrdPlugins.StrategySpec) -> VidrdProtocol.StrategySpec {
        VidrdProtocol.StrategySpec(
            name: spec.name, params: spec.parameters.sorted { $0.key < $1.key }.map { StrategyParam($0.key, wire($0.value)) })
    }
}

/// A rejected OPEN_SESSION: the status code and a message naming the field.
struct SessionRejection: Error {
    var code: StatusCode
    var message: String
    init(_ code: StatusCode, _ message: String) {
        self.code = code
        self.message = message
    }
    init(_ message: String) { self.init(.invalidArgument, message) }
}

/// A session's generation settings after defaults and validation.
struct ResolvedSession {
    var opened: SessionOpened
    var stream: VideoStream
    var compression: WebPCompression
    var initialCredits: UInt32
    /// Frames the first clip will emit (CLIP_START's frame_count for clip 0) and the rule for later ones.
    var emission: EmissionMode
    var promptFrames: Int
    /// Whether a strategy of the chain decides emission itself (then CLIP_START's count is an upper bound).
    var strategyDecidesEmission: Bool
    /// Every effective parameter as an OPEN_SESSION (what a continuation carries).
    var effectiveRequest: OpenSession

    var plan: EmissionPlan {
        EmissionPlan(frames: Int(opened.framesPerClip), emission: emission, promptFrames: promptFrames, strategyDecides: strategyDecidesEmission)
    }
}

/// How many frames a session's clips emit (CLIP_START's frame_count).
struct EmissionPlan {
    var frames: Int
    var emission: EmissionMode
    var promptFrames: Int
    /// A strategy of the chain picks the emitted frames itself: only an upper bound is known.
    var strategyDecides: Bool

    func frameCount(clip: Int) -> Int {
        if strategyDecides { return frames }
        return VideoStream.emittedFrames(mode: emission, clip: clip, frames: frames, promptFrames: promptFrames).count
    }
}

extension GenerationEngine {
    /// Guidance for a session that names none: the daemon's `default_guidance`, else the model's.
    public func defaultGuidance(_ defaults: DaemonConfiguration.SessionDefaults) -> Double {
        defaults.guidance ?? Double(pipeline.defaultGuidanceScale)
    }

    /// Applies defaults and the server's limits to an OPEN_SESSION (docs/PROTOCOL.md §8.3) and
    /// creates the session's stream. Cheap: no model work happens here.
    func resolve(_ r: OpenSession, limits: ServerLimits, defaults: DaemonConfiguration.SessionDefaults) throws(SessionRejection) -> ResolvedSession {
        let promptBytes = r.prompt.utf8.count
        guard promptBytes <= limits.maxPromptBytes else {
            throw SessionRejection("prompt is \(promptBytes) bytes; this server accepts at most \(limits.maxPromptBytes)")
        }
        let negative = r.negativePrompt ?? ""
        guard negative.utf8.count <= limits.maxPromptBytes else {
            throw SessionRejection("negative_prompt is \(negative.utf8.count) bytes; this server accepts at most \(limits.maxPromptBytes)")
        }
        let steps = r.steps ?? min(defaults.steps, limits.maxSteps)
        guard steps <= limits.maxSteps else { throw SessionRejection("steps = \(steps) exceeds max_steps = \(limits.maxSteps)") }
        let guidance = r.guidance ?? defaultGuidance(defaults)
        let frames = r.framesPerClip ?? min(defaults.framesPerClip, limits.maxFramesPerClip)
        guard frames <= limits.maxFramesPerClip else {
            throw SessionRejection("frames_per_clip = \(frames) exceeds max_frames_per_clip = \(limits.maxFramesPerClip)")
        }
        let native = UInt32(pipeline.defaultSize)
        let width = r.width ?? defaults.width ?? native
        let height = r.height ?? defaults.height ?? native
        guard width <= limits.maxWidth else { throw SessionRejection("width = \(width) exceeds max_width = \(limits.maxWidth)") }
        guard height <= limits.maxHeight else { throw SessionRejection("height = \(height) exceeds max_height = \(limits.maxHeight)") }
        let multiple = limits.dimensionMultiple
        guard width % multiple == 0, height % multiple == 0 else {
            throw SessionRejection("width × height = \(width)×\(height) must be multiples of dimension_multiple = \(multiple)")
        }
        let fps = r.fps ?? defaults.fps
        let quality = r.webpQuality ?? defaults.webpQuality
        let lossless = r.webpLossless ?? defaults.webpLossless
        let credits = r.initialCredits ?? 0
        guard credits <= limits.maxCredits else {
            throw SessionRejection("initial_credits = \(credits) exceeds max_credits = \(limits.maxCredits)")
        }
        let weight = r.weight ?? 1
        let maxWeight = limits.maxSessionWeight ?? 1
        guard weight <= maxWeight else {
            throw SessionRejection("weight = \(weight) exceeds max_session_weight = \(maxWeight)")
        }

        // The strategy chain: absent = the registry's default; every parameter validated and spelled out.
        let requested: [VidrdPlugins.StrategySpec]
        if let chain = r.strategies {
            var specs: [VidrdPlugins.StrategySpec] = []
            for s in chain {
                var params: [String: ParameterValue] = [:]
                for p in s.params {
                    guard let v = Self.plugin(p.value) else {
                        throw SessionRejection("strategy \(s.name), parameter \(p.name): value \(p.value) is out of range")
                    }
                    params[p.name] = v
                }
                specs.append(VidrdPlugins.StrategySpec(name: s.name, parameters: params))
            }
            requested = specs
        } else {
            requested = registry.defaultChain
        }
        guard requested.count <= Int(limits.maxChainLength) else {
            throw SessionRejection("the chain has \(requested.count) strategies; max_chain_length = \(limits.maxChainLength)")
        }
        var effective: [VidrdProtocol.StrategySpec] = []
        for spec in requested {
            let resolved: StrategyParameters
            do {
                resolved = try registry.resolve(spec)
            } catch {
                throw SessionRejection("chain: \(error)")
            }
            let order = registry.info(named: spec.name)?.parameters.map(\.name) ?? resolved.values.keys.sorted()
            effective.append(
                VidrdProtocol.StrategySpec(
                    name: spec.name, params: order.compactMap { name in resolved.values[name].map { StrategyParam(name, Self.wire($0)) } }))
        }

        let emission: EmissionMode
        switch r.emission {
        case .all?: emission = .all
        case .new?: emission = .new
        case nil: emission = registry.defaultEmission
        }
        let promptFrames: Int
        if let m = r.promptFrames {
            guard m <= frames else { throw SessionRejection("prompt_frames = \(m) exceeds frames_per_clip = \(frames)") }
            promptFrames = Int(m)
        } else {
            promptFrames = min(registry.defaultPromptFrames, max(Int(frames) - 1, 0))
        }
        if emission == .new, promptFrames >= Int(frames), !requested.isEmpty {
            throw SessionRejection("emission new with prompt_frames = frames_per_clip = \(frames) would send no frames after the first clip")
        }

        var c = StreamConfiguration(prompt: r.prompt, registry: registry)
        c.negativePrompt = negative
        c.seed = r.seed ?? UInt64.random(in: 0...UInt64.max)
        c.steps = Int(steps)
        c.guidanceScale = Float(guidance)
        c.frames = Int(frames)
        c.width = Int(width)
        c.height = Int(height)
        c.strategies = requested
        c.emission = emission
        c.promptFrames = promptFrames
        switch r.noiseGenerator {
        case .torch?: c.noiseGenerator = .torch
        case .torchReuseAndDiffuse?: c.noiseGenerator = .torchReuseAndDiffuse
        case .vidrd?, nil: c.noiseGenerator = .vidrd
        }
        c.scheduler = r.scheduler.map(Self.schedulerKind)
        let stream: VideoStream
        do {
            stream = try VideoStream(pipeline: pipeline, configuration: c, registry: registry)
        } catch {
            throw SessionRejection("\(error)")
        }
        var decides = false
        for spec in requested {
            if let s = try? registry.make(spec), s.capabilities.emission { decides = true }
        }
        // A generating strategy (fifo) emits every frame of every clip, whatever was asked.
        let effectiveEmission = stream.configuration.emission
        var opened = SessionOpened(
            seed: c.seed, steps: steps, guidance: guidance, framesPerClip: frames, width: width, height: height, fps: fps,
            strategies: effective, webpQuality: quality, webpLossless: lossless,
            promptTokens: UInt32(pipeline.tokenizer.tokenize(r.prompt).count),
            promptFrames: UInt32(promptFrames), emission: effectiveEmission == .all ? .all : .new)
        opened.scheduler = Self.schedulerChoice(stream.scheduler.kind)
        opened.weight = weight
        var request = OpenSession(
            prompt: r.prompt, negativePrompt: negative, seed: c.seed, steps: steps, guidance: guidance, framesPerClip: frames,
            width: width, height: height, fps: fps, strategies: effective, webpQuality: quality, webpLossless: lossless,
            promptFrames: UInt32(promptFrames), emission: effectiveEmission == .all ? .all : .new)
        request.noiseGenerator = r.noiseGenerator ?? .vidrd
        // The effective scheduler, so that a continuation resumes with it even on a node whose
        // model folder names another.
        request.scheduler = opened.scheduler
        request.weight = weight
        return ResolvedSession(
            opened: opened, stream: stream, compression: lossless ? .lossless : .lossy(quality: Float(quality)),
            initialCredits: credits, emission: effectiveEmission, promptFrames: promptFrames, strategyDecidesEmission: decides,
            effectiveRequest: request)
    }

    static func schedulerKind(_ c: SchedulerChoice) -> SchedulerKind {
        switch c {
        case .ddim: return .ddim
        case .dpmSolver: return .dpmSolver
        case .euler: return .euler
        }
    }

    static func schedulerChoice(_ k: SchedulerKind) -> SchedulerChoice {
        switch k {
        case .ddim: return .ddim
        case .dpmSolver: return .dpmSolver
        case .euler: return .euler
        }
    }

    /// Resumes the stream of a continuation (OPEN_SESSION tag 19): checks its seal and model,
    /// resolves its parameters under this server's limits like any request, and restores the
    /// stream's state. What the token holds decides; the request may only repeat it.
    func resume(
        _ r: OpenSession, token: [UInt8], limits: ServerLimits, defaults: DaemonConfiguration.SessionDefaults,
        key: [UInt8], maxBytes: Int
    ) throws(SessionRejection) -> ResolvedSession {
        let c = try Continuation.open(token, key: key, maxBytes: maxBytes)
        guard c.model == modelFingerprint else {
            throw SessionRejection(
                .failedPrecondition,
                "continuation is for another model (fingerprint \(ModelFingerprint.short(c.model)); this server's \(modelName) is \(ModelFingerprint.short(modelFingerprint)))")
        }
        if let why = Continuation.mismatch(request: r, token: c.request) { throw SessionRejection(.invalidArgument, why) }
        var request = c.request
        request.initialCredits = r.initialCredits
        request.resumable = r.resumable
        var resolved: ResolvedSession
        do {
            resolved = try resolve(request, limits: limits, defaults: defaults)
        } catch {
            // The request was valid where it was made: this server differs (limits, strategies).
            throw SessionRejection(.failedPrecondition, "continuation cannot be resumed here: \(error.message)")
        }
        do {
            try resolved.stream.restoreState(c.state)
        } catch {
            throw SessionRejection(.failedPrecondition, "continuation cannot be resumed here: its stream state: \(error)")
        }
        guard resolved.stream.clipIndex == Int(c.nextClipIndex), resolved.stream.framesEmitted == Int64(c.nextFrameNumber) else {
            throw SessionRejection(.invalidArgument, "continuation: its stream state is at clip \(resolved.stream.clipIndex), its header says \(c.nextClipIndex)")
        }
        return resolved
    }
}
