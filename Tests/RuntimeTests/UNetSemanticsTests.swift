import Foundation
import Testing
@testable import VidrdRuntime

@Suite struct UNetSemanticsTests {
    /// Per-(entry, frame) timesteps that repeat each entry's value equal per-entry timesteps,
    /// and changing one frame's timestep changes the output (the per-frame path is live).
    @Test func perFrameTimesteps() throws {
        let f = try Fixture("tiny-lpb2")
        let unet = try UNet3DConditionModel(directory: f.component("unet"))
        let sample = try f.tensor("unet.sample")
        let frames = sample.shape[2]
        let cond = try unet.conditioning(encoderHiddenStates: f.tensor("unet.encoder_hidden_states"))
        var ws = Workspace()
        let perEntry = try unet(sample, timesteps: [901, 21], conditioning: cond, workspace: &ws)
        let expanded = [Float](repeating: 901, count: frames) + [Float](repeating: 21, count: frames)
        let perFrame = try unet(sample, timesteps: expanded, conditioning: cond, workspace: &ws)
        #expect(perFrame == perEntry)
        var varied = expanded
        varied[frames - 1] = 500
        let changed = try unet(sample, timesteps: varied, conditioning: cond, workspace: &ws)
        #expect(relativeError(changed, perEntry) > 1e-3)
        #expect(throws: ModelError.self) {
            _ = try unet(sample, timesteps: [1, 2, 3], conditioning: cond, workspace: &ws)
        }
    }

    @Test func textConditioningMustMatchBatch() throws {
        let f = try Fixture("tiny-lpb2")
        let unet = try UNet3DConditionModel(directory: f.component("unet"))
        let states = try f.tensor("unet.encoder_hidden_states")
        let one = Tensor(shape: [1] + Array(states.shape.dropFirst()), scalars: Array(states.scalars.prefix(states.count / 2)))
        let cond = try unet.conditioning(encoderHiddenStates: one)
        var ws = Workspace()
        #expect(throws: ModelError.self) {
            _ = try unet(try f.tensor("unet.sample"), timesteps: [1, 1], conditioning: cond, workspace: &ws)
        }
    }
}
