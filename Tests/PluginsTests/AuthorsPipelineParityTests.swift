import Foundation
import Testing
@testable import VidrdPlugins
import VidrdRuntime

/// Tests/Fixtures/vidrd-authors: three clips of the VidRD authors' own SDVideoPipeline
/// (anonymous0x233/ReuseAndDiffuse, model/pipeline.py) on their U-Net, seeded with a
/// torch.Generator, recorded by tools/reference/make_vidrd_authors_fixture.py. vidrd runs the same
/// request through `VideoStream` with the `vidrd-paper` preset's chain and PyTorch's generator —
/// no noise tape: identical noise must come from the seed alone.
@Suite struct AuthorsPipelineParityTests {
    let dir = fixtures.appendingPathComponent("vidrd-authors")

    func load() throws -> (json: [String: Any], pipe: [String: Any], tensors: SafeTensorsFile, pipeline: TextToVideoPipeline) {
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("reference.json"))) as? [String: Any])
        let pipe = try #require(json["pipeline"] as? [String: Any])
        let tensors = try SafeTensorsFile(path: dir.appendingPathComponent("reference.safetensors").path)
        return (json, pipe, tensors, try TextToVideoPipeline(modelDirectory: dir.appendingPathComponent("model")))
    }

    /// The preset with the fixture's smaller request (their keyword arguments, by name).
    func configuration(_ json: [String: Any], _ pipe: [String: Any]) throws -> StreamConfiguration {
        var c = StreamConfiguration(prompt: try #require(json["prompt"] as? String))
        StreamPreset.vidrdPaper.apply(to: &c, noiseAlpha: try #require(pipe["noise_alpha"] as? Double))
        #expect(c.negativePrompt == (json["negative_prompt"] as? String))
        c.seed = UInt64(try #require(json["pipeline_seed"] as? Int))
        c.frames = try #require(pipe["num_frames"] as? Int)
        c.height = try #require(pipe["height"] as? Int)
        c.width = try #require(pipe["width"] as? Int)
        c.steps = try #require(pipe["num_inference_steps"] as? Int)
        c.guidanceScale = Float(try #require(pipe["guidance_scale"] as? Double))
        c.promptFrames = try #require(pipe["extend_overlap_frames"] as? Int)
        for i in c.strategies.indices {
            switch c.strategies[i].name {
            case "pns": c.strategies[i].parameters["alpha"] = .double(try #require(pipe["extend_noise_recycle"] as? Double))
            case "dsg": c.strategies[i].parameters["beta"] = .double(try #require(pipe["extend_denoise_guidance"] as? Double))
            default: break
            }
        }
        return c
    }

    @Test func vidrdPaperPresetMatchesTheAuthorsPipeline() throws {
        let (json, pipe, tensors, pipeline) = try load()
        let c = try configuration(json, pipe)
        #expect(try pipeline.scheduler.timesteps(steps: c.steps) == (json["pipeline_timesteps"] as? [Int]))
        var stream = try VideoStream(pipeline: pipeline, configuration: c, registry: .builtIn())
        let video = try tensors.tensor("pipe.video")  // [1, 3, clips·N, H, W]
        let clips = try #require(pipe["num_generated_clips"] as? Int)
        for k in 0..<clips {
            let clip = try stream.nextClip()
            if k == 0 {
                // Their randn_progressive from torch.Generator().manual_seed(seed), bit for bit.
                let expected = try tensors.tensor("pipe.initial_noise_0")
                #expect(clip.initialNoise.scalars == expected.scalars, "clip 0 initial noise differs from torch's")
            }
            let latentErr = relativeError(clip.latents, try tensors.tensor("pipe.latents_\(k)"))
            // Their video is [1, 3, frames, H, W]; vidrd's frames are [N, H, W, 3].
            let n = c.frames
            var expectedFrames = video.permuted([0, 2, 3, 4, 1])
            expectedFrames.reshape([video.shape[2], video.shape[3], video.shape[4], 3])
            let slice = Tensor(shape: [n] + Array(expectedFrames.shape.dropFirst()),
                               scalars: Array(expectedFrames.scalars[(k * n * expectedFrames.count / video.shape[2])..<((k + 1) * n * expectedFrames.count / video.shape[2])]))
            let frameErr = relativeError(clip.frames, slice)
            print("authors' pipeline clip \(k): latents \(latentErr), frames \(frameErr)")
            #expect(latentErr < 1e-4, "clip \(k) latents: relative error \(latentErr)")
            #expect(frameErr < 1e-4, "clip \(k) frames: relative error \(frameErr)")
            #expect(clip.emittedFrameIndices == Array(0..<n), "their pipeline emits all N frames of every clip")
        }
    }
}
