import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// `fifo` and `freenoise` on the toy backend: the queue's definition, what reaches the model,
/// composition, cancellation and reproducibility. Numerics against diffusers: NewStrategyParityTests.
@Suite struct FIFOTests {
    let scheduler = DDIMScheduler(configuration: DDIMScheduler.Configuration())

    func shape(frames: Int = 6, steps: Int = 8) -> ClipShape {
        ClipShape(frames: frames, channels: 2, height: 4, width: 4, promptFrames: 0, steps: steps)
    }

    @Test func planCoversEveryNoisyPositionOncePerIteration() throws {
        for (fifo, expected) in [(FIFOStrategy(partitions: 2, window: 4, lookahead: true), [2..<4, 4..<6, 6..<8, 8..<10]),
                                 (FIFOStrategy(partitions: 2, window: 3, lookahead: false), [0..<3, 3..<6]),
                                 (FIFOStrategy(partitions: 0, window: 0, lookahead: false), [0..<6])] {
            let p = try fifo.plan(shape: shape(), scheduler: scheduler)
            #expect(p.windows.map(\.update) == expected)
            let covered = p.windows.flatMap { Array($0.update) }
            #expect(covered == Array(p.context..<(p.context + p.length)), "each noisy position exactly once, none of the context")
            for w in p.windows { #expect(w.start >= 0 && w.start + p.window <= p.positions.count) }
        }
    }

    @Test func queueLevelsAreTheScheduleFromTheHeadUp() throws {
        let p = try FIFOStrategy(partitions: 2, window: 4, lookahead: true).plan(shape: shape(), scheduler: scheduler)
        #expect(p.length == 8 && p.context == 2)
        let ts = try scheduler.timesteps(steps: 8)
        #expect(p.timesteps == ts)
        let noisy = Array(p.positions[p.context...])
        #expect(noisy.map(\.timestep) == ts.reversed(), "head at the smallest timestep, tail at the largest")
        #expect(noisy[0].previous < 0, "the head steps to clean")
        for q in 1..<noisy.count { #expect(noisy[q].previous == noisy[q - 1].timestep, "one level apart") }
        #expect(p.positions[0] == noisy[0], "clean context is shown at the lowest level")
    }

    @Test func partitionsFollowTheStreamsStepsByDefault() throws {
        let p16 = try FIFOStrategy().plan(shape: shape(frames: 16, steps: 25), scheduler: scheduler)
        #expect(p16.partitions == 1 && p16.length == 16)
        let p8 = try FIFOStrategy(window: 8).plan(shape: shape(frames: 16, steps: 25), scheduler: scheduler)
        #expect(p8.partitions == 3 && p8.length == 24, "L = n·f ≤ S")
        let few = try FIFOStrategy().plan(shape: shape(frames: 16, steps: 5), scheduler: scheduler)
        #expect(few.partitions == 1)
    }

    @Test func modelSeesEachWindowWithItsPerFrameTimesteps() throws {
        let log = Log<[Float]>()
        var backend = ToyBackend()
        backend.timestepLog = log
        let cs = try clips(2, "fifo:window=4:partitions=2:lookahead=true", backend: backend) { $0.steps = 8 }
        let p = try FIFOStrategy(partitions: 2, window: 4, lookahead: true).plan(shape: shape(), scheduler: scheduler)
        let calls = log.all
        // Clip 0: the base clip (L uniform steps over f frames), then N iterations of 2n windows; clip 1: N iterations.
        #expect(calls.count == p.length + 2 * 6 * p.windows.count)
        let base = try scheduler.timesteps(steps: p.length)
        for k in 0..<p.length { #expect(calls[k] == [Float(base[k]), Float(base[k])], "base step \(k): one timestep per CFG entry") }
        let iterations = Array(calls[p.length...])
        for (i, ts) in iterations.enumerated() {
            let w = p.windows[i % p.windows.count]
            let one = p.positions[w.start..<(w.start + p.window)].map { Float($0.timestep) }
            #expect(ts == one + one, "call \(i): the window's per-frame timesteps for both CFG entries")
        }
        #expect(cs.map(\.emittedFrameIndices) == [Array(0..<6), Array(0..<6)])
        #expect(cs[0].latents.shape == [1, 2, 6, 4, 4])
    }

    @Test func firstClipDrawsExtraNoiseAndLaterClipsFeedTheirDraw() throws {
        let cs = try clips(3, "fifo:window=4:partitions=2") { $0.steps = 8 }
        #expect(cs[0].extraNoiseDraws.count == 1 && cs[0].extraNoiseDraws[0].shape == [1, 2, 6, 4, 4])
        #expect(cs[1].extraNoiseDraws.isEmpty && cs[2].extraNoiseDraws.isEmpty)
        #expect(cs[1].initialNoise == cs[1].noiseDraw, "fifo claims no noise: the tail frames are the clip's draw")
        let wide = try clips(1, "fifo:window=8:partitions=1") { $0.steps = 8 }
        #expect(wide[0].extraNoiseDraws.count == 2, "f + N = 14 noise frames need two extra draws of 6")
    }

    @Test func emitsEveryFrameEvenWhenTheStreamAsksForNew() throws {
        let cs = try clips(2, "fifo", configure: { $0.steps = 6; $0.emission = .new })
        #expect(cs.map(\.frames.shape[0]) == [6, 6])
        let stream = try VideoStream(backend: ToyBackend(), configuration: try toyConfig("fifo", emission: .new), registry: .builtIn())
        #expect(stream.configuration.emission == .all)
    }

    @Test func cancelledClipsRetryWithTheSameNoise() throws {
        var c = try toyConfig("fifo:window=4:partitions=2:lookahead=true")
        c.steps = 8
        var plain = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        let expected = try (0..<3).map { _ in try plain.nextClip() }
        var s = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        // Cancel clip 0 after its extra draw (inside the first iteration), then before it, then
        // clip 1 mid-way; each cancellation happens within the step that saw `false`.
        var done: [EmittedClip] = []
        for (clip, stopAt) in [(0, 11), (0, 3), (1, 7)] {
            var calls = 0
            #expect(throws: ModelError.cancelled) { _ = try s.nextClip { _ in calls += 1; return calls < stopAt } }
            #expect(calls == stopAt, "no step after the cancelling one")
            #expect(s.clipIndex == clip)
            if clip == 1 || stopAt == 3 { done.append(try s.nextClip()) }
        }
        done.append(try s.nextClip())
        #expect(done.map(\.frames) == expected.map(\.frames))
        #expect(done[0].extraNoiseDraws == expected[0].extraNoiseDraws)
        var fresh = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        let again = try fresh.nextClip()
        #expect(again.frames == expected[0].frames && again.extraNoiseDraws == expected[0].extraNoiseDraws)
    }

    @Test func progressCountsThePlannedSteps() throws {
        var c = try toyConfig("fifo:window=4:partitions=2")
        c.steps = 8
        var s = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        var seen: [(Int, Int)] = []
        _ = try s.nextClip { p in seen.append((p.step, p.totalSteps)); return true }
        #expect(seen.map(\.0) == Array(1...(8 + 6 * 2)))
        #expect(Set(seen.map(\.1)) == [8 + 6 * 2])
    }

    @Test func aRecordedTapeReplaysTheStream() throws {
        var c = try toyConfig("fifo:window=4:partitions=2")
        c.steps = 8
        var s = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        let seeded = try (0..<3).map { _ in try s.nextClip() }
        let draws = seeded.flatMap { [$0.noiseDraw] + $0.extraNoiseDraws }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fifo-tape-\(UUID().uuidString).safetensors").path
        defer { try? FileManager.default.removeItem(atPath: path) }
        try NoiseTape.write(draws, to: path)
        c.tapePath = path
        var t = try VideoStream(backend: ToyBackend(), configuration: c, registry: .builtIn())
        for k in 0..<3 { #expect(try t.nextClip().frames == seeded[k].frames) }
    }

    @Test func compositionRules() throws {
        func conflict(_ chain: String) -> String? {
            do { _ = try VideoStream(backend: ToyBackend(), configuration: try toyConfig(chain), registry: .builtIn()); return nil }
            catch { return "\(error)" }
        }
        #expect(conflict("fifo,dsg")?.contains("per-step hooks") == true)
        #expect(conflict("dsg,fifo")?.contains("runs the clip's denoising itself") == true)
        #expect(conflict("fifo,fifo")?.contains("twice") == true)
        #expect(conflict("pyoco,fifo") == nil)
        #expect(conflict("freenoise,fifo") == nil)
        #expect(conflict("fifo:window=3:lookahead=true")?.contains("even window") == true, "rejected when the stream is made")
        #expect(conflict("fifo:window=7") == nil, "a window wider than the clip is allowed")
    }
}

@Suite struct FreeNoiseTests {
    @Test func permutationShufflesOnlyWithinWindows() throws {
        var random = SeededRandomSource(seed: 3)
        var seen = Set<[Int]>()
        for _ in 0..<20 {
            let fresh = try random.standardNormal(shape: [1, 2, 10, 2, 2])
            let pi = FreeNoiseStrategy.permutation(fresh: fresh, frames: 10, window: 4)
            #expect(pi.sorted() == Array(0..<10))
            for (j, source) in pi.enumerated() { #expect(source / 4 == j / 4, "frame \(j) takes \(source), outside its window") }
            seen.insert(pi)
        }
        #expect(seen.count > 10, "the permutation changes with the draw")
        #expect(FreeNoiseStrategy.permutation(fresh: Tensor(zeros: [1, 1, 5, 1, 1]), frames: 5, window: 2) == Array(0..<5), "ties keep order")
    }

    @Test func pureReuseIsThePreviousNoisePermuted() throws {
        let cs = try clips(3, "freenoise:window=3")
        for i in 1..<3 {
            let pi = FreeNoiseStrategy.permutation(fresh: cs[i].noiseDraw, frames: 6, window: 3)
            for j in 0..<6 { #expect(cs[i].initialNoise.latentFrame(j) == cs[i - 1].initialNoise.latentFrame(pi[j])) }
        }
        #expect(cs[0].initialNoise == cs[0].noiseDraw)
    }

    @Test func mixingKeepsUnitVarianceAndTheReuseCorrelation() throws {
        let backend = ToyBackend(channels: 2, height: 64, width: 64)
        let cs = try clips(2, "freenoise:window=2:reuse=0.49", backend: backend) { $0.steps = 1 }
        let pi = FreeNoiseStrategy.permutation(fresh: cs[1].noiseDraw, frames: 6, window: 2)
        for j in 0..<6 {
            let x = cs[1].initialNoise.latentFrame(j).map(Double.init)
            let y = cs[0].initialNoise.latentFrame(pi[j]).map(Double.init)
            let count = Double(x.count)
            let variance = x.map { $0 * $0 }.reduce(0, +) / count
            let corr = zip(x, y).map { $0 * $1 }.reduce(0, +) / count
            #expect(abs(variance - 1) < 0.06, "frame \(j) variance \(variance)")
            #expect(abs(corr - 0.7) < 0.05, "frame \(j) correlation \(corr), expected √0.49")
        }
    }
}
