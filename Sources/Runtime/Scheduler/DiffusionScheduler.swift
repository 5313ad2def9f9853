import Foundation

/// Which diffusers scheduler samples a clip. A model folder names one (`model_index.json`,
/// `scheduler_config.json`'s `_class_name`); a caller may pick another, configured from the same
/// `scheduler_config.json` as diffusers' `from_config` does.
public enum SchedulerKind: String, Sendable, CaseIterable, Codable {
    /// `DDIMScheduler`, η = 0.
    case ddim
    /// `DPMSolverMultistepScheduler`, dpmsolver++, second order unless the config says 1: the
    /// few-step sampler the ModelScope and zeroscope model cards recommend.
    case dpmSolver = "dpm++"
    /// `EulerDiscreteScheduler` without churn.
    case euler

    /// The diffusers class name.
    public var className: String {
        switch self {
        case .ddim: return "DDIMScheduler"
        case .dpmSolver: return "DPMSolverMultistepScheduler"
        case .euler: return "EulerDiscreteScheduler"
        }
    }

    /// A short name ("ddim", "dpm++", "euler"), a common alias ("dpmsolver++", "dpm-solver++") or a
    /// diffusers class name, case-insensitive.
    public init?(name: String) {
        let n = name.lowercased()
        if let k = Self.allCases.first(where: { $0.rawValue == n || $0.className.lowercased() == n }) {
            self = k
        } else if ["dpmsolver++", "dpm-solver++", "dpmsolver"].contains(n) {
            self = .dpmSolver
        } else {
            return nil
        }
    }

    /// Whether one step can move every frame between a pair of timesteps of its own, which
    /// per-frame-timestep strategies (FIFO-Diffusion's diagonal queue, plugins declaring
    /// `timesteps`) need. Only DDIM can: its update is memoryless and defined for any (t, t')
    /// pair. DPM-Solver's multistep history and Euler's sigma ladder belong to one schedule
    /// shared by the whole clip.
    public var supportsFrameTimesteps: Bool { self == .ddim }
}

/// One of the implemented diffusers schedulers, configured. Immutable; a clip's progress through
/// it is a ``SchedulerRun`` from ``start(steps:)``.
public enum DiffusionScheduler: Sendable {
    case ddim(DDIMScheduler)
    case dpmSolver(DPMSolverMultistepScheduler)
    case euler(EulerDiscreteScheduler)

    public var kind: SchedulerKind {
        switch self {
        case .ddim: return .ddim
        case .dpmSolver: return .dpmSolver
        case .euler: return .euler
        }
    }

    /// The DDIM scheduler, when this is one (per-frame timesteps need it).
    public var ddim: DDIMScheduler? {
        if case .ddim(let s) = self { return s }
        return nil
    }

    /// The DDIM scheduler that moves frames at timesteps of their own, or the error every caller
    /// of per-frame timesteps (the sampler, `ClipSampler`, fifo) gives under another kind.
    public func frameTimestepScheduler() throws -> DDIMScheduler {
        guard let d = ddim else {
            throw ModelError.unsupported("per-frame timesteps need the ddim scheduler; this stream samples with \(kind.rawValue)")
        }
        return d
    }

    /// The scheduler of `kind` configured by a diffusers `scheduler_config.json` (one saved for
    /// another class is accepted, as `from_config` does; options the kind does not implement are
    /// errors naming them).
    public init(kind: SchedulerKind, config: ModelConfig) throws {
        switch kind {
        case .ddim: self = .ddim(DDIMScheduler(configuration: try DDIMScheduler.Configuration(config: config)))
        case .dpmSolver:
            self = .dpmSolver(try DPMSolverMultistepScheduler(configuration: try DPMSolverMultistepScheduler.Configuration(config: config)))
        case .euler:
            self = .euler(try EulerDiscreteScheduler(configuration: try EulerDiscreteScheduler.Configuration(config: config)))
        }
    }

    /// The U-Net timesteps of `steps` steps, noisiest first (Euler's may be fractional).
    public func timesteps(steps: Int) throws -> [Float] {
        switch self {
        case .ddim(let s): return try s.timesteps(steps: steps).map { Float($0) }
        case .dpmSolver(let s): return try s.timesteps(steps: steps).map { Float($0) }
        case .euler(let s): return try s.timesteps(steps: steps)
        }
    }

    /// A fresh run of `steps` steps for one clip.
    public func start(steps: Int) throws -> SchedulerRun {
        switch self {
        case .ddim(let s): return SchedulerRun(.ddim(s, timesteps: try s.timesteps(steps: steps), steps: steps))
        case .dpmSolver(let s): return SchedulerRun(.dpmSolver(try s.makeState(steps: steps)))
        case .euler(let s): return SchedulerRun(.euler(try s.makeState(steps: steps)))
        }
    }
}

/// One clip's pass through a ``DiffusionScheduler``: the timesteps, the input scaling and the
/// update, whatever the scheduler. A value: a cancelled clip that is retried starts a fresh run.
public struct SchedulerRun: Sendable {
    enum State: Sendable {
        case ddim(DDIMScheduler, timesteps: [Int], steps: Int)
        case dpmSolver(DPMSolverState)
        case euler(EulerState)
    }

    var state: State
    /// The U-Net timestep of each step, noisiest first.
    public let timesteps: [Float]
    /// Steps taken so far.
    public private(set) var stepIndex = 0

    init(_ state: State) {
        self.state = state
        switch state {
        case .ddim(_, let t, _): timesteps = t.map { Float($0) }
        case .dpmSolver(let s): timesteps = s.timesteps.map { Float($0) }
        case .euler(let s): timesteps = s.timesteps
        }
    }

    public var kind: SchedulerKind {
        switch state {
        case .ddim: return .ddim
        case .dpmSolver: return .dpmSolver
        case .euler: return .euler
        }
    }

    /// What the initial unit-variance noise is multiplied by before the first step (diffusers'
    /// `init_noise_sigma`: 1 for DDIM and DPM-Solver, the largest sigma for Euler).
    public var initNoiseSigma: Float {
        if case .euler(let s) = state { return s.initNoiseSigma }
        return 1
    }

    /// Step `i`'s timestep and the one it steps to, as integers (what hooks and C plugins see;
    /// Euler's fractional timesteps are rounded to the nearest). The second is DDIM's own rule
    /// under DDIM; under the others, the next step's timestep, or -1 after the last step.
    public func integerTimesteps(at i: Int) -> (timestep: Int, previous: Int) {
        switch state {
        case .ddim(let s, let t, let steps): return (t[i], s.previousTimestep(t[i], steps: steps))
        default:
            let now = Int(timesteps[i].rounded())
            return (now, i + 1 < timesteps.count ? Int(timesteps[i + 1].rounded()) : -1)
        }
    }

    /// The U-Net's input for the next step's latents (Euler divides by sqrt(σ² + 1); the others
    /// take the latents as they are).
    public func modelInput(_ latents: Tensor) throws -> Tensor {
        if case .euler(let s) = state { return try s.scaleModelInput(sample: latents, timestep: timesteps[stepIndex]) }
        return latents
    }

    /// The next step's update of `latents` with the (guided) noise prediction.
    public mutating func step(noisePrediction: Tensor, latents: inout Tensor) throws {
        guard stepIndex < timesteps.count else {
            throw ModelError.invalidInput("the scheduler run finished its \(timesteps.count) steps")
        }
        switch state {
        case .ddim(let s, let t, let steps):
            s.step(modelOutput: noisePrediction, sample: &latents, timestep: t[stepIndex],
                   previous: s.previousTimestep(t[stepIndex], steps: steps))
        case .dpmSolver(var s):
            latents = try s.step(modelOutput: noisePrediction, timestep: Int(timesteps[stepIndex]), sample: latents)
            state = .dpmSolver(s)
        case .euler(var s):
            latents = try s.step(modelOutput: noisePrediction, timestep: timesteps[stepIndex], sample: latents)
            state = .euler(s)
        }
        stepIndex += 1
    }
}
