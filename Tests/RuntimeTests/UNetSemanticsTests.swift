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
    /// cross-attention; each entry must still equal its own batch-1 forward, bit for bit with the
    /// runtime's GEMM (to float rounding under OpenBLAS, see `batchedSessionsMatchTheirOwnCalls`).
    @Test func sharedPrefixEqualsSeparateForwards() throws {
        let f = try Fixture("tiny-nonsquare")
        let unet = try UNet3DConditionModel(directory: f.component("unet"))
        let sample = try f.tensor("unet.sample")
        let first = UNet3DConditionModel.gatherEntries(sample, entries: sample.shape[0], picking: [0])
        let twice = UNet3DConditionModel.gatherEntries(first, entries: 1, picking: [0, 0])
        let states = try f.tensor("unet.encoder_hidden_states")
        var ws = Workspace()
        #expect(UNet3DConditionModel.identicalRuns(twice, perImageTimesteps: [Float](repeating: 7, count: 2 * sample.shape[2]), batch: 2) == [2])
        #expect(UNet3DConditionModel.identicalRuns(sample, perImageTimesteps: [Float](repeating: 7, count: 2 * sample.shape[2]), batch: 2) == [1, 1])
        let both = try unet(twice, timesteps: [300, 300], conditioning: unet.conditioning(encoderHiddenStates: states), workspace: &ws)
        let per = states.count / 2
        for e in 0..<2 {
            let text = Tensor(shape: [1] + Array(states.shape.dropFirst()), scalars: Array(states.scalars[(e * per)..<((e + 1) * per)]))
            let single = try unet(first, timesteps: [300], conditioning: unet.conditioning(encoderHiddenStates: text), workspace: &ws)
            let part = Tensor(shape: single.shape, scalars: Array(both.scalars[(e * single.count)..<((e + 1) * single.count)]))
            #expect(part.maxAbsDifference(single) < 1e-5)
            if ComputeKernels.active.isa != .generic { #expect(part == single) }
        }
    }

    /// Continuous batching: the guided steps of three sessions (own latents, text, timesteps; one
    /// with per-frame timesteps) in one U-Net call give each session exactly its own call's
    /// prediction, and a call with preemption points gives exactly the call without.
    ///
    /// Bit for bit because the runtime's GEMM computes a row the same way wherever it sits in a
    /// call (Sources/CVidrdKernels). Under the OpenBLAS fallback (VIDRD_ISA=generic) only to
    /// float rounding: its sgemm rounds a row differently depending on its position in the call.
    @Test(arguments: ["tiny-lpb2", "tiny-nonsquare"])
    func batchedSessionsMatchTheirOwnCalls(_ config: String) throws {
        let f = try Fixture(config)
        let unet = try UNet3DConditionModel(directory: f.component("unet"))
        let base = try f.tensor("unet.sample")
        let states = try f.tensor("unet.encoder_hidden_states")
        let frames = base.shape[2]
        var random = SeededRandomSource(seed: 11)
        var entries: [BatchedNoisePrediction.Entry] = []
        for session in 0..<3 {
            let one = Array(base.shape.dropFirst())
            let latents = Tensor(shape: [1] + one, scalars: random.standardNormal(count: one.reduce(1, *)))
            let pair = UNet3DConditionModel.gatherEntries(latents, entries: 1, picking: [0, 0])
            var text = states
            text.scalars = states.scalars.map { $0 * Float(1 + session) * 0.5 }
            let timesteps: [Float] = session == 1
                ? (0..<(2 * frames)).map { Float(100 + 37 * ($0 % frames)) }
                : [Float(900 - 300 * session), Float(900 - 300 * session)]
            entries.append(.init(input: pair, timesteps: timesteps, conditioning: try unet.conditioning(encoderHiddenStates: text)))
        }
        var ws = Workspace()
        let alone = try entries.map { try unet($0.input, timesteps: $0.timesteps, conditioning: $0.conditioning, workspace: &ws) }
        let batched = try BatchedNoisePrediction.run(entries, unet: .diffusers(unet), workspace: &ws)
        #expect(batched.count == 3)
        let exact = ComputeKernels.active.isa != .generic
        for (a, b) in zip(alone, batched) {
            #expect(a.shape == b.shape)
            if exact { #expect(a == b, "max difference \(a.maxAbsDifference(b))") }
            #expect(a.maxAbsDifference(b) < 1e-5, "max difference \(a.maxAbsDifference(b))")
        }
        // Other sessions' entries do not matter: swapping them changes nothing.
        let swapped = try BatchedNoisePrediction.run([entries[2], entries[1], entries[0]], unet: .diffusers(unet), workspace: &ws)
        if exact { #expect(swapped[2] == alone[0] && swapped[0] == alone[2] && swapped[1] == alone[1]) }
        #expect(swapped[2].maxAbsDifference(alone[0]) < 1e-5 && swapped[0].maxAbsDifference(alone[2]) < 1e-5)
        // Preemption points: the callback runs between layers and leaves the call's result alone,
        // even when it runs another forward on its own workspace there.
        var points: [Double] = []
        var other = Workspace()
        let interrupted = try unet(entries[0].input, timesteps: entries[0].timesteps, conditioning: entries[0].conditioning,
                                   workspace: &ws) { done in
            points.append(done)
            if points.count == 1 { _ = try? unet(entries[1].input, timesteps: entries[1].timesteps, conditioning: entries[1].conditioning, workspace: &other) }
        }
        #expect(interrupted == alone[0], "a preempted forward is bit for bit the plain one")
        #expect(!points.isEmpty && points == points.sorted() && points.allSatisfy { $0 > 0 && $0 < 1 })
        var smaller = entries[0]
        smaller = .init(input: UNet3DConditionModel.gatherEntries(smaller.input, entries: 2, picking: [0]),
                        timesteps: [smaller.timesteps[0]], conditioning: try unet.conditioning(encoderHiddenStates: states))
        #expect(throws: ModelError.self, "a batch-1 entry with a batch-2 conditioning is refused, not misread") {
            _ = try BatchedNoisePrediction.run([entries[2], smaller], unet: .diffusers(unet), workspace: &ws)
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
