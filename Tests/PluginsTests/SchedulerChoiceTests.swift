import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// A stream's scheduler (`StreamConfiguration.scheduler`) on the toy backend: what reaches the
/// model, which chains it refuses, and that a stream under it stays reproducible and resumable.
/// Numerics against diffusers: ReferenceParityTests (vidrd-loop-dpm, vidrd-loop-euler).
@Suite struct SchedulerChoiceTests {
    static func config(_ chain: String, _ kind: SchedulerKind?) throws -> StreamConfiguration {
        var c = try toyConfig(chain, steps: 6)
        c.scheduler = kind
        return c
    }

    @Test(arguments: [SchedulerKind.dpmSolver, .euler])
    func perFrameTimestepStrategiesNeedDDIM(kind: SchedulerKind) throws {
        for chain in ["fifo", "freenoise,fifo", "fifo:window=4:partitions=2:lookahead=true"] {
            do {
                _ = try VideoStream(backend: ToyBackend(), configuration: try Self.config(chain, kind), registry: .builtIn())
                Issue.record("\(chain) under \(kind.rawValue) was accepted")
            } catch let PluginError.invalidConfiguration(message) {
                #expect(message.contains("\"fifo\"") && message.contains("ddim") && message.contains(kind.rawValue), "\(message)")
            }
            _ = try VideoStream(backend: ToyBackend(), configuration: try Self.config(chain, .ddim), registry: .builtIn())
        }
        // A third-party strategy that supplies per-frame timesteps is refused the same way.
        let chain: [(name: String, capabilities: StrategyCapabilities)] = [
            ("fnr", StrategyCapabilities()), ("stagger", StrategyCapabilities(timesteps: true))]
        #expect(throws: PluginError.self) { try VideoStream.checkScheduler(chain, scheduler: kind) }
        try VideoStream.checkScheduler(chain, scheduler: .ddim)
        // The paper's chain and FreeNoise only touch initial noise and whole-step latents: any scheduler.
        for chain in ["fnr,pns,dsg", "pyoco,fnr,pns", "freenoise,dsg", "none"] {
            _ = try VideoStream(backend: ToyBackend(), configuration: try Self.config(chain, kind), registry: .builtIn())
        }
    }

    @Test func theSamplerRefusesPerFrameTimestepsUnderAnotherScheduler() throws {
        let noise = Tensor(shape: [1, 2, 3, 4, 4], scalars: (0..<96).map { Float($0 % 7) / 7 - 0.5 })
        var hooks = FixedFrameTimesteps(timesteps: [FrameTimestep](repeating: FrameTimestep(timestep: 500, previous: 400), count: 3))
        let dpm = try ToyBackend().scheduler(.dpmSolver)
        #expect(throws: ModelError.self) {
            _ = try TextToVideoPipeline.sample(initialNoise: noise, scheduler: dpm, steps: 4, guided: false, guidanceScale: 1,
                                               hooks: &hooks) { x, ts in ToyBackend.model(x, ts) }
        }
    }

    /// Under DPM-Solver++ the model sees the solver's integer timesteps; under Euler its fractional
    /// ones, and its input divided by sqrt(σ² + 1) after the initial noise was scaled by σ_max.
    @Test func theModelSeesTheSchedulersTimestepsAndInputScaling() throws {
        for kind in [SchedulerKind.ddim, .dpmSolver, .euler] {
            let log = Log<[Float]>()
            var backend = ToyBackend()
            backend.timestepLog = log
            let scheduler = try backend.scheduler(kind)
            var s = try VideoStream(backend: backend, configuration: try Self.config("none", kind), registry: .builtIn())
            #expect(s.scheduler.kind == kind)
            let clip = try s.nextClip()
            let expected = try scheduler.timesteps(steps: 6)
            #expect(log.all.map { $0[0] } == expected, "\(kind.rawValue): \(log.all.map { $0[0] })")
            let uniform = log.all.allSatisfy { Set($0).count == 1 }
            #expect(uniform, "one timestep for both guidance entries")
            if kind == .euler {
                let fractional = expected.contains { $0 != $0.rounded() }
                #expect(fractional, "diffusers' default Euler spacing gives fractional timesteps")
            }
            let finite = clip.latents.scalars.allSatisfy { $0.isFinite }
            #expect(finite)
        }
        // The first U-Net input under Euler: noise · init_noise_sigma / sqrt(σ₀² + 1).
        let euler = try ToyBackend().scheduler(.euler)
        let run = try euler.start(steps: 6)
        let noise = Tensor(shape: [1, 1, 1, 1, 2], scalars: [1, -2])
        var seen: Tensor?
        var hooks = NoDenoiseHooks()
        _ = try TextToVideoPipeline.sample(initialNoise: noise, scheduler: euler, steps: 6, guided: false, guidanceScale: 1,
                                           hooks: &hooks) { x, ts in
            if seen == nil { seen = x }
            return ToyBackend.model(x, ts)
        }
        let sigma0 = try EulerDiscreteScheduler(configuration: .init()).sigmas(steps: 6)[0]
        let divisor = (sigma0 * sigma0 + 1).squareRoot()
        #expect(run.initNoiseSigma > 1)
        #expect(try #require(seen).scalars == [1 * run.initNoiseSigma / divisor, -2 * run.initNoiseSigma / divisor])
    }

    /// Same seed, same scheduler: the same stream; another scheduler: another stream. A saved
    /// state restored into a fresh stream of the same scheduler continues bit for bit.
    @Test(arguments: [SchedulerKind.dpmSolver, .euler])
    func aStreamUnderAnotherSchedulerIsReproducibleAndResumable(kind: SchedulerKind) throws {
        let c = try Self.config("fnr,pns,dsg", kind)
        var a = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        var ddim = try VideoStream(backend: ToyBackend(), configuration: try Self.config("fnr,pns,dsg", nil), registry: .builtIn())
        let first = try a.nextClip()
        let ddimFirst = try ddim.nextClip()
        // (The toy's sigmoid "decoder" saturates at guidance 7.5: compare latents.)
        #expect(first.latents != ddimFirst.latents, "the scheduler changes the clip")
        let saved = try a.saveState()
        let reference = try (0..<2).map { _ in try a.nextClip() }
        var b = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        let again = try b.nextClip()
        #expect(again.latents == first.latents && again.frames == first.frames)
        var restored = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        try restored.restoreState(saved)
        for r in reference {
            let clip = try restored.nextClip()
            #expect(clip.index == r.index && clip.latents.scalars.map(\.bitPattern) == r.latents.scalars.map(\.bitPattern))
        }
    }

    @Test func schedulerNames() {
        #expect(SchedulerKind(name: "dpm++") == .dpmSolver)
        #expect(SchedulerKind(name: "DPMSolver++") == .dpmSolver)
        #expect(SchedulerKind(name: "DPMSolverMultistepScheduler") == .dpmSolver)
        #expect(SchedulerKind(name: "EulerDiscreteScheduler") == .euler)
        #expect(SchedulerKind(name: "ddim") == .ddim)
        #expect(SchedulerKind(name: "pndm") == nil)
        #expect(SchedulerKind.allCases.map(\.supportsFrameTimesteps) == [true, false, false])
    }
}
