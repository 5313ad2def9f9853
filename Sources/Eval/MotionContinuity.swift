/// Motion continuity across seams, for prompts with a direction (left/right/up/down).
///
/// At the seam between clips k and k+1 the object's velocity just before (last two emitted frames
/// of clip k) and just after (first two of clip k+1) must both point the asked way (projected
/// displacement > 0). A stream whose next clip starts over, or plays the previous one backwards,
/// fails here while its seams can still look smooth. The same two-sided test at every cut position
/// inside clips (frames i−1, i | i+1, i+2) is the yardstick: how often the model keeps its own
/// direction when there is no seam. A missing object on any of the four frames counts as a miss.
public enum MotionContinuity {
    public struct Result: Sendable, Equatable, Codable {
        public var seams: Fraction
        /// The same test at in-clip positions.
        public var inClip: Fraction
        /// Consecutive in-clip frame pairs whose single displacement points the asked way.
        public var inClipPairs: Fraction
        public var streams: Int
    }

    /// `frames[s][k]`: the frame readings of clip k of stream s.
    public static func measure(prompts: [ScenePrompt], frames: [[[FrameReading]]]) -> Result {
        var r = Result(seams: Fraction(), inClip: Fraction(), inClipPairs: Fraction(), streams: 0)
        for (prompt, clips) in zip(prompts, frames) {
            guard let d = prompt.direction else { continue }
            r.streams += 1
            func forward(_ a: FrameReading, _ b: FrameReading) -> Bool {
                guard let p = a.centroid, let q = b.centroid else { return false }
                return (q.x - p.x) * d.dx + (q.y - p.y) * d.dy > 0
            }
            for (a, b) in zip(clips, clips.dropFirst()) where a.count >= 2 && b.count >= 2 {
                r.seams.add(forward(a[a.count - 2], a[a.count - 1]) && forward(b[0], b[1]))
            }
            for c in clips {
                for i in c.indices.dropLast() { r.inClipPairs.add(forward(c[i], c[i + 1])) }
                guard c.count >= 4 else { continue }
                for i in 1..<(c.count - 2) { r.inClip.add(forward(c[i - 1], c[i]) && forward(c[i + 1], c[i + 2])) }
            }
        }
        return r
    }
}
