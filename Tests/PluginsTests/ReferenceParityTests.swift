import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// Tests/Fixtures/vidrd-loop: 3 clips of pyoco,fnr,pns,dsg on the tiny-lpb2 model, made by
/// tools/reference/vidrd_loop.py (diffusers) from the same noise tape.
@Suite struct ReferenceParityTests {
    @Test func streamMatchesThePythonReferenceLoop() throws {
        let dir = fixtures.appendingPathComponent("vidrd-loop")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("reference.json"))) as? [String: Any])
        let reference = try SafeTensorsFile(path: dir.appendingPathComponent("reference.safetensors").path)
        let model = dir.appendingPathComponent(try #require(json["model"] as? String)).standardizedFileURL
        let pipeline = try TextToVideoPipeline(modelDirectory: model)
        var c = StreamConfiguration(prompt: try #require(json["prompt"] as? String))
        c.negativePrompt = try #require(json["negative_prompt"] as? String)
        c.steps = try #require(json["steps"] as? Int)
        c.guidanceScale = Float(try #require(json["guidance"] as? Double))
        c.frames = try #require(json["frames"] as? Int)
        c.height = try #require(json["height"] as? Int)
        c.width = try #require(json["width"] as? Int)
        c.promptFrames = try #require(json["prompt_frames"] as? Int)
        c.emission = .all
        c.tapePath = dir.appendingPathComponent("tape.safetensors").path
        let alpha = try #require(json["alpha"] as? Double), beta = try #require(json["beta"] as? Double)
        let a = try #require(json["pyoco_a"] as? Double)
        c.strategies = try StrategySpec.parseList(try #require(json["chain"] as? String)).map { spec in
            var s = spec
            switch s.name {
            case "pns": s.parameters["alpha"] = .double(alpha)
            case "dsg": s.parameters["beta"] = .double(beta)
            case "pyoco": s.parameters["a"] = .double(a)
            default: break
            }
            return s
        }
        #expect(c.strategies.map(\.name) == ["pyoco", "fnr", "pns", "dsg"])
        #expect(try pipeline.scheduler.timesteps(steps: c.steps) == (json["timesteps"] as? [Int]))
        var stream = try VideoStream(pipeline: pipeline, configuration: c, registry: .builtIn())
        for k in 0..<(try #require(json["clips"] as? Int)) {
            let clip = try stream.nextClip()
            let noiseErr = relativeError(clip.initialNoise, try reference.tensor("clip.\(k).initial_noise"))
            let latentErr = relativeError(clip.latents, try reference.tensor("clip.\(k).latents"))
            let frameErr = relativeError(clip.frames, try reference.tensor("clip.\(k).frames"))
            print("vidrd-loop clip \(k): relative error initial noise \(noiseErr), latents \(latentErr), frames \(frameErr)")
            #expect(noiseErr < 1e-6, "clip \(k) initial noise: \(noiseErr)")
            #expect(latentErr < 1e-4, "clip \(k) latents: \(latentErr)")
            #expect(frameErr < 1e-4, "clip \(k) frames: \(frameErr)")
        }
    }
}
