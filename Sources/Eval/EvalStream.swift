import VidrdRuntime

/// One generated stream: its prompt, seed and emitted clips (each `[n, H, W, 3]`, only the
/// emitted frames; n may differ from clip to clip).
public struct EvalStream: Sendable {
    public var prompt: String
    public var seed: UInt64
    public var clips: [Tensor]
    /// Wall time spent generating the clips (model load excluded).
    public var generationSeconds: Double

    public init(prompt: String, seed: UInt64, clips: [Tensor], generationSeconds: Double = 0) {
        self.prompt = prompt
        self.seed = seed
        self.clips = clips
        self.generationSeconds = generationSeconds
    }

    public var emittedFrames: Int { clips.reduce(0) { $0 + Frames.count($1) } }
}
