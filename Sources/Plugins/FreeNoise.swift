import VidrdRuntime

/// FreeNoise-style noise rescheduling (Qiu et al. 2024, "FreeNoise: Tuning-Free Longer Video
/// Diffusion via Noise Rescheduling"): a longer video reuses the noise frames of the first window,
/// shuffled within small local windows, instead of drawing new ones, so the content stays that of
/// one scene without replaying it frame for frame. Per clip: frame j of clip i ≥ 1 starts from
/// √ρ·(clip i−1's initial noise of frame π(j)) + √(1−ρ)·fresh_j, where π shuffles the frames inside
/// consecutive windows of `window` frames and keeps the windows in order (no reversal, unlike FNR).
/// ρ = 1 is FreeNoise's pure reuse; ρ < 1 lets fresh noise in. π is a uniformly random permutation
/// per window taken from the clip's own draw (the order of the first value of each frame), so a
/// seed or a tape reproduces it.
public struct FreeNoiseStrategy: NoiseStrategy {
    public let window: Int
    public let reuse: Double

    public init(window: Int = 4, reuse: Double = 1) {
        self.window = window
        self.reuse = reuse
    }

    public var capabilities: StrategyCapabilities {
        StrategyCapabilities(noise: [NoiseClaim(.base, clips: .continuing, frames: .all)])
    }

    /// π for a clip of `n` frames whose draw is `fresh`: new frame j takes old frame π[j].
    public static func permutation(fresh: Tensor, frames n: Int, window: Int) -> [Int] {
        var out: [Int] = []
        out.reserveCapacity(n)
        for start in stride(from: 0, to: n, by: Swift.max(window, 1)) {
            let frames = start..<Swift.min(start + window, n)
            let keys = frames.map { fresh.latentFrame($0)[0] }
            // Ties are impossible for continuous draws but not for a hand-made tape: break them by index.
            out += frames.indices.sorted { (keys[$0 - start], $0) < (keys[$1 - start], $1) }
        }
        return out
    }

    public mutating func initialNoise(_ clip: ClipContext, layer: NoiseLayer, draft: inout NoiseDraft) throws {
        guard let previous = clip.previous else { return }
        let n = clip.shape.frames
        let pi = Self.permutation(fresh: clip.fresh, frames: n, window: window)
        let wr = Float(reuse.squareRoot()), wf = Float((1 - reuse).squareRoot())
        for j in 0..<n {
            let reused = previous.initialNoise.latentFrame(pi[j])
            // Pure reuse copies the frame exactly (0·fresh would still round).
            try draft.setFrame(j, reuse == 1 ? reused : weightedSum(wr, reused, wf, clip.fresh.latentFrame(j)))
        }
    }
}

/// π comes from each clip's own draw and the reused noise from the stream's previous clip, so
/// FreeNoise itself holds nothing across clips.
extension FreeNoiseStrategy: StatelessStrategy {}
