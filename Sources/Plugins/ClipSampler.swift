import VidrdRuntime

/// What a generating strategy (`StrategyCapabilities.generates`, e.g. FIFO-Diffusion) denoises
/// with. It exposes the two things such a strategy cannot build from the per-step hooks: one
/// guided U-Net + DDIM step (DDIM streams only) over *any* window of latent frames, each frame with its own
/// timestep pair, and extra noise from the stream's own source (a queue needs more noise than
/// one clip's draw when it is first filled). Every step goes through the stream's progress
/// callback, so a generating strategy is cancelled within one step like any other clip.
public struct ClipSampler {
    var backend: any VideoBackend
    /// The stream's scheduler. A generating strategy that moves frames at their own timesteps
    /// needs DDIM (`SchedulerKind.supportsFrameTimesteps`) and says so in its `check`.
    public let scheduler: DiffusionScheduler
    public let guidanceScale: Float
    let progress: (TextToVideoPipeline.StepProgress) -> Bool
    var source: StreamNoiseSource
    /// Extra draws of an earlier, cancelled attempt at this clip: replayed first, so a retried
    /// clip sees exactly the same noise.
    let pending: [Tensor]
    /// Extra draws handed out in this attempt, in order.
    public private(set) var extraDraws: [Tensor] = []
    /// Guided steps run so far in this clip.
    public private(set) var stepsDone = 0
    /// The steps the strategy expects this clip to take (the progress callback's total).
    public var plannedSteps: Int

    init(backend: any VideoBackend, scheduler: DiffusionScheduler, guidanceScale: Float, source: StreamNoiseSource, pending: [Tensor],
         plannedSteps: Int, progress: @escaping (TextToVideoPipeline.StepProgress) -> Bool) {
        self.backend = backend
        self.scheduler = scheduler
        self.guidanceScale = guidanceScale
        self.source = source
        self.pending = pending
        self.plannedSteps = plannedSteps
        self.progress = progress
    }

    /// One guided step of `latents` (`[1, C, F, h, w]`, any F): frame f is predicted at
    /// `frameTimesteps[f].timestep` and moved by DDIM to `frameTimesteps[f].previous`.
    public mutating func step(_ latents: Tensor, frameTimesteps: [FrameTimestep]) throws -> Tensor {
        var hooks = FixedFrameTimesteps(timesteps: frameTimesteps)
        // A one-step schedule whose uniform timestep the hook replaces for every frame: exactly the
        // sampler's per-frame path (U-Net per-(entry, frame) timesteps, DDIM per frame).
        let out = try backend.denoise(initialNoise: latents, scheduler: .ddim(try scheduler.frameTimestepScheduler()), steps: 1, guidanceScale: guidanceScale,
                                      hooks: &hooks) { _ in true }
        try report(timestep: frameTimesteps.map(\.timestep).max() ?? 0, latents: out)
        return out
    }

    /// The plain sampler from noise over `steps` uniform steps of the stream's scheduler (what a clip of the hook path
    /// runs, without hooks); `inputs[k]` are the latents the U-Net saw at step k.
    public mutating func sample(_ initialNoise: Tensor, steps: Int) throws -> (latents: Tensor, inputs: [Tensor]) {
        var recorder = InputRecorder()
        let report = progress
        let planned = plannedSteps
        var done = stepsDone
        let out = try backend.denoise(initialNoise: initialNoise, scheduler: scheduler, steps: steps, guidanceScale: guidanceScale,
                                      hooks: &recorder) { p in
            done += 1
            return report(TextToVideoPipeline.StepProgress(step: done, totalSteps: Swift.max(planned, done), timestep: p.timestep, latents: p.latents))
        }
        stepsDone = done
        return (out, recorder.inputs)
    }

    /// A further standard-normal tensor from the stream's noise source (seeded generator or tape),
    /// drawn after the clip's own draw.
    public mutating func drawNoise(shape: [Int]) throws -> Tensor {
        let t: Tensor
        if extraDraws.count < pending.count {
            t = pending[extraDraws.count]
            guard t.shape == shape else {
                throw ModelError.invalidInput("extra noise draw \(extraDraws.count) of this clip has shape \(t.shape), now asked for \(shape)")
            }
        } else {
            t = try source.draw(shape: shape)
        }
        extraDraws.append(t)
        return t
    }

    private mutating func report(timestep: Int, latents: Tensor) throws {
        stepsDone += 1
        let p = TextToVideoPipeline.StepProgress(step: stepsDone, totalSteps: Swift.max(plannedSteps, stepsDone),
                                                 timestep: timestep, latents: latents)
        if !progress(p) { throw ModelError.cancelled }
    }
}

/// Supplies one fixed set of per-frame timesteps to every step (the sampler runs one).
struct FixedFrameTimesteps: DenoiseHooks {
    let timesteps: [FrameTimestep]
    mutating func frameTimesteps(_ step: DenoiseStep, frames: Int) throws -> [FrameTimestep]? { timesteps }
}

/// Keeps the latents the U-Net saw at every step.
struct InputRecorder: DenoiseHooks {
    var inputs: [Tensor] = []
    mutating func afterStep(_ record: DenoiseStepRecord) throws { inputs.append(record.input) }
}
