/// A count of hits out of a total; `value` is nil when nothing was counted.
public struct Fraction: Sendable, Equatable, Codable {
    public var hits: Int
    public var total: Int
    public var value: Double? { total > 0 ? Double(hits) / Double(total) : nil }

    public init(hits: Int = 0, total: Int = 0) {
        self.hits = hits
        self.total = total
    }

    public mutating func add(_ hit: Bool) {
        total += 1
        if hit { hits += 1 }
    }

    enum CodingKeys: String, CodingKey { case hits, total, value }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        hits = try c.decode(Int.self, forKey: .hits)
        total = try c.decode(Int.self, forKey: .total)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(hits, forKey: .hits)
        try c.encode(total, forKey: .total)
        try c.encodeIfPresent(value, forKey: .value)
    }
}

/// Prompt adherence over time: at a clip index, the fraction of streams whose clip shows the
/// prompt's colour, background and motion (scene scorer). Each attribute counts only the streams
/// whose prompt names it; motion only left/right/up/down/growing/shrinking, which the scorer can
/// read off the object's path (the others are counted in `motionExcluded`).
public enum Adherence {
    public struct AtClip: Sendable, Equatable, Codable {
        public var clip: Int
        public var colour: Fraction
        public var background: Fraction
        public var motion: Fraction
        /// Streams that reached this clip but whose prompt's motion is not scored.
        public var motionExcluded: Int
    }

    /// `readings[s][k]`: the scorer's reading of clip k of stream s; `prompts[s]` its prompt.
    public static func measure(prompts: [ScenePrompt], readings: [[ClipReading]], at clips: [Int]) -> [AtClip] {
        clips.map { k in
            var r = AtClip(clip: k, colour: Fraction(), background: Fraction(), motion: Fraction(), motionExcluded: 0)
            for (prompt, stream) in zip(prompts, readings) where k < stream.count {
                let reading = stream[k]
                if let c = prompt.colour { r.colour.add(reading.colour == c) }
                if let b = prompt.background { r.background.add(reading.background == b) }
                if let m = prompt.scoredMotion { r.motion.add(reading.motion == m) } else { r.motionExcluded += 1 }
            }
            return r
        }
    }
}
