import VidrdRuntime

/// Named sampling set-ups that fill a `StreamConfiguration` (`vidrd generate --preset NAME`);
/// options the caller gives explicitly are applied after, so they win.
public enum StreamPreset: String, Sendable, CaseIterable {
    /// The VidRD authors' released sampling (anonymous0x233/ReuseAndDiffuse: configs/example.yaml,
    /// model/pipeline.py): 16 frames of 256×256, 50 DDIM steps, guidance 10, negative prompt
    /// "watermark", M = 4 (`extend_overlap_frames`), α = 4 (`extend_noise_recycle`), β = 0.4
    /// (`extend_denoise_guidance`), their `noise_alpha` prior (0: i.i.d. frames), every clip's N
    /// frames emitted, frame-wise decoding (their pipeline decodes with num_frames = 1, which skips
    /// the decoder's Temp-Conv), PyTorch's generator in their draw order, seed 42.
    case vidrdPaper = "vidrd-paper"

    /// The authors' `noise_alpha` (`randn_progressive`'s α) of their example config.
    public static let authorsNoiseAlpha = 0.0

    public func apply(to c: inout StreamConfiguration, noiseAlpha: Double = Self.authorsNoiseAlpha) {
        switch self {
        case .vidrdPaper:
            c.strategies = [
                StrategySpec(name: "pyoco", parameters: ["a": .double(noiseAlpha), "authors_scale": .bool(true)]),
                StrategySpec(name: "fnr"),
                StrategySpec(name: "pns", parameters: ["alpha": .double(4)]),
                StrategySpec(name: "dsg", parameters: ["beta": .double(0.4)]),
            ]
            c.promptFrames = 4
            c.emission = .all
            c.frames = 16
            c.height = 256
            c.width = 256
            c.steps = 50
            c.guidanceScale = 10
            c.negativePrompt = "watermark"
            c.seed = 42
            c.noiseGenerator = .torchReuseAndDiffuse
            c.temporalDecoding = false
        }
    }
}
