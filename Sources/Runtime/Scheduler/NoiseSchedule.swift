import Foundation

/// The training noise schedule shared by the sigma-based schedulers (DPM-Solver, Euler): betas,
/// cumulative alphas and sigma = sqrt((1 - ᾱ) / ᾱ), in the precision diffusers computes them.
struct NoiseSchedule: Sendable, Equatable {
    let alphasCumprod: [Float]
    /// sqrt((1 - ᾱ_t) / ᾱ_t) for t = 0..<T, fp32 as torch computes it.
    let sigmas: [Float]

    init(trainTimesteps n: Int, betaStart: Double, betaEnd: Double, schedule: DDIMScheduler.BetaSchedule) {
        let betas: [Float]
        switch schedule {
        case .linear:
            betas = Self.torchLinspace(Float(betaStart), Float(betaEnd), n)
        case .scaledLinear:
            betas = Self.torchLinspace(Float(betaStart.squareRoot()), Float(betaEnd.squareRoot()), n).map { $0 * $0 }
        case .squaredCosCapV2:
            // diffusers computes these in float64 and only then makes an fp32 tensor.
            func alphaBar(_ t: Double) -> Double { let v = cos((t + 0.008) / 1.008 * Double.pi / 2); return v * v }
            betas = (0..<n).map { i in
                Float(Swift.min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), 0.999))
            }
        }
        // torch.cumprod on CPU accumulates fp32 in double and rounds each partial product;
        // an fp32 accumulator drifts by an ulp or more over 1000 steps.
        var acc = 1.0
        alphasCumprod = betas.map { b in acc *= Double(1 - b); return Float(acc) }
        sigmas = alphasCumprod.map { a in ((1 - a) / a).squareRoot() }
    }

    /// torch.linspace in fp32 to the bit: PyTorch's CPU kernel is compiled with FMA contraction,
    /// so `start + step * i` (and `end - step * (n-1-i)` for the second half) rounds once.
    /// (DDIMScheduler.linspace rounds twice; it differs in ~20% of 1000 betas by an ulp.)
    static func torchLinspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        guard n > 1 else { return [start] }
        let step = (end - start) / Float(n - 1)
        let half = n / 2
        return (0..<n).map { i in
            i < half ? start.addingProduct(step, Float(i)) : end.addingProduct(-step, Float(n - 1 - i))
        }
    }

    /// np.interp(t, arange(T), sigmas) in float64, then cast to fp32 as diffusers does. Outside
    /// 0...T-1 numpy clamps to the end values.
    func interpolatedSigma(at t: Double) -> Float {
        let last = sigmas.count - 1
        if t <= 0 { return sigmas[0] }
        if t >= Double(last) { return sigmas[last] }
        let j = Int(t.rounded(.down))
        if Double(j) == t { return sigmas[j] }
        let lo = Double(sigmas[j]), hi = Double(sigmas[j + 1])
        // numpy's slope is (fp[j+1] - fp[j]) / (xp[j+1] - xp[j]); the grid step is exactly 1, and
        // numpy (built without FMA in its baseline) rounds the product and the sum separately.
        let slope = hi - lo
        return Float(slope * (t - Double(j)) + lo)
    }
}

/// The part of a sigma-based scheduler's configuration that DPM-Solver and Euler share: the
/// training schedule, where the inference timesteps fall, and what the model predicts. Each
/// scheduler's `Configuration` holds one and forwards its fields (`configuration.betaEnd`).
public struct ScheduleSettings: Sendable, Equatable {
    public var trainTimesteps = 1000
    public var betaStart: Double = 0.0001
    public var betaEnd: Double = 0.02
    public var betaSchedule: DDIMScheduler.BetaSchedule = .linear
    /// diffusers' default for these schedulers is linspace (DDIM's is leading).
    public var spacing: DDIMScheduler.Spacing = .linspace
    public var stepsOffset = 0
    public var prediction: DDIMScheduler.Prediction = .epsilon

    public init() {}

    init(config c: ModelConfig) throws {
        trainTimesteps = try c.int("num_train_timesteps", default: 1000)
        betaStart = try c.double("beta_start", default: 0.0001)
        betaEnd = try c.double("beta_end", default: 0.02)
        betaSchedule = try c.betaSchedule()
        spacing = try c.spacing(default: "linspace")
        stepsOffset = try c.int("steps_offset", default: 0)
        prediction = try c.prediction()
        if c.has("trained_betas") { throw ModelError.unsupported("\(c.path): trained_betas") }
        guard trainTimesteps > 0 else { throw ModelError.invalidConfig("\(c.path): num_train_timesteps must be positive") }
    }

    /// A step count the training schedule can place: 1...T.
    func validate(steps: Int) throws {
        guard steps > 0, steps <= trainTimesteps else {
            throw ModelError.invalidInput("steps must be in 1...\(trainTimesteps), got \(steps)")
        }
    }

    /// Too many steps for the spacing repeat a timestep (leading with steps + 1 > T gives all
    /// zeros), which diffusers would silently skip or repeat: the timesteps must fall strictly.
    func requireFalling<T: Comparable & SignedNumeric>(_ t: [T], steps: Int) throws {
        guard zip(t, t.dropFirst()).allSatisfy({ $0 > $1 }), let last = t.last, last >= 0 else {
            throw ModelError.invalidInput("\(steps) steps give repeated timesteps with timestep_spacing \(spacing.rawValue)")
        }
    }

    var noiseSchedule: NoiseSchedule {
        NoiseSchedule(trainTimesteps: trainTimesteps, betaStart: betaStart, betaEnd: betaEnd, schedule: betaSchedule)
    }
}

extension ModelConfig {
    /// A key that diffusers supports but this runtime does not is an error naming the key, never
    /// a silent fallback: a scheduler that quietly ignored it would sample a different trajectory.
    func reject(_ key: String, unless allowed: (JSONValue) -> Bool) throws {
        if let v = value(key), !allowed(v) { throw ModelError.unsupported("\(path): \(key) = \(v.rendered)") }
    }

    func rejectTrue(_ keys: String...) throws {
        for k in keys where try bool(k, default: false) { throw ModelError.unsupported("\(path): \(k) = true") }
    }

    /// Betas shared by every scheduler config (the DDIM parsing rules).
    func betaSchedule() throws -> DDIMScheduler.BetaSchedule {
        let schedule = try string("beta_schedule", default: "linear")
        guard let bs = DDIMScheduler.BetaSchedule(rawValue: schedule) else { throw ModelError.unsupported("\(path): beta_schedule \(schedule)") }
        return bs
    }

    func spacing(default d: String) throws -> DDIMScheduler.Spacing {
        let name = try string("timestep_spacing", default: d)
        guard let sp = DDIMScheduler.Spacing(rawValue: name) else { throw ModelError.unsupported("\(path): timestep_spacing \(name)") }
        return sp
    }

    func prediction() throws -> DDIMScheduler.Prediction {
        let pred = try string("prediction_type", default: "epsilon")
        guard let p = DDIMScheduler.Prediction(rawValue: pred) else { throw ModelError.unsupported("\(path): prediction_type \(pred)") }
        return p
    }
}

extension JSONValue {
    var rendered: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        case .number(let n): return String(n)
        case .string(let s): return "\"\(s)\""
        case .array: return "[…]"
        case .object: return "{…}"
        }
    }
}
