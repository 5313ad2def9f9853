import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// Tests/Fixtures/vidrd-loop: 3 clips of pyoco,fnr,pns,dsg on the tiny-lpb2 model, made by
/// tools/reference/vidrd_loop.py (diffusers) from the same noise tape.
@Suite struct ReferenceParityTests {
    @Test func streamMatchesThePythonReferenceLoop() throws {
        let r = try LoopFixture("vidrd-loop")
        let c = try r.configuration(chain: try vidrdChain(r))
        #expect(c.strategies.map(\.name) == ["pyoco", "fnr", "pns", "dsg"])
        #expect(try r.pipeline.scheduler.timesteps(steps: c.steps) == (r.json["timesteps"] as? [Int]))
        try r.check(c, label: "vidrd-loop")
    }

    /// The same loop sampled by diffusers' DPMSolverMultistepScheduler (dpmsolver++, order 2) and
    /// EulerDiscreteScheduler, each configured from the model's DDIM config with `from_config`
    /// (tools/reference/vidrd_loop.py --scheduler): DSG replays the previous clip's step inputs
    /// in the scheduler's own latent space (Euler's are scaled by its sigmas).
    @Test(arguments: [("vidrd-loop-dpm", SchedulerKind.dpmSolver), ("vidrd-loop-euler", .euler)])
    func streamUnderAnotherSchedulerMatchesThePythonReferenceLoop(fixture: String, kind: SchedulerKind) throws {
        let r = try LoopFixture(fixture)
        #expect(SchedulerKind(name: try #require(r.json["scheduler"] as? String)) == kind)
        var c = try r.configuration(chain: try vidrdChain(r))
        c.scheduler = kind
        let expected = try #require(r.json["timesteps"] as? [Double]).map { Float($0) }
        #expect(try r.pipeline.scheduler(kind).timesteps(steps: c.steps) == expected)
        try r.check(c, label: fixture)
    }

    /// The fixture's chain with its recorded PNS α, DSG β and PYoCo a.
    private func vidrdChain(_ r: LoopFixture) throws -> [StrategySpec] {
        let alpha = try #require(r.json["alpha"] as? Double), beta = try #require(r.json["beta"] as? Double)
        let a = try #require(r.json["pyoco_a"] as? Double)
        return try StrategySpec.parseList(try #require(r.json["chain"] as? String)).map { spec in
            var s = spec
            switch s.name {
            case "pns": s.parameters["alpha"] = .double(alpha)
            case "dsg": s.parameters["beta"] = .double(beta)
            case "pyoco": s.parameters["a"] = .double(a)
            default: break
            }
            return s
        }
    }
}

/// A reference-loop fixture (reference.json, reference.safetensors, tape.safetensors) and the
/// check every loop test makes: each clip's initial noise, latents and frames against the reference.
struct LoopFixture {
    let json: [String: Any]
    let tensors: SafeTensorsFile
    let pipeline: TextToVideoPipeline
    let dir: URL

    init(_ name: String) throws {
        dir = fixtures.appendingPathComponent(name)
        json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("reference.json"))) as? [String: Any])
        tensors = try SafeTensorsFile(path: dir.appendingPathComponent("reference.safetensors").path)
        pipeline = try TextToVideoPipeline(modelDirectory: dir.appendingPathComponent(try #require(json["model"] as? String)).standardizedFileURL)
    }

    func configuration(chain: [StrategySpec]) throws -> StreamConfiguration {
        var c = StreamConfiguration(prompt: try #require(json["prompt"] as? String))
        c.negativePrompt = try #require(json["negative_prompt"] as? String)
        c.steps = try #require(json["steps"] as? Int)
        c.guidanceScale = Float(try #require(json["guidance"] as? Double))
        c.frames = try #require(json["frames"] as? Int)
        c.height = try #require(json["height"] as? Int)
        c.width = try #require(json["width"] as? Int)
        c.promptFrames = (json["prompt_frames"] as? Int) ?? 0
        c.emission = .all
        c.tapePath = dir.appendingPathComponent("tape.safetensors").path
        c.strategies = chain
        return c
    }

    func check(_ c: StreamConfiguration, label: String) throws {
        var stream = try VideoStream(pipeline: pipeline, configuration: c, registry: .builtIn())
        for k in 0..<(try #require(json["clips"] as? Int)) {
            let clip = try stream.nextClip()
            let noiseErr = relativeError(clip.initialNoise, try tensors.tensor("clip.\(k).initial_noise"))
            let latentErr = relativeError(clip.latents, try tensors.tensor("clip.\(k).latents"))
            let frameErr = relativeError(clip.frames, try tensors.tensor("clip.\(k).frames"))
            // FIFO's fixtures are float64 results: a frame leaves the queue after many chained
            // U-Net calls, and on random weights float32 rounding alone grows from clip to clip
            // (PyTorch's own float32 run, recorded in the fixture). The runtime must stay within
            // twice PyTorch's float32 error of the float64 result, and never looser than 1e-4.
            let float32 = json["float32_error"] as? [String: Double] ?? [:]
            let latentTol = Float(Swift.max(1e-4, 2 * (float32["clip.\(k).latents"] ?? 0)))
            let frameTol = Float(Swift.max(1e-4, 2 * (float32["clip.\(k).frames"] ?? 0)))
            print("\(label) clip \(k): relative error initial noise \(noiseErr), latents \(latentErr) (PyTorch float32: \(float32["clip.\(k).latents"].map { "\($0)" } ?? "-")), frames \(frameErr)")
            #expect(noiseErr < 1e-6, "\(label) clip \(k) initial noise: \(noiseErr)")
            #expect(latentErr < latentTol, "\(label) clip \(k) latents: \(latentErr)")
            #expect(frameErr < frameTol, "\(label) clip \(k) frames: \(frameErr)")
            #expect(clip.emittedFrameIndices == Array(0..<c.frames))
        }
    }

    var fifo: StrategySpec {
        get throws {
            StrategySpec(name: "fifo", parameters: [
                "window": .int(try #require(json["window"] as? Int)),
                "partitions": .int(try #require(json["partitions"] as? Int)),
                "lookahead": .bool(try #require(json["lookahead"] as? Bool))])
        }
    }

    var freenoise: StrategySpec {
        get throws {
            StrategySpec(name: "freenoise", parameters: [
                "window": .int(try #require(json["freenoise_window"] as? Int)),
                "reuse": .double(try #require(json["freenoise_reuse"] as? Double))])
        }
    }
}

/// The new strategies against independent diffusers loops (tools/reference/fifo_loop.py and
/// vidrd_loop.py), each replaying its fixture's tape: FIFO with lookahead and a window smaller than
/// the clip, FIFO without lookahead fed by FreeNoise, and FreeNoise with DSG on the standard sampler.
@Suite struct NewStrategyParityTests {
    @Test func fifoWithLookaheadMatchesTheReference() throws {
        let r = try LoopFixture("fifo-loop")
        #expect(r.json["lookahead"] as? Bool == true && (r.json["window"] as? Int ?? 0) < (r.json["frames"] as? Int ?? 0))
        let c = try r.configuration(chain: [try r.fifo])
        let plan = try FIFOStrategy(partitions: 2, window: 4, lookahead: true).plan(
            shape: ClipShape(frames: 6, channels: 4, height: 8, width: 8, promptFrames: 0, steps: c.steps), scheduler: r.pipeline.scheduler)
        #expect(plan.timesteps == (r.json["timesteps"] as? [Int]))
        try r.check(c, label: "fifo-loop")
    }

    @Test func fifoFedByFreeNoiseMatchesTheReference() throws {
        let r = try LoopFixture("fifo-freenoise-loop")
        try r.check(try r.configuration(chain: [try r.freenoise, try r.fifo]), label: "fifo-freenoise-loop")
    }

    @Test func freeNoiseWithDSGMatchesTheReference() throws {
        let r = try LoopFixture("freenoise-loop")
        #expect(r.json["chain"] as? String == "freenoise,dsg")
        let beta = try #require(r.json["beta"] as? Double)
        try r.check(try r.configuration(chain: [try r.freenoise, StrategySpec(name: "dsg", parameters: ["beta": .double(beta)])]),
                    label: "freenoise-loop")
    }
}
