import VidrdRuntime

/// Replay share: the fraction of the emitted frames of clips k ≥ 1 that show again something the
/// stream already showed.
///
/// Frame x (stream time t, in clip k) is a replay when its nearest frame among clips k−1 and k−2
/// at stream time ≤ t−2 is closer than `factor` (0.5) × dist(x, frame t−1), dist = RGB RMSE.
/// In a video that moves on, older frames are further away than the one just before; a loop or a
/// backwards echo brings back an old frame that is much closer than the last step was.
///
/// A static video is not a replay: every old frame is about as close as the predecessor (equal
/// up to noise, exactly 0 = 0 when frozen), never less than half of it. Frame t−1 itself is not a
/// candidate, so a clip that starts on a copy of the previous clip's last frame is not flagged for
/// that frame either; what follows it is, when it walks back through the previous clip.
public enum ReplayShare {
    public static let factor = 0.5

    public struct Result: Sendable, Equatable, Codable {
        /// Mean over streams of each stream's share.
        public var share: Double?
        public var perStream: [Double]
        public var replayedFrames: Int
        public var frames: Int
    }

    public static func measure(_ streams: [[Tensor]]) -> Result {
        var shares: [Double] = [], replayed = 0, total = 0
        for clips in streams {
            let (r, n) = count(clips)
            guard n > 0 else { continue }
            shares.append(Double(r) / Double(n))
            replayed += r
            total += n
        }
        return Result(share: Stats.mean(shares), perStream: shares, replayedFrames: replayed, frames: total)
    }

    /// (replayed, counted) frames of one stream.
    public static func count(_ clips: [Tensor]) -> (replayed: Int, frames: Int) {
        // Stream time of each clip's first frame.
        var start: [Int] = [], t = 0
        for c in clips { start.append(t); t += Frames.count(c) }
        var replayed = 0, counted = 0
        var previous: (clip: Int, frame: Int)?
        for k in clips.indices {
            let clip = clips[k]
            for j in 0..<Frames.count(clip) {
                defer { previous = (k, j) }
                guard k >= 1 else { continue }
                counted += 1
                guard let p = previous, Frames.sameFrameShape(clip, clips[p.clip]) else { continue }
                let x = Frames.frame(clip, j)
                let step = Frames.rmse(x, Frames.frame(clips[p.clip], p.frame))
                let now = start[k] + j
                var nearest = Double.infinity
                for c in Swift.max(0, k - 2)..<k where Frames.sameFrameShape(clip, clips[c]) {
                    for i in 0..<Frames.count(clips[c]) where start[c] + i <= now - 2 {
                        nearest = Swift.min(nearest, Frames.rmse(x, Frames.frame(clips[c], i)))
                    }
                }
                if nearest < factor * step { replayed += 1 }
            }
        }
        return (replayed, counted)
    }
}
