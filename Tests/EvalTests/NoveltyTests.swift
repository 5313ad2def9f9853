import Testing
import VidrdRuntime
@testable import VidrdEval

/// Novelty, reversal and replay share on synthetic streams whose answer is known by construction.
@Suite struct NoveltyTests {
    /// 48×24 frames, a 6-px square moving right 1 px per frame on a torus: clip k and clip k−2 (16
    /// frames apart) never overlap, forwards or backwards.
    static let video = SyntheticVideo(height: 24, width: 48)

    static func continuing(seed: Int, counts: [Int]) -> [Tensor] {
        video.continuing(counts: counts) { t in (x: Double(t + 11 * seed), y: Double(2 + 10 * seed)) }
    }

    static func streams(_ make: (Int) -> [Tensor]) -> [EvalStream] {
        (0..<2).map { EvalStream(prompt: "p", seed: UInt64($0), clips: make($0)) }
    }

    @Test func pingPongLoopHasNoNoveltyAndIsReplayed() throws {
        let s = Self.streams { seed in pingPong(Self.continuing(seed: seed, counts: [8])[0], clips: 12) }
        let n = Novelty.measure(s)
        let novelty = try #require(n.novelty), reversal = try #require(n.reversal)
        print("ping-pong: novelty \(novelty), reversal \(reversal)")
        #expect(novelty < 0.01)
        #expect(reversal < 0.01)
        #expect(n.samples == 2 * 10)
        let replay = try #require(ReplayShare.measure(s.map(\.clips)).share)
        print("ping-pong: replay share \(replay)")
        // Every frame but each clip's first (a copy of its predecessor) replays an older one.
        #expect(abs(replay - 7.0 / 8.0) < 1e-9)
        // The seam metric alone rewards the loop: each seam repeats a frame.
        #expect(SeamMetrics.measure(s.map(\.clips)).ratio < 0.1)
    }

    /// A, B, A reversed, B reversed, A, …: clip k is clip k−2 played backwards, also a loop.
    @Test func aBackwardsLoopHasNoNovelty() throws {
        let s = Self.streams { seed in
            let a = Self.continuing(seed: seed, counts: [8])[0]
            let b = Self.video.render(30..<38) { t in (x: Double(t + 11 * seed), y: Double(2 + 10 * seed)) }
            return (0..<12).map { k in [a, b, reverse(a), reverse(b)][k % 4] }
        }
        let novelty = try #require(Novelty.measure(s).novelty)
        print("backwards loop: novelty \(novelty)")
        #expect(novelty < 0.01)
    }

    @Test func independentContentHasNoveltyOne() throws {
        var noise = Noise(state: 7)
        let s = Self.streams { _ in (0..<12).map { _ in noise.clip(frames: 8) } }
        let n = Novelty.measure(s)
        let novelty = try #require(n.novelty), reversal = try #require(n.reversal)
        print("independent: novelty \(novelty), reversal \(reversal)")
        #expect(abs(novelty - 1) < 0.05)
        #expect(abs(reversal - 1) < 0.05)
        let replay = try #require(ReplayShare.measure(s.map(\.clips)).share)
        #expect(replay < 0.02)
    }

    @Test func continuingVideoIsNewNotReplayedWithEvenSeams() throws {
        for counts in [[Int](repeating: 8, count: 12), [8] + [Int](repeating: 6, count: 11)] {
            let s = Self.streams { Self.continuing(seed: $0, counts: counts) }
            let loop = Self.streams { seed in pingPong(Self.continuing(seed: seed, counts: [8])[0], clips: 12) }
            let novelty = try #require(Novelty.measure(s).novelty)
            let loopNovelty = try #require(Novelty.measure(loop).novelty)
            let replay = try #require(ReplayShare.measure(s.map(\.clips)).share)
            let seams = SeamMetrics.measure(s.map(\.clips))
            let cadence = s.compactMap { SeamMetrics.cadence($0.clips) }
            print("continuing \(counts[0]),\(counts[1]),…: novelty \(novelty) (loop \(loopNovelty)), replay \(replay), seam ratio \(seams.ratio), cadence \(cadence)")
            #expect(novelty > 0.8)
            #expect(novelty > loopNovelty + 0.7)
            #expect(replay == 0)
            #expect(abs(seams.ratio - 1) < 0.05)
            #expect(cadence.count == 2 && cadence.allSatisfy { abs($0 - 1) < 0.05 })
        }
    }

    @Test func staticVideoIsNotReplay() throws {
        let frozen = Self.video.render(0..<8) { _ in (x: 10, y: 5) }
        #expect(ReplayShare.measure([[Tensor]](repeating: [Tensor](repeating: frozen, count: 6), count: 2)).share == 0)
        // With a little noise on every frame, old frames are as close as the predecessor, not closer.
        var noise = Noise(state: 3)
        let noisy = (0..<6).map { _ in
            let n = noise.clip(frames: 8, height: 24, width: 48)
            return Tensor(shape: frozen.shape, scalars: zip(frozen.scalars, n.scalars).map { $0 + 0.02 * ($1 - 0.5) })
        }
        let share = try #require(ReplayShare.measure([noisy]).share)
        print("static + noise: replay share \(share)")
        #expect(share < 0.05)
    }

    /// Emit-all with FNR: clip k+1 starts by playing clip k's last M frames backwards.
    @Test func backwardsEchoIsReplayed() throws {
        let (n, m) = (8, 4)
        var clips: [Tensor] = []
        var t = 0
        for k in 0..<6 {
            let forward = Self.video.render(t..<(t + n - (k == 0 ? 0 : m))) { (x: Double($0), y: 3) }
            if let last = clips.last {
                let echo = reverse(Tensor(shape: [m, 24, 48, 3], scalars: Array(last.scalars.suffix(m * 24 * 48 * 3))))
                clips.append(Tensor(shape: [n, 24, 48, 3], scalars: echo.scalars + forward.scalars))
            } else {
                clips.append(forward)
            }
            t += forward.shape[0]
        }
        let r = ReplayShare.count(clips)
        // Per clip: echo frames 1..M−1 replay (frame 0 is the predecessor's copy).
        #expect(r.frames == 5 * n)
        #expect(r.replayed == 5 * (m - 1))
    }

    @Test func cadenceCatchesOneHardCut() throws {
        var clips = Self.continuing(seed: 0, counts: [Int](repeating: 8, count: 12))
        clips[6] = Self.video.render(48..<56) { t in (x: Double(t + 20), y: 14) }
        let seams = SeamMetrics.measure([clips])
        let cadence = try #require(SeamMetrics.cadence(clips))
        print("one cut: seam ratio \(seams.ratio), cadence \(cadence)")
        #expect(cadence > 5)
    }

    @Test func clipsOfDifferentLengthsCompareTheirLastFrames() throws {
        let a = Self.video.render(0..<8) { (x: Double($0), y: 3) }
        let b = Self.video.render(2..<8) { (x: Double($0), y: 3) }
        #expect(ClipDistance.rmse(a, b) == 0)
        #expect(ClipDistance.rmse(b, a) == 0)
        #expect(try #require(ClipDistance.rmse(a, reverse(a), reversedB: true)) == 0)
        #expect(try #require(ClipDistance.rmse(a, b, reversedB: true)) > 0)
        #expect(ClipDistance.rmse(a, Tensor(zeros: [0, 24, 48, 3])) == nil)
    }

    @Test func aPromptWithOneSeedIsNotNormalised() {
        let s = [EvalStream(prompt: "p", seed: 1, clips: Self.continuing(seed: 0, counts: [8, 8, 8]))]
        let n = Novelty.measure(s)
        #expect(n.novelty == nil)
        #expect(n.unpairedStreams == 1)
    }
}
