import VidrdRuntime

/// Distances between whole clips.
public enum ClipDistance {
    /// RGB RMSE over aligned frames. Clips of different lengths are compared on their last
    /// min(count) frames: the end of a clip is what the next one continues from, and under
    /// emit-new clip 0 has M more frames than the others. `reversedB` compares with b played
    /// backwards. nil when either clip is empty or the frame sizes differ.
    public static func rmse(_ a: Tensor, _ b: Tensor, reversedB: Bool = false) -> Double? {
        let (na, nb) = (Frames.count(a), Frames.count(b))
        let n = Swift.min(na, nb)
        guard n > 0, Frames.sameFrameShape(a, b) else { return nil }
        var sum = 0.0
        for i in 0..<n {
            // b reversed is b[nb-1], …, b[0]; its last n frames are b[n-1], …, b[0].
            let j = reversedB ? n - 1 - i : nb - n + i
            sum += Frames.squaredDifference(Frames.frame(a, na - n + i), Frames.frame(b, j))
        }
        return (sum / Double(n * Frames.size(a))).squareRoot()
    }

    /// min(dist(a, b), dist(a, b reversed)): a loop may replay forwards or backwards.
    public static func loop(_ a: Tensor, _ b: Tensor) -> Double? {
        guard let f = rmse(a, b), let r = rmse(a, b, reversedB: true) else { return nil }
        return Swift.min(f, r)
    }
}

/// Novelty and reversal (docs/PLUGINS.md, "Long-video measurement").
///
/// A continuation method can make seams invisible by replaying what was already shown: the default
/// chain's clip k+2 is close to clip k and clip k+1 to clip k reversed. Novelty measures how far
/// clip k is from clip k−2 (forwards or backwards), in units of how far two independent samples
/// of the same prompt are from each other: 0 is a loop, 1 is as new as a fresh sample.
public enum Novelty {
    public struct Result: Sendable, Equatable, Codable {
        /// Mean over k ≥ 2 and streams of d_loop(k) / d_indep(k); nil without a comparable pair.
        public var novelty: Double?
        /// Mean over k ≥ 1 and streams of dist(clip k, clip k−1 reversed) / d_indep(k).
        public var reversal: Double?
        /// The unnormalised means over k ≥ 2, to see which side moved.
        public var meanLoopDistance: Double?
        public var meanIndependentDistance: Double?
        /// (stream, k) terms in the novelty mean.
        public var samples: Int
        /// Streams whose prompt had no second seed, so no d_indep.
        public var unpairedStreams: Int
    }

    /// Streams are grouped by prompt; d_indep(k) of a prompt is the mean loop distance between
    /// clip k of every pair of its seeds.
    public static func measure(_ streams: [EvalStream]) -> Result {
        var novelty: [Double] = [], reversal: [Double] = [], loops: [Double] = [], indeps: [Double] = []
        var unpaired = 0
        for group in groupedByPrompt(streams) {
            guard group.count >= 2 else { unpaired += group.count; continue }
            let longest = group.map(\.clips.count).max() ?? 0
            for k in 1..<Swift.max(longest, 1) {
                var pairs: [Double] = []
                for a in group.indices where k < group[a].clips.count {
                    for b in group.indices where b > a && k < group[b].clips.count {
                        if let d = ClipDistance.loop(group[a].clips[k], group[b].clips[k]) { pairs.append(d) }
                    }
                }
                // A zero d_indep means two seeds drew the same clip: nothing to normalise by.
                guard let dIndep = Stats.mean(pairs), dIndep > 1e-12 else { continue }
                if k >= 2 { indeps.append(dIndep) }
                for s in group where k < s.clips.count {
                    if let r = ClipDistance.rmse(s.clips[k], s.clips[k - 1], reversedB: true) { reversal.append(r / dIndep) }
                    if k >= 2, let d = ClipDistance.loop(s.clips[k], s.clips[k - 2]) {
                        loops.append(d)
                        novelty.append(d / dIndep)
                    }
                }
            }
        }
        return Result(novelty: Stats.mean(novelty), reversal: Stats.mean(reversal), meanLoopDistance: Stats.mean(loops),
                      meanIndependentDistance: Stats.mean(indeps), samples: novelty.count, unpairedStreams: unpaired)
    }

    /// Groups in first-appearance order, so reports are stable.
    static func groupedByPrompt(_ streams: [EvalStream]) -> [[EvalStream]] {
        var order: [String] = [], groups: [String: [EvalStream]] = [:]
        for s in streams {
            if groups[s.prompt] == nil { order.append(s.prompt) }
            groups[s.prompt, default: []].append(s)
        }
        return order.map { groups[$0] ?? [] }
    }
}
