import VidrdRuntime

/// "none": fresh i.i.d. noise for every clip, nothing reused — the baseline.
public struct NoneStrategy: NoiseStrategy {
    public init() {}
    public var capabilities: StrategyCapabilities { StrategyCapabilities(exclusive: true) }
}

/// FNR, frame-level noise reversion: clip i's initial noise of frame j is clip i−1's initial
/// noise of frame N−1−j.
public struct FNRStrategy: NoiseStrategy {
    public init() {}
    public var capabilities: StrategyCapabilities {
        StrategyCapabilities(noise: [NoiseClaim(.base, clips: .continuing, frames: .all)])
    }

    public mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        guard let previous = clip.previous else { return }
        let n = clip.shape.frames
        for j in 0..<n { try draft.setFrame(j, previous.initialNoise.latentFrame(n - 1 - j)) }
    }
}

/// PNS, past-dependent noise sampling: for frames j ≥ M the initial noise is
/// α/√(1+α²)·(clip i−1's initial noise of frame N−1−j) + ε, ε = fresh_j/√(1+α²) ~ N(0, 1/(1+α²)),
/// where fresh is the clip's standard-normal draw. Frames j < M are left to the base layer (FNR).
public struct PNSStrategy: NoiseStrategy {
    public let alpha: Double
    public init(alpha: Double) { self.alpha = alpha }
    public var capabilities: StrategyCapabilities {
        StrategyCapabilities(noise: [NoiseClaim(.refine, clips: .continuing, frames: .new)])
    }

    /// (weight of the reversed previous noise, weight of the fresh draw), as fp32 like the reference.
    public static func weights(alpha: Double) -> (previous: Float, fresh: Float) {
        let norm = (1 + alpha * alpha).squareRoot()
        return (Float(alpha / norm), Float(1 / norm))
    }

    public mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        guard let previous = clip.previous else { return }
        let (n, m) = (clip.shape.frames, clip.shape.promptFrames)
        let (wp, wf) = Self.weights(alpha: alpha)
        for j in m..<n {
            try draft.setFrame(j, weightedSum(wp, previous.initialNoise.latentFrame(n - 1 - j), wf, clip.fresh.latentFrame(j)))
        }
    }
}

/// DSG, denoising with staged guidance: records the latents at the input of every step of each
/// clip; at step k of clip i, before the U-Net call, frame j < M is replaced by clip i−1's
/// recorded latents of frame N−1−j at step k whenever k < β·S·(M−j)/M.
public struct DSGStrategy: NoiseStrategy {
    public let beta: Double
    /// Per step of the clip being generated: the input latents of frames N−1−j, j = 0..<M (only
    /// what the next clip can use, M/N of the latents).
    private var recording: [[[Float]]] = []
    private var previousSteps: [[[Float]]] = []

    public init(beta: Double) { self.beta = beta }
    public var capabilities: StrategyCapabilities { StrategyCapabilities(latentOverrides: .prompt) }

    /// Whether frame j is guided at step k (0-based, k = 0 noisiest) for M prompt frames, S steps.
    public static func guides(step k: Int, frame j: Int, promptFrames m: Int, steps s: Int, beta: Double) -> Bool {
        guard j >= 0, j < m else { return false }
        return Double(k) < beta * Double(s) * Double(m - j) / Double(m)
    }

    public mutating func overrideLatents(_ clip: ClipContext, step: DenoiseStep, latents: inout LatentFrames) throws {
        if step.index == 0 { recording = [] }
        guard clip.previous != nil, beta > 0 else { return }
        let (m, s) = (clip.shape.promptFrames, clip.shape.steps)
        guard previousSteps.count == s else {
            throw PluginError.strategyFailed(strategy: "dsg", reason: "recorded \(previousSteps.count) steps of the previous clip, need \(s)")
        }
        for j in 0..<m where Self.guides(step: step.index, frame: j, promptFrames: m, steps: s, beta: beta) {
            try latents.replaceFrame(j, with: previousSteps[step.index][j])
        }
    }

    public mutating func observe(_ clip: ClipContext, record: DenoiseStepRecord) throws {
        let (n, m) = (clip.shape.frames, clip.shape.promptFrames)
        recording.append((0..<m).map { record.input.latentFrame(n - 1 - $0) })
    }

    public mutating func clipFinished(_ clip: ClipContext, record: ClipRecord) throws {
        previousSteps = recording
        recording = []
    }
}

/// PYoCo progressive noise prior for clip 0: frame 0 is the fresh draw's frame 0 and frame f is
/// a/√(1+a²)·frame f−1 + fresh_f/√(1+a²), so every frame keeps unit variance (the factor on the
/// fresh draw is a standard deviation, not the variance 1/(1+a²)).
///
/// `authorsScale` reproduces the VidRD authors' `randn_progressive` instead: their fresh factor is
/// the variance 1/(1+a²) passed as a standard deviation (later frames' noise shrinks), which their
/// released sampling (`noise_alpha`) uses; the `vidrd-paper` preset turns it on.
public struct PYoCoStrategy: NoiseStrategy {
    public let a: Double
    public let authorsScale: Bool
    public init(a: Double, authorsScale: Bool = false) { self.a = a; self.authorsScale = authorsScale }
    public var capabilities: StrategyCapabilities {
        StrategyCapabilities(noise: [NoiseClaim(.base, clips: .first, frames: .all)])
    }

    public mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        guard clip.index == 0 else { return }
        let (wp, unitFresh) = PNSStrategy.weights(alpha: a)
        let wf = authorsScale ? Float(1 / (1 + a * a)) : unitFresh
        var prev = clip.fresh.latentFrame(0)
        try draft.setFrame(0, prev)
        for f in 1..<Swift.max(clip.shape.frames, 1) {
            let v = weightedSum(wp, prev, wf, clip.fresh.latentFrame(f))
            try draft.setFrame(f, v)
            prev = v
        }
    }
}

/// a·x + b·y, element by element: the one way the noise strategies mix two noise frames.
func weightedSum(_ a: Float, _ x: [Float], _ b: Float, _ y: [Float]) -> [Float] {
    var v = [Float](repeating: 0, count: x.count)
    for i in 0..<v.count { v[i] = a * x[i] + b * y[i] }
    return v
}

// MARK: - Saved state

/// The parameter-only built-ins hold nothing across clips: they save nothing.
extension NoneStrategy: StatelessStrategy {}
extension FNRStrategy: StatelessStrategy {}
extension PNSStrategy: StatelessStrategy {}
extension PYoCoStrategy: StatelessStrategy {}

/// DSG carries the previous clip's recorded prompt-frame latents of every step (S × M frames);
/// `recording` is always empty between clips, so only `previousSteps` is saved.
extension DSGStrategy: ResumableStrategy {
    public static var stateFormatVersion: UInt32 { 1 }

    public func saveState(into writer: inout StateWriter) {
        writer.count(previousSteps.count)
        for step in previousSteps {
            writer.count(step.count)
            for frame in step { writer.f32Array(frame) }
        }
    }

    public mutating func restoreState(from reader: inout StateReader, shape: ClipShape) throws {
        // Before the first clip has finished nothing is recorded; after it, every one of the S steps.
        let steps = try reader.count("dsg recorded steps", max: shape.steps)
        guard steps == 0 || steps == shape.steps else {
            throw StateCodingError("dsg recorded \(steps) steps, this stream has \(shape.steps)")
        }
        var recorded: [[[Float]]] = []
        recorded.reserveCapacity(steps)
        for k in 0..<steps {
            try reader.count("dsg step \(k) frames", expected: shape.promptFrames)
            recorded.append(try (0..<shape.promptFrames).map { j in
                try reader.f32Array("dsg step \(k) frame \(j)", count: shape.frameSize)
            })
        }
        previousSteps = recorded
        recording = []
    }

    public func stateSizeBound(shape: ClipShape) -> Int {
        StateWriter.countSize + shape.steps * (StateWriter.countSize + shape.promptFrames * StateWriter.f32ArraySize(shape.frameSize))
    }
}

extension StrategyRegistry {
    /// The built-in strategies with the paper's defaults.
    static let builtInEntries: [Entry] = [
        Entry(info: StrategyInfo(name: "none", summary: "fresh i.i.d. noise for every clip (baseline); must be alone", parameters: []),
              make: { _ in NoneStrategy() }),
        Entry(info: StrategyInfo(name: "fnr", summary: "frame-level noise reversion: clip i's noise of frame j = clip i−1's noise of frame N−1−j", parameters: []),
              make: { _ in FNRStrategy() }),
        Entry(info: StrategyInfo(name: "pns", summary: "past-dependent noise sampling: frames j ≥ M mix reversed previous noise with fresh noise",
                                 parameters: [.double("alpha", 4, "weight of the reused noise: α/√(1+α²)·previous + fresh/√(1+α²); 0 = fresh noise", min: 0)]),
              make: { p in PNSStrategy(alpha: p.double("alpha")) }),
        Entry(info: StrategyInfo(name: "dsg", summary: "denoising with staged guidance: prompt frame j copies the previous clip's step-k latents of frame N−1−j while k < β·S·(M−j)/M",
                                 parameters: [.double("beta", 0.4, "proportion of guided steps, in [0, 1]; 0 = off", min: 0, max: 1)]),
              make: { p in DSGStrategy(beta: p.double("beta")) }),
        Entry(info: StrategyInfo(name: "pyoco", summary: "PYoCo progressive noise prior for clip 0: frame f = a/√(1+a²)·frame f−1 + fresh/√(1+a²)",
                                 parameters: [.double("a", 1, "correlation of consecutive frames' noise (a/√(1+a²)); 0 = i.i.d.", min: 0),
                                              ParameterInfo(name: "authors_scale", kind: "bool", defaultValue: .bool(false),
                                                            help: "the VidRD authors' randn_progressive: fresh noise scaled by 1/(1+a²) (their variance used as a standard deviation)")]),
              make: { p in PYoCoStrategy(a: p.double("a"), authorsScale: p.bool("authors_scale")) }),
        Entry(info: StrategyInfo(name: "fifo", summary: "FIFO-Diffusion: diagonal denoising over a queue of frames at rising noise levels; one clean frame out per iteration, never replayed",
                                 parameters: [.int("partitions", 0, "n: the queue holds n·window frames, one DDIM level apart (0 = steps / window, at least 1)", min: 0, max: 64),
                                              .int("window", 0, "frames per U-Net call (0 = frames per clip)", min: 0, max: Double(StreamConfiguration.maxFrames)),
                                              ParameterInfo(name: "lookahead", kind: "bool", defaultValue: .bool(false),
                                                            help: "lookahead denoising: windows of stride window/2 that keep their later half (twice the U-Net calls)")]),
              make: { p in FIFOStrategy(partitions: p.int("partitions"), window: p.int("window"), lookahead: p.bool("lookahead")) }),
        Entry(info: StrategyInfo(name: "freenoise", summary: "FreeNoise noise rescheduling: clips ≥ 1 reuse the previous clip's noise, shuffled within local windows (no reversal)",
                                 parameters: [.int("window", 4, "frames per local shuffle window", min: 1, max: Double(StreamConfiguration.maxFrames)),
                                              .double("reuse", 1, "ρ: √ρ·reused + √(1−ρ)·fresh; 1 = pure reuse (FreeNoise)", min: 0, max: 1)]),
              make: { p in FreeNoiseStrategy(window: p.int("window"), reuse: p.double("reuse")) }),
    ]
}
