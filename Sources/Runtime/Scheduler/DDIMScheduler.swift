import Foundation

/// diffusers `DDIMScheduler` with η = 0 (deterministic DDIM).
///
/// Betas, cumulative alphas and step arithmetic are computed in fp32 in the same order as
/// PyTorch does, so that trajectories match the reference to rounding.
public struct DDIMScheduler: Sendable {
    public enum BetaSchedule: String, Sendable { case linear, scaledLinear = "scaled_linear", squaredCosCapV2 = "squaredcos_cap_v2" }
    public enum Spacing: String, Sendable { case leading, trailing, linspace }
    public enum Prediction: String, Sendable { case epsilon, vPrediction = "v_prediction", sample }

    public struct Configuration: Sendable, Equatable {
        public var trainTimesteps = 1000
        public var betaStart: Double = 0.0001
        public var betaEnd: Double = 0.02
        public var betaSchedule: BetaSchedule = .linear
        public var spacing: Spacing = .leading
        public var stepsOffset = 0
        public var setAlphaToOne = true
        public var prediction: Prediction = .epsilon
        /// Clamp of the predicted x0 (diffusers `clip_sample`); nil when off.
        public var clipSampleRange: Float? = nil

        public init() {}

        public init(config c: ModelConfig) throws {
            trainTimesteps = try c.int("num_train_timesteps", default: 1000)
            betaStart = try c.double("beta_start", default: 0.0001)
            betaEnd = try c.double("beta_end", default: 0.02)
            let schedule = try c.string("beta_schedule", default: "linear")
            guard let bs = BetaSchedule(rawValue: schedule) else { throw ModelError.unsupported("\(c.path): beta_schedule \(schedule)") }
            betaSchedule = bs
            let spacingName = try c.string("timestep_spacing", default: "leading")
            guard let sp = Spacing(rawValue: spacingName) else { throw ModelError.unsupported("\(c.path): timestep_spacing \(spacingName)") }
            spacing = sp
            stepsOffset = try c.int("steps_offset", default: 0)
            setAlphaToOne = try c.bool("set_alpha_to_one", default: true)
            let pred = try c.string("prediction_type", default: "epsilon")
            guard let p = Prediction(rawValue: pred) else { throw ModelError.unsupported("\(c.path): prediction_type \(pred)") }
            prediction = p
            if try c.bool("clip_sample", default: true) {
                clipSampleRange = Float(try c.double("clip_sample_range", default: 1.0))
            }
            if try c.bool("thresholding", default: false) { throw ModelError.unsupported("\(c.path): thresholding") }
            if try c.bool("rescale_betas_zero_snr", default: false) { throw ModelError.unsupported("\(c.path): rescale_betas_zero_snr") }
            if c.has("trained_betas") { throw ModelError.unsupported("\(c.path): trained_betas") }
            guard trainTimesteps > 0 else { throw ModelError.invalidConfig("\(c.path): num_train_timesteps must be positive") }
        }
    }

    public let configuration: Configuration
    public let alphasCumprod: [Float]
    public let finalAlphaCumprod: Float

    public init(configuration c: Configuration) {
        configuration = c
        let n = c.trainTimesteps
        var betas = [Float](repeating: 0, count: n)
        switch c.betaSchedule {
        case .linear:
            betas = Self.linspace(Float(c.betaStart), Float(c.betaEnd), n)
        case .scaledLinear:
            betas = Self.linspace(Float(c.betaStart.squareRoot()), Float(c.betaEnd.squareRoot()), n).map { $0 * $0 }
        case .squaredCosCapV2:
            func alphaBar(_ t: Double) -> Double { let v = cos((t + 0.008) / 1.008 * Double.pi / 2); return v * v }
            for i in 0..<n {
                let t1 = Double(i) / Double(n), t2 = Double(i + 1) / Double(n)
                betas[i] = Float(Swift.min(1 - alphaBar(t2) / alphaBar(t1), 0.999))
            }
        }
        var cumprod = [Float](repeating: 0, count: n)
        var acc: Float = 1
        for i in 0..<n { acc *= (1 - betas[i]); cumprod[i] = acc }
        alphasCumprod = cumprod
        finalAlphaCumprod = c.setAlphaToOne ? 1 : cumprod[0]
    }

    public init(directory: URL) throws {
        let c = try ModelConfig(path: directory.appendingPathComponent("scheduler_config.json").path)
        self.init(configuration: try Configuration(config: c))
    }

    /// torch.linspace in fp32: start + i * step, with the second half computed from the end as
    /// PyTorch does for accuracy.
    static func linspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        guard n > 1 else { return [start] }
        let step = (end - start) / Float(n - 1)
        let half = n / 2
        return (0..<n).map { i in i < half ? start + step * Float(i) : end - step * Float(n - 1 - i) }
    }

    /// Timesteps for `steps` inference steps, noisiest first.
    public func timesteps(steps: Int) throws -> [Int] {
        let c = configuration, n = c.trainTimesteps
        guard steps > 0, steps <= n else {
            throw ModelError.invalidInput("steps must be in 1...\(n), got \(steps)")
        }
        switch c.spacing {
        case .linspace:
            // numpy: linspace(0, T-1, steps) = i * ((T-1)/(steps-1)), rounded half to even.
            let delta = steps == 1 ? 0 : Double(n - 1) / Double(steps - 1)
            return (0..<steps).reversed().map { i in Int((Double(i) * delta).rounded(.toNearestOrEven)) }
        case .leading:
            let ratio = n / steps
            return (0..<steps).reversed().map { $0 * ratio + c.stepsOffset }
        case .trailing:
            // numpy: round(arange(T, 0, -T/steps)) - 1.
            let ratio = Double(n) / Double(steps)
            let count = Int((Double(n) / ratio).rounded(.up))
            return (0..<count).map { k in Int((Double(n) - Double(k) * ratio).rounded(.toNearestOrEven)) - 1 }
        }
    }

    /// The timestep DDIM steps to from `timestep` (negative means "past the end").
    public func previousTimestep(_ timestep: Int, steps: Int) -> Int {
        timestep - configuration.trainTimesteps / steps
    }

    func alphaProduct(_ t: Int) -> Float {
        t >= 0 ? alphasCumprod[Swift.min(t, alphasCumprod.count - 1)] : finalAlphaCumprod
    }

    /// One deterministic DDIM update of `sample` in place, from `timestep` to `previous`.
    public func step(modelOutput: UnsafePointer<Float>, sample: UnsafeMutablePointer<Float>, count: Int,
                     timestep: Int, previous: Int) {
        let alphaT = alphaProduct(timestep)
        let alphaPrev = alphaProduct(previous)
        let betaT = 1 - alphaT
        let sqrtAlphaT = alphaT.squareRoot(), sqrtBetaT = betaT.squareRoot()
        let sqrtAlphaPrev = alphaPrev.squareRoot(), sqrtOneMinusPrev = (1 - alphaPrev).squareRoot()
        let clip = configuration.clipSampleRange
        for i in 0..<count {
            let x = sample[i], m = modelOutput[i]
            var x0: Float
            let eps: Float
            switch configuration.prediction {
            case .epsilon:
                x0 = (x - sqrtBetaT * m) / sqrtAlphaT
                eps = m
            case .vPrediction:
                x0 = sqrtAlphaT * x - sqrtBetaT * m
                eps = sqrtAlphaT * m + sqrtBetaT * x
            case .sample:
                x0 = m
                eps = (x - sqrtAlphaT * x0) / sqrtBetaT
            }
            // diffusers clamps x0 but keeps the unclipped epsilon (use_clipped_model_output = False).
            if let clip { x0 = Swift.min(Swift.max(x0, -clip), clip) }
            sample[i] = sqrtAlphaPrev * x0 + sqrtOneMinusPrev * eps
        }
    }

    public func step(modelOutput: Tensor, sample: inout Tensor, timestep: Int, previous: Int) {
        precondition(modelOutput.shape == sample.shape)
        modelOutput.scalars.withUnsafeBufferPointer { m in
            sample.scalars.withUnsafeMutableBufferPointer { s in
                step(modelOutput: m.baseAddress!, sample: s.baseAddress!, count: s.count, timestep: timestep, previous: previous)
            }
        }
    }
}
