/// Every `vidrd longeval` metric of one chain's streams (docs/PLUGINS.md, "Long-video measurement").
public struct LongEvaluation: Sendable, Codable {
    public var streams: Int
    public var emittedFrames: Int
    public var generationSeconds: Double
    /// Emitted frames ÷ generation wall time (model load excluded).
    public var framesPerSecond: Double?
    public var novelty: Novelty.Result
    public var replay: ReplayShare.Result
    public var seams: SeamMetrics.Result
    /// Mean over streams of `SeamMetrics.cadence`.
    public var cadence: Double?
    public var adherence: [Adherence.AtClip]
    public var continuity: MotionContinuity.Result
    /// Prompts as the scorer read them.
    public var parsedPrompts: [String: ParsedPrompt]
    /// What the scorer read from every clip, so a surprising score can be traced to its clips.
    public var readings: [StreamReading]

    public struct StreamReading: Sendable, Codable, Equatable {
        public var prompt: String
        public var seed: UInt64
        /// Per clip: background, object colour (nil: no object found), motion.
        public var clips: [ClipSummary]
    }

    public struct ClipSummary: Sendable, Codable, Equatable {
        public var background: String?
        public var colour: String?
        public var motion: SceneMotion
    }

    public struct ParsedPrompt: Sendable, Codable, Equatable {
        public var colour: String?
        public var background: String?
        public var motion: String?
        public var scoredMotion: String?
    }

    /// Measures everything on the given streams once. `at`: the clip indices of the adherence
    /// scores (those beyond a stream's length count nothing for it).
    public init(_ streams: [EvalStream], at: [Int], scorer: SceneScorer = SceneScorer()) {
        self.streams = streams.count
        emittedFrames = streams.reduce(0) { $0 + $1.emittedFrames }
        generationSeconds = streams.reduce(0) { $0 + $1.generationSeconds }
        framesPerSecond = generationSeconds > 0 ? Double(emittedFrames) / generationSeconds : nil
        novelty = Novelty.measure(streams)
        let clips = streams.map(\.clips)
        replay = ReplayShare.measure(clips)
        seams = SeamMetrics.measure(clips)
        cadence = Stats.mean(clips.compactMap(SeamMetrics.cadence))
        let prompts = streams.map { ScenePrompt(parsing: $0.prompt) }
        let readings = streams.map { $0.clips.map(scorer.read(clip:)) }
        adherence = Adherence.measure(prompts: prompts, readings: readings, at: at)
        continuity = MotionContinuity.measure(prompts: prompts, frames: readings.map { $0.map(\.frames) })
        var parsed: [String: ParsedPrompt] = [:]
        for (s, p) in zip(streams, prompts) {
            parsed[s.prompt] = ParsedPrompt(colour: p.colour, background: p.background, motion: p.motion,
                                            scoredMotion: p.scoredMotion?.rawValue)
        }
        parsedPrompts = parsed
        self.readings = zip(streams, readings).map { s, clips in
            StreamReading(prompt: s.prompt, seed: s.seed,
                          clips: clips.map { ClipSummary(background: $0.background, colour: $0.colour, motion: $0.motion) })
        }
    }
}
