import Foundation

/// One frame's timestep pair for a step with per-frame timesteps (FIFO-Diffusion style): the
/// U-Net sees `timestep` for this frame and DDIM moves the frame from `timestep` to `previous`
/// (negative: past the end, i.e. the final alpha).
public struct FrameTimestep: Sendable, Equatable {
    public var timestep: Int
    public var previous: Int
    public init(timestep: Int, previous: Int) { self.timestep = timestep; self.previous = previous }
}

/// Where the sampler stands at one step of `TextToVideoPipeline.denoise(…, hooks:)`.
public struct DenoiseStep: Sendable {
    /// 0-based; step 0 is the first, noisiest step.
    public let index: Int
    public let totalSteps: Int
    /// The scheduler's uniform timestep for this step and the one it steps to
    /// (`SchedulerRun.integerTimesteps(at:)`: Euler's fractional ones rounded).
    public let timestep: Int
    public let previousTimestep: Int
    /// Per-frame timesteps when a hook supplied them for this step, else nil (uniform).
    public let frameTimesteps: [FrameTimestep]?
}

/// What a denoising step saw and produced, handed to `DenoiseHooks.afterStep`.
public struct DenoiseStepRecord: Sendable {
    public let step: DenoiseStep
    /// The step's latents (after `beforeStep` overrides), `[1, C, F, h, w]`: what the U-Net saw,
    /// except that under Euler it sees them divided by sqrt(σ² + 1).
    public let input: Tensor
    /// The noise prediction the scheduler used (after classifier-free guidance).
    public let noisePrediction: Tensor
    /// Latents after the scheduler update.
    public let output: Tensor
}

/// Sampler hooks. Per step, in this order: `frameTimesteps` → `beforeStep` → U-Net → scheduler update
/// → `afterStep` → progress callback.
public protocol DenoiseHooks {
    /// Per-frame timesteps for this step (exactly `frames` entries), or nil for the uniform schedule.
    mutating func frameTimesteps(_ step: DenoiseStep, frames: Int) throws -> [FrameTimestep]?
    /// May overwrite latents (e.g. some frames) before the U-Net call. The shape must not change.
    mutating func beforeStep(_ step: DenoiseStep, latents: inout Tensor) throws
    /// Sees the step's input, noise prediction and output.
    mutating func afterStep(_ record: DenoiseStepRecord) throws
}

extension DenoiseHooks {
    public mutating func frameTimesteps(_ step: DenoiseStep, frames: Int) throws -> [FrameTimestep]? { nil }
    public mutating func beforeStep(_ step: DenoiseStep, latents: inout Tensor) throws {}
    public mutating func afterStep(_ record: DenoiseStepRecord) throws {}
}

/// The hooks that do nothing: `denoise` without hooks is exactly this.
public struct NoDenoiseHooks: DenoiseHooks, Sendable {
    public init() {}
}
