import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

@Suite struct StrategyTests {
    let n = 6, m = 2

    @Test func noneUsesTheFreshDrawEveryClip() throws {
        let cs = try clips(3, "none")
        for c in cs { #expect(c.initialNoise == c.noiseDraw) }
        #expect(cs[0].noiseDraw != cs[1].noiseDraw)
    }

    @Test func fnrReversesThePreviousInitialNoise() throws {
        let cs = try clips(3, "fnr")
        #expect(cs[0].initialNoise == cs[0].noiseDraw)
        for i in 1..<3 {
            for j in 0..<n { #expect(cs[i].initialNoise.latentFrame(j) == cs[i - 1].initialNoise.latentFrame(n - 1 - j)) }
        }
        // Reversal twice is the identity: clip 2's noise is clip 0's.
        #expect(cs[2].initialNoise == cs[0].initialNoise)
    }

    @Test func pnsMixesReversedPreviousNoiseWithScaledFreshNoise() throws {
        let cs = try clips(3, "fnr,pns:alpha=4")
        let (wp, wf) = PNSStrategy.weights(alpha: 4)
        #expect(abs(wp - Float(4 / 17.0.squareRoot())) < 1e-7 && abs(wf - Float(1 / 17.0.squareRoot())) < 1e-7)
        #expect(abs(wp * wp + wf * wf - 1) < 1e-6)
        for i in 1..<3 {
            let prev = cs[i - 1].initialNoise, fresh = cs[i].noiseDraw, noise = cs[i].initialNoise
            for j in 0..<m { #expect(noise.latentFrame(j) == prev.latentFrame(n - 1 - j), "prompt frame \(j) stays FNR") }
            for j in m..<n {
                let expected = zip(prev.latentFrame(n - 1 - j), fresh.latentFrame(j)).map { wp * $0 + wf * $1 }
                #expect(noise.latentFrame(j) == expected, "clip \(i) frame \(j)")
            }
        }
    }

    @Test func pnsKeepsUnitVarianceAndTheMixingCorrelation() throws {
        // Large latents so the sample statistics are tight: 2 × 64 × 64 values per frame.
        let backend = ToyBackend(channels: 2, height: 64, width: 64)
        let cs = try clips(2, "fnr,pns:alpha=1.5", backend: backend) { $0.steps = 1 }
        let rho = 1.5 / (1 + 1.5 * 1.5).squareRoot()
        for j in m..<n {
            let x = cs[1].initialNoise.latentFrame(j).map(Double.init)
            let y = cs[0].initialNoise.latentFrame(n - 1 - j).map(Double.init)
            let count = Double(x.count)
            let mean = x.reduce(0, +) / count
            let variance = x.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / count
            let corr = zip(x, y).map { $0 * $1 }.reduce(0, +) / count
            #expect(abs(variance - 1) < 0.06, "frame \(j) variance \(variance)")
            #expect(abs(corr - rho) < 0.05, "frame \(j) correlation \(corr), expected \(rho)")
        }
    }

    @Test func pnsWithAlphaZeroIsFreshNoise() throws {
        let cs = try clips(2, "fnr,pns:alpha=0")
        for j in m..<n { #expect(cs[1].initialNoise.latentFrame(j) == cs[1].noiseDraw.latentFrame(j)) }
        for j in 0..<m { #expect(cs[1].initialNoise.latentFrame(j) == cs[0].initialNoise.latentFrame(n - 1 - j)) }
    }

    @Test func pnsAloneLeavesPromptFramesFresh() throws {
        let cs = try clips(2, "pns")
        let (wp, wf) = PNSStrategy.weights(alpha: 4)
        for j in 0..<m { #expect(cs[1].initialNoise.latentFrame(j) == cs[1].noiseDraw.latentFrame(j)) }
        for j in m..<n {
            let e = zip(cs[0].initialNoise.latentFrame(n - 1 - j), cs[1].noiseDraw.latentFrame(j)).map { wp * $0 + wf * $1 }
            #expect(cs[1].initialNoise.latentFrame(j) == e)
        }
    }

    @Test func dsgThresholdsMatchThePaperExample() {
        // M = 4, β = 0.4, S = 50: frame 0 at steps 0–19, frame 1 at 0–14, frame 2 at 0–9, frame 3 at 0–4.
        let expected = [0: 0..<20, 1: 0..<15, 2: 0..<10, 3: 0..<5]
        for j in 0..<6 {
            let guided = (0..<50).filter { DSGStrategy.guides(step: $0, frame: j, promptFrames: 4, steps: 50, beta: 0.4) }
            #expect(guided == Array(expected[j] ?? 0..<0), "frame \(j)")
        }
        // β = 0 guides nothing; β = 1 guides frame 0 at every step.
        #expect((0..<50).allSatisfy { k in (0..<4).allSatisfy { !DSGStrategy.guides(step: k, frame: $0, promptFrames: 4, steps: 50, beta: 0) } })
        #expect((0..<50).allSatisfy { DSGStrategy.guides(step: $0, frame: 0, promptFrames: 4, steps: 50, beta: 1) })
        // M = 0: nothing to guide.
        #expect(!DSGStrategy.guides(step: 0, frame: 0, promptFrames: 0, steps: 50, beta: 1))
    }

    @Test func dsgReplacesPromptFramesWithThePreviousClipsRecordedLatents() throws {
        let log = Log<SpyStrategy.Seen>()
        var r = StrategyRegistry.builtIn()
        r.add("spy") { SpyStrategy(log: log, calls: nil, name: "spy") }
        let steps = 8, beta = 0.5
        _ = try clips(3, "fnr,pns,dsg:beta=0.5,spy", registry: r) { $0.steps = steps }
        let seen = log.all
        #expect(seen.count == 3 * steps)
        func input(_ clip: Int, _ step: Int) -> Tensor { seen.first { $0.clip == clip && $0.step == step }!.input }
        var guidedCount = 0
        for i in 1..<3 {
            for k in 0..<steps {
                for j in 0..<m {
                    let same = input(i, k).latentFrame(j) == input(i - 1, k).latentFrame(n - 1 - j)
                    let guided = DSGStrategy.guides(step: k, frame: j, promptFrames: m, steps: steps, beta: beta)
                    #expect(same == guided, "clip \(i) step \(k) frame \(j)")
                    if guided { guidedCount += 1 }
                }
            }
        }
        #expect(guidedCount == 2 * (4 + 2))  // frame 0: k < 4, frame 1: k < 2
    }

    @Test func dsgWithBetaZeroChangesNothing() throws {
        let with = try clips(3, "fnr,pns,dsg:beta=0")
        let without = try clips(3, "fnr,pns")
        for (a, b) in zip(with, without) { #expect(a.latents == b.latents && a.frames == b.frames) }
        let guided = try clips(3, "fnr,pns,dsg:beta=0.4")
        #expect(guided[1].latents != without[1].latents)
        #expect(guided[0].latents == without[0].latents)
    }

    @Test func pyocoPriorIsProgressiveWithUnitVariance() throws {
        let cs = try clips(2, "pyoco:a=2,fnr")
        let (wp, wf) = PNSStrategy.weights(alpha: 2)
        let fresh = cs[0].noiseDraw, noise = cs[0].initialNoise
        #expect(noise.latentFrame(0) == fresh.latentFrame(0))
        for f in 1..<n {
            #expect(noise.latentFrame(f) == zip(noise.latentFrame(f - 1), fresh.latentFrame(f)).map { wp * $0 + wf * $1 })
        }
        // Clip 1 is FNR of the prior.
        for j in 0..<n { #expect(cs[1].initialNoise.latentFrame(j) == noise.latentFrame(n - 1 - j)) }
        // Statistics on large latents: unit variance per frame, consecutive correlation a/√(1+a²).
        let big = try clips(1, "pyoco:a=2", backend: ToyBackend(channels: 2, height: 64, width: 64)) { $0.steps = 1 }
        let z = big[0].initialNoise
        for f in 1..<n {
            let x = z.latentFrame(f).map(Double.init), y = z.latentFrame(f - 1).map(Double.init)
            let variance = x.map { $0 * $0 }.reduce(0, +) / Double(x.count)
            let corr = zip(x, y).map { $0 * $1 }.reduce(0, +) / Double(x.count)
            #expect(abs(variance - 1) < 0.06, "frame \(f) variance \(variance) (the variance-for-std bug tends to 1/(1+a²) = 0.2)")
            #expect(abs(corr - 2 / 5.0.squareRoot()) < 0.05)
        }
    }

    @Test func emissionModes() throws {
        let all = try clips(3, "fnr,pns,dsg") { $0.emission = .all }
        let new = try clips(3, "fnr,pns,dsg") { $0.emission = .new }
        #expect(all.map(\.emittedFrameIndices) == [Array(0..<n), Array(0..<n), Array(0..<n)])
        #expect(all.map(\.firstFrameNumber) == [0, 6, 12])
        #expect(new.map(\.emittedFrameIndices) == [Array(0..<n), Array(m..<n), Array(m..<n)])
        #expect(new.map(\.firstFrameNumber) == [0, 6, 10])
        for (a, b) in zip(all, new) {
            #expect(a.latents == b.latents, "emission does not change generation")
            let per = 4 * 4 * 3
            for (k, f) in b.emittedFrameIndices.enumerated() {
                #expect(Array(b.frames.scalars[(k * per)..<((k + 1) * per)]) == Array(a.frames.scalars[(f * per)..<((f + 1) * per)]))
            }
            #expect(b.frames.shape == [b.emittedFrameIndices.count, 4, 4, 3])
        }
    }

    @Test func promptFrameExtremes() throws {
        // M = N: PNS has no frames, DSG may guide every frame, emit-new emits nothing after clip 0.
        let full = try clips(3, "fnr,pns,dsg:beta=1") { $0.promptFrames = 6; $0.emission = .new }
        #expect(full.map(\.emittedFrameIndices) == [Array(0..<6), [], []])
        #expect(full[1].frames.shape == [0, 4, 4, 3] && full[2].firstFrameNumber == 6)
        for j in 0..<6 { #expect(full[1].initialNoise.latentFrame(j) == full[0].initialNoise.latentFrame(5 - j)) }
        // M = 0: DSG guides nothing, PNS mixes every frame.
        let zero = try clips(2, "fnr,pns,dsg:beta=1") { $0.promptFrames = 0 }
        let plain = try clips(2, "fnr,pns") { $0.promptFrames = 0 }
        #expect(zero.map(\.latents) == plain.map(\.latents))
        let (wp, wf) = PNSStrategy.weights(alpha: 4)
        #expect(zero[1].initialNoise.latentFrame(0) == zip(zero[0].initialNoise.latentFrame(5), zero[1].noiseDraw.latentFrame(0)).map { wp * $0 + wf * $1 })
    }

    @Test func anEmissionStrategyReplacesTheMode() throws {
        var r = StrategyRegistry.builtIn()
        r.add("last") { ProbeStrategy(capabilities: StrategyCapabilities(emission: true), name: "last", emit: [5]) }
        r.add("bad") { ProbeStrategy(capabilities: StrategyCapabilities(emission: true), name: "bad", emit: [3, 1]) }
        let cs = try clips(2, "fnr,last", registry: r)
        #expect(cs.map(\.emittedFrameIndices) == [[5], [5]])
        #expect(cs.map(\.firstFrameNumber) == [0, 1])
        #expect(throws: PluginError.self) { _ = try clips(1, "bad", registry: r) }
    }

    @Test func perFrameTimestepsReachTheModelAndTheScheduler() throws {
        var r = StrategyRegistry.builtIn()
        let ts = Log<[Float]>()
        // FIFO-like: frame f is f·100 timesteps less noisy than the uniform schedule.
        r.add("staggered") {
            ProbeStrategy(capabilities: StrategyCapabilities(timesteps: true), name: "staggered", timesteps: { clip, step in
                (0..<clip.shape.frames).map { f in
                    FrameTimestep(timestep: Swift.max(step.timestep - 100 * f, 0), previous: Swift.max(step.previousTimestep - 100 * f, -1))
                }
            })
        }
        let log = Log<SpyStrategy.Seen>()
        r.add("spy") { SpyStrategy(log: log, calls: nil, name: "spy") }
        var backend = ToyBackend()
        backend.timestepLog = ts
        _ = try clips(1, "staggered,spy", registry: r, backend: backend) { $0.steps = 3 }
        let schedule = try backend.scheduler.timesteps(steps: 3)
        #expect(ts.all.count == 3)
        for (k, t) in schedule.enumerated() {
            let one = (0..<n).map { Float(Swift.max(t - 100 * $0, 0)) }
            #expect(ts.all[k] == one + one, "both CFG entries get the per-frame timesteps")
            let seen = log.all[k]
            #expect(seen.frameTimesteps?.map(\.timestep) == one.map { Int($0) })
            // The DDIM update of frame f used its own (t, prev).
            let prev = backend.scheduler.previousTimestep(t, steps: 3)
            let input2 = Tensor(shape: [2] + Array(seen.input.shape.dropFirst()), scalars: seen.input.scalars + seen.input.scalars)
            let out = ToyBackend.model(input2, ts.all[k])
            let half = seen.input.count
            let guided = (0..<half).map { out.scalars[$0] + 7.5 * (out.scalars[half + $0] - out.scalars[$0]) }
            let noise = Tensor(shape: seen.input.shape, scalars: guided)
            for f in 0..<n {
                var x = Tensor(shape: [1, 2, 1, 4, 4], scalars: seen.input.latentFrame(f))
                let e = Tensor(shape: [1, 2, 1, 4, 4], scalars: noise.latentFrame(f))
                backend.scheduler.step(modelOutput: e, sample: &x, timestep: Swift.max(t - 100 * f, 0), previous: Swift.max(prev - 100 * f, -1))
                #expect(seen.output.latentFrame(f) == x.scalars, "step \(k) frame \(f)")
            }
        }
    }

    @Test func seedReproducesAndTapeReplaysAStream() throws {
        let a = try clips(3, "fnr,pns,dsg")
        let b = try clips(3, "fnr,pns,dsg")
        #expect(a.map(\.latents) == b.map(\.latents))
        let other = try clips(3, "fnr,pns,dsg") { $0.seed = 8 }
        #expect(other[0].latents != a[0].latents)
        // The seeded draws, written as a tape, replay the same stream.
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-tape-\(getpid()).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NoiseTape.write(a.map(\.noiseDraw), to: path)
        let replay = try clips(3, "fnr,pns,dsg") { $0.tapePath = path; $0.seed = 99 }
        #expect(replay.map(\.latents) == a.map(\.latents))
        #expect(replay.map(\.frames) == a.map(\.frames))
        // A spent tape, or one of another shape, is an error, not a crash.
        #expect(throws: ModelError.self) { _ = try clips(4, "fnr", configure: { $0.tapePath = path }) }
        #expect(throws: ModelError.self) { _ = try clips(1, "fnr", configure: { $0.tapePath = path; $0.frames = 5 }) }
    }

    @Test func theSeededGeneratorIsTheDocumentedOne() {
        // Golden values from an independent implementation of docs/PLUGINS.md's description alone
        // (xoshiro256** seeded by SplitMix64, uniforms (next() >> 40 + 0.5) / 2^24, Box–Muller
        // cosine then sine in Double, rounded to Float; an odd count drops the last sine), written
        // in Python for this test, as Float bit patterns. They pin the algorithm, not this build.
        var golden = SeededRandomSource(seed: 7)
        #expect(golden.standardNormal(count: 5).map(\.bitPattern) == [0xBE1B_35E2, 0x3F54_7424, 0x3F16_4C28, 0xBD8F_7A48, 0x3DC1_7A86])
        #expect(golden.standardNormal(count: 4).map(\.bitPattern) == [0x3FF0_09C1, 0x3FB8_D559, 0x3F47_79BF, 0x3F8C_9FC8])

        // docs/PLUGINS.md: the per-clip draw is SeededRandomSource(seed).standardNormal(count: C·N·h·w), clip after clip.
        var g = SeededRandomSource(seed: 7)
        let first = g.standardNormal(count: 2 * 6 * 16)
        var s = try! VideoStream(backend: ToyBackend(), configuration: try! toyConfig("none"), registry: .builtIn())
        #expect(try! s.nextClip().noiseDraw.scalars == first)
        #expect(try! s.nextClip().noiseDraw.scalars == g.standardNormal(count: 2 * 6 * 16))
    }

    @Test func cancellingLeavesTheStreamAsItWas() throws {
        let reference = try clips(3, "fnr,pns,dsg")
        var s = try VideoStream(backend: ToyBackend(), configuration: try toyConfig("fnr,pns,dsg"), registry: .builtIn())
        let c0 = try s.nextClip()
        var calls = 0
        #expect(throws: ModelError.cancelled) { _ = try s.nextClip { _ in calls += 1; return calls < 3 } }
        #expect(s.clipIndex == 1 && s.framesEmitted == 6)
        let c1 = try s.nextClip()
        let c2 = try s.nextClip()
        #expect([c0, c1, c2].map(\.latents) == reference.map(\.latents))
        #expect(c1.index == 1 && c2.firstFrameNumber == 12)
    }
}
