import Foundation

/// diffusers `EulerDiscreteScheduler` without churn (`s_churn = 0`: deterministic), linear sigma
/// interpolation, no Karras/exponential/beta sigmas, a final sigma of zero.
///
/// As with ``DPMSolverMultistepScheduler`` the scheduler is immutable and the per-clip position
/// lives in an ``EulerState`` from ``makeState(steps:)``. Euler keeps no history, so the state is
/// only the schedule and the step index, but keeping the same shape lets a pipeline hold either.
///
/// Timesteps are fp32 and may be fractional (linspace spacing puts 8 steps 999/7 apart), as
/// diffusers passes them to the UNet.
public struct EulerDiscreteScheduler: Sendable {
    public typealias BetaSchedule = DDIMScheduler.BetaSchedule
    public typealias Spacing = DDIMScheduler.Spacing
    public typealias Prediction = DDIMScheduler.Prediction

    @dynamicMemberLookup
    public struct Configuration: Sendable, Equatable {
        /// Training schedule, timestep spacing and prediction type (shared with the other
        /// sigma-based scheduler); read and written through this configuration's own names.
        public var settings = ScheduleSettings()

        public init() {}

        public subscript<T>(dynamicMember field: WritableKeyPath<ScheduleSettings, T>) -> T {
            get { settings[keyPath: field] }
            set { settings[keyPath: field] = newValue }
        }

        /// Reads a diffusers `scheduler_config.json`; like diffusers' `from_config`, a config saved
        /// for another class is accepted and its foreign keys ignored.
        public init(config c: ModelConfig) throws {
            settings = try ScheduleSettings(config: c)
            let interpolation = try c.string("interpolation_type", default: "linear")
            guard interpolation == "linear" else { throw ModelError.unsupported("\(c.path): interpolation_type \(interpolation)") }
            let timestepType = try c.string("timestep_type", default: "discrete")
            guard timestepType == "discrete" else { throw ModelError.unsupported("\(c.path): timestep_type \(timestepType)") }
            let finalSigmas = try c.string("final_sigmas_type", default: "zero")
            guard finalSigmas == "zero" else { throw ModelError.unsupported("\(c.path): final_sigmas_type \(finalSigmas)") }
            try c.rejectTrue("use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "rescale_betas_zero_snr")
        }
    }

    public let configuration: Configuration
    let schedule: NoiseSchedule

    public var alphasCumprod: [Float] { schedule.alphasCumprod }

    public init(configuration c: Configuration) throws {
        guard c.trainTimesteps > 0 else { throw ModelError.invalidConfig("num_train_timesteps must be positive") }
        configuration = c
        schedule = c.settings.noiseSchedule
    }

    public init(directory: URL) throws {
        let c = try ModelConfig(path: directory.appendingPathComponent("scheduler_config.json").path)
        try self.init(configuration: try Configuration(config: c))
    }

    /// Timesteps for `steps` inference steps, noisiest first (diffusers `set_timesteps`), as the
    /// fp32 values diffusers computes in float64 and casts.
    public func timesteps(steps: Int) throws -> [Float] {
        let c = configuration, n = c.trainTimesteps
        try c.settings.validate(steps: steps)
        let t: [Double]
        switch c.spacing {
        case .linspace:
            // np.linspace(0, T-1, steps): i * ((T-1)/(steps-1)), the end exact; one step is [0].
            let delta = steps == 1 ? 0 : Double(n - 1) / Double(steps - 1)
            t = (0..<steps).reversed().map { i in i == steps - 1 && steps > 1 ? Double(n - 1) : Double(i) * delta }
        case .leading:
            let ratio = n / steps
            t = (0..<steps).reversed().map { Double($0 * ratio + c.stepsOffset) }
        case .trailing:
            let ratio = Double(n) / Double(steps)
            let count = Int((Double(n) / ratio).rounded(.up))
            t = (0..<count).map { k in (Double(n) - Double(k) * ratio).rounded(.toNearestOrEven) - 1 }
        }
        let f = t.map { Float($0) }
        try c.settings.requireFalling(f, steps: steps)
        return f
    }

    /// The sigmas for `steps` steps: one per timestep (interpolated in float64 at the fp32
    /// timestep), then the final zero.
    public func sigmas(steps: Int) throws -> [Float] {
        try timesteps(steps: steps).map { schedule.interpolatedSigma(at: Double($0)) } + [0]
    }

    /// A fresh sampling state for one clip of `steps` steps.
    public func makeState(steps: Int) throws -> EulerState {
        let t = try timesteps(steps: steps)
        let sigmas = t.map { schedule.interpolatedSigma(at: Double($0)) } + [0]
        // diffusers' init_noise_sigma: the largest sigma, or sqrt(σ² + 1) of it for leading
        // spacing, in fp32.
        let maxSigma = sigmas.max() ?? 0
        let initSigma = configuration.spacing == .leading ? (maxSigma * maxSigma + 1).squareRoot() : maxSigma
        return EulerState(configuration: configuration, timesteps: t, sigmas: sigmas, initNoiseSigma: initSigma)
    }
}

/// One clip's Euler sampling state. Make one per clip with ``EulerDiscreteScheduler/makeState(steps:)``.
public struct EulerState: Sendable {
    public let configuration: EulerDiscreteScheduler.Configuration
    public let timesteps: [Float]
    /// `timesteps.count + 1` values, the last zero.
    public let sigmas: [Float]
    /// What the initial Gaussian noise is multiplied by (diffusers `init_noise_sigma`).
    public let initNoiseSigma: Float
    /// Steps taken so far; the next step denoises at `timesteps[stepIndex]`.
    public private(set) var stepIndex = 0

    init(configuration: EulerDiscreteScheduler.Configuration, timesteps: [Float], sigmas: [Float], initNoiseSigma: Float) {
        self.configuration = configuration
        self.timesteps = timesteps
        self.sigmas = sigmas
        self.initNoiseSigma = initNoiseSigma
    }

    public var isFinished: Bool { stepIndex >= timesteps.count }
    /// The timestep the next `step` expects, nil once finished.
    public var nextTimestep: Float? { isFinished ? nil : timesteps[stepIndex] }

    private func checkTimestep(_ timestep: Float) throws {
        guard let expected = nextTimestep else {
            throw ModelError.invalidInput("Euler state finished its \(timesteps.count) steps; make a fresh state per clip")
        }
        guard timestep == expected else {
            throw ModelError.invalidInput("Euler step \(stepIndex) expects timestep \(expected), got \(timestep)")
        }
    }

    /// The UNet's input at `timestep` (the next step's): sample / sqrt(σ² + 1), fp32 division
    /// as torch does it.
    public func scaleModelInput(sample: Tensor, timestep: Float) throws -> Tensor {
        try checkTimestep(timestep)
        let sigma = sigmas[stepIndex]
        let scale = (sigma * sigma + 1).squareRoot()
        return Tensor(shape: sample.shape, scalars: sample.scalars.map { $0 / scale })
    }

    /// One Euler step from `timestep` (which must be ``nextTimestep``) to the next sigma; returns
    /// the new sample. `sample` is the unscaled latent, not the UNet's input.
    public mutating func step(modelOutput: Tensor, timestep: Float, sample: Tensor) throws -> Tensor {
        try checkTimestep(timestep)
        guard modelOutput.shape == sample.shape else {
            throw ModelError.invalidInput("model output shape \(modelOutput.shape) differs from the sample's \(sample.shape)")
        }
        // s_churn = 0 makes gamma 0 and sigma_hat = sigma: no noise is added.
        let sigma = sigmas[stepIndex]
        let dt = sigmas[stepIndex + 1] - sigma
        let s = sample.scalars, m = modelOutput.scalars, n = s.count
        var out = [Float](repeating: 0, count: n)
        switch configuration.prediction {
        case .epsilon:
            for k in 0..<n {
                let x0 = s[k] - sigma * m[k]
                out[k] = s[k] + ((s[k] - x0) / sigma) * dt
            }
        case .vPrediction:
            let cOut = -sigma / (sigma * sigma + 1).squareRoot()
            let cSkip = sigma * sigma + 1
            for k in 0..<n {
                let x0 = m[k] * cOut + s[k] / cSkip
                out[k] = s[k] + ((s[k] - x0) / sigma) * dt
            }
        case .sample:
            for k in 0..<n { out[k] = s[k] + ((s[k] - m[k]) / sigma) * dt }
        }
        stepIndex += 1
        return Tensor(shape: sample.shape, scalars: out)
    }
}
