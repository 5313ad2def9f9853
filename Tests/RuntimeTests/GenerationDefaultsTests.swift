import Foundation
import Testing
import VidrdRuntime

/// A model folder's `generation_config.json`: what the daemon and the offline tool fall back to
/// when a request names no guidance.
@Suite struct GenerationDefaultsTests {
    func folder(_ json: String?) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-gencfg-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        if let json { try Data(json.utf8).write(to: dir.appendingPathComponent(GenerationDefaults.fileName)) }
        return dir
    }

    @Test func noFileMeansNoRecommendation() throws {
        #expect(try GenerationDefaults(directory: try folder(nil)).guidanceScale == nil)
        #expect(try GenerationDefaults(directory: try folder("{}")).guidanceScale == nil)
    }

    @Test func readsTheGuidanceAndIgnoresOtherKeys() throws {
        let d = try GenerationDefaults(directory: try folder(#"{"guidance_scale": 2.5, "num_inference_steps": 30}"#))
        #expect(d.guidanceScale == 2.5)
    }

    @Test(arguments: [
        (#"{"guidance_scale": "high"}"#, "\"guidance_scale\" must be a number"),
        (#"{"guidance_scale": 500}"#, "\"guidance_scale\" = 500.0 is outside 0...100.0"),
        (#"{"guidance_scale": -1}"#, "is outside 0...100.0"),
        ("[3]", "not a JSON object"),
    ])
    func badValuesNameTheFileAndTheKey(json: String, message: String) throws {
        let dir = try folder(json)
        #expect {
            _ = try GenerationDefaults(directory: dir)
        } throws: { error in
            let text = "\(error)"
            return text.contains(GenerationDefaults.fileName) && text.contains(message)
        }
    }

    /// `scheduler_overrides` replaces keys of the folder's scheduler config for one kind only; a
    /// kind it does not know, or an option that kind cannot run, fails the load naming it.
    @Test func schedulerOverridesConfigureOneKind() throws {
        let model = Fixture.root.appendingPathComponent("tiny-lpb2/model")
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-gencfg-model-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: model, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        let plain = try TextToVideoPipeline(modelDirectory: model)
        // The folder's DDIM config (leading, steps_offset 1) read by DPM-Solver as from_config does.
        #expect(try plain.scheduler(.dpmSolver).timesteps(steps: 10) == [901, 811, 721, 631, 541, 451, 361, 271, 181, 91])
        let file = copy.appendingPathComponent(GenerationDefaults.fileName)
        try Data(#"{"scheduler_overrides": {"DPMSolverMultistepScheduler": {"timestep_spacing": "trailing", "steps_offset": 0}}}"#.utf8).write(to: file)
        let tuned = try TextToVideoPipeline(modelDirectory: copy)
        // diffusers' trailing spacing: round(arange(1000, 0, -100)) - 1.
        #expect(try tuned.scheduler(.dpmSolver).timesteps(steps: 10) == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99])
        #expect(try tuned.scheduler(nil).timesteps(steps: 4) == (try plain.scheduler(nil).timesteps(steps: 4)), "DDIM keeps the folder's")
        #expect(try tuned.scheduler(.euler).timesteps(steps: 4) == (try plain.scheduler(.euler).timesteps(steps: 4)))
        for (json, message) in [(#"{"scheduler_overrides": {"PNDMScheduler": {}}}"#, "names PNDMScheduler"),
                                (#"{"scheduler_overrides": {"dpm++": {"solver_order": 3}}}"#, "solver_order = 3"),
                                (#"{"scheduler_overrides": []}"#, "\"scheduler_overrides\" must be an object")] {
            try Data(json.utf8).write(to: file)
            #expect {
                _ = try TextToVideoPipeline(modelDirectory: copy)
            } throws: { error in
                "\(error)".contains(message) && "\(error)".contains(GenerationDefaults.fileName)
            }
        }
    }

    /// The pipeline exposes the folder's value, and 7.5 (diffusers' default) without one.
    @Test func pipelineDefaultGuidance() throws {
        let model = Fixture.root.appendingPathComponent("tiny-lpb2/model")
        let plain = try TextToVideoPipeline(modelDirectory: model)
        #expect(plain.recommended.guidanceScale == nil && plain.defaultGuidanceScale == 7.5)

        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-gencfg-model-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: model, to: copy)
        defer { try? FileManager.default.removeItem(at: copy) }
        try Data(#"{"guidance_scale": 3}"#.utf8).write(to: copy.appendingPathComponent(GenerationDefaults.fileName))
        #expect(try TextToVideoPipeline(modelDirectory: copy).defaultGuidanceScale == 3)
        try Data(#"{"guidance_scale": true}"#.utf8).write(to: copy.appendingPathComponent(GenerationDefaults.fileName))
        #expect(throws: ModelError.self) { _ = try TextToVideoPipeline(modelDirectory: copy) }
    }
}
