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

    /// Identical entries (classifier-free guidance) share the computation before the first
    /// cross-attention; each entry must still equal its own batch-1 forward.
    @Test func sharedPrefixEqualsSeparateForwards() throws {
        let f = try Fixture("tiny-nonsquare")
        let unet = try UNet3DConditionModel(directory: f.component("unet"))
        let sample = try f.tensor("unet.sample")
        let first = UNet3DConditionModel.firstEntry(sample)
        let twice = UNet3DConditionModel.repeatBatch(first, times: 2)
        let states = try f.tensor("unet.encoder_hidden_states")
        var ws = Workspace()
        #expect(UNet3DConditionModel.entriesIdentical(twice, perImageTimesteps: [Float](repeating: 7, count: 2 * sample.shape[2]), batch: 2))
        let both = try unet(twice, timesteps: [300, 300], conditioning: unet.conditioning(encoderHiddenStates: states), workspace: &ws)
        let per = states.count / 2
        for e in 0..<2 {
            let text = Tensor(shape: [1] + Array(states.shape.dropFirst()), scalars: Array(states.scalars[(e * per)..<((e + 1) * per)]))
            let single = try unet(first, timesteps: [300], conditioning: unet.conditioning(encoderHiddenStates: text), workspace: &ws)
            let part = Tensor(shape: single.shape, scalars: Array(both.scalars[(e * single.count)..<((e + 1) * single.count)]))
            #expect(part.maxAbsDifference(single) < 1e-5)
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
