import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// A thread-safe log shared between a test and the strategies/backends it creates.
final class Log<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [T] = []
    func append(_ x: T) { lock.lock(); items.append(x); lock.unlock() }
    var all: [T] { lock.lock(); defer { lock.unlock() }; return items }
}

/// A toy denoiser: real DDIM and the real sampler (`TextToVideoPipeline.sample`, hooks and all)
/// over a cheap closed-form noise predictor, so that strategy semantics are tested exactly and fast.
/// ε(x, t) = 0.1·x + 0.001·t + 0.02·f for the unconditional entry and 0.2·x − 0.001·t + 0.02·f for
/// the conditional one (f: frame index, so a frame's trajectory depends on where it sits); "decoding" is a sigmoid of the latents, pixel (y, x) of frame f, channel k = latent channel
/// k mod C.
struct ToyBackend: VideoBackend {
    var channels = 2, height = 4, width = 4
    var scheduler = DDIMScheduler(configuration: DDIMScheduler.Configuration())
    var timestepLog: Log<[Float]>? = nil

    func geometry(frames: Int, height h: Int?, width w: Int?) throws -> TextToVideoPipeline.Geometry {
        TextToVideoPipeline.Geometry(frames: frames, height: height, width: width, latentHeight: height,
                                     latentWidth: width, latentChannels: channels)
    }

    mutating func prepare(prompt: String, negativePrompt: String, guidanceScale: Float) throws {}

    /// DDIM (this backend's `scheduler`) unless another kind is asked for, which gets diffusers'
    /// default configuration of that kind.
    func scheduler(_ kind: SchedulerKind?) throws -> DiffusionScheduler {
        switch kind ?? .ddim {
        case .ddim: return .ddim(scheduler)
        case .dpmSolver: return .dpmSolver(try DPMSolverMultistepScheduler(configuration: .init()))
        case .euler: return .euler(try EulerDiscreteScheduler(configuration: .init()))
        }
    }

    func denoise<H: DenoiseHooks>(initialNoise: Tensor, scheduler: DiffusionScheduler, steps: Int, guidanceScale: Float,
                                  hooks: inout H, progress: (TextToVideoPipeline.StepProgress) -> Bool) throws -> Tensor {
        try TextToVideoPipeline.sample(initialNoise: initialNoise, scheduler: scheduler, steps: steps, guided: guidanceScale > 1,
                                       guidanceScale: guidanceScale, hooks: &hooks, progress: progress) { input, ts in
            timestepLog?.append(ts)
            return Self.model(input, ts)
        }
    }

    static func model(_ input: Tensor, _ ts: [Float]) -> Tensor {
        let b = input.shape[0], f = input.shape[2]
        let perEntry = input.count / b, plane = input.shape[3] * input.shape[4], c = input.shape[1]
        var out = input.scalars
        for e in 0..<b {
            for ch in 0..<c {
                for fr in 0..<f {
                    let t = ts.count == b ? ts[e] : ts[e * f + fr]
                    let base = e * perEntry + (ch * f + fr) * plane
                    for i in 0..<plane {
                        let x = input.scalars[base + i]
                        out[base + i] = (e == 0 ? 0.1 * x + 0.001 * t : 0.2 * x - 0.001 * t) + 0.02 * Float(fr)
                    }
                }
            }
        }
        return Tensor(shape: input.shape, scalars: out)
    }

    func decode(latents: Tensor, temporal: Bool) throws -> Tensor {
        let (c, n, h, w) = (latents.shape[1], latents.shape[2], latents.shape[3], latents.shape[4])
        var out = [Float](repeating: 0, count: n * h * w * 3)
        for f in 0..<n {
            for y in 0..<h {
                for x in 0..<w {
                    for k in 0..<3 {
                        let v = latents.scalars[((k % c) * n + f) * h * w + y * w + x]
                        out[((f * h + y) * w + x) * 3 + k] = 1 / (1 + exp(-v))
                    }
                }
            }
        }
        return Tensor(shape: [n, h, w, 3], scalars: out)
    }
}

/// Records what it sees: every step's input/output per clip, and the initial noise of each clip.
struct SpyStrategy: NoiseStrategy {
    struct Seen: Sendable { let clip: Int; let step: Int; let input: Tensor; let output: Tensor; let frameTimesteps: [FrameTimestep]? }
    let log: Log<Seen>
    let calls: Log<String>?
    let name: String
    var capabilities: StrategyCapabilities { StrategyCapabilities() }

    mutating func observe(_ clip: ClipContext, record: DenoiseStepRecord) throws {
        log.append(Seen(clip: clip.index, step: record.step.index, input: record.input, output: record.output,
                        frameTimesteps: record.step.frameTimesteps))
        calls?.append("\(name).observe")
    }
    mutating func clipFinished(_ clip: ClipContext, record: ClipRecord) throws { calls?.append("\(name).finished") }
}

/// A strategy with configurable capabilities and behaviour, for composition tests.
struct ProbeStrategy: NoiseStrategy {
    var capabilities: StrategyCapabilities
    var name: String
    var calls: Log<String>? = nil
    /// Value written into the frames it touches (initial noise or latents).
    var value: Float = 7
    var writeFrames: [Int] = []
    var emit: [Int]? = nil
    var timesteps: (@Sendable (ClipContext, DenoiseStep) -> [FrameTimestep]?)? = nil

    mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        calls?.append("\(name).noise.\(layer.rawValue)")
        for f in writeFrames { try draft.setFrame(f, [Float](repeating: value, count: clip.shape.frameSize)) }
    }
    mutating func overrideLatents(_ clip: ClipContext, step: DenoiseStep, latents: inout LatentFrames) throws {
        calls?.append("\(name).override")
        for f in writeFrames { try latents.replaceFrame(f, with: [Float](repeating: value, count: clip.shape.frameSize)) }
    }
    mutating func frameTimesteps(_ clip: ClipContext, step: DenoiseStep) throws -> [FrameTimestep]? {
        timesteps?(clip, step)
    }
    mutating func emittedFrames(_ clip: ClipContext, latents: Tensor) throws -> [Int]? { emit }
}

extension StrategyRegistry {
    mutating func add(_ name: String, _ make: @escaping @Sendable () -> any NoiseStrategy) {
        try! register(StrategyInfo(name: name, summary: "test", parameters: [])) { _ in make() }
    }
}

func toyConfig(_ chain: String, frames: Int = 6, promptFrames: Int = 2, steps: Int = 5, emission: EmissionMode = .all,
               seed: UInt64 = 7) throws -> StreamConfiguration {
    var c = StreamConfiguration(prompt: "toy")
    c.strategies = try StrategySpec.parseList(chain)
    c.frames = frames
    c.promptFrames = promptFrames
    c.steps = steps
    c.guidanceScale = 7.5
    c.emission = emission
    c.seed = seed
    return c
}

func clips(_ n: Int, _ chain: String, registry: StrategyRegistry = .builtIn(), backend: ToyBackend = ToyBackend(),
           configure: (inout StreamConfiguration) -> Void = { _ in }) throws -> [EmittedClip] {
    var c = try toyConfig(chain)
    configure(&c)
    var s = try VideoStream(backend: backend, configuration: c, registry: registry)
    return try (0..<n).map { _ in try s.nextClip() }
}

/// The fixtures folder (Tests/Fixtures).
let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures")

func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    actual.maxAbsDifference(expected) / Swift.max(expected.standardDeviation(), 1e-12)
}
