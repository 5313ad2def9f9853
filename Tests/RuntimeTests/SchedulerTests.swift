import Foundation
import Testing
@testable import VidrdRuntime

@Suite struct DDIMSchedulerTests {
    @Test(arguments: Fixture.parityConfigs)
    func timestepsMatchDiffusers(config: String) throws {
        let f = try Fixture(config)
        let s = try DDIMScheduler(directory: f.component("scheduler"))
        for n in [2, 7, 25, 50] {
            let expected = try f.reference.integers("scheduler.timesteps_\(n)").map { Int($0) }
            #expect(try s.timesteps(steps: n) == expected, "\(config): \(n) steps")
        }
    }

    @Test(arguments: Fixture.parityConfigs)
    func stepMatchesDiffusers(config: String) throws {
        let f = try Fixture(config)
        let s = try DDIMScheduler(directory: f.component("scheduler"))
        let steps = try #require(f.json["scheduler_steps"] as? [String: [String: Any]])
        for key in ["scheduler.step", "scheduler.last_step", "scheduler.last_step_7"] {
            guard let info = steps[key] else { continue }
            let n = try #require(info["num_inference_steps"] as? Int)
            let t = try #require(info["timestep"] as? Int)
            #expect(s.previousTimestep(t, steps: n) == (try #require(info["prev_timestep"] as? Int)))
            var sample = try f.tensor("\(key).sample")
            s.step(modelOutput: try f.tensor("\(key).model_output"), sample: &sample, timestep: t,
                   previous: s.previousTimestep(t, steps: n))
            let err = relativeError(sample, try f.tensor("\(key).prev_sample"))
            #expect(err < 1e-5, "\(config) \(key): relative error \(err)")
        }
    }

    @Test func rejectsOutOfRangeSteps() throws {
        let s = DDIMScheduler(configuration: .init())
        #expect(throws: ModelError.self) { try s.timesteps(steps: 0) }
        #expect(throws: ModelError.self) { try s.timesteps(steps: 1001) }
    }
}

/// A sampling trajectory written by `tools/reference/make_scheduler_fixtures.py` (diffusers):
/// per step count the timesteps, the sigmas and every step's latents under a fake model.
struct SchedulerFixture {
    /// Samples every run with `sample` (each step's latents, and optionally an error of its own
    /// per step, such as Euler's scaled model input) and expects each step within
    /// `schedulerTolerance` of diffusers'. Returns the worst relative error.
    func expectEveryStepMatches(
        _ name: String, _ sample: (Run) throws -> (latents: [Tensor], stepErrors: [Float]?)
    ) throws -> Float {
        var worst: Float = 0
        for run in runs {
            let (latents, stepErrors) = try sample(run)
            try #require(latents.count == run.latents.count)
            for (i, (x, ref)) in zip(latents, run.latents).enumerated() {
                let err = Swift.max(relativeError(x, tensor(ref)), stepErrors?[i] ?? 0)
                worst = Swift.max(worst, err)
                #expect(err <= schedulerTolerance, "\(name) \(run.steps) steps, step \(i): relative error \(err)")
            }
        }
        return worst
    }

    struct Run {
        let steps: Int
        let timesteps: [Double]
        let sigmas: [Float]
        let initNoiseSigma: Float
        /// Euler only: scale_model_input's output per step.
        let modelInputs: [[Float]]
        let latents: [[Float]]
    }

    static let dpm = ["dpm-embedded", "dpm-embedded-order1", "dpm-modelscope-vpred", "dpm-trailing-vpred",
                      "dpm-linspace-heun", "dpm-cosine-sample"]
    static let euler = ["euler-embedded", "euler-trailing-vpred", "euler-linspace", "euler-modelscope-vpred"]

    /// The model that ships with vidrd: its DDIMScheduler config, which diffusers' from_config
    /// converted for the *-embedded fixtures.
    static let embeddedScheduler = Fixture.root.deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(EmbeddedModel.relativePath).appendingPathComponent("scheduler")

    let directory: URL
    let className: String
    let shape: [Int]
    let noise: [Float]
    let runs: [Run]

    init(_ name: String) throws {
        directory = Fixture.root.appendingPathComponent("schedulers").appendingPathComponent(name)
        let data = try Data(contentsOf: directory.appendingPathComponent("reference.json"))
        let json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        func floats(_ v: Any?) throws -> [Float] { try #require(v as? [NSNumber]).map { Float($0.doubleValue) } }
        className = try #require(json["class_name"] as? String)
        shape = try #require(json["shape"] as? [Int])
        noise = try floats(json["noise"])
        runs = try #require(json["runs"] as? [[String: Any]]).map { r in
            Run(steps: try #require(r["steps"] as? Int),
                timesteps: try #require(r["timesteps"] as? [NSNumber]).map(\.doubleValue),
                sigmas: try floats(r["sigmas"]),
                initNoiseSigma: Float(try #require(r["init_noise_sigma"] as? NSNumber).doubleValue),
                modelInputs: try ((r["model_inputs"] as? [Any]) ?? []).map(floats),
                latents: try #require(r["latents"] as? [Any]).map(floats))
        }
    }

    func tensor(_ scalars: [Float]) -> Tensor { Tensor(shape: shape, scalars: scalars) }
}

/// The fixtures' fake model, tanh(x * 0.7 + t / 1000) in fp32 as torch computes it (the Python
/// scalars become fp32 before the element-wise ops).
func fakeModel(_ x: Tensor, _ t: Double) -> Tensor {
    let bias = Float(t / 1000), scale = Float(0.7)
    return Tensor(shape: x.shape, scalars: x.scalars.map { Foundation.tanh($0 * scale + bias) })
}

/// The fp32 parity bound for a whole sampling loop: max |Δ| over the reference's standard
/// deviation, per step. Rounding differences (tanh's last ulp) compound through the loop, so
/// this is looser than one step's rounding but far below any algorithmic difference.
let schedulerTolerance: Float = 1e-5

/// Sigmas agree to one fp32 ulp, not to the bit: torch takes fp32 square roots with MKL's vector
/// math (`VML_HA`, within 1 ulp but not correctly rounded: 190 of the 1000 training sigmas of the
/// embedded model's schedule are 1 ulp off IEEE sqrt), which Swift's correctly rounded
/// `squareRoot()` cannot reproduce without MKL.
func withinOneULP(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { x, y in x == y || abs(x - y) <= y.ulp }
}

/// Writes a scheduler_config.json holding `json` and returns its directory.
func temporarySchedulerConfig(_ json: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-sched-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try Data(json.utf8).write(to: dir.appendingPathComponent("scheduler_config.json"))
    return dir
}

func expectUnsupported(_ key: String, _ body: () throws -> Void) {
    do {
        try body()
        Issue.record("\(key): accepted")
    } catch let ModelError.unsupported(message) {
        #expect(message.contains(key), "\(message) does not name \(key)")
    } catch {
        Issue.record("\(key): \(error)")
    }
}

@Suite struct DPMSolverSchedulerTests {
    /// One clip with a fresh state; returns every step's latents.
    static func sample(_ s: DPMSolverMultistepScheduler, _ f: SchedulerFixture, steps: Int, noise: [Float]) throws -> [Tensor] {
        var state = try s.makeState(steps: steps)
        var x = f.tensor(noise)
        var out: [Tensor] = []
        for t in state.timesteps {
            x = try state.step(modelOutput: fakeModel(x, Double(t)), timestep: t, sample: x)
            out.append(x)
        }
        #expect(state.isFinished)
        return out
    }

    @Test(arguments: SchedulerFixture.dpm)
    func timestepsAndSigmasMatchDiffusers(name: String) throws {
        let f = try SchedulerFixture(name)
        #expect(f.className == "DPMSolverMultistepScheduler")
        let s = try DPMSolverMultistepScheduler(directory: f.directory)
        for run in f.runs {
            #expect(try s.timesteps(steps: run.steps).map(Double.init) == run.timesteps, "\(name): \(run.steps) steps")
            #expect(withinOneULP(try s.sigmas(steps: run.steps), run.sigmas), "\(name): \(run.steps) steps")
            #expect(s.initNoiseSigma == run.initNoiseSigma)
        }
    }

    @Test(arguments: SchedulerFixture.dpm)
    func samplingLoopMatchesDiffusers(name: String) throws {
        let f = try SchedulerFixture(name)
        let s = try DPMSolverMultistepScheduler(directory: f.directory)
        let worst = try f.expectEveryStepMatches(name) { run in
            (try Self.sample(s, f, steps: run.steps, noise: f.noise), nil)
        }
        print("DPM-Solver parity \(name): worst relative error \(worst)")
    }

    @Test func readsEachClassName() throws {
        // The embedded model's DDIMScheduler config, as diffusers' from_config converts it.
        let fromDDIM = try DPMSolverMultistepScheduler(directory: SchedulerFixture.embeddedScheduler)
        let saved = try DPMSolverMultistepScheduler(directory: try SchedulerFixture("dpm-embedded").directory)
        #expect(fromDDIM.configuration == saved.configuration)
        #expect(saved.configuration.spacing == .leading && saved.configuration.stepsOffset == 1)
        #expect(saved.configuration.betaSchedule == .scaledLinear && saved.configuration.solverOrder == 2)
        // An Euler config carries no DPM keys: DPM's defaults fill in.
        let fromEuler = try DPMSolverMultistepScheduler(directory: try SchedulerFixture("euler-linspace").directory)
        #expect(fromEuler.configuration == DPMSolverMultistepScheduler.Configuration())
    }

    @Test func rejectsUnsupportedOptions() throws {
        let cases: [(String, String)] = [
            ("thresholding", #""thresholding": true"#),
            ("solver_order", #""solver_order": 3"#),
            ("algorithm_type", #""algorithm_type": "sde-dpmsolver++""#),
            ("use_karras_sigmas", #""use_karras_sigmas": true"#),
            ("final_sigmas_type", #""final_sigmas_type": "sigma_min""#),
            ("lambda_min_clipped", #""lambda_min_clipped": -5.1"#),
            ("variance_type", #""variance_type": "learned_range""#),
            ("use_flow_sigmas", #""use_flow_sigmas": true"#),
            ("prediction_type", #""prediction_type": "flow_prediction""#),
        ]
        for (key, entry) in cases {
            let dir = try temporarySchedulerConfig(#"{"_class_name": "DPMSolverMultistepScheduler", "# + entry + "}")
            expectUnsupported(key) { _ = try DPMSolverMultistepScheduler(directory: dir) }
        }
        // diffusers' defaults, -Infinity included, load.
        let dir = try temporarySchedulerConfig(#"{"lambda_min_clipped": -Infinity, "thresholding": false, "variance_type": null}"#)
        #expect(try DPMSolverMultistepScheduler(directory: dir).configuration == .init())
    }

    @Test func rejectsBadStepCounts() throws {
        var c = DPMSolverMultistepScheduler.Configuration()
        c.spacing = .leading
        let s = try DPMSolverMultistepScheduler(configuration: c)
        #expect(throws: ModelError.self) { try s.timesteps(steps: 0) }
        #expect(throws: ModelError.self) { try s.timesteps(steps: 1001) }
        // leading divides by steps + 1: 1000 steps would all be timestep 0.
        #expect(throws: ModelError.self) { try s.timesteps(steps: 1000) }
        #expect(try s.timesteps(steps: 999).count == 999)
    }

    @Test func stateIsPerClip() throws {
        let f = try SchedulerFixture("dpm-embedded")
        let s = try DPMSolverMultistepScheduler(directory: f.directory)
        let run = try #require(f.runs.first { $0.steps == 10 })
        // A fresh state per clip reproduces diffusers, clip after clip.
        for _ in 0..<2 {
            let latents = try Self.sample(s, f, steps: 10, noise: f.noise)
            #expect(relativeError(try #require(latents.last), f.tensor(try #require(run.latents.last))) <= schedulerTolerance)
        }
        // A finished state refuses a second clip instead of carrying its history into it.
        var state = try s.makeState(steps: 10)
        var x = f.tensor(f.noise)
        for t in state.timesteps { x = try state.step(modelOutput: fakeModel(x, Double(t)), timestep: t, sample: x) }
        let first = try #require(state.timesteps.first)
        #expect(throws: ModelError.self) { try state.step(modelOutput: x, timestep: first, sample: x) }

        // The history is what a shared state would leak: clip B's step 3 taken with clip A's state
        // (A's previous x0) differs from clip B's own, and B's own is what diffusers computes.
        let noiseB = f.noise.map { $0 * -0.5 }
        var a = try s.makeState(steps: 10), b = try s.makeState(steps: 10)
        var xa = f.tensor(f.noise), xb = f.tensor(noiseB)
        for t in a.timesteps.prefix(3) {
            xa = try a.step(modelOutput: fakeModel(xa, Double(t)), timestep: t, sample: xa)
            xb = try b.step(modelOutput: fakeModel(xb, Double(t)), timestep: t, sample: xb)
        }
        let t3 = a.timesteps[3]
        var forked = b // a copy forks the history: stepping it leaves b untouched
        let own = try forked.step(modelOutput: fakeModel(xb, Double(t3)), timestep: t3, sample: xb)
        let leaked = try a.step(modelOutput: fakeModel(xb, Double(t3)), timestep: t3, sample: xb)
        #expect(relativeError(leaked, own) > 1e-3)
        let again = try b.step(modelOutput: fakeModel(xb, Double(t3)), timestep: t3, sample: xb)
        #expect(again.scalars == own.scalars)
    }

    @Test func rejectsWrongTimestepAndShape() throws {
        let s = try DPMSolverMultistepScheduler(configuration: .init())
        var state = try s.makeState(steps: 4)
        let x = Tensor(shape: [1, 2], scalars: [0.5, -0.5])
        #expect(throws: ModelError.self) { try state.step(modelOutput: x, timestep: 1, sample: x) }
        let t = try #require(state.nextTimestep)
        #expect(throws: ModelError.self) { try state.step(modelOutput: Tensor(zeros: [2, 1]), timestep: t, sample: x) }
        #expect(state.stepIndex == 0)
    }
}

@Suite struct EulerSchedulerTests {
    static func sample(_ s: EulerDiscreteScheduler, _ f: SchedulerFixture, steps: Int,
                       inputs: ((Int, Tensor) -> Void)? = nil) throws -> [Tensor] {
        var state = try s.makeState(steps: steps)
        let sigma = Float(state.initNoiseSigma)
        var x = f.tensor(f.noise.map { $0 * sigma })
        var out: [Tensor] = []
        for (i, t) in state.timesteps.enumerated() {
            let input = try state.scaleModelInput(sample: x, timestep: t)
            inputs?(i, input)
            x = try state.step(modelOutput: fakeModel(input, Double(t)), timestep: t, sample: x)
            out.append(x)
        }
        #expect(state.isFinished)
        return out
    }

    @Test(arguments: SchedulerFixture.euler)
    func timestepsSigmasAndInitNoiseMatchDiffusers(name: String) throws {
        let f = try SchedulerFixture(name)
        #expect(f.className == "EulerDiscreteScheduler")
        let s = try EulerDiscreteScheduler(directory: f.directory)
        for run in f.runs {
            #expect(try s.timesteps(steps: run.steps).map(Double.init) == run.timesteps, "\(name): \(run.steps) steps")
            #expect(withinOneULP(try s.sigmas(steps: run.steps), run.sigmas), "\(name): \(run.steps) steps")
            #expect(withinOneULP([try s.makeState(steps: run.steps).initNoiseSigma], [run.initNoiseSigma]),
                    "\(name): \(run.steps) steps")
        }
    }

    @Test(arguments: SchedulerFixture.euler)
    func samplingLoopMatchesDiffusers(name: String) throws {
        let f = try SchedulerFixture(name)
        let s = try EulerDiscreteScheduler(directory: f.directory)
        let worst = try f.expectEveryStepMatches(name) { run in
            var inputErrors: [Float] = []
            let latents = try Self.sample(s, f, steps: run.steps) { i, input in
                inputErrors.append(relativeError(input, f.tensor(run.modelInputs[i])))
            }
            return (latents, inputErrors)
        }
        print("Euler parity \(name): worst relative error \(worst)")
    }

    @Test func readsEachClassName() throws {
        let fromDDIM = try EulerDiscreteScheduler(directory: SchedulerFixture.embeddedScheduler)
        let saved = try EulerDiscreteScheduler(directory: try SchedulerFixture("euler-embedded").directory)
        #expect(fromDDIM.configuration == saved.configuration)
        #expect(saved.configuration.spacing == .leading && saved.configuration.stepsOffset == 1)
        // A DPM-Solver config (with its -Infinity) read as Euler: foreign keys are ignored.
        let fromDPM = try EulerDiscreteScheduler(directory: try SchedulerFixture("dpm-linspace-heun").directory)
        #expect(fromDPM.configuration == EulerDiscreteScheduler.Configuration())
    }

    @Test func rejectsUnsupportedOptions() throws {
        let cases: [(String, String)] = [
            ("use_karras_sigmas", #""use_karras_sigmas": true"#),
            ("interpolation_type", #""interpolation_type": "log_linear""#),
            ("timestep_type", #""timestep_type": "continuous""#),
            ("final_sigmas_type", #""final_sigmas_type": "sigma_min""#),
            ("rescale_betas_zero_snr", #""rescale_betas_zero_snr": true"#),
            ("timestep_spacing", #""timestep_spacing": "karras""#),
        ]
        for (key, entry) in cases {
            let dir = try temporarySchedulerConfig(#"{"_class_name": "EulerDiscreteScheduler", "# + entry + "}")
            expectUnsupported(key) { _ = try EulerDiscreteScheduler(directory: dir) }
        }
    }

    @Test func stateIsPerClip() throws {
        let f = try SchedulerFixture("euler-embedded")
        let s = try EulerDiscreteScheduler(directory: f.directory)
        let run = try #require(f.runs.first { $0.steps == 8 })
        for _ in 0..<2 {
            let latents = try Self.sample(s, f, steps: 8)
            #expect(relativeError(try #require(latents.last), f.tensor(try #require(run.latents.last))) <= schedulerTolerance)
        }
        var state = try s.makeState(steps: 2)
        let x = f.tensor(f.noise)
        for t in state.timesteps { _ = try state.step(modelOutput: x, timestep: t, sample: x) }
        let first = try #require(state.timesteps.first)
        #expect(throws: ModelError.self) { try state.scaleModelInput(sample: x, timestep: first) }
        #expect(throws: ModelError.self) { try state.step(modelOutput: x, timestep: first, sample: x) }
    }
}
