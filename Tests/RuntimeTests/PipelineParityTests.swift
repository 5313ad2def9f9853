import Foundation
import Testing
@testable import VidrdRuntime

@Suite struct PipelineParityTests {
    /// A full 2-step guided clip from recorded noise against diffusers' TextToVideoSDPipeline.
    @Test(arguments: Fixture.parityConfigs)
    func clipMatchesDiffusersPipeline(config: String) throws {
        let f = try Fixture(config)
        let pipeline = try TextToVideoPipeline(modelDirectory: f.model)
        let c = try f.pipelineConfiguration()
        var steps: [Int] = []
        var unused = SeededRandomSource(seed: 0)
        let clip = try pipeline.generate(c, initialNoise: try f.tensor("pipe.noise"), random: &unused) { p in
            steps.append(p.step)
            return true
        }
        #expect(steps == Array(1...c.steps))
        let errLatents = relativeError(clip.latents, try f.tensor("pipe.latents"))
        #expect(errLatents < fp32Tolerance, "\(config): latents relative error \(errLatents)")
        let video = try f.tensor("pipe.video")  // [1, 3, F, H, W]
        let expectedFrames = video.reshaped(Array(video.shape.dropFirst())).permuted([1, 2, 3, 0])
        let errFrames = relativeError(clip.frames, expectedFrames)
        #expect(errFrames < fp32Tolerance, "\(config): frames relative error \(errFrames)")
    }

    @Test func callbackCancels() throws {
        let f = try Fixture("tiny-lpb2")
        let pipeline = try TextToVideoPipeline(modelDirectory: f.model)
        var c = TextToVideoPipeline.Configuration(prompt: "a red ball")
        c.steps = 5
        c.frames = 2
        var calls = 0
        #expect(throws: ModelError.cancelled) {
            _ = try pipeline.generate(c, seed: 1) { _ in calls += 1; return calls < 2 }
        }
        #expect(calls == 2)
    }

    @Test func seedReproducesClipExactly() throws {
        let f = try Fixture("tiny-nonsquare")
        let pipeline = try TextToVideoPipeline(modelDirectory: f.model)
        var c = TextToVideoPipeline.Configuration(prompt: "a red ball")
        c.steps = 2
        c.frames = 3
        let a = try pipeline.generate(c, seed: 42)
        let b = try pipeline.generate(c, seed: 42)
        let other = try pipeline.generate(c, seed: 43)
        #expect(a.latents == b.latents)
        #expect(a.latents != other.latents)
    }

    @Test func rejectsBadGeometry() throws {
        let pipeline = try TextToVideoPipeline(modelDirectory: try Fixture("tiny-lpb2").model)
        var c = TextToVideoPipeline.Configuration(prompt: "x")
        c.height = 15
        #expect(throws: ModelError.self) { _ = try pipeline.generate(c, seed: 0) }
        c.height = nil
        c.frames = 0
        #expect(throws: ModelError.self) { _ = try pipeline.generate(c, seed: 0) }
    }
}
