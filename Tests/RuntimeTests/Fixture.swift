import Foundation
import Testing
@testable import VidrdRuntime

/// A reference fixture written by `tools/reference/make_fixtures.py` (PyTorch + diffusers).
struct Fixture {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let parityConfigs = ["tiny-lpb2", "tiny-nonsquare", "tiny-fp16"]

    let name: String
    let directory: URL
    let reference: SafeTensorsFile
    let json: [String: Any]

    init(_ name: String) throws {
        self.name = name
        directory = Self.root.appendingPathComponent(name)
        reference = try SafeTensorsFile(path: directory.appendingPathComponent("reference.safetensors").path)
        let data = try Data(contentsOf: directory.appendingPathComponent("reference.json"))
        json = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    var model: URL { directory.appendingPathComponent("model") }
    func component(_ c: String) -> URL { model.appendingPathComponent(c) }
    func tensor(_ name: String) throws -> Tensor { try reference.tensor(name) }
    func int(_ key: String) throws -> Int { try #require(json[key] as? Int) }
    func double(_ key: String) throws -> Double { try #require((json[key] as? NSNumber)?.doubleValue) }
    func string(_ key: String) throws -> String { try #require(json[key] as? String) }

    /// The pipeline request a pipeline fixture recorded (prompt, negative prompt, steps, guidance,
    /// frames, size), so that Swift runs exactly what diffusers ran.
    func pipelineConfiguration() throws -> TextToVideoPipeline.Configuration {
        var c = TextToVideoPipeline.Configuration(prompt: try string("prompt"))
        c.negativePrompt = try string("negative_prompt")
        c.steps = try int("steps")
        c.guidanceScale = Float(try double("guidance_scale"))
        c.frames = try int("num_frames")
        c.height = try int("height")
        c.width = try int("width")
        return c
    }
}

/// Max absolute error relative to the reference's standard deviation: the parity measure used
/// throughout ("≤ 1e-4 of the output's scale" for fp32).
func relativeError(_ actual: Tensor, _ expected: Tensor) -> Float {
    actual.maxAbsDifference(expected) / Swift.max(expected.standardDeviation(), 1e-12)
}

let fp32Tolerance: Float = 1e-4
