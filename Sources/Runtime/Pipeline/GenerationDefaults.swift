import Foundation

/// Generation settings a model folder recommends for itself, read from an optional
/// `generation_config.json` at the folder's root (the file name Hugging Face uses for a model's
/// recommended generation parameters; diffusers ignores it, so the folder still loads there).
///
/// Why a model needs its own: the protocol's defaults (docs/PROTOCOL.md §10) suit full-size
/// models, while a small model can need other values. The embedded model over-saturates at
/// guidance 7.5 and follows the prompt best near 3 (docs/MODEL_CARD.md).
public struct GenerationDefaults: Sendable, Equatable {
    public static let fileName = "generation_config.json"

    /// Classifier-free guidance scale; nil: the model recommends none.
    public var guidanceScale: Float?
    /// Per scheduler kind, keys that replace the folder's `scheduler_config.json` when a clip
    /// samples with that kind (`"scheduler_overrides": {"DPMSolverMultistepScheduler":
    /// {"timestep_spacing": "trailing"}}`): how a model says which spacing suits it when a
    /// scheduler is configured from another class's config, as diffusers users pass
    /// `from_config(config, timestep_spacing=...)`. Keys are class names or vidrd's names.
    public var schedulerOverrides: [SchedulerKind: ModelConfig] = [:]

    public init(guidanceScale: Float? = nil) {
        self.guidanceScale = guidanceScale
    }

    /// Reads `directory/generation_config.json`. No file means no recommendation; a file that is
    /// not a JSON object, or a value of the wrong type or range, is an error naming the file and key.
    public init(directory: URL) throws {
        let path = directory.appendingPathComponent(Self.fileName).path
        guard FileManager.default.fileExists(atPath: path) else {
            self.init()
            return
        }
        let config = try ModelConfig(path: path)
        self.init()
        if config.has("guidance_scale") {
            let g = try config.double("guidance_scale")
            guard g.isFinite, (0...Self.maxGuidanceScale).contains(g) else {
                throw ModelError.invalidConfig("\(path): \"guidance_scale\" = \(g) is outside 0...\(Self.maxGuidanceScale)")
            }
            guidanceScale = Float(g)
        }
        if let overrides = try config.object("scheduler_overrides") {
            for name in overrides.keys {
                guard let kind = SchedulerKind(name: name) else {
                    throw ModelError.invalidConfig("\(path): \"scheduler_overrides\" names \(name), not one of \(SchedulerKind.allCases.map(\.className).joined(separator: ", "))")
                }
                guard let o = try overrides.object(name) else { continue }
                schedulerOverrides[kind] = o
            }
        }
    }

    /// The protocol's bound on guidance (ProtocolLimits.maxGuidance), repeated here because the
    /// runtime does not depend on the protocol module.
    public static let maxGuidanceScale: Double = 100

    // The one generation-default policy. Every entry point (the daemon's session defaults,
    // `vidrd clip`, `vidrd generate`, `StreamConfiguration`, `TextToVideoPipeline.Configuration`)
    // takes its defaults from here, so a request that names nothing gets the same clip whichever
    // tool serves it: guidance = the model folder's recommendation, else `standardGuidanceScale`;
    // steps and frames = the standards below. The VidRD paper's own settings (50 steps, guidance
    // 10) are an explicit choice (`vidrd seams`, docs/PLUGINS.md), not a default.

    /// diffusers' `TextToVideoSDPipeline` guidance default.
    public static let standardGuidanceScale: Float = 7.5
    /// DDIM steps: enough for DDIM to converge on the shipped models at a quarter of the cost of
    /// the paper's 50.
    public static let standardSteps = 25
    /// Frames per clip (N), the paper's and diffusers' text-to-video default.
    public static let standardFrames = 16
}
