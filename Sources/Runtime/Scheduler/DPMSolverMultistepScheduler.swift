import Foundation

/// diffusers `DPMSolverMultistepScheduler` with `algorithm_type = "dpmsolver++"` (deterministic,
/// data prediction), first or second order, and a final sigma of zero.
///
/// The scheduler itself is immutable: it holds the configuration and the training noise schedule.
/// Everything that changes during sampling (the step index, the previous data prediction the
/// second-order update needs, how many lower-order warm-up steps were taken) lives in a
/// ``DPMSolverState`` made by ``makeState(steps:)``, one per clip. diffusers keeps that history
/// inside the scheduler object, so reusing one object across clips without `set_timesteps` mixes
/// one clip's history into the next; a value state cannot be reused by accident (a finished state
/// refuses further steps) and copying it forks the history rather than sharing it.
///
/// Arithmetic follows diffusers' order and precision: timesteps and sigma interpolation in
/// float64 as numpy does them, the per-step coefficients and the element-wise update in fp32 as
/// torch does them.
public struct DPMSolverMultistepScheduler: Sendable {
    public typealias BetaSchedule = DDIMScheduler.BetaSchedule
    public typealias Spacing = DDIMScheduler.Spacing
    public typealias Prediction = DDIMScheduler.Prediction
    public enum SolverType: String, Sendable { case midpoint, heun }

    @dynamicMemberLookup
    public struct Configuration: Sendable, Equatable {
        /// Training schedule, timestep spacing and prediction type (shared with the other
        /// sigma-based scheduler); read and written through this configuration's own names.
        public var settings = ScheduleSettings()
        /// 1 or 2.
        public var solverOrder = 2
        public var solverType: SolverType = .midpoint

        public init() {}

        public subscript<T>(dynamicMember field: WritableKeyPath<ScheduleSettings, T>) -> T {
            get { settings[keyPath: field] }
            set { settings[keyPath: field] = newValue }
        }

        /// Reads a diffusers `scheduler_config.json`. As diffusers' `from_config` does, a config saved
        /// for another scheduler class (e.g. the model's DDIMScheduler one) is accepted and its
        /// foreign keys ignored; a DPM-Solver option this runtime does not implement is an error
        /// naming the key.
        public init(config c: ModelConfig) throws {
            settings = try ScheduleSettings(config: c)
            solverOrder = try c.int("solver_order", default: 2)
            guard solverOrder == 1 || solverOrder == 2 else {
                throw ModelError.unsupported("\(c.path): solver_order = \(solverOrder) (1 or 2 are implemented)")
            }
            let solver = try c.string("solver_type", default: "midpoint")
            // diffusers maps the UniPC/DEIS names onto midpoint.
            guard let st = SolverType(rawValue: ["logrho", "bh1", "bh2"].contains(solver) ? "midpoint" : solver) else {
                throw ModelError.unsupported("\(c.path): solver_type \(solver)")
            }
            solverType = st
            let algorithm = try c.string("algorithm_type", default: "dpmsolver++")
            // diffusers treats "deis" as dpmsolver++.
            guard algorithm == "dpmsolver++" || algorithm == "deis" else {
                throw ModelError.unsupported("\(c.path): algorithm_type \(algorithm) (dpmsolver++ is implemented)")
            }
            let finalSigmas = try c.string("final_sigmas_type", default: "zero")
            guard finalSigmas == "zero" else { throw ModelError.unsupported("\(c.path): final_sigmas_type \(finalSigmas)") }
            try c.rejectTrue("thresholding", "use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas",
                             "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting", "rescale_betas_zero_snr")
            // -inf (diffusers' default) never clips; a finite value would shorten the schedule.
            try c.reject("lambda_min_clipped") { if case .number(let v) = $0 { return v == -.infinity } else { return false } }
            if c.has("variance_type") { throw ModelError.unsupported("\(c.path): variance_type") }
            // lower_order_final and euler_at_final only change the last step, which a zero final
            // sigma already makes first order, and the second-to-last, which only matters at
            // order 3: both are accepted and change nothing here.
        }
    }

    public let configuration: Configuration
    let schedule: NoiseSchedule

    public var alphasCumprod: [Float] { schedule.alphasCumprod }

    public init(configuration c: Configuration) throws {
        guard c.solverOrder == 1 || c.solverOrder == 2 else {
            throw ModelError.unsupported("solver_order = \(c.solverOrder) (1 or 2 are implemented)")
        }
        guard c.trainTimesteps > 0 else { throw ModelError.invalidConfig("num_train_timesteps must be positive") }
        configuration = c
        schedule = c.settings.noiseSchedule
    }

    public init(directory: URL) throws {
        let c = try ModelConfig(path: directory.appendingPathComponent("scheduler_config.json").path)
        try self.init(configuration: try Configuration(config: c))
    }

    /// Timesteps for `steps` inference steps, noisiest first (diffusers `set_timesteps`).
    public func timesteps(steps: Int) throws -> [Int] {
        let c = configuration, n = c.trainTimesteps
        try c.settings.validate(steps: steps)
        let t: [Int]
        switch c.spacing {
        case .linspace:
            // np.linspace(0, T-1, steps+1).round()[::-1][:-1]: i * ((T-1)/steps), the end exact.
            let delta = Double(n - 1) / Double(steps)
            t = (1...steps).reversed().map { i in
                i == steps ? n - 1 : Int((Double(i) * delta).rounded(.toNearestOrEven))
            }
        case .leading:
            // Unlike DDIM, the ratio divides by steps + 1 and the zero timestep is dropped.
            let ratio = n / (steps + 1)
            t = (1...steps).reversed().map { $0 * ratio + c.stepsOffset }
        case .trailing:
            let ratio = Double(n) / Double(steps)
            let count = Int((Double(n) / ratio).rounded(.up))
            t = (0..<count).map { k in Int((Double(n) - Double(k) * ratio).rounded(.toNearestOrEven)) - 1 }
        }
        try c.settings.requireFalling(t, steps: steps)
        return t
    }

    /// The sigmas for `steps` steps: one per timestep, then the final zero.
    public func sigmas(steps: Int) throws -> [Float] {
        try timesteps(steps: steps).map { schedule.interpolatedSigma(at: Double($0)) } + [0]
    }

    /// A fresh sampling state for one clip of `steps` steps.
    public func makeState(steps: Int) throws -> DPMSolverState {
        let t = try timesteps(steps: steps)
        return DPMSolverState(configuration: configuration, timesteps: t,
                              sigmas: t.map { schedule.interpolatedSigma(at: Double($0)) } + [0])
    }

    /// DPM-Solver needs no input scaling (diffusers' `init_noise_sigma` is 1 and
    /// `scale_model_input` the identity); kept so that callers can treat the schedulers alike.
    public var initNoiseSigma: Float { 1 }
}

/// One clip's DPM-Solver++ sampling state: where it is in the schedule and the history the
/// multistep update needs. Make one per clip with ``DPMSolverMultistepScheduler/makeState(steps:)``.
public struct DPMSolverState: Sendable {
    public let configuration: DPMSolverMultistepScheduler.Configuration
    public let timesteps: [Int]
    /// `timesteps.count + 1` values, the last zero.
    public let sigmas: [Float]
    /// Steps taken so far; the next step denoises at `timesteps[stepIndex]`.
    public private(set) var stepIndex = 0
    /// Warm-up steps taken at lower order (diffusers `lower_order_nums`), capped at the order.
    public private(set) var lowerOrderSteps = 0
    /// The previous step's data prediction x0 (diffusers `model_outputs[-2]`).
    var previousX0: [Float]?

    init(configuration: DPMSolverMultistepScheduler.Configuration, timesteps: [Int], sigmas: [Float]) {
        self.configuration = configuration
        self.timesteps = timesteps
        self.sigmas = sigmas
    }

    public var isFinished: Bool { stepIndex >= timesteps.count }
    /// The timestep the next `step` expects, nil once finished.
    public var nextTimestep: Int? { isFinished ? nil : timesteps[stepIndex] }

    /// alpha_t, sigma_t for a sigma, as diffusers' `_sigma_to_alpha_sigma_t` computes them in fp32
    /// (`1 / x` is torch's reciprocal; pow 0.5 is sqrt).
    private static func alphaSigma(_ sigma: Float) -> (alpha: Float, sigma: Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    private static func lambda(_ a: (alpha: Float, sigma: Float)) -> Float { Foundation.log(a.alpha) - Foundation.log(a.sigma) }

    /// Denoises `sample` from `timestep` (which must be ``nextTimestep``) to the next timestep and
    /// returns the new sample.
    public mutating func step(modelOutput: Tensor, timestep: Int, sample: Tensor) throws -> Tensor {
        guard let expected = nextTimestep else {
            throw ModelError.invalidInput("DPM-Solver state finished its \(timesteps.count) steps; make a fresh state per clip")
        }
        guard timestep == expected else {
            throw ModelError.invalidInput("DPM-Solver step \(stepIndex) expects timestep \(expected), got \(timestep)")
        }
        guard modelOutput.shape == sample.shape else {
            throw ModelError.invalidInput("model output shape \(modelOutput.shape) differs from the sample's \(sample.shape)")
        }
        if let p = previousX0, p.count != sample.count {
            throw ModelError.invalidInput("sample has \(sample.count) values, the previous step had \(p.count)")
        }
        let i = stepIndex, n = sample.count
        let s = sample.scalars, m = modelOutput.scalars

        // convert_model_output: the data prediction x0 at the current sigma.
        let current = Self.alphaSigma(sigmas[i])
        var x0 = [Float](repeating: 0, count: n)
        switch configuration.prediction {
        case .epsilon:
            for k in 0..<n { x0[k] = (s[k] - current.sigma * m[k]) / current.alpha }
        case .vPrediction:
            for k in 0..<n { x0[k] = current.alpha * s[k] - current.sigma * m[k] }
        case .sample:
            x0 = m
        }

        let target = Self.alphaSigma(sigmas[i + 1])
        // A zero final sigma gives lambda = +inf and h = +inf: exp(-h) = 0 and the update returns
        // x0 exactly, which is why diffusers always takes the last step at first order.
        let h = Self.lambda(target) - Self.lambda(current)
        let ratio = target.sigma / current.sigma
        let c0 = target.alpha * (Foundation.exp(-h) - 1)
        var out = [Float](repeating: 0, count: n)
        let last = i == timesteps.count - 1
        // diffusers: first order at order 1, for the warm-up step (no history yet) and for the
        // last step; previousX0 is nil exactly when lowerOrderSteps is 0.
        if configuration.solverOrder == 1 || last || lowerOrderSteps < 1 || previousX0 == nil {
            for k in 0..<n { out[k] = ratio * s[k] - c0 * x0[k] }
        } else if let m1 = previousX0 {
            // D1 = (1/r0)(x0 - x0_prev), 1/r0 as torch's reciprocal; each product and sum rounds
            // in fp32 in the order diffusers writes them.
            let h0 = Self.lambda(current) - Self.lambda(Self.alphaSigma(sigmas[i - 1]))
            let r0 = h0 / h
            let invR0 = 1 / r0
            switch configuration.solverType {
            case .midpoint:
                let c1 = 0.5 * c0
                for k in 0..<n {
                    let d1 = invR0 * (x0[k] - m1[k])
                    out[k] = (ratio * s[k] - c0 * x0[k]) - c1 * d1
                }
            case .heun:
                let c1 = target.alpha * ((Foundation.exp(-h) - 1) / h + 1)
                for k in 0..<n {
                    let d1 = invR0 * (x0[k] - m1[k])
                    out[k] = (ratio * s[k] - c0 * x0[k]) + c1 * d1
                }
            }
        }
        if configuration.solverOrder > 1 { previousX0 = x0 }
        if lowerOrderSteps < configuration.solverOrder { lowerOrderSteps += 1 }
        stepIndex += 1
        return Tensor(shape: sample.shape, scalars: out)
    }
}
