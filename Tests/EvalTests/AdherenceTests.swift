import Testing
import VidrdRuntime
@testable import VidrdEval

/// Adherence over time and motion continuity on rendered 64×64 scenes of the dataset's palette.
@Suite struct AdherenceTests {
    static func rgb(_ name: String) -> SIMD3<Float> {
        (SceneVocabulary.backgroundColours.first { $0.name == name }?.rgb ?? .zero) / 255
    }

    /// A red 12-px square moving left 1.25 px per frame on blue, cut into 4 clips of 8 frames.
    static func movingLeft() -> [Tensor] {
        let v = SyntheticVideo(height: 64, width: 64, side: 12, background: rgb("blue"), object: rgb("red"), wrap: false)
        return v.continuing(counts: [8, 8, 8, 8]) { t in (x: 48 - 1.25 * Double(t), y: 20) }
    }

    static let prompt = "a red square moving left on a blue background"

    @Test func continuingMotionMatchesAndContinues() throws {
        let clips = Self.movingLeft()
        let e = LongEvaluation([EvalStream(prompt: Self.prompt, seed: 1, clips: clips)], at: [0, 1, 3])
        for a in e.adherence {
            #expect(a.colour == Fraction(hits: 1, total: 1), "clip \(a.clip) colour")
            #expect(a.background == Fraction(hits: 1, total: 1), "clip \(a.clip) background")
            #expect(a.motion == Fraction(hits: 1, total: 1), "clip \(a.clip) motion")
        }
        #expect(e.continuity.streams == 1)
        #expect(e.continuity.seams == Fraction(hits: 3, total: 3))
        #expect(e.continuity.inClip.value == 1)
        #expect(e.continuity.inClipPairs.value == 1)
    }

    @Test func aPingPongStreamFailsMotionAndContinuity() throws {
        let clips = pingPong(Self.movingLeft()[0], clips: 4)
        let e = LongEvaluation([EvalStream(prompt: Self.prompt, seed: 1, clips: clips)], at: [0, 1])
        #expect(e.adherence[0].motion == Fraction(hits: 1, total: 1))
        #expect(e.adherence[1].motion == Fraction(hits: 0, total: 1))
        // Every seam turns round; inside the clips it keeps going one way half the time.
        #expect(e.continuity.seams == Fraction(hits: 0, total: 3))
        #expect(e.continuity.inClip.value == 0.5)
    }

    @Test func wrongColoursAndUnscoredMotionsAreCounted() throws {
        let clips = Self.movingLeft()
        let streams = [
            EvalStream(prompt: "a green square moving left on a white background", seed: 1, clips: clips),
            EvalStream(prompt: "a red square rotating on a blue background", seed: 1, clips: clips),
        ]
        let e = LongEvaluation(streams, at: [0])
        #expect(e.adherence[0].colour == Fraction(hits: 1, total: 2))
        #expect(e.adherence[0].background == Fraction(hits: 1, total: 2))
        #expect(e.adherence[0].motion == Fraction(hits: 1, total: 1))
        #expect(e.adherence[0].motionExcluded == 1)
        #expect(e.continuity.streams == 1)
    }

    @Test func aClipIndexBeyondTheStreamCountsNothing() {
        let e = LongEvaluation([EvalStream(prompt: Self.prompt, seed: 1, clips: Self.movingLeft())], at: [11])
        #expect(e.adherence[0].colour.total == 0)
        #expect(e.adherence[0].colour.value == nil)
    }

    @Test func growingAndShrinkingAreReadFromTheArea() {
        let scorer = SceneScorer()
        func square(_ side: (Int) -> Double) -> Tensor {
            var frames: [Tensor] = []
            for t in 0..<8 {
                let s = side(t)
                let v = SyntheticVideo(height: 64, width: 64, side: s, background: Self.rgb("white"), object: Self.rgb("pink"), wrap: false)
                frames.append(v.render(t..<(t + 1)) { _ in (x: 32 - s / 2, y: 32 - s / 2) })
            }
            return Tensor(shape: [8, 64, 64, 3], scalars: frames.flatMap(\.scalars))
        }
        #expect(scorer.read(clip: square { 6 + 3 * Double($0) }).motion == .growing)
        #expect(scorer.read(clip: square { 27 - 3 * Double($0) }).motion == .shrinking)
        #expect(scorer.read(clip: square { _ in 14 }).motion == .other)
    }
}
