import Foundation
import Testing
@testable import VidrdRuntime

/// Each model component against PyTorch outputs recorded from the same weights.
@Suite struct ModelParityTests {
    @Test(arguments: Fixture.parityConfigs)
    func textEncoderMatchesTransformers(config: String) throws {
        let f = try Fixture(config)
        let model = try CLIPTextModel(directory: f.component("text_encoder"))
        let ids = try f.reference.integers("text.input_ids").map { Int32($0) }
        let out = try model([Array(ids[0..<77]), Array(ids[77..<154])])
        let expected = try f.tensor("text.hidden_states")
        #expect(out.shape == expected.shape)
        let err = relativeError(out, expected)
        #expect(err < fp32Tolerance, "\(config): text encoder relative error \(err)")
    }

    @Test(arguments: Fixture.parityConfigs)
    func unetForwardMatchesDiffusers(config: String) throws {
        let f = try Fixture(config)
        let unet = try UNet3DConditionModel(directory: f.component("unet"))
        let sample = try f.tensor("unet.sample")
        let timesteps = try f.reference.integers("unet.timesteps").map { Float($0) }
        #expect(Set(timesteps).count == timesteps.count, "fixture must exercise per-entry timesteps")
        let cond = try unet.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
        var ws = Workspace()
        let out = try unet(sample, timesteps: timesteps, conditioning: cond, workspace: &ws)
        let expected = try f.tensor("unet.out")
        #expect(out.shape == expected.shape)
        let err = relativeError(out, expected)
        #expect(err < fp32Tolerance, "\(config): U-Net relative error \(err)")
    }

    @Test(arguments: Fixture.parityConfigs)
    func vaeDecodeMatchesDiffusers(config: String) throws {
        let f = try Fixture(config)
        let vae = try AutoencoderKL(directory: f.component("vae"))
        var ws = Workspace()
        let z = try f.tensor("vae.z")
        let framewise = try vae.decode(z, temporal: false, workspace: &ws)
        let expectedFramewise = try f.tensor("vae.decoded_framewise")
        let errF = relativeError(framewise, expectedFramewise)
        #expect(errF < fp32Tolerance, "\(config): frame-wise decode relative error \(errF)")
        if vae.configuration.addTemporalConv {
            let temporal = try vae.decode(z, temporal: true, workspace: &ws)
            let expectedTemporal = try f.tensor("vae.decoded_temporal")
            let errT = relativeError(temporal, expectedTemporal)
            #expect(errT < fp32Tolerance, "\(config): temporal decode relative error \(errT)")
            // The temporal layers must matter, or this test could not tell them apart.
            #expect(relativeError(expectedFramewise, expectedTemporal) > 1e-2)
        }
    }

    /// A one-frame clip: the reference skips Temp-Conv (nothing to mix across time), so the
    /// temporal-aware decode must equal it, not run GroupNorm and the 3-tap conv on one frame.
    /// Recorded by tools/reference/make_vae_f1_fixture.py.
    @Test(arguments: ["tiny-lpb2", "tiny-nonsquare"])
    func vaeDecodeOneFrameMatchesTheReference(config: String) throws {
        let f = try Fixture(config)
        let vae = try AutoencoderKL(directory: f.component("vae"))
        #expect(vae.configuration.addTemporalConv, "\(config) must exercise the temporal-aware decoder")
        let ref = try SafeTensorsFile(path: f.directory.appendingPathComponent("vae_f1.safetensors").path)
        let z = try ref.tensor("vae.z_f1")
        #expect(z.shape[0] == 1)
        var ws = Workspace()
        let decoded = try vae.decode(z, temporal: true, workspace: &ws)
        let expected = try ref.tensor("vae.decoded_temporal_f1")
        #expect(decoded.shape == expected.shape)
        let err = relativeError(decoded, expected)
        #expect(err < fp32Tolerance, "\(config): F = 1 temporal decode relative error \(err)")
    }

    @Test(arguments: Fixture.parityConfigs)
    func vaeEncodeMatchesDiffusers(config: String) throws {
        let f = try Fixture(config)
        let vae = try AutoencoderKL(directory: f.component("vae"))
        var ws = Workspace()
        let mean = try vae.encodeMean(f.tensor("vae.encode_input"), workspace: &ws)
        let err = relativeError(mean, try f.tensor("vae.encode_mean"))
        #expect(err < fp32Tolerance, "\(config): encoder relative error \(err)")
    }
}
