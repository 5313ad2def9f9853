import VidrdRuntime

/// The seam metrics (docs/PLUGINS.md, "Seam measurement"). Frames are `[N, H, W, 3]` in [0, 1];
/// the distance of two frames is their mean absolute pixel difference.
public enum SeamMetrics {
    public struct Result: Sendable, Equatable, Codable {
        /// Mean seam distance ÷ median in-clip distance.
        public var ratio: Double
        public var meanSeam: Double
        public var medianInClip: Double
        public var seams: Int
    }

    public static func frame(_ t: Tensor, _ i: Int) -> ArraySlice<Float> { Frames.frame(t, i) }

    public static func distance(_ a: ArraySlice<Float>, _ b: ArraySlice<Float>) -> Double {
        Frames.meanAbsDifference(a, b)
    }

    /// Seam: last emitted frame of clip i vs first emitted frame of clip i+1, averaged over all
    /// seams; in-clip: every pair of consecutive emitted frames of one clip, median. `emitted`
    /// gives the indices of the frames a clip emits (clip index, its frame count): `vidrd seams`
    /// selects an emission mode from whole clips, `vidrd longeval` passes clips that hold only
    /// their emitted frames.
    public static func measure(_ streams: [[Tensor]], emitted: (_ clip: Int, _ frames: Int) -> [Int]) -> Result {
        var seams: [Double] = [], inside: [Double] = []
        for clips in streams {
            var last: ArraySlice<Float>?
            for (i, clip) in clips.enumerated() {
                let idx = emitted(i, Frames.count(clip))
                guard let first = idx.first, let final = idx.last else { continue }
                if let last { seams.append(distance(last, frame(clip, first))) }
                for (a, b) in zip(idx, idx.dropFirst()) { inside.append(distance(frame(clip, a), frame(clip, b))) }
                last = frame(clip, final)
            }
        }
        let meanSeam = Stats.mean(seams) ?? 0
        let median = Stats.median(inside) ?? 0
        return Result(ratio: meanSeam / Swift.max(median, 1e-12), meanSeam: meanSeam, medianInClip: median, seams: seams.count)
    }

    /// All frames of every clip (clips that hold only their emitted frames).
    public static func measure(_ streams: [[Tensor]]) -> Result {
        measure(streams) { _, n in Array(0..<n) }
    }

    /// Content cycling: for the new frames j ≥ M of clip i+1, the mean distance to clip i's frame
    /// N−1−j (time-reversed) divided by the mean distance to clip i's frame j. Below 1: clip i+1
    /// replays clip i backwards. Needs whole clips of N frames.
    public static func reversalRatio(_ streams: [[Tensor]], promptFrames m: Int) -> Double {
        var toReversed = 0.0, toSame = 0.0
        for clips in streams {
            for (a, b) in zip(clips, clips.dropFirst()) {
                let n = Swift.min(Frames.count(a), Frames.count(b))
                for j in Swift.min(m, n)..<n {
                    toReversed += distance(frame(b, j), frame(a, n - 1 - j))
                    toSame += distance(frame(b, j), frame(a, j))
                }
            }
        }
        return toReversed / Swift.max(toSame, 1e-12)
    }

    /// Cadence of one stream: the largest frame-to-frame jump at a seam ÷ the largest jump inside
    /// a clip. The seam ratio compares means, so a stream with one hard cut among smooth seams
    /// still scores well there; a viewer sees the cut, and this catches it. nil when the stream has
    /// no seam or no in-clip step with a difference.
    public static func cadence(_ clips: [Tensor]) -> Double? {
        var maxSeam: Double?, maxInside = 0.0
        var last: ArraySlice<Float>?
        for clip in clips {
            let n = Frames.count(clip)
            guard n > 0 else { continue }
            if let last { maxSeam = Swift.max(maxSeam ?? 0, distance(last, frame(clip, 0))) }
            for i in 1..<Swift.max(n, 1) { maxInside = Swift.max(maxInside, distance(frame(clip, i - 1), frame(clip, i))) }
            last = frame(clip, n - 1)
        }
        guard let maxSeam, maxInside > 0 else { return nil }
        return maxSeam / maxInside
    }
}
