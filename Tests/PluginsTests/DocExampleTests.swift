import Foundation
import Testing
import VidrdPlugins
import VidrdRuntime

// The worked example of docs/PLUGINS.md, compiled and run here so that the doc cannot rot.

// docs:begin
/// PNS with an α that decays along the clip: frame j ≥ M mixes the reversed previous noise with
/// weight α_j/√(1+α_j²), α_j = α·decay^(j−M), so frames far from the seam get fresher noise. It
/// also keeps per-stream state: the mean |noise prediction| of every step of the last clip.
struct DecayingPNS: NoiseStrategy {
    let alpha: Double, decay: Double
    private(set) var stepMagnitudes: [Float] = []

    init(alpha: Double, decay: Double) { self.alpha = alpha; self.decay = decay }

    // Refines the new frames of clips ≥ 1 (the base layer, e.g. FNR, writes the rest).
    var capabilities: StrategyCapabilities {
        StrategyCapabilities(noise: [NoiseClaim(.refine, clips: .continuing, frames: .new)])
    }

    mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        guard let previous = clip.previous else { return }
        let (n, m) = (clip.shape.frames, clip.shape.promptFrames)
        for j in m..<n {
            let a = alpha * pow(decay, Double(j - m))
            let wp = Float(a / (1 + a * a).squareRoot()), wf = Float(1 / (1 + a * a).squareRoot())
            let reused = previous.initialNoise.latentFrame(n - 1 - j), fresh = clip.fresh.latentFrame(j)
            try draft.setFrame(j, zip(reused, fresh).map { wp * $0 + wf * $1 })
        }
    }

    mutating func observe(_ clip: ClipContext, record: DenoiseStepRecord) throws {
        if record.step.index == 0 { stepMagnitudes = [] }
        let p = record.noisePrediction.scalars
        stepMagnitudes.append(p.reduce(0) { $0 + abs($1) } / Float(p.count))
    }
}

func makeRegistry(conf: String = "plugins.conf") throws -> StrategyRegistry {
    var registry = try StrategyRegistry.load(conf: conf)   // built-ins + plugins.conf
    try registry.register(StrategyInfo(
        name: "pns_decay",
        summary: "PNS whose α decays along the clip",
        parameters: [.double("alpha", 4, "α at frame M", min: 0),
                     .double("decay", 0.8, "factor per frame", min: 0, max: 1)])) { p in
        DecayingPNS(alpha: p.double("alpha"), decay: p.double("decay"))
    }
    return registry
}

func streamThreeClips(pipeline: TextToVideoPipeline) throws -> [EmittedClip] {
    let registry = try makeRegistry()
    var config = StreamConfiguration(prompt: "a red ball bouncing on grass", registry: registry)
    config.steps = 25
    config.strategies = [StrategySpec(name: "fnr"),
                         StrategySpec(name: "pns_decay", parameters: ["decay": .double(0.5)]),
                         StrategySpec(name: "dsg", parameters: ["beta": .double(0.3)])]
    var stream = try VideoStream(pipeline: pipeline, configuration: config, registry: registry)
    return try (0..<3).map { _ in
        try stream.nextClip { p in print("step \(p.step)/\(p.totalSteps)"); return true }
    }
}
// docs:end

// docs:resume:begin
/// Opting in to `VideoStream.saveState`: the step magnitudes are the strategy's only state.
extension DecayingPNS: ResumableStrategy {
    static var stateFormatVersion: UInt32 { 1 }

    func saveState(into writer: inout StateWriter) { writer.f32Array(stepMagnitudes) }

    mutating func restoreState(from reader: inout StateReader, shape: ClipShape) throws {
        // Empty before the first clip, one value per step after it; nothing else is accepted.
        let m = try reader.f32Array("pns_decay step magnitudes", max: shape.steps)
        guard m.isEmpty || m.count == shape.steps else {
            throw StateCodingError("pns_decay: \(m.count) step magnitudes for \(shape.steps) steps")
        }
        stepMagnitudes = m
    }

    func stateSizeBound(shape: ClipShape) -> Int { StateWriter.f32ArraySize(shape.steps) }
}
// docs:resume:end

@Suite struct DocExampleTests {
    @Test func workedExampleRunsOnTheToyBackend() throws {
        // The same registry and chain as the doc, on the toy denoiser (the doc runs the real model).
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let registry = try makeRegistry(conf: root.appendingPathComponent("plugins.conf").path)
        #expect(registry.info(named: "pns_decay")?.parameters.map(\.name) == ["alpha", "decay"])
        var config = StreamConfiguration(prompt: "x", registry: registry)
        config.steps = 3
        config.frames = 6
        config.promptFrames = 2
        config.strategies = [StrategySpec(name: "fnr"), StrategySpec(name: "pns_decay", parameters: ["decay": .double(0.5)]),
                             StrategySpec(name: "dsg", parameters: ["beta": .double(0.3)])]
        var stream = try VideoStream(backend: ToyBackend(), configuration: config, registry: registry)
        let c0 = try stream.nextClip(), c1 = try stream.nextClip()
        // Frame M mixes with α = 4, frame N−1 with α = 4·0.5³ = 0.5.
        let a: Float = 0.5, wp = a / (1 + a * a).squareRoot(), wf = 1 / (1 + a * a).squareRoot()
        let expected = zip(c0.initialNoise.latentFrame(0), c1.noiseDraw.latentFrame(5)).map { wp * $0 + wf * $1 }
        let got = c1.initialNoise.latentFrame(5)
        #expect(zip(got, expected).allSatisfy { abs($0 - $1) < 1e-6 })

        // The doc's ResumableStrategy conformance: a restored stream continues bit for bit.
        #expect(stream.resumeObstacle == nil)
        var restored = try VideoStream(backend: ToyBackend(), configuration: config, registry: registry)
        try restored.restoreState(try stream.saveState())
        let (a2, b2) = (try stream.nextClip(), try restored.nextClip())
        #expect(a2.frames.scalars.map(\.bitPattern) == b2.frames.scalars.map(\.bitPattern))
        #expect(a2.latents.scalars.map(\.bitPattern) == b2.latents.scalars.map(\.bitPattern))
    }
}
