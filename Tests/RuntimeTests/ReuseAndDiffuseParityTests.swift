import Foundation
import Testing
@testable import VidrdRuntime

/// The VidRD authors' U-Net (their code, anonymous0x233/ReuseAndDiffuse) against outputs recorded
/// from it by `tools/reference/make_vidrd_authors_fixture.py`, on a folder made by
/// `tools/convert/vidrd_checkpoint.py` from a fake `ModelT2V.pth` + SD-2.1-style folders.
@Suite struct ReuseAndDiffuseParityTests {
    let f: Fixture
    init() throws { f = try Fixture("vidrd-authors") }

    @Test func convertedFolderSelectsTheAuthorsFamily() throws {
        let pipeline = try TextToVideoPipeline(modelDirectory: f.model)
        guard case .reuseAndDiffuse(let unet) = pipeline.unet else {
            Issue.record("unet/config.json's _vidrd_family did not select the authors' U-Net")
            return
        }
        #expect(unet.configuration.attentionHeads == [2, 4, 8])
        #expect(unet.configuration.addTempEmbed && unet.configuration.addTempConv)
        #expect(pipeline.recommended.guidanceScale == 10)
        // SD-2's tokenizer pads with "!" (id 0 in the byte vocabulary), not the end token.
        let ids = try f.reference.integers("text.input_ids").map { Int32($0) }
        #expect(pipeline.tokenizer.encode(try f.string("negative_prompt")) == Array(ids[0..<77]))
        #expect(pipeline.tokenizer.encode(try f.string("prompt")) == Array(ids[77..<154]))
        #expect(ids.last == 0)
    }

    @Test func textEncoderIsTheCheckpointsOwn() throws {
        let model = try CLIPTextModel(directory: f.component("text_encoder"))
        let ids = try f.reference.integers("text.input_ids").map { Int32($0) }
        let out = try model([Array(ids[0..<77]), Array(ids[77..<154])])
        let err = relativeError(out, try f.tensor("text.hidden_states"))
        #expect(err < fp32Tolerance, "text encoder relative error \(err)")
    }

    @Test func unetForwardMatchesTheAuthorsCode() throws {
        let unet = try ReuseAndDiffuse.UNet3DConditionModel(directory: f.component("unet"))
        let timesteps = try f.reference.integers("unet.timesteps").map { Float($0) }
        #expect(Set(timesteps).count == timesteps.count, "fixture must exercise per-entry timesteps")
        let cond = try unet.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
        var ws = Workspace()
        let out = try unet(f.tensor("unet.sample"), timesteps: timesteps, conditioning: cond, workspace: &ws)
        let expected = try f.tensor("unet.out")
        #expect(out.shape == expected.shape)
        let err = relativeError(out, expected)
        #expect(err < fp32Tolerance, "authors' U-Net relative error \(err)")
    }

    /// One frame: their temporal layers return `identity + 0 * …`, and the frame-position
    /// embedding they add in place survives into that identity.
    @Test func oneFrameForwardMatchesTheAuthorsCode() throws {
        let unet = try ReuseAndDiffuse.UNet3DConditionModel(directory: f.component("unet"))
        let text = try f.tensor("unet.encoder_hidden_states")
        let first = Tensor(shape: [1] + Array(text.shape.dropFirst()), scalars: Array(text.scalars.prefix(text.count / 2)))
        var ws = Workspace()
        let out = try unet(f.tensor("unet.one_frame_sample"), timesteps: [500],
                           conditioning: unet.conditioning(encoderHiddenStates: first), workspace: &ws)
        let err = relativeError(out, try f.tensor("unet.one_frame_out"))
        #expect(err < fp32Tolerance, "one-frame relative error \(err)")
    }

    @Test func missingAndUnexpectedTensorsAreNamed() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("vidrd-rd-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(at: f.component("unet"), to: dir)
        let file = dir.appendingPathComponent("diffusion_pytorch_model.safetensors")
        let original = try SafeTensorsFile(path: file.path)
        let dropped = ["down_blocks.0.attentions.0.transformer_blocks.0.temp_attn.to_q.weight",
                       "up_blocks.2.temp_convs.1.convs.15.bias"]
        var tensors: [(name: String, tensor: Tensor)] = []
        for name in original.names where !dropped.contains(name) { tensors.append((name, try original.tensor(name))) }
        // A diffusers-layout tensor in an authors' checkpoint is unexpected, not silently ignored.
        tensors.append(("down_blocks.0.temp_attentions.0.proj_in.weight", Tensor(zeros: [32, 32])))
        try SafeTensorsWriter.write(tensors, to: file.path)
        do {
            _ = try VideoUNet(directory: dir)
            Issue.record("an authors' checkpoint with missing tensors loaded")
        } catch let WeightError.mismatchedTensors(_, missing, unexpected, wrongShape) {
            #expect(missing == dropped.sorted())
            #expect(unexpected == ["down_blocks.0.temp_attentions.0.proj_in.weight"])
            #expect(wrongShape.isEmpty)
        }
    }
}
