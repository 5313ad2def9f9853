import VidrdRuntime

// MARK: - Declared capabilities

/// Which clips of a stream a noise claim covers.
public enum ClipSelection: String, Sendable, Equatable {
    /// Clip 0 only (noise priors).
    case first
    /// Clips 1, 2, … (continuation strategies).
    case continuing
    case all

    func overlaps(_ o: ClipSelection) -> Bool { self == .all || o == .all || self == o }
    func contains(clip: Int) -> Bool {
        switch self {
        case .first: return clip == 0
        case .continuing: return clip > 0
        case .all: return true
        }
    }
}

/// Which frames of a clip: all N, the M prompt frames `0..<M`, or the new frames `M..<N`.
public enum FrameSelection: String, Sendable, Equatable {
    case all, prompt, new

    public func range(frames n: Int, promptFrames m: Int) -> Range<Int> {
        switch self {
        case .all: return 0..<n
        case .prompt: return 0..<m
        case .new: return m..<n
        }
    }
}

/// Initial-noise layers: every `base` claim of the chain runs (in chain order) before every
/// `refine` claim (in chain order). A base builds frames from scratch; a refine rewrites frames
/// that a base (or the fresh draw) left.
public enum NoiseLayer: String, Sendable, Equatable { case base, refine }

/// A strategy's declaration that it writes the initial noise of some frames of some clips.
public struct NoiseClaim: Sendable, Equatable {
    public var layer: NoiseLayer
    public var clips: ClipSelection
    public var frames: FrameSelection
    public init(_ layer: NoiseLayer, clips: ClipSelection, frames: FrameSelection) {
        self.layer = layer
        self.clips = clips
        self.frames = frames
    }
}

/// What a strategy does, declared up front so that a chain's conflicts are found when the stream
/// is created, not after a clip has been rendered. A strategy that writes outside its declaration
/// fails the clip with an error.
public struct StrategyCapabilities: Sendable, Equatable {
    /// Initial-noise writes. Two claims of the same layer that overlap in clips and frames conflict.
    public var noise: [NoiseClaim] = []
    /// Frames whose latents it may overwrite before a step (any clip; the strategy decides when).
    /// Overlapping frame sets of two strategies conflict.
    public var latentOverrides: FrameSelection? = nil
    /// Supplies per-frame timesteps (at most one strategy per chain).
    public var timesteps = false
    /// Decides which frames are emitted (at most one strategy per chain; it replaces the
    /// stream's emission mode).
    public var emission = false
    /// Must be the only strategy of its chain ("none").
    public var exclusive = false
    /// Runs the clip's denoising itself through `generateClip` (FIFO-Diffusion's diagonal
    /// denoising): at most one per chain, and it excludes per-step hooks of other strategies
    /// (latent overrides, timesteps, emission), which would have no steps of their own to act on.
    public var generates = false

    public init(noise: [NoiseClaim] = [], latentOverrides: FrameSelection? = nil, timesteps: Bool = false,
                emission: Bool = false, exclusive: Bool = false, generates: Bool = false) {
        self.noise = noise
        self.latentOverrides = latentOverrides
        self.timesteps = timesteps
        self.emission = emission
        self.exclusive = exclusive
        self.generates = generates
    }
}

// MARK: - What strategies see

/// The shape of the clips of a stream.
public struct ClipShape: Sendable, Equatable {
    /// N frames, C latent channels, h × w latents.
    public let frames: Int, channels: Int, height: Int, width: Int
    /// M prompt frames.
    public let promptFrames: Int
    /// S denoising steps.
    public let steps: Int
    public var latentShape: [Int] { [1, channels, frames, height, width] }
    public var frameSize: Int { channels * height * width }
}

/// What the stream remembers of a finished clip.
public struct ClipRecord: Sendable {
    public let index: Int
    /// The initial noise the clip was denoised from (after all strategies), `[1, C, N, h, w]`.
    public let initialNoise: Tensor
    /// Final latents `[1, C, N, h, w]`.
    public let latents: Tensor
    /// Frame indices that were emitted.
    public let emitted: [Int]
}

/// The clip being generated.
public struct ClipContext: Sendable {
    /// 0 for the first clip of the stream.
    public let index: Int
    public let shape: ClipShape
    /// This clip's one standard-normal draw, `[1, C, N, h, w]` (the noise tape's tensor).
    public let fresh: Tensor
    /// The previous clip, nil for clip 0.
    public let previous: ClipRecord?
}

// MARK: - The strategy protocol

/// A noise strategy: one instance per stream, created from validated parameters, keeping
/// whatever state it needs across clips. Every hook has a default that does nothing, so a
/// strategy implements only the hooks its `capabilities` declare.
///
/// Per clip the stream calls, in order: `initialNoise` (bases, then refines), then per step
/// `frameTimesteps` → `overrideLatents` → U-Net + DDIM → `observe`, then `emittedFrames`, then
/// `clipFinished`. Within one hook, strategies run in chain order.
public protocol NoiseStrategy: Sendable {
    var capabilities: StrategyCapabilities { get }
    /// Writes initial-noise frames through `draft` (only those its claims cover).
    mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws
    /// Per-frame timesteps for `step`, or nil for the uniform schedule.
    mutating func frameTimesteps(_ clip: ClipContext, step: DenoiseStep) throws -> [FrameTimestep]?
    /// Overwrites latents of frames (only those it declared) before the U-Net call of `step`.
    mutating func overrideLatents(_ clip: ClipContext, step: DenoiseStep, latents: inout LatentFrames) throws
    /// Sees each step's input latents, noise prediction and output latents.
    mutating func observe(_ clip: ClipContext, record: DenoiseStepRecord) throws
    /// The frame indices to emit (strictly increasing, in 0..<N), or nil for the stream's mode.
    mutating func emittedFrames(_ clip: ClipContext, latents: Tensor) throws -> [Int]?
    /// Called after the clip is decoded and emitted.
    mutating func clipFinished(_ clip: ClipContext, record: ClipRecord) throws
    /// Only for `capabilities.generates`: produces the clip's latents `[1, C, N, h, w]` itself with
    /// `sampler` (guided U-Net steps over any window of frames with per-frame timesteps), starting
    /// from the chain's `initialNoise`; all N frames are emitted.
    mutating func generateClip(_ clip: ClipContext, initialNoise: Tensor, sampler: inout ClipSampler) throws -> Tensor
    /// Rejects a stream whose shape or scheduler this strategy cannot serve, when the stream is
    /// created (so a session fails at OPEN_SESSION, not at its first clip). The stream itself
    /// already rejects per-frame timesteps and `generates` under a scheduler other than DDIM.
    func check(shape: ClipShape, scheduler: DiffusionScheduler) throws
}

extension NoiseStrategy {
    public mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {}
    public mutating func frameTimesteps(_ clip: ClipContext, step: DenoiseStep) throws -> [FrameTimestep]? { nil }
    public mutating func overrideLatents(_ clip: ClipContext, step: DenoiseStep, latents: inout LatentFrames) throws {}
    public mutating func observe(_ clip: ClipContext, record: DenoiseStepRecord) throws {}
    public mutating func emittedFrames(_ clip: ClipContext, latents: Tensor) throws -> [Int]? { nil }
    public mutating func clipFinished(_ clip: ClipContext, record: ClipRecord) throws {}
    public mutating func generateClip(_ clip: ClipContext, initialNoise: Tensor, sampler: inout ClipSampler) throws -> Tensor {
        throw PluginError.invalidConfiguration("this strategy declares `generates` but does not implement generateClip")
    }
    public func check(shape: ClipShape, scheduler: DiffusionScheduler) throws {}
}

// MARK: - Frame access with write checks

extension Tensor {
    /// Frame `f` of latents `[1, C, F, h, w]` as `C × h × w` values (channel-major).
    public func latentFrame(_ f: Int) -> [Float] {
        precondition(rank == 5 && shape[0] == 1 && f >= 0 && f < shape[2], "frame \(f) of \(shape)")
        let (c, n, plane) = (shape[1], shape[2], shape[3] * shape[4])
        var out = [Float](repeating: 0, count: c * plane)
        scalars.withUnsafeBufferPointer { s in
            for ch in 0..<c {
                let src = (ch * n + f) * plane
                for i in 0..<plane { out[ch * plane + i] = s[src + i] }
            }
        }
        return out
    }

    /// Replaces frame `f` of latents `[1, C, F, h, w]` with `C × h × w` values.
    public mutating func setLatentFrame(_ f: Int, _ values: [Float]) {
        precondition(rank == 5 && shape[0] == 1 && f >= 0 && f < shape[2], "frame \(f) of \(shape)")
        let (c, n, plane) = (shape[1], shape[2], shape[3] * shape[4])
        precondition(values.count == c * plane, "a frame of \(shape) holds \(c * plane) values, got \(values.count)")
        scalars.withUnsafeMutableBufferPointer { d in
            for ch in 0..<c {
                let dst = (ch * n + f) * plane
                for i in 0..<plane { d[dst + i] = values[ch * plane + i] }
            }
        }
    }
}

/// The initial noise of a clip while the chain builds it. Starts as the clip's fresh draw;
/// a strategy writes only the frames its claims allow, and no frame twice within one layer.
public struct NoiseDraft: Sendable {
    public private(set) var noise: Tensor
    var writers: [NoiseLayer: [Int: String]] = [:]
    var current: (name: String, layer: NoiseLayer, allowed: Set<Int>)?

    init(fresh: Tensor) { noise = fresh }

    public func frame(_ f: Int) -> [Float] { noise.latentFrame(f) }

    public mutating func setFrame(_ f: Int, _ values: [Float]) throws {
        guard let (name, layer, allowed) = current else { preconditionFailure("NoiseDraft used outside a strategy hook") }
        guard allowed.contains(f) else {
            throw PluginError.strategyFailed(strategy: name, reason: "wrote initial-noise frame \(f), outside its declared claims (\(layer.rawValue) layer)")
        }
        if let other = writers[layer]?[f], other != name {
            throw PluginError.conflict("\"\(other)\" and \"\(name)\" both write initial-noise frame \(f) in the \(layer.rawValue) layer")
        }
        writers[layer, default: [:]][f] = name
        noise.setLatentFrame(f, values)
    }
}

/// The latents before a denoising step. A strategy replaces only the frames it declared, and no
/// two strategies replace the same frame at the same step.
public struct LatentFrames: Sendable {
    public private(set) var latents: Tensor
    var writers: [Int: String] = [:]
    var current: (name: String, allowed: Set<Int>)?

    init(_ latents: Tensor) { self.latents = latents }

    public func frame(_ f: Int) -> [Float] { latents.latentFrame(f) }

    public mutating func replaceFrame(_ f: Int, with values: [Float]) throws {
        guard let (name, allowed) = current else { preconditionFailure("LatentFrames used outside a strategy hook") }
        guard allowed.contains(f) else {
            throw PluginError.strategyFailed(strategy: name, reason: "overrode latents of frame \(f), outside its declared frames")
        }
        if let other = writers[f], other != name {
            throw PluginError.conflict("\"\(other)\" and \"\(name)\" both override latents of frame \(f) at the same step")
        }
        writers[f] = name
        latents.setLatentFrame(f, values)
    }
}

// MARK: - Saving a strategy's state

/// A strategy whose state between clips can be saved and restored (`VideoStream.saveState`,
/// `restoreState`), so that another process can continue its stream. Opting in is explicit: a
/// strategy that keeps state across clips and does not conform makes its stream non-resumable,
/// rather than being resumed with that state silently lost. A strategy with no state across clips
/// conforms by writing nothing.
///
/// The stream tags each strategy's section with its chain name and `stateFormatVersion` and checks
/// both, and that the section was read to its end, so `restoreState` reads only its own layout.
public protocol ResumableStrategy: NoiseStrategy {
    /// Changes whenever the layout written by `saveState` changes; a blob of another version is refused.
    static var stateFormatVersion: UInt32 { get }
    /// Writes the state between clips (called only at a clip boundary). Deterministic: the same
    /// state writes the same bytes.
    func saveState(into writer: inout StateWriter)
    /// Replaces the state with one `saveState` wrote for an instance made with the same parameters
    /// on a stream of `shape`. Must check every count against `shape` (throwing, never trapping)
    /// before it allocates.
    mutating func restoreState(from reader: inout StateReader, shape: ClipShape) throws
    /// The most bytes `saveState` writes on a stream of `shape`.
    func stateSizeBound(shape: ClipShape) -> Int
}

/// A strategy that holds nothing across clips (whatever it needs comes from the clip's context,
/// the previous clip's record included), declared as such: conforming is the opt-in to resuming,
/// and the state it saves is empty.
public protocol StatelessStrategy: ResumableStrategy {}

extension StatelessStrategy {
    public static var stateFormatVersion: UInt32 { 1 }
    public func saveState(into writer: inout StateWriter) {}
    public mutating func restoreState(from reader: inout StateReader, shape: ClipShape) throws {}
    public func stateSizeBound(shape: ClipShape) -> Int { 0 }
}
